"""The reverse proxy against real upstream servers: injection, streaming,
header mapping, methods and bodies, keep-alive, pipelining, routing."""

from __future__ import annotations

import asyncio
import gc
import gzip
import html
import json
import hashlib
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

import brotli
import pytest
from aiohttp import web

from cobrowse.config import Site
from cobrowse.proxy.exchange import Exchange

from conftest import TIMEOUT, RawClient, build_request, echo_app, fetch, upstream_headers

PAGE = b"<!doctype html><html><head><title>Shop</title></head><body><h1>Hello</h1></body></html>"
# Our tag: inline (it adds loader.js after the page's load), or external where the CSP has host sources only.
SNIPPET = re.compile(rb'<script (?:src="/__cobrowse/loader\.js" async=""|data-src="/__cobrowse/loader\.js") '
                     rb'nonce="([A-Za-z0-9_-]+)"(?:></script>|>\(function\(\)\{[^<]*</script>)')
NAVIGATE = {"Sec-Fetch-Dest": "document", "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
FETCH = {"Sec-Fetch-Dest": "empty", "Accept": "text/html"}  # fetch() of an HTML fragment
PNG = bytes(range(256)) * 64
SCRIPT_GZ = gzip.compress(b"console.log('hi');" * 100, mtime=0)


def injected(body: bytes) -> str:
    """The nonce of our tag, asserting the page is the upstream's with exactly our tag added after <head>."""
    tags = SNIPPET.findall(body)
    assert len(tags) == 1, body[:300]
    match = SNIPPET.search(body)
    assert body[:match.start()] + body[match.end():] == PAGE
    assert match.start() >= PAGE.index(b"<head>") + len(b"<head>")
    return tags[0].decode()


def compress(coding: str, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.compress(data)
    if coding == "deflate":
        return zlib.compress(data)
    return brotli.compress(data)


def decompress(coding: str, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.decompress(data)
    if coding == "deflate":
        return zlib.decompress(data)
    return brotli.decompress(data)


def site_app() -> web.Application:
    async def page(request: web.Request) -> web.Response:
        return web.Response(body=PAGE, content_type="text/html", headers={
            "ETag": '"v1"',
            "Content-Security-Policy": "script-src 'nonce-site123' 'strict-dynamic'; object-src 'none'",
            "Content-Security-Policy-Report-Only": "script-src 'self'; report-uri /csp",
        })

    async def page_default_src(request: web.Request) -> web.Response:
        return web.Response(body=PAGE, content_type="text/html",
                            headers={"Content-Security-Policy": "default-src 'self'"})

    async def encoded(request: web.Request) -> web.Response:
        coding = request.match_info["coding"]
        # Sent whatever the request asked for: the proxy must cope either way.
        return web.Response(body=compress(coding, PAGE), headers={
            "Content-Type": "text/html; charset=utf-8", "Content-Encoding": coding, "ETag": '"z"',
            "Vary": "Accept-Encoding"})

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png", headers={"ETag": '"img"'})

    async def script_gzip(request: web.Request) -> web.Response:
        return web.Response(body=SCRIPT_GZ, headers={
            "Content-Type": "text/javascript", "Content-Encoding": "gzip"})

    async def no_content(request: web.Request) -> web.Response:
        return web.Response(status=204, headers={"Content-Type": "text/html", "ETag": '"n"'})

    async def not_modified(request: web.Request) -> web.Response:
        return web.Response(status=304, headers={"Content-Type": "text/html", "ETag": '"v1"'})

    app = web.Application()
    app.router.add_get("/page", page)
    app.router.add_get("/page-default-src", page_default_src)
    app.router.add_get("/encoded/{coding}", encoded)
    app.router.add_get("/image.png", image)
    app.router.add_get("/app.js", script_gzip)
    app.router.add_get("/no-content", no_content)
    app.router.add_get("/not-modified", not_modified)
    return app


@pytest.fixture
async def site(start_app, start_proxy):
    port = await start_app(site_app())
    return await start_proxy(f"http://127.0.0.1:{port}")


# ---------------------------------------------------------------------------
# Injection
# ---------------------------------------------------------------------------


async def test_injects_into_a_document_navigation(site):
    response = await fetch(site.port, "GET", "/page", NAVIGATE)
    assert response.status == 200
    nonce = injected(response.body)
    assert response.header("content-length") is None  # the upstream's length is stale now
    assert response.header("transfer-encoding") == "chunked"
    assert response.header("etag") == 'W/"v1"'
    csp = response.header("content-security-policy")
    assert f"'nonce-{nonce}'" in csp and "'nonce-site123'" in csp and "object-src 'none'" in csp
    assert response.header("content-security-policy-report-only") == "script-src 'self'; report-uri /csp"


async def test_site_mask_selectors_reach_the_page_in_our_tag(start_app, start_proxy):
    """The site owner's selectors travel with the tag; the visitor's browser masks with them."""
    port = await start_app(site_app())
    selectors = (".account-number", 'input[name="iban"]', "#notes > p")
    service = await start_proxy(sites=[Site(host="*", upstream=f"http://127.0.0.1:{port}", mask_selectors=selectors)])
    body = (await fetch(service.port, "GET", "/page", NAVIGATE)).body
    match = re.search(rb'<script data-src="/__cobrowse/loader.js"[^>]*data-mask-selectors="([^"]*)"', body)
    assert match, body[:400]
    assert json.loads(html.unescape(match.group(1).decode())) == list(selectors)


async def test_injects_when_only_accept_says_html(site):
    response = await fetch(site.port, "GET", "/page", {"Accept": "text/html"})
    injected(response.body)


async def test_csp_without_nonces_gets_our_prefix_as_a_source(site):
    response = await fetch(site.port, "GET", "/page-default-src", NAVIGATE)
    injected(response.body)
    csp = response.header("content-security-policy")
    assert "default-src 'self'" in csp
    assert "script-src 'self' http://shop.test/__cobrowse/" in csp
    assert "ws://shop.test/__cobrowse/" in csp


async def test_no_injection_into_fetches(site):
    for headers in (FETCH, {"Accept": "*/*"}, {"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"}):
        response = await fetch(site.port, "GET", "/page", headers)
        assert response.body == PAGE, headers
        assert response.header("content-length") == str(len(PAGE))
        assert response.header("etag") == '"v1"'
        assert response.header("content-security-policy") == \
            "script-src 'nonce-site123' 'strict-dynamic'; object-src 'none'"


async def test_no_injection_into_head(site):
    response = await fetch(site.port, "HEAD", "/page", NAVIGATE)
    assert response.status == 200
    assert response.header("content-length") == str(len(PAGE))
    assert response.header("etag") == '"v1"'
    assert "__cobrowse" not in response.header("content-security-policy")


async def test_no_injection_into_bodiless_statuses(site):
    client = await RawClient.connect(site.port)
    for path, status, etag in (("/no-content", 204, '"n"'), ("/not-modified", 304, '"v1"')):
        response = await client.request("GET", path, NAVIGATE)
        assert response.status == status
        assert response.body == b""
        assert response.header("transfer-encoding") is None
        assert response.header("etag") == etag
        # The connection is still in step: the next response is read right.
        again = await client.request("GET", "/page", FETCH)
        assert again.body == PAGE
    await client.close()


async def test_decodes_injects_and_reencodes(site):
    for coding in ("gzip", "deflate", "br"):
        response = await fetch(site.port, "GET", f"/encoded/{coding}",
                               {**NAVIGATE, "Accept-Encoding": "gzip, deflate, br"})
        assert response.status == 200
        assert response.header("content-encoding") == coding
        assert response.header("content-length") is None
        assert response.header("etag") == 'W/"z"'
        injected(decompress(coding, response.body))


async def test_sends_identity_when_the_client_does_not_accept_the_coding(site):
    for coding in ("gzip", "deflate", "br"):
        response = await fetch(site.port, "GET", f"/encoded/{coding}", {**NAVIGATE, "Accept-Encoding": "zstd"})
        assert response.header("content-encoding") is None, coding
        injected(response.body)


async def test_asks_upstream_only_for_codings_it_can_decode(start_app, start_proxy):
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    seen = upstream_headers(await fetch(service.port, "GET", "/", {**NAVIGATE, "Accept-Encoding": "zstd, br, gzip"}))
    assert seen["accept-encoding"] == ["gzip, br"]
    seen = upstream_headers(await fetch(service.port, "GET", "/", {**FETCH, "Accept-Encoding": "zstd, br"}))
    assert seen["accept-encoding"] == ["zstd, br"]  # not a navigation: untouched


async def test_non_html_passes_through_byte_for_byte(site):
    image = await fetch(site.port, "GET", "/image.png", NAVIGATE)  # a navigation to an image
    assert image.body == PNG
    assert image.header("content-length") == str(len(PNG))
    assert image.header("etag") == '"img"'
    script = await fetch(site.port, "GET", "/app.js", {"Sec-Fetch-Dest": "script", "Accept-Encoding": "gzip"})
    assert script.header("content-encoding") == "gzip"
    assert script.body == SCRIPT_GZ
    assert script.header("content-length") == str(len(script.body))


# ---------------------------------------------------------------------------
# Streaming
# ---------------------------------------------------------------------------


class ChunkedReader:
    """Reads a chunked body one chunk at a time."""

    def __init__(self, client: RawClient) -> None:
        self.reader = client.reader
        self.done = False

    async def chunk(self) -> bytes:
        size = int((await asyncio.wait_for(self.reader.readuntil(b"\r\n"), TIMEOUT)).split(b";")[0], 16)
        data = await asyncio.wait_for(self.reader.readexactly(size + 2), TIMEOUT)
        if size == 0:
            self.done = True
        return data[:-2]


def gated_page_app(first: bytes, rest_chunks: int, chunk: bytes, gate: asyncio.Event,
                   content_type: str = "text/html") -> web.Application:
    """Sends ``first``, then waits for the test to open ``gate`` before sending the rest."""

    async def page(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": content_type})
        await response.prepare(request)
        await response.write(first)
        await asyncio.wait_for(gate.wait(), TIMEOUT)
        for _ in range(rest_chunks):
            await response.write(chunk)
        await response.write(b"</body></html>")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/big", page)
    return app


@pytest.mark.parametrize("headers", [NAVIGATE, FETCH], ids=["injected", "passed-through"])
async def test_first_bytes_arrive_before_the_upstream_sends_the_rest(start_app, start_proxy, headers):
    gate = asyncio.Event()
    first = b"<!doctype html><html><head><title>big</title></head><body>" + b"<p>first chunk</p>" * 200
    port = await start_app(gated_page_app(first, 40, b"<p>more</p>" * 1000, gate))
    service = await start_proxy(f"http://127.0.0.1:{port}")
    client = await RawClient.connect(service.port)
    await client.send(build_request("GET", "/big", headers))
    response = await client.read_head()
    assert response.status == 200
    reader = ChunkedReader(client)
    received = b""
    # The upstream is blocked until we have the start of the page: a buffering proxy would deadlock here.
    while b"<p>first chunk</p>" * 200 not in received:
        received += await reader.chunk()
    gate.set()
    while not reader.done:
        received += await reader.chunk()
    assert received.endswith(b"</body></html>")
    assert len(SNIPPET.findall(received)) == (1 if headers is NAVIGATE else 0)
    await client.close()


def _record_writes_and_scans(monkeypatch) -> list[tuple[str, bytes]]:
    """What the exchange writes to the visitor and when it starts on a body chunk, in order."""
    events: list[tuple[str, bytes]] = []
    flush, on_body = Exchange._flush, Exchange.on_body

    def recording_flush(self):
        if self.out:
            events.append(("write", b"".join(bytes(piece) for piece in self.out)))
        flush(self)

    def recording_on_body(self, body):
        events.append(("body", bytes(body[:16])))
        on_body(self, body)

    monkeypatch.setattr(Exchange, "_flush", recording_flush)
    monkeypatch.setattr(Exchange, "on_body", recording_on_body)
    return events


BIG_HEAD = b"<!doctype html><html><head><title>big</title></head><body>"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_long_page_head_leaves_before_its_body_is_scanned(start_raw, start_proxy, monkeypatch, framing):
    """Time to first byte: the head of a page longer than one read goes out as soon
    as it is mapped, even when the upstream sent it together with body bytes."""
    body = BIG_HEAD + b"<p>" + b"x" * (1024 * 1024) + b"</p></body></html>"
    first = 48 * 1024

    async def upstream(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        if framing == "content-length":
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(body)
            writer.write(head + body[:first])  # one write: head and the start of the page
            writer.write(body[first:])
        else:
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n"
            writer.write(head + b"%x\r\n%b\r\n" % (first, body[:first]))
            writer.write(b"%x\r\n%b\r\n0\r\n\r\n" % (len(body) - first, body[first:]))
        await writer.drain()

    port = await start_raw(upstream)
    service = await start_proxy(f"http://127.0.0.1:{port}")
    events = _record_writes_and_scans(monkeypatch)
    response = await fetch(service.port, "GET", "/big", NAVIGATE)
    assert response.status == 200
    assert len(SNIPPET.findall(response.body)) == 1
    assert SNIPPET.sub(b"", response.body) == body
    kind, written = events[0]
    assert kind == "write" and written.startswith(b"HTTP/1.1 200 ") and written.endswith(b"\r\n\r\n"), events[:2]
    assert events[1][0] == "body"


async def test_a_short_page_leaves_in_one_write(start_raw, start_proxy, monkeypatch):
    """A page that fits in one read keeps its head and body in one write: one send, not two."""
    async def upstream(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%b"
                     % (len(PAGE), PAGE))
        await writer.drain()

    port = await start_raw(upstream)
    service = await start_proxy(f"http://127.0.0.1:{port}")
    events = _record_writes_and_scans(monkeypatch)
    response = await fetch(service.port, "GET", "/page", NAVIGATE)
    injected(response.body)
    assert [kind for kind, _ in events] == ["body", "write"]
    assert events[1][1].startswith(b"HTTP/1.1 200 ") and events[1][1].endswith(b"</html>\r\n0\r\n\r\n")


BUFFERS_BETWEEN = 40 * 1024 * 1024  # generous bound on socket buffers (two loopback sockets each way) and ours


async def test_a_slow_visitor_holds_the_upstream_back(start_app, start_proxy):
    sent = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        for _ in range(4000):  # 256 MB at most
            await response.write(b"s" * 65536)
            sent += 65536
        return response

    app = web.Application()
    app.router.add_get("/endless", endless)
    port = await start_app(app)
    service = await start_proxy(f"http://127.0.0.1:{port}")
    client = await RawClient.connect(service.port)
    await client.send(build_request("GET", "/endless"))
    await client.read_head()
    await asyncio.wait_for(client.reader.readexactly(1024 * 1024), TIMEOUT)
    await asyncio.sleep(0.6)  # the visitor stops reading
    assert sent < BUFFERS_BETWEEN, f"the upstream got {sent / 2**20:.0f} MiB ahead of a stalled visitor"
    client.writer.transport.abort()


async def test_a_slow_upstream_holds_the_upload_back(start_raw, start_proxy):
    async def upstream(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(3600)  # never reads the body

    port = await start_raw(upstream)
    service = await start_proxy(f"http://127.0.0.1:{port}")
    client = await RawClient.connect(service.port)
    total = 256 * 1024 * 1024
    await client.send(build_request("POST", "/upload", {"Content-Length": str(total)}))
    sent = 0

    async def upload():
        nonlocal sent
        piece = b"u" * 65536
        while sent < total:
            client.writer.write(piece)
            await client.writer.drain()
            sent += len(piece)

    uploading = asyncio.create_task(upload())
    await asyncio.sleep(0.6)
    assert not uploading.done()
    assert sent < BUFFERS_BETWEEN, f"the visitor got {sent / 2**20:.0f} MiB into a stalled upstream"
    uploading.cancel()
    client.writer.transport.abort()


_SUBPROCESS_PROXY = """
import asyncio, sys
import uvloop
sys.path.insert(0, sys.argv[3])
from conftest import make_config
from cobrowse.server import Service

async def main():
    service = Service(make_config(sys.argv[1], data_dir=sys.argv[2]))
    await service.start()
    print(service.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the test closes stdin
    await service.stop()

uvloop.run(main())
"""


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to read the proxy's RSS")
async def test_50mb_page_streams_with_bounded_memory(start_app, tmp_path):
    """A 50 MB page (plain and gzip) through a proxy in its own process: the
    first bytes arrive while the upstream still holds the rest, and the
    proxy's peak RSS grows by far less than the page."""
    size = 50 * 1024 * 1024
    chunk = (b"<p>" + b"x" * 1017 + b"</p>\n") * 64  # 64 KiB of page
    gate = asyncio.Event()
    head = b"<!doctype html><html><head><title>big</title></head><body>"

    async def page(request: web.Request) -> web.StreamResponse:
        coding = request.query.get("coding")
        response = web.StreamResponse(headers={"Content-Type": "text/html",
                                               **({"Content-Encoding": "gzip"} if coding else {})})
        await response.prepare(request)
        encode = zlib.compressobj(6, zlib.DEFLATED, 31) if coding else None

        def out(data: bytes) -> bytes:
            return encode.compress(data) + encode.flush(zlib.Z_SYNC_FLUSH) if encode else data

        await response.write(out(head + chunk))
        if "gated" in request.query:
            await asyncio.wait_for(gate.wait(), TIMEOUT)
        for _ in range(size // len(chunk)):
            await response.write(out(chunk))
        await response.write(out(b"</body></html>") + (encode.flush() if encode else b""))
        await response.write_eof()
        return response

    async def small(request: web.Request) -> web.Response:
        return web.Response(body=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/big", page)
    app.router.add_get("/small", small)
    upstream_port = await start_app(app)

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SUBPROCESS_PROXY, f"http://127.0.0.1:{upstream_port}", str(tmp_path),
        str(Path(__file__).resolve().parent),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parents[1])
    try:
        port = int(await asyncio.wait_for(process.stdout.readline(), 20))
        for _ in range(3):  # warm up: imports, pools, buffers
            injected((await fetch(port, "GET", "/small", NAVIGATE)).body)
        baseline = _peak_rss_kib(process.pid)

        # Plain HTML, gated: the head and first chunk come through while the upstream waits.
        client = await RawClient.connect(port)
        await client.send(build_request("GET", "/big?gated=1", NAVIGATE))
        response = await client.read_head()
        assert response.status == 200 and response.header("content-length") is None
        reader = ChunkedReader(client)
        received = await reader.chunk()
        assert SNIPPET.search(received) and b"<p>xxxx" in received
        gate.set()
        total = len(received)
        while not reader.done:
            total += len(await reader.chunk())
        assert total > size
        await client.close()

        # gzip: decoded, injected and encoded again, piece by piece.
        client = await RawClient.connect(port)
        await client.send(build_request("GET", "/big?coding=gzip", {**NAVIGATE, "Accept-Encoding": "gzip"}))
        response = await client.read_head()
        assert response.header("content-encoding") == "gzip"
        reader = ChunkedReader(client)
        decoder = zlib.decompressobj(31)
        total = 0
        first = True
        while not reader.done:
            data = decoder.decompress(await reader.chunk())
            if first and data:
                assert SNIPPET.search(data)
                first = False
            total += len(data)
        assert total > size
        await client.close()

        growth_mib = (_peak_rss_kib(process.pid) - baseline) / 1024
        assert growth_mib < 16, f"the proxy's peak RSS grew by {growth_mib:.1f} MiB"
    finally:
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()


# ---------------------------------------------------------------------------
# Header mapping
# ---------------------------------------------------------------------------


def redirect_app() -> web.Application:
    async def redirect(request: web.Request) -> web.Response:
        status = int(request.match_info["status"])
        return web.Response(status=status, headers={"Location": f"http://{request.host}/target?x=1#f"})

    async def protocol_relative(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": f"//{request.host}/p"})

    async def elsewhere(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "http://other.example/x"})

    async def relative(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/relative"})

    async def refresh(request: web.Request) -> web.Response:
        return web.Response(text="wait", headers={"Refresh": f"5; url=http://{request.host}/next"})

    async def cookie(request: web.Request) -> web.Response:
        response = web.Response(text="ok")
        response.headers.add("Set-Cookie", f"sid=abc; Domain={request.host.split(':')[0]}; Path=/; Secure; HttpOnly")
        response.headers.add("Set-Cookie", "theme=dark; Path=/")
        return response

    app = web.Application()
    app.router.add_get("/r/{status}", redirect)
    app.router.add_get("/protocol-relative", protocol_relative)
    app.router.add_get("/elsewhere", elsewhere)
    app.router.add_get("/relative", relative)
    app.router.add_get("/refresh", refresh)
    app.router.add_get("/cookie", cookie)
    return app


async def test_location_on_the_upstream_maps_to_the_public_origin(start_app, start_proxy):
    port = await start_app(redirect_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    for status in (301, 302, 303, 307, 308):
        response = await fetch(service.port, "GET", f"/r/{status}")
        assert response.status == status
        assert response.header("location") == "http://shop.test/target?x=1#f"


async def test_protocol_relative_refresh_and_foreign_locations(start_app, start_proxy):
    port = await start_app(redirect_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    assert (await fetch(service.port, "GET", "/protocol-relative")).header("location") == "http://shop.test/p"
    assert (await fetch(service.port, "GET", "/elsewhere")).header("location") == "http://other.example/x"
    assert (await fetch(service.port, "GET", "/relative")).header("location") == "/relative"
    assert (await fetch(service.port, "GET", "/refresh")).header("refresh") == "5; url=http://shop.test/next"


async def test_upstream_with_a_base_path(start_app, start_proxy):
    async def handler(request: web.Request) -> web.Response:
        response = web.Response(text=request.path_qs, status=302,
                                headers={"Location": f"http://{request.host}/base/next?a=b"})
        response.headers.add("Set-Cookie", "k=v; Path=/base/cart")
        return response

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    port = await start_app(app)
    service = await start_proxy(f"http://127.0.0.1:{port}/base")
    response = await fetch(service.port, "GET", "/cart?x=1", host="shop.test:8080")
    assert response.body == b"/base/cart?x=1"
    assert response.header("location") == "http://shop.test:8080/next?a=b"
    assert response.header("set-cookie") == "k=v; Path=/cart"


async def test_set_cookie_loses_the_upstream_domain_and_secure_on_plain_http(start_app, start_proxy):
    port = await start_app(redirect_app())
    service = await start_proxy(f"http://localhost:{port}")
    cookies = (await fetch(service.port, "GET", "/cookie", host="shop.test:8080")).all("set-cookie")
    assert cookies == ["sid=abc; Path=/; HttpOnly", "theme=dark; Path=/"]


async def test_secure_cookies_stay_secure_behind_a_trusted_tls_terminator(start_app, start_proxy):
    port = await start_app(redirect_app())
    service = await start_proxy(f"http://localhost:{port}", trust_forwarded=True)
    response = await fetch(service.port, "GET", "/cookie", {"X-Forwarded-Proto": "https"})
    assert response.all("set-cookie")[0] == "sid=abc; Path=/; Secure; HttpOnly"
    response = await fetch(service.port, "GET", "/r/302", {"X-Forwarded-Proto": "https",
                                                           "X-Forwarded-Host": "www.shop.test"})
    assert response.header("location") == "https://www.shop.test/target?x=1#f"


async def test_no_shared_cookie_jar_between_visitors(start_app, start_proxy):
    async def login(request: web.Request) -> web.Response:
        response = web.Response(text="logged in")
        response.set_cookie("session", "visitor-a-secret", domain="localhost", path="/")
        return response

    async def whoami(request: web.Request) -> web.Response:
        return web.json_response({"cookie": request.headers.get("Cookie")})

    app = web.Application()
    app.router.add_get("/login", login)
    app.router.add_get("/whoami", whoami)
    port = await start_app(app)
    # A host name, not an IP: a client-side cookie jar would store and replay cookies for it.
    service = await start_proxy(f"http://localhost:{port}")

    visitor_a = await RawClient.connect(service.port)
    response = await visitor_a.request("GET", "/login")
    assert response.header("set-cookie").startswith("session=visitor-a-secret")
    assert (await visitor_a.request("GET", "/whoami")).json() == {"cookie": None}  # we did not send it back
    assert (await visitor_a.request("GET", "/whoami", {"Cookie": "session=visitor-a-secret"})).json() == \
        {"cookie": "session=visitor-a-secret"}

    for _ in range(2):  # on a fresh connection and on the pooled upstream connection visitor A used
        visitor_b = await RawClient.connect(service.port)
        assert (await visitor_b.request("GET", "/whoami")).json() == {"cookie": None}
        await visitor_b.close()
    await visitor_a.close()


async def test_our_own_cookies_never_reach_the_upstream(start_app, start_proxy):
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    seen = upstream_headers(await fetch(service.port, "GET", "/", {"Cookie": "a=1; __cobrowse_session=x; b=2"}))
    assert seen["cookie"] == ["a=1; b=2"]
    seen = upstream_headers(await fetch(service.port, "GET", "/", {"Cookie": "__cobrowse_session=x"}))
    assert "cookie" not in seen


async def test_strips_hop_by_hop_request_headers(start_app, start_proxy):
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    response = await fetch(service.port, "GET", "/hop", [
        ("Connection", "keep-alive, X-Private"), ("X-Private", "secret"), ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"), ("Trailer", "X-Checksum"), ("Upgrade", "h2c"),
        ("Proxy-Authorization", "Basic Zm9vOmJhcg=="), ("Proxy-Connection", "keep-alive"),
        ("X-End-To-End", "kept"),
    ])
    seen = upstream_headers(response)
    for name in ("x-private", "keep-alive", "te", "trailer", "upgrade", "proxy-authorization",
                 "proxy-connection"):
        assert name not in seen, name
    assert "keep-alive" not in " ".join(seen.get("connection", [])).lower()
    assert "x-private" not in " ".join(seen.get("connection", [])).lower()
    assert seen["x-end-to-end"] == ["kept"]
    assert seen["host"] == [f"127.0.0.1:{port}"]


async def test_strips_hop_by_hop_response_headers(start_raw, start_proxy):
    async def upstream(reader, writer):
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
                         b"Connection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\n"
                         b"Proxy-Authenticate: Basic\r\nUpgrade: h2\r\nTrailer: X-Sum\r\nX-Kept: yes\r\n\r\nok")
            await writer.drain()

    port = await start_raw(upstream)
    service = await start_proxy(f"http://127.0.0.1:{port}")
    response = await fetch(service.port)
    assert response.body == b"ok"
    names = {n for n, _ in response.headers}
    assert not names & {"x-secret", "keep-alive", "proxy-authenticate", "upgrade", "trailer", "connection"}
    assert response.header("x-kept") == "yes"


async def test_forwarded_headers_replace_what_the_client_claims(start_app, start_proxy):
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    seen = upstream_headers(await fetch(service.port, "GET", "/", {
        "X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.test",
        "Forwarded": "for=6.6.6.6"}))
    assert seen["x-forwarded-for"] == ["127.0.0.1"]
    assert seen["x-forwarded-proto"] == ["http"]
    assert seen["x-forwarded-host"] == ["shop.test"]
    assert "forwarded" not in seen


async def test_forwarded_headers_from_a_trusted_terminator(start_app, start_proxy):
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}", trust_forwarded=True)
    seen = upstream_headers(await fetch(service.port, "GET", "/", {
        "X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "www.shop.test"}))
    assert seen["x-forwarded-for"] == ["203.0.113.7, 127.0.0.1"]
    assert seen["x-forwarded-proto"] == ["https"]
    assert seen["x-forwarded-host"] == ["www.shop.test"]
    # A trusted front that sent none: the upstream is still told what we know.
    seen = upstream_headers(await fetch(service.port, "GET", "/"))
    assert seen["x-forwarded-for"] == ["127.0.0.1"]
    assert seen["x-forwarded-proto"] == ["http"]
    assert seen["x-forwarded-host"] == ["shop.test"]


async def test_pass_host_header_sends_the_public_host_upstream(start_app, start_proxy):
    port = await start_app(echo_app())
    upstream = f"http://127.0.0.1:{port}"
    service = await start_proxy(sites=(Site(host="*", upstream=upstream, pass_host_header=True),))
    seen = upstream_headers(await fetch(service.port, "GET", "/", {"Host": "Shop.test"}))
    assert seen["host"] == ["Shop.test"]  # as the visitor sent it
    # Behind a trusted terminator, the public host is the one it forwarded.
    service = await start_proxy(sites=(Site(host="*", upstream=upstream, pass_host_header=True),),
                                trust_forwarded=True)
    seen = upstream_headers(await fetch(service.port, "GET", "/", {"Host": "cobrowse.internal",
                                                                  "X-Forwarded-Host": "www.shop.test"}))
    assert seen["host"] == ["www.shop.test"]
    # An HTTP/1.0 request without a Host header: the upstream still gets a name, its own.
    client = await RawClient.connect(service.port)
    try:
        await client.send(b"GET / HTTP/1.0\r\n\r\n")
        response = await client.read_response()
    finally:
        await client.close()
    assert upstream_headers(response)["host"] == [f"127.0.0.1:{port}"]
    # Without the option, the upstream's own name, as before.
    service = await start_proxy(upstream)
    assert upstream_headers(await fetch(service.port, "GET", "/"))["host"] == [f"127.0.0.1:{port}"]

# ---------------------------------------------------------------------------
# Methods and request bodies
# ---------------------------------------------------------------------------


async def test_methods_and_bodies_reach_the_upstream(start_app, start_proxy):
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    client = await RawClient.connect(service.port)
    # Standard methods and extension ones llhttp knows; for the others, see the next test.
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE", "PROPFIND", "REPORT", "QUERY"):
        body = b"" if method in ("GET", "OPTIONS") else f"body of {method}".encode()
        response = await client.request(method, "/m?q=1", body=body)
        assert response.status == 200, method
        seen = response.json()
        assert seen["method"] == method and seen["path"] == "/m?q=1"
        assert seen["sha256"] == hashlib.sha256(body).hexdigest()
    await client.close()


async def _method_echo(reader, writer):
    """A real upstream that takes any method token (as nginx, Go or Java
    servers do; aiohttp and Node refuse names llhttp does not know) and
    answers with the request line and the body it read."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        line, *fields = head[:-4].decode("latin-1").split("\r\n")
        headers = {n.strip().lower(): v.strip() for n, _, v in (f.partition(":") for f in fields)}
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(await reader.readuntil(b"\r\n"), 16):
                body += (await reader.readexactly(size + 2))[:-2]
            await reader.readuntil(b"\r\n")
        else:
            body = b""
        answer = json.dumps({"line": line, "body": body.decode(), "host": headers.get("host")}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
                     % (len(answer), answer))
        await writer.drain()


async def test_methods_llhttp_does_not_know_reach_the_upstream(start_raw, start_proxy, tmp_path):
    # RFC 9110 9.1: a method is any token, and its name is case-sensitive.
    port = await start_raw(_method_echo)
    log = tmp_path / "access.log"
    service = await start_proxy(f"http://127.0.0.1:{port}", access_log=str(log))
    client = await RawClient.connect(service.port)
    for method, body in (("BREW", b"earl grey"), ("get", b""), ("SETUP", b"x"), ("X-Sync_2!", b"{}")):
        response = await client.request(method, "/pot?sugar=1", body=body)
        assert response.status == 200, method
        assert response.json() == {"line": f"{method} /pot?sugar=1 HTTP/1.1", "body": body.decode(),
                                   "host": f"127.0.0.1:{port}"}
    # A chunked body, then a method split across reads, then an ordinary request on the same connection.
    await client.send(b"BREW /c HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"3\r\ntea\r\n4\r\n pot\r\n0\r\n\r\n")
    assert (await client.read_response()).json()["body"] == "tea pot"
    for piece in (b"\r\nBR", b"E", b"W /split HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 2\r\n\r\nok"):
        await client.send(piece)
        await asyncio.sleep(0.05)
    assert (await client.read_response()).json() == {"line": "BREW /split HTTP/1.1", "body": "ok",
                                                      "host": f"127.0.0.1:{port}"}
    assert (await client.request("GET", "/plain")).json()["line"] == "GET /plain HTTP/1.1"
    await client.close()
    await service.stop()
    assert '"BREW /split HTTP/1.1" 200' in log.read_text()


async def test_a_method_that_is_no_token_gives_400(start_raw, start_proxy):
    port = await start_raw(_method_echo)
    service = await start_proxy(f"http://127.0.0.1:{port}")
    for raw in (b"BR(EW / HTTP/1.1\r\nHost: shop.test\r\n\r\n", b"B" * 100 + b" / HTTP/1.1\r\nHost: shop.test\r\n\r\n"):
        client = await RawClient.connect(service.port)
        await client.send(raw)
        assert (await client.read_response()).status == 400
        assert await client.at_eof()
        await client.close()


async def test_options_asterisk(start_raw, start_proxy):
    seen = []

    async def upstream(reader, writer):
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nAllow: GET\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    port = await start_raw(upstream)
    service = await start_proxy(f"http://127.0.0.1:{port}")
    response = await fetch(service.port, "OPTIONS", "*")
    assert response.status == 200 and response.header("allow") == "GET"
    assert seen[0].startswith(b"OPTIONS * HTTP/1.1\r\n")


BIG = os.urandom(1024 * 1024) * 20  # 20 MB, incompressible per MiB


async def test_large_request_body_streams_intact(start_app, start_proxy):
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    for framing in ("content-length", "chunked"):
        client = await RawClient.connect(service.port)  # each on a new upstream connection too
        if framing == "chunked":
            await client.send(build_request("POST", "/upload", {"Transfer-Encoding": "chunked"}))
            for start in range(0, len(BIG), 1000_003):
                piece = BIG[start:start + 1000_003]
                await client.send(b"%x\r\n%b\r\n" % (len(piece), piece))
            await client.send(b"0\r\n\r\n")
        else:
            await client.send(build_request("POST", "/upload", body=BIG))
        response = await client.read_response()
        seen = response.json()
        assert seen["length"] == len(BIG), framing
        assert seen["sha256"] == hashlib.sha256(BIG).hexdigest()
        assert ("transfer-encoding" in upstream_headers(response)) == (framing == "chunked")
        await client.close()


async def test_expect_100_continue(start_app, start_proxy):
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    client = await RawClient.connect(service.port)
    body = b"x" * 100_000
    await client.send(build_request("PUT", "/put", {"Expect": "100-continue", "Content-Length": str(len(body))}))
    interim = await client.read_head()  # before we send a byte of the body
    assert interim.status == 100
    await client.send(body)
    response = await client.read_response()
    assert response.status == 200
    assert response.json()["sha256"] == hashlib.sha256(body).hexdigest()
    # And the connection goes on.
    assert (await client.request("GET", "/after")).json()["path"] == "/after"
    await client.close()


async def test_expect_100_continue_answered_with_a_final_status(start_raw, start_proxy):
    """An upstream refusing the body outright (no 100 Continue): the visitor
    never sends it, so its next request must not be swallowed as that body."""
    async def upstream(reader, writer):
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if b"100-continue" in head:
                writer.write(b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 7\r\n\r\nrefused")
                await writer.drain()
                return  # the body never comes: the connection is no good any more
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext")
            await writer.drain()

    port = await start_raw(upstream)
    service = await start_proxy(f"http://127.0.0.1:{port}")
    client = await RawClient.connect(service.port)
    await client.send(build_request("PUT", "/put", {"Expect": "100-continue", "Content-Length": "5000"}))
    response = await client.read_response()
    assert response.status == 417 and response.body == b"refused"
    await client.send(build_request("GET", "/next"))  # as a client that gave up on the body would
    try:
        following = await client.read_response()
    except (asyncio.IncompleteReadError, ConnectionError):
        following = None  # the proxy closed the connection: just as good
    assert following is None or following.body == b"next", following
    await client.close()


# ---------------------------------------------------------------------------
# Connections
# ---------------------------------------------------------------------------


async def test_keep_alive_and_pooled_upstream_connections(start_app, start_proxy):
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    client = await RawClient.connect(service.port)
    upstream_ports = set()
    for i in range(50):
        response = await client.request("GET", f"/{i}", {"Sec-Fetch-Dest": "empty"})
        assert response.json()["path"] == f"/{i}"
        upstream_ports.add(response.json()["peer_port"])
    await client.close()
    for i in range(5):  # other visitors, one after another, share the pooled connection
        upstream_ports.add((await fetch(service.port, "GET", f"/other{i}")).json()["peer_port"])
    assert len(upstream_ports) == 1


async def test_finished_exchanges_leave_no_garbage_cycles(site):
    """A finished exchange, its parser and its page plan are freed at once by reference
    counting: cycles would be left to the garbage collector, whose collections (set
    off by hundreds of dead exchanges a second) cost a busy proxy a sixth of its CPU."""
    client = await RawClient.connect(site.port)
    await client.request("GET", "/page", NAVIGATE)  # warm: first-use caches are not garbage
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(3):
            injected((await client.request("GET", "/page", NAVIGATE)).body)  # injected
            assert (await client.request("GET", "/image.png")).body == PNG  # relayed raw
            assert (await client.request("GET", "/not-modified", NAVIGATE)).status == 304
        await client.close()
        for _ in range(500):  # until the proxy has seen the close
            if not site._proxy.connections:
                break
            await asyncio.sleep(0.01)
        assert not site._proxy.connections
        gc.collect()
        kinds = {type(o).__name__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    ours = {"Exchange", "HttpResponseParser", "HttpRequestParser", "ClientProtocol", "PagePlan", "PageRewriter",
            "InsertionScanner", "_RawCallbacks"}
    assert not kinds & ours, kinds & ours


async def test_an_upstream_closing_idle_connections_causes_no_failures(start_raw, start_proxy):
    """Each upstream connection answers one request, then closes on the next one without
    answering, the race a keep-alive timeout on the upstream's side opens."""
    connections = []

    async def upstream(reader, writer):
        connections.append(writer)
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ")[1]
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(path), path))
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")  # the next request: hang up instead of answering

    port = await start_raw(upstream)
    service = await start_proxy(f"http://127.0.0.1:{port}")
    # Fill the pool with several connections that will all hang up when reused.
    responses = await asyncio.gather(*(fetch(service.port, "GET", f"/first{i}") for i in range(3)))
    assert [r.body for r in responses] == [b"/first0", b"/first1", b"/first2"]
    before = len(connections)
    for i in range(3):
        response = await fetch(service.port, "GET", f"/again{i}")
        assert response.status == 200, response.body
        assert response.body == f"/again{i}".encode()
    assert len(connections) == before + 3  # each retried once, on a new connection
    # A POST is not repeated: it may have had an effect.
    response = await fetch(service.port, "POST", "/post", body=b"x")
    assert response.status in (200, 502)


async def test_an_upstream_with_a_short_keep_alive_timeout(start_app, start_proxy):
    port = await start_app(echo_app(), keepalive_timeout=0.05)
    service = await start_proxy(f"http://127.0.0.1:{port}")
    client = await RawClient.connect(service.port)
    peers = set()
    for i in range(3):
        response = await client.request("GET", f"/{i}")
        assert response.status == 200
        peers.add(response.json()["peer_port"])
        await asyncio.sleep(0.2)  # the upstream closes the pooled connection meanwhile
    assert len(peers) == 3
    await client.close()


async def test_pipelined_requests_are_answered_in_order(start_app, start_proxy):
    async def slow_first(request: web.Request) -> web.Response:
        body = await request.read()
        delay = float(request.query.get("delay", "0"))
        await asyncio.sleep(delay)
        return web.Response(text=f"{request.method} {request.path} {len(body)}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", slow_first)
    port = await start_app(app)
    service = await start_proxy(f"http://127.0.0.1:{port}")
    client = await RawClient.connect(service.port)
    requests = [("GET", "/a?delay=0.2", b""), ("POST", "/b", b"12345"), ("GET", "/c?delay=0.05", b""),
                ("PUT", "/d", b"x" * 70_000), ("HEAD", "/e", b""), ("GET", "/f", b"")]
    await client.send(b"".join(build_request(m, p, body=b) for m, p, b in requests))
    for method, path, body in requests:
        response = await client.read_response(method)
        assert response.status == 200
        if method != "HEAD":
            assert response.body.decode() == f"{method} {path.split('?')[0]} {len(body)}"
    await client.close()


async def test_http10_client(start_app, start_proxy):
    port = await start_app(site_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    client = await RawClient.connect(service.port)
    await client.send(b"GET /page HTTP/1.0\r\nHost: shop.test\r\nAccept: text/html\r\n\r\n")
    response = await client.read_head()
    assert response.header("transfer-encoding") is None
    injected(await client.read_body(response))  # close-delimited
    await client.close()


async def test_close_delimited_upstream_body(start_raw, start_proxy):
    """An upstream that ends its body by closing (no length, not chunked) is a
    complete response, not a failure, for HTTP/1.1 and injected responses too."""
    async def upstream(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        content_type = b"text/html" if b"/page" in head else b"text/plain"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: %b\r\nConnection: close\r\n\r\n" % content_type)
        writer.write(PAGE if content_type == b"text/html" else b"plain " * 1000)
        await writer.drain()
        writer.close()

    port = await start_raw(upstream)
    service = await start_proxy(f"http://127.0.0.1:{port}")
    client = await RawClient.connect(service.port)
    assert (await client.request("GET", "/plain")).body == b"plain " * 1000
    injected((await client.request("GET", "/page", NAVIGATE)).body)
    assert (await client.request("GET", "/plain")).body == b"plain " * 1000  # still keep-alive
    await client.close()


async def test_a_half_closed_client_gets_its_answer_and_the_connection_closes(start_app, start_proxy):
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    client = await RawClient.connect(service.port)
    await client.send(build_request("GET", "/half"))
    client.writer.write_eof()
    response = await client.read_response()
    assert response.json()["path"] == "/half"
    assert await asyncio.wait_for(client.reader.read(), 5) == b""  # closed by the proxy, not left open
    await client.close()


# ---------------------------------------------------------------------------
# Routing
# ---------------------------------------------------------------------------


async def test_reserved_prefix_goes_to_our_app(start_app, start_proxy):
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    health = await fetch(service.port, "GET", "/__cobrowse/health", NAVIGATE)
    assert health.status == 200 and health.json()["status"] == "ok"
    assert not SNIPPET.search(health.body)
    assert (await fetch(service.port, "GET", "/__cobrowsex")).json()["path"] == "/__cobrowsex"
    assert (await fetch(service.port, "GET", "/shop/__cobrowse/health")).json()["path"] == "/shop/__cobrowse/health"
    assert b"peer_port" not in (await fetch(service.port, "GET", "/__cobrowse")).body  # ours, whatever it says


async def test_any_host_with_a_wildcard_site(start_app, start_proxy):
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    assert (await fetch(service.port, "GET", "/x", host="whatever.example")).status == 200
    client = await RawClient.connect(service.port)
    await client.send(b"GET /no-host HTTP/1.0\r\n\r\n")
    response = await client.read_response()
    assert response.status == 200 and response.json()["path"] == "/no-host"
    await client.close()


async def test_sites_route_by_host(start_app, start_proxy):
    ports = {}
    for name in ("one", "two"):
        async def handler(request: web.Request, name=name) -> web.Response:
            return web.Response(text=f"{name} {request.host}")

        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        ports[name] = await start_app(app)
    service = await start_proxy(sites=(
        Site(host="one.test", upstream=f"http://127.0.0.1:{ports['one']}", aliases=("www.one.test",)),
        Site(host="two.test", upstream=f"http://localhost:{ports['two']}"),
    ))
    assert (await fetch(service.port, host="one.test")).body == f"one 127.0.0.1:{ports['one']}".encode()
    assert (await fetch(service.port, host="WWW.one.test:8080")).body.startswith(b"one ")
    assert (await fetch(service.port, host="two.test")).body == f"two localhost:{ports['two']}".encode()
    unknown = await fetch(service.port, host="three.test")
    assert unknown.status == 421
    client = await RawClient.connect(service.port)
    await client.send(b"GET / HTTP/1.0\r\n\r\n")
    assert (await client.read_response()).status == 421
    await client.close()


async def test_our_loader_is_served_compressed_to_browsers_that_accept_it(site):
    """The build writes .br/.gz siblings; visitors download the compressed size the budgets are about."""
    plain = (Path(__file__).resolve().parent.parent / "cobrowse" / "static_dist" / "loader.js").read_bytes()
    for coding, decode in (("br", brotli.decompress), ("gzip", gzip.decompress)):
        response = await fetch(site.port, "GET", "/__cobrowse/loader.js", {"Accept-Encoding": coding})
        assert response.status == 200
        assert response.header("content-encoding") == coding
        assert len(response.body) < len(plain) * 0.7
        assert decode(response.body) == plain
    response = await fetch(site.port, "GET", "/__cobrowse/loader.js", {"Accept-Encoding": "identity"})
    assert response.header("content-encoding") is None and response.body == plain
