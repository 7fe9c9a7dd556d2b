"""The mitmproxy addon, run for real: mitmdump in reverse mode in front of a local upstream."""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
ADDON = ROOT / "cobrowse" / "mitm_addon.py"

PAGE = (b"<!doctype html><html><head><meta charset=utf-8><title>Shop</title></head>"
        b"<body><h1>Hello</h1>" + b"<p>text</p>" * 2000 + b"</body></html>")
NAVIGATION = {"Accept": "text/html", "Sec-Fetch-Dest": "document"}


def find_mitmdump() -> str | None:
    for candidate in (os.environ.get("COBROWSE_MITMDUMP"), str(ROOT / ".venv-mitmproxy" / "bin" / "mitmdump"),
                      shutil.which("mitmdump")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


MITMDUMP = find_mitmdump()
pytestmark = pytest.mark.skipif(
    MITMDUMP is None and not os.environ.get("CI"),
    reason="mitmdump not installed (make install-test creates .venv-mitmproxy)",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def page(request: web.Request) -> web.Response:
    return web.Response(body=PAGE, content_type="text/html", headers={
        "Content-Security-Policy": "script-src 'nonce-site123' 'strict-dynamic'; connect-src 'self'",
        "ETag": '"v1"',
    })


async def gzipped(request: web.Request) -> web.Response:
    return web.Response(body=gzip.compress(PAGE), headers={"Content-Type": "text/html", "Content-Encoding": "gzip"})


async def asset(request: web.Request) -> web.Response:
    return web.Response(body=b"body{color:red}" * 100, content_type="text/css")


@pytest.fixture
async def upstream():
    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/gzip", gzipped)
    app.router.add_get("/style.css", asset)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
def mitmdump(upstream):
    assert MITMDUMP, "mitmdump is missing: run `make install-test`"
    port = free_port()
    proc = subprocess.Popen([MITMDUMP, "--mode", f"reverse:{upstream}", "-s", str(ADDON),
                             "--listen-host", "127.0.0.1", "--listen-port", str(port), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mitmdump exited: {proc.stdout.read().decode(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


async def fetch(url: str, headers: dict | None = None):
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.get(url, headers=headers or {}) as response:
            return response.status, response.headers.copy(), await response.read()


async def test_navigation_gets_the_script_under_the_sites_nonce_policy(mitmdump):
    status, headers, body = await fetch(mitmdump + "/", NAVIGATION)
    assert status == 200
    # The inline tag (the policy trusts nonces): it adds loader.js once the page has loaded.
    assert body.count(b'<script data-src="/__cobrowse/loader.js"') == 1
    assert body.index(b"<meta charset=utf-8>") < body.index(b"__cobrowse/loader.js") < body.index(b"<title>")
    nonce = body.split(b'nonce="', 1)[1].split(b'"', 1)[0].decode()
    csp = headers["Content-Security-Policy"]
    assert f"'nonce-{nonce}'" in csp and "'nonce-site123'" in csp
    assert "__cobrowse/" in csp.split("connect-src", 1)[1]
    assert headers["ETag"] == 'W/"v1"'
    assert "Content-Length" not in headers
    # Apart from our tag, the page is the site's, byte for byte.
    tag = body[body.index(b"<script data-src="):body.index(b"</script>") + len(b"</script>")]
    assert body.replace(tag, b"", 1) == PAGE


async def test_gzip_page_is_decoded_injected_and_reencoded(mitmdump):
    status, headers, body = await fetch(mitmdump + "/gzip", {**NAVIGATION, "Accept-Encoding": "gzip"})
    assert status == 200
    assert headers.get("Content-Encoding") == "gzip"
    assert b"__cobrowse/loader.js" in gzip.decompress(body)


async def test_fetch_requests_and_assets_pass_through_untouched(mitmdump):
    _, _, body = await fetch(mitmdump + "/", {"Accept": "*/*", "Sec-Fetch-Dest": "empty"})
    assert body == PAGE
    _, headers, body = await fetch(mitmdump + "/style.css", {"Accept": "text/css"})
    assert body == b"body{color:red}" * 100
