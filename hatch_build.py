"""Hatchling build hook: builds the browser bundle before the wheel is made.

The bundle (cobrowse/static_dist/: loader.js, widget.js, manifest.json) is built
from static/ by `node static/build.mjs` and is never committed; pyproject.toml
lists it as wheel artifacts so that an installed wheel runs without node. This
hook runs for the standard and the editable wheel and rebuilds the bundle when a
file is missing or older than any of its inputs (static/src/**, static/build.mjs,
static/package.json, static/package-lock.json), installing the npm packages
first with `npm ci` when static/node_modules is missing or older than the lock.

If node or npm is needed but missing, a bundle that is only out of date is kept
with a warning; a missing bundle is an error that says what to install.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

OUTPUTS = ("loader.js", "widget.js", "manifest.json")
INSTALL_HELP = (
    "The cobrowse browser bundle (cobrowse/static_dist/) has to be built with Node.js "
    "(18 or newer) and npm. Install them (Debian/Ubuntu: `apt-get install nodejs npm`, "
    "elsewhere your platform's Node.js package) and build again, or run `make bundle`."
)


class BundleError(RuntimeError):
    pass


def _newest_mtime(paths: list[Path]) -> float:
    return max((p.stat().st_mtime for p in paths if p.is_file()), default=0.0)


def _inputs(static: Path) -> list[Path]:
    files = [p for p in (static / "src").rglob("*") if p.is_file()]
    files += [static / "build.mjs", static / "package.json", static / "package-lock.json"]
    return files


def _outputs(dist: Path) -> list[Path]:
    names = set(OUTPUTS)
    try:
        names |= set(json.loads((dist / "manifest.json").read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return [dist / name for name in sorted(names)]


def bundle_status(root: Path) -> tuple[bool, str]:
    """(up_to_date, reason) for the bundle of the source tree at root."""
    static, dist = root / "static", root / "cobrowse" / "static_dist"
    outputs = _outputs(dist)
    missing = [p.name for p in outputs if not p.is_file()]
    if missing:
        return False, "missing " + ", ".join(missing)
    try:
        mode = json.loads((dist / "manifest.json").read_text()).get("mode")
    except (OSError, ValueError):
        mode = None
    if mode != "production":
        return False, f"built in {mode or 'unknown'} mode"
    oldest_output = min(p.stat().st_mtime for p in outputs)
    newer = [p for p in _inputs(static) if p.is_file() and p.stat().st_mtime > oldest_output]
    if newer:
        return False, f"{newer[0].relative_to(root)} is newer than the bundle"
    return True, "up to date"


def needs_npm_ci(static: Path) -> bool:
    # npm writes node_modules/.package-lock.json on every install.
    marker = static / "node_modules" / ".package-lock.json"
    lock = static / "package-lock.json"
    return not marker.is_file() or marker.stat().st_mtime < lock.stat().st_mtime


def build_bundle(root: Path, log=print) -> None:
    """Bring cobrowse/static_dist up to date, running npm ci and build.mjs as needed."""
    static = root / "static"
    have_bundle = (root / "cobrowse" / "static_dist" / "loader.js").is_file()
    if not (static / "build.mjs").is_file():
        # No sources to build from: use the bundle that is there, if any.
        if have_bundle:
            return
        raise BundleError("cobrowse bundle: static/build.mjs and the built bundle are both missing. " + INSTALL_HELP)
    fresh, reason = bundle_status(root)
    if fresh:
        return
    node, npm = shutil.which("node"), shutil.which("npm")
    ci = needs_npm_ci(static)
    lacking = [name for name, exe in (("node", node), ("npm", npm if ci else "ok")) if not exe]
    if lacking:
        if have_bundle:
            log(f"cobrowse bundle: {reason}, but {' and '.join(lacking)} not found; keeping the existing bundle")
            return
        raise BundleError(f"cobrowse bundle: {reason} and {' and '.join(lacking)} not found. " + INSTALL_HELP)
    log(f"cobrowse bundle: {reason}; building")
    try:
        if ci:
            subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=static, check=True)
        subprocess.run([node, str(static / "build.mjs")], cwd=root, check=True)
    except subprocess.CalledProcessError as e:
        raise BundleError(f"cobrowse bundle: `{' '.join(map(str, e.cmd))}` failed with exit code {e.returncode}") from e
    fresh, reason = bundle_status(root)
    if not fresh:
        raise BundleError(f"cobrowse bundle: still not up to date after building ({reason})")


class CustomBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel":
            return
        build_bundle(Path(self.root), log=self.app.display_info)
