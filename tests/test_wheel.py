"""The wheel carries everything a machine without npm needs: the built bundle and the migrations."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if not (ROOT / "cobrowse" / "static_dist" / "loader.js").is_file():
        pytest.fail("the bundle is not built: run `make install` (npm ci + node static/build.mjs)")
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation: hatchling is installed with the test extras, and the
    # registry need not be reached. The build hook sees a fresh bundle and skips npm.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(ROOT)], check=True, timeout=300)
    (built,) = out.glob("cobrowse-*.whl")
    return built


def test_wheel_contains_the_browser_bundle_and_migrations(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("cobrowse/static_dist/loader.js", "cobrowse/static_dist/widget.js",
                     "cobrowse/static_dist/manifest.json", "cobrowse/demo/static/shop.css",
                     "cobrowse/storage/migrations/env.py", "cobrowse/mitm_addon.py"):
        assert required in names, f"{required} missing from {wheel.name}"
    assert any(n.startswith("cobrowse/storage/migrations/versions/") and n.endswith(".py") for n in names)
    assert not any("node_modules" in n or n.startswith("static/") for n in names)


def test_wheel_declares_the_console_script(wheel):
    with zipfile.ZipFile(wheel) as archive:
        entry_points = next(n for n in archive.namelist() if n.endswith("entry_points.txt"))
        assert "cobrowse = cobrowse.cli:main" in archive.read(entry_points).decode()
