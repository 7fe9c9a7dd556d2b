"""The browser bundle: built by static/build.mjs into cobrowse/static_dist/.

The session fixture runs the real build once (npm ci first if static/node_modules
is missing); without node it checks the bundle that is already there, and skips
only if there is none. The last test loads the loader in Chromium under a strict
CSP (marked e2e; skipped when Chromium or Playwright is missing).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import shutil
import subprocess
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "static"
DIST = ROOT / "cobrowse" / "static_dist"
LOADER_BUDGET_GZIP = 6 * 1024
# What loads when the visitor asks for help (widget + rrweb recorder), summed.
ON_DEMAND_BUDGET_GZIP = 50 * 1024

# Sinks that parse HTML, turn strings into code or set inline styles: blocked by
# strict CSPs and Trusted Types, so none of our own browser code may use them.
FORBIDDEN = {
    "innerHTML": r"\binnerHTML\b",
    "outerHTML": r"\bouterHTML\b",
    "insertAdjacentHTML": r"\binsertAdjacentHTML\b",
    "document.write": r"\bdocument\s*\.\s*write",
    "eval(": r"\beval\s*\(",
    "new Function": r"\bnew\s+Function\b",
    "setAttribute('style')": r"setAttribute\s*\(\s*['\"`]style['\"`]",
    "srcdoc": r"\bsrcdoc\b",
    "javascript: URL": r"javascript:",
    "data: URL": r"['\"`]data:",
}


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    if proc.returncode:
        pytest.fail(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


@pytest.fixture(scope="session")
def bundle() -> Path:
    node = shutil.which("node")
    if node is None:
        if not (DIST / "manifest.json").is_file():
            pytest.skip("cobrowse/static_dist is missing and node is not installed: install Node.js and npm, then `make bundle`")
        return DIST
    if not (STATIC / "node_modules" / ".package-lock.json").is_file():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("static/node_modules is missing and npm is not installed")
        _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], STATIC)
    _run([node, str(STATIC / "build.mjs")], ROOT)
    return DIST


@pytest.fixture(scope="session")
def manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def test_manifest_lists_every_output_with_its_sizes(bundle: Path, manifest: dict) -> None:
    assert manifest["mode"] == "production"
    files = manifest["files"]
    assert {"loader.js", "widget.js", "recorder.js"} <= set(files)
    for name, info in files.items():
        data = (bundle / name).read_bytes()
        assert info["size"] == len(data), name
        assert info["gzip"] == len(served_gzip(bundle, name)), name  # the size a gzip-accepting browser gets
        # zopfli's deflate: never larger than zlib's best (a few bytes of header aside)
        assert info["gzip"] <= len(gzip.compress(data, 9)) + 16, name
        assert re.fullmatch(r"[0-9a-f]{12}", info["hash"]), name


def served_gzip(bundle: Path, name: str) -> bytes:
    """The pre-compressed copy the server sends to browsers that accept gzip (and that it is that file)."""
    compressed = (bundle / (name + ".gz")).read_bytes()
    assert gzip.decompress(compressed) == (bundle / name).read_bytes(), name
    return compressed


def test_loader_is_within_its_gzip_budget(bundle: Path, manifest: dict) -> None:
    info = manifest["files"]["loader.js"]
    own = len(served_gzip(bundle, "loader.js"))
    assert info["budget_gzip"] == LOADER_BUDGET_GZIP
    assert info["gzip"] <= LOADER_BUDGET_GZIP
    assert own <= LOADER_BUDGET_GZIP, f"loader.js is {own} B gzip, budget {LOADER_BUDGET_GZIP} B"


def test_loader_asks_for_the_widget_it_was_built_with(bundle: Path, manifest: dict) -> None:
    loader = (bundle / "loader.js").read_text()
    assert manifest["files"]["widget.js"]["hash"] in loader
    assert "__COBROWSE_HASH_" not in loader
    assert "__cobrowseWidget" in (bundle / "widget.js").read_text()


def test_widget_and_loader_ask_for_the_recorder_they_were_built_with(bundle: Path, manifest: dict) -> None:
    recorder_hash = manifest["files"]["recorder.js"]["hash"]
    widget = (bundle / "widget.js").read_text()
    # The widget loads it after consent; the loader preloads it on page loads during a session.
    assert recorder_hash in widget and recorder_hash in (bundle / "loader.js").read_text()
    assert "__COBROWSE_HASH_" not in widget
    assert "__cobrowseRecorder" in (bundle / "recorder.js").read_text()


def test_what_loads_on_demand_is_within_its_gzip_budget(bundle: Path, manifest: dict) -> None:
    group = manifest["groups"]["on-demand"]
    assert set(group["files"]) == {"widget.js", "recorder.js"}
    assert group["budget_gzip"] == ON_DEMAND_BUDGET_GZIP
    own = sum(len(served_gzip(bundle, name)) for name in group["files"])
    assert group["gzip"] == own
    assert own <= ON_DEMAND_BUDGET_GZIP, f"widget.js + recorder.js are {own} B gzip, budget {ON_DEMAND_BUDGET_GZIP} B"


def _own_sources() -> list[Path]:
    return sorted(p for p in (STATIC / "src").rglob("*.js"))


@pytest.mark.parametrize("path", _own_sources(), ids=lambda p: str(p.relative_to(STATIC)))
def test_source_has_no_forbidden_sinks(path: Path) -> None:
    text = path.read_text()
    found = [name for name, rx in FORBIDDEN.items() if re.search(rx, text)]
    assert not found, f"{path.relative_to(ROOT)} uses {', '.join(found)}"


def test_built_loader_has_no_forbidden_sinks(bundle: Path) -> None:
    text = (bundle / "loader.js").read_text()
    found = [name for name, rx in FORBIDDEN.items() if re.search(rx, text)]
    assert not found, f"built loader.js uses {', '.join(found)}"


def test_built_widget_has_no_forbidden_sinks(bundle: Path) -> None:
    text = (bundle / "widget.js").read_text()
    found = [name for name, rx in FORBIDDEN.items() if re.search(rx, text)]
    assert not found, f"built widget.js uses {', '.join(found)}"


def test_the_chat_is_part_of_the_widget(bundle: Path, manifest: dict) -> None:
    """The chat (forms, conversation, files, emoji) comes with the widget, within the
    on-demand budget, and no page asks for a chat bundle of its own."""
    assert "chat.js" not in manifest["files"] and not (bundle / "chat.js").exists()
    widget = (bundle / "widget.js").read_text()
    assert "chat_resume" in widget and "chat_send" in widget
    assert "__cobrowseChat" not in widget and "chat.js" not in (bundle / "loader.js").read_text()


def test_built_recorder_is_patched_for_strict_csps(bundle: Path) -> None:
    """rrweb's own code, minus the one style-attribute write build.mjs patches out.

    (Its "data:" URLs belong to a URL check.)
    """
    text = (bundle / "recorder.js").read_text()
    found = [name for name, rx in FORBIDDEN.items() if name != "data: URL" and re.search(rx, text)]
    assert not found, f"built recorder.js uses {', '.join(found)}"
    assert re.search(r"\.style\.cssText=\w+\.oldValue", text)


def test_built_recorder_leaves_out_what_we_never_record(bundle: Path) -> None:
    """Canvas contents and fonts are never recorded (recordCanvas and collectFonts are
    off in widget/recorder.js): their observers and rrweb's inlined canvas worker are
    not in the bundle (build.mjs stands in for the canvas manager)."""
    text = (bundle / "recorder.js").read_text()
    assert "OffscreenCanvas" not in text and "createImageBitmap" not in text  # the worker, the FPS sampler
    assert "WebGL" not in text  # the canvas and WebGL observers
    assert "FontFace" not in text  # the font observer
    assert re.search(r"reset\(\)\{\}freeze\(\)\{\}unfreeze\(\)\{\}lock\(\)\{\}unlock\(\)\{\}", text)  # the stand-in


def test_npm_versions_are_pinned() -> None:
    pkg = json.loads((STATIC / "package.json").read_text())
    assert pkg["private"] is True
    for section in ("dependencies", "devDependencies", "overrides"):
        for name, spec in pkg.get(section, {}).items():
            assert re.fullmatch(r"\d+\.\d+\.\d+(-[\w.]+)?", spec), f"{section}.{name} is not pinned: {spec}"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_build_is_deterministic(bundle: Path, manifest: dict) -> None:
    _run([shutil.which("node"), str(STATIC / "build.mjs")], ROOT)
    again = json.loads((bundle / "manifest.json").read_text())
    assert again == manifest


# --- in a real browser -------------------------------------------------------

# connect-src 'self': what a site that pastes our tag must allow (README), and what the
# proxy adds itself: the widget asks chat/config as its panel opens.
CSP = "default-src 'none'; script-src 'nonce-abc' 'strict-dynamic'; style-src 'self'; connect-src 'self'"
# The chat's settings as the service would answer them: nobody available.
CHAT_CONFIG = b'{"enabled": true, "available": false, "offline": true, "prechat": false}'
PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>t</title>
<script src="/help/loader.js" nonce="abc" async></script>
<script src="/help/loader.js" nonce="abc" async></script></head>
<body><h1>A shop</h1><button id="page">page button</button></body></html>"""


