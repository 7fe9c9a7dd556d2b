"""The mitmproxy addon, run for real: mitmdump in reverse mode in front of a local upstream."""

from __future__ import annotations

import asyncio
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


HOSTS_SEEN: list[str] = []  # the Host header of each request the upstream got


async def self_only(request: web.Request) -> web.Response:
    HOSTS_SEEN.append(request.headers.get("Host", ""))
    return web.Response(body=PAGE, content_type="text/html", headers={"Content-Security-Policy": "script-src 'self'"})


async def upload(request: web.Request) -> web.Response:
    HOSTS_SEEN.append(request.headers.get("Host", ""))
    return web.Response(text=str(len(await request.read())))


async def chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/html"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(PAGE[:100])
    await response.write(PAGE[100:])
    await response.write_eof()
    return response


@pytest.fixture
async def upstream():
    HOSTS_SEEN.clear()
    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/gzip", gzipped)
    app.router.add_get("/style.css", asset)
    app.router.add_get("/self-only", self_only)
    app.router.add_get("/chunked", chunked)
    app.router.add_post("/upload", upload)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
def mitmdump(upstream, request):
    assert MITMDUMP, "mitmdump is missing: run `make install-test`"
    port = free_port()
    extra = getattr(request, "param", [])  # more mitmdump arguments, through indirect parametrisation
    proc = subprocess.Popen([MITMDUMP, "--mode", f"reverse:{upstream}", "-s", str(ADDON),
                             "--listen-host", "127.0.0.1", "--listen-port", str(port), "-q", *extra],
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


async def test_csp_sources_name_the_host_the_visitor_asked_for(mitmdump, upstream):
    """Reverse mode sends the upstream its own Host, but the page's path source
    for our script must name the public host, or the browser blocks it."""
    port = mitmdump.rsplit(":", 1)[1]
    status, headers, body = await fetch(mitmdump + "/self-only", {**NAVIGATION, "Host": f"shop.test:{port}"})
    assert status == 200 and b"/__cobrowse/loader.js" in body
    script_src = headers["Content-Security-Policy"].split("script-src", 1)[1].split(";", 1)[0]
    assert f"http://shop.test:{port}/__cobrowse/" in script_src
    assert "127.0.0.1" not in headers["Content-Security-Policy"]
    assert HOSTS_SEEN == [upstream.split("//", 1)[1]]  # mitmproxy's own behaviour: the upstream's Host


@pytest.mark.parametrize("mitmdump", [["--set", "keep_host_header=true"]], indirect=True)
async def test_keep_host_header_still_sends_the_visitors_host(mitmdump, upstream):
    port = mitmdump.rsplit(":", 1)[1]
    await fetch(mitmdump + "/self-only", {**NAVIGATION, "Host": f"shop.test:{port}"})
    assert HOSTS_SEEN == [f"shop.test:{port}"]


async def test_a_chunked_page_is_chunked_once(mitmdump):
    host, port = mitmdump.split("//", 1)[1].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))  # (the upstream runs on this loop)
    writer.write(b"GET /chunked HTTP/1.1\r\nHost: shop.test\r\nAccept: text/html\r\n"
                 b"Sec-Fetch-Dest: document\r\nConnection: close\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 20)
    writer.close()
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    assert head.count(b"\r\ntransfer-encoding:") == 1, head
    assert b"__cobrowse/loader.js" in data


async def test_an_https_upstream_is_asked_for_by_its_own_name():
    """Reverse mode names the upstream in SNI; the addon, which keeps the
    visitor's Host to read it, must not send the visitor's TLS name instead."""
    import ssl

    import trustme

    ca = trustme.CA()
    names: list[str] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    context.sni_callback = lambda _socket, name, _context: names.append(name)
    app = web.Application()
    app.router.add_get("/self-only", self_only)
    runner = web.AppRunner(app)
    await runner.setup()
    up_port, port = free_port(), free_port()
    await web.TCPSite(runner, "127.0.0.1", up_port, ssl_context=context).start()
    proc = subprocess.Popen([MITMDUMP, "--mode", f"reverse:https://localhost:{up_port}", "-s", str(ADDON),
                             "--listen-host", "127.0.0.1", "--listen-port", str(port), "-q", "--ssl-insecure"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        client = ssl.create_default_context()
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE  # mitmproxy's own certificate for the visitor
        for _ in range(300):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client,
                                                               server_hostname="shop.test")
                break
            except OSError:
                await asyncio.sleep(0.1)
        writer.write(b"GET /self-only HTTP/1.1\r\nHost: shop.test\r\nAccept: text/html\r\n"
                     b"Sec-Fetch-Dest: document\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 20)
        writer.close()
        assert data.startswith(b"HTTP/1.1 200")
        assert b"https://shop.test/__cobrowse/" in data.split(b"\r\n\r\n", 1)[0]  # the visitor's host in CSP
        assert names and set(names) == {"localhost"}  # not "shop.test"
        assert HOSTS_SEEN[-1] == f"localhost:{up_port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        await runner.cleanup()


@pytest.mark.parametrize("mitmdump", [["--set", "stream_large_bodies=1k"]], indirect=True)
async def test_a_streamed_upload_goes_upstream_with_the_upstreams_host(mitmdump, upstream):
    """A streamed request's head leaves for the upstream before the `request`
    hook runs: the Host must be put back earlier, in `requestheaders`."""
    async with aiohttp.ClientSession() as session:
        async with session.post(mitmdump + "/upload", data=b"x" * 100_000,
                                headers={"Host": "shop.test"}) as response:
            assert await response.text() == "100000"
    assert HOSTS_SEEN == [upstream.split("//", 1)[1]]