def _chromium() -> str | None:
    for candidate in (os.environ.get("COBROWSE_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


# The inline tag (stub.js) as the proxy writes it, under a nonce policy that also enforces
# Trusted Types: the tag and the loader share the one "cobrowse" policy.
TT_CSP = CSP + "; img-src 'self'; require-trusted-types-for 'script'; trusted-types cobrowse"


def _inline_page() -> bytes:
    stub = (DIST / "stub.js").read_bytes().strip()
    return (b'<!doctype html><html><head><meta charset="utf-8">'
            b'<script data-src="/help/loader.js" nonce="abc" data-mask-selectors="[&quot;#page&quot;]">' + stub +
            b'</script><title>t</title></head><body><h1>A shop</h1><button id="page">page button</button>'
            b'<img src="/slow.svg" alt=""></body></html>')


class _Handler(SimpleHTTPRequestHandler):
    """Serves the page under a strict CSP, and the bundle under the prefix /help/."""

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?")[0]
        csp = CSP
        if path == "/":
            body, ctype = PAGE, "text/html"
        elif path == "/inline":
            body, ctype, csp = _inline_page(), "text/html", TT_CSP
        elif path in ("/slow.svg", "/favicon.ico"):
            if path == "/slow.svg":
                time.sleep(0.5)  # the page's load event waits for it
            body, ctype = b'<svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml"
        elif path == "/help/chat/config":
            body, ctype = CHAT_CONFIG, "application/json"
        elif path == "/help/loader.js":
            body, ctype = (DIST / "loader.js").read_bytes(), "text/javascript"
        elif path.startswith("/help/static/") and (DIST / path.rsplit("/", 1)[1]).is_file():
            body, ctype = (DIST / path.rsplit("/", 1)[1]).read_bytes(), "text/javascript"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Security-Policy", csp)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def _watched_page(path: str):
    """A Chromium page at ``path`` of the test server, and the console errors, warnings
    and CSP violations it reports (asserted empty once the test body is done)."""
    chromium = _chromium()
    if chromium is None:
        pytest.skip("Chromium not found (set COBROWSE_CHROMIUM or install Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(DIST)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    problems: list[str] = []
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync"],
            )
            page = browser.new_page()
            page.on("console", lambda m: m.type in ("error", "warning") and problems.append(m.text))
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.add_init_script(
                "document.addEventListener('securitypolicyviolation',"
                " e => console.error('CSP violation: ' + e.violatedDirective))"
            )
            page.goto(f"http://127.0.0.1:{server.server_address[1]}{path}", wait_until="load")
            yield page
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    assert not problems, problems


@pytest.mark.e2e
def test_loader_and_widget_work_under_a_strict_csp(bundle: Path) -> None:
    with _watched_page("/") as page:
        launcher = page.locator("#cobrowse-root >> button.l")
        launcher.wait_for(timeout=5000)
        assert page.locator("#cobrowse-root").count() == 1  # the tag is there twice
        host = page.locator("#cobrowse-root").bounding_box()
        assert host is not None and host["width"] == 0 and host["height"] == 0
        assert launcher.get_attribute("aria-label") == "Get help"

        launcher.click()
        panel = page.locator("#cobrowse-root >> section.p")
        panel.wait_for(state="visible", timeout=5000)
        assert "nothing is shared until you agree" in panel.inner_text()
        page.locator("#cobrowse-root >> .kh button.go", has_text="Leave a message").wait_for(timeout=5000)
        assert launcher.get_attribute("aria-expanded") == "true"
        page.keyboard.press("Escape")
        panel.wait_for(state="hidden")
        assert launcher.get_attribute("aria-expanded") == "false"
        launcher.click()
        panel.wait_for(state="visible")
        page.locator("#cobrowse-root >> button.x").click()
        panel.wait_for(state="hidden")
        # The page under the (empty) host still gets its clicks.
        page.click("#page")


@pytest.mark.e2e
def test_the_inline_tag_adds_the_loader_after_the_page_has_loaded(bundle: Path) -> None:
    """Under a nonce CSP with Trusted Types enforced: no violation, the loader comes after the
    page's load event (the slow image holds it for 0.5 s), carries the nonce and the site's
    mask selectors, and the button works."""
    with _watched_page("/inline") as page:
        page.locator("#cobrowse-root >> button.l").wait_for(timeout=5000)
        timing = page.evaluate("""() => {
            const nav = performance.getEntriesByType('navigation')[0];
            const loader = performance.getEntriesByType('resource').find((e) => e.name.endsWith('/help/loader.js'));
            const s = document.querySelector('script[src$="/help/loader.js"]');
            return {load: nav.loadEventStart, loader: loader.startTime, nonce: s.nonce,
                    masks: s.getAttribute('data-mask-selectors'), tt: !!window.__cobrowseTT};
        }""")
        assert timing["loader"] >= timing["load"] >= 500, timing
        assert timing["nonce"] == "abc" and timing["masks"] == '["#page"]' and timing["tt"]
        page.locator("#cobrowse-root >> button.l").click()
        page.locator("#cobrowse-root >> section.p").wait_for(state="visible", timeout=5000)
