"""The kernel relay (cobrowse/proxy/splice.py): the rest of a long identity
body goes from the upstream's socket to the visitor's with splice(2).

Real upstreams (aiohttp, and raw asyncio servers for the ones that
misbehave) and a raw client; ``_proxy.spliced`` counts the bodies the kernel
finished, so each test knows which path it exercised."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest
from aiohttp import web

from cobrowse.proxy import splice
from conftest import TIMEOUT, RawClient, build_request, fetch
from test_proxy_http import NAVIGATE, SNIPPET

pytestmark = [
    pytest.mark.skipif(not splice.AVAILABLE, reason="splice(2) is Linux only"),
    # The loop_factories hook that replaces this override would put every
    # async test of the suite under it; this module alone needs both loops.
    pytest.mark.filterwarnings("ignore:Overriding the \"event_loop_policy\" fixture:DeprecationWarning"),
]


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def event_loop_policy(request):
    """Each test under both loops: `cobrowse serve` runs on uvloop, whose
    transports own their descriptors differently from asyncio's."""
    if request.param == "uvloop":
        import uvloop

        return uvloop.EventLoopPolicy()
    return asyncio.DefaultEventLoopPolicy()

MiB = 1 << 20
PEERS = web.AppKey("peers", list)
HEAD = b"<!doctype html><html><head><title>Big</title></head><body>"
# Not a repeating pattern: a byte out of place or a piece sent twice shows.
BULK = hashlib.shake_256(b"cobrowse").digest(4 * MiB)
PAGE = HEAD + BULK + b"</body></html>"


def big_app() -> web.Application:
    peers: list = []

    async def page(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername"))
        return web.Response(body=PAGE, content_type="text/html")

    async def blob(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername"))
        return web.Response(body=BULK, content_type="application/octet-stream")

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(0, len(BULK), MiB):
            await response.write(BULK[i:i + MiB])
        await response.write_eof()
        return response

    async def small(request: web.Request) -> web.Response:
        return web.Response(body=b"small", content_type="text/plain")

    app = web.Application()
    app[PEERS] = peers
    app.router.add_get("/page", page)
    app.router.add_get("/blob", blob)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/small", small)
    return app


def page_with_tag(body: bytes) -> None:
    tags = SNIPPET.findall(body)
    assert len(tags) == 1, body[:300]
    match = SNIPPET.search(body)
    assert body[:match.start()] + body[match.end():] == PAGE


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_long_page_is_injected_and_its_rest_relayed_by_the_kernel(start_app, start_proxy):
    app = big_app()
    port = await start_app(app)
    service = await start_proxy(f"http://127.0.0.1:{port}")
    client = await RawClient.connect(service.port)
    try:
        response = await client.request("GET", "/page", NAVIGATE)
        assert response.status == 200 and response.header("transfer-encoding") == "chunked"
        page_with_tag(response.body)
        assert service._proxy.spliced == 1
        # The same visitor connection goes on, and so does the pooled upstream one.
        again = await client.request("GET", "/blob")
        assert again.status == 200 and again.body == BULK and again.header("content-length") == str(len(BULK))
        assert service._proxy.spliced == 2
    finally:
        await client.close()
    assert len(set(app[PEERS])) == 1  # one upstream connection for both


async def test_a_long_asset_passes_byte_for_byte_with_its_length(start_app, start_proxy):
    port = await start_app(big_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    response = await fetch(service.port, "GET", "/blob")
    assert response.status == 200 and response.body == BULK
    assert service._proxy.spliced == 1


async def test_off_short_compressed_or_chunked_bodies_go_through_python(start_app, start_proxy):
    port = await start_app(big_app())
    off = await start_proxy(f"http://127.0.0.1:{port}", splice=False)
    response = await fetch(off.port, "GET", "/page", NAVIGATE)
    page_with_tag(response.body)
    assert off._proxy.spliced == 0

    service = await start_proxy(f"http://127.0.0.1:{port}")
    assert (await fetch(service.port, "GET", "/small")).body == b"small"
    assert (await fetch(service.port, "GET", "/chunked")).body == BULK  # no length to count down
    assert service._proxy.spliced == 0


async def test_a_gzip_page_is_rewritten_to_its_end_not_spliced(start_app, start_proxy):
    import gzip

    compressed = gzip.compress(PAGE, compresslevel=1)

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=compressed, headers={"Content-Type": "text/html", "Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_get("/page", page)
    port = await start_app(app)
    service = await start_proxy(f"http://127.0.0.1:{port}", recompress=False)
    response = await fetch(service.port, "GET", "/page", NAVIGATE)
    page_with_tag(response.body)
    assert service._proxy.spliced == 0


async def test_an_http10_visitor_gets_the_page_to_the_close(start_app, start_proxy):
    port = await start_app(big_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    try:
        writer.write(b"GET /page HTTP/1.0\r\nHost: shop.test\r\nSec-Fetch-Dest: document\r\n"
                     b"Accept: text/html\r\n\r\n")
        raw = await asyncio.wait_for(reader.read(), TIMEOUT)  # close-delimited
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding" not in head.lower()
    page_with_tag(body)
    assert service._proxy.spliced == 1


async def test_a_pipelined_request_is_answered_after_the_spliced_body(start_app, start_proxy):
    port = await start_app(big_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    client = await RawClient.connect(service.port)
    try:
        await client.send(build_request("GET", "/blob") + build_request("GET", "/small"))
        first = await client.read_response()
        second = await client.read_response()
    finally:
        await client.close()
    assert first.body == BULK and second.body == b"small"
    assert service._proxy.spliced == 1


async def upstream_cutting_off_at(half: int, then_sleep: float = 0.0):
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(BULK))
        writer.write(BULK[:half])
        await writer.drain()
        if then_sleep:
            await asyncio.sleep(then_sleep)
    return handler


async def test_an_upstream_that_closes_mid_body_cuts_the_visitor_off(start_raw, start_proxy, caplog):
    port = await start_raw(await upstream_cutting_off_at(2 * MiB))
    service = await start_proxy(f"http://127.0.0.1:{port}")
    fds = open_fds()
    client = await RawClient.connect(service.port)
    try:
        await client.send(build_request("GET", "/blob"))
        response = await client.read_head()
        assert response.header("content-length") == str(len(BULK))
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
            await asyncio.wait_for(client.reader.readexactly(len(BULK)), TIMEOUT)
    finally:
        await client.close()
    assert any("mid-body" in r.getMessage() or "mid-response" in r.getMessage() for r in caplog.records)
    assert service._proxy.spliced == 0
    await asyncio.sleep(0.1)
    assert open_fds() <= fds  # the relay's pipe and copies are closed


async def test_an_upstream_that_stalls_mid_body_is_cut_after_the_read_timeout(start_raw, start_proxy, caplog):
    port = await start_raw(await upstream_cutting_off_at(2 * MiB, then_sleep=30))
    service = await start_proxy(f"http://127.0.0.1:{port}", read_timeout=0.5)
    client = await RawClient.connect(service.port)
    try:
        await client.send(build_request("GET", "/blob"))
        await client.read_head()
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
            await asyncio.wait_for(client.reader.readexactly(len(BULK)), TIMEOUT)
    finally:
        await client.close()
    assert any("stalled" in r.getMessage() for r in caplog.records)


async def test_a_visitor_who_stops_reading_is_not_timed_out(start_app, start_proxy):
    port = await start_app(big_app())
    service = await start_proxy(f"http://127.0.0.1:{port}", read_timeout=0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port, limit=1 << 16)
    try:
        writer.write(build_request("GET", "/blob"))
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(64 * 1024)
        await asyncio.sleep(2.5)  # the sockets' buffers fill; the proxy waits for us, not the upstream
        rest = await asyncio.wait_for(reader.readexactly(len(BULK) - 64 * 1024), TIMEOUT)
    finally:
        writer.close()
    assert BULK[:64 * 1024] + rest == BULK
    assert service._proxy.spliced == 1


async def test_a_visitor_who_leaves_mid_body_frees_everything(start_app, start_proxy):
    app = big_app()
    port = await start_app(app)
    service = await start_proxy(f"http://127.0.0.1:{port}")
    await fetch(service.port, "GET", "/small")  # the service's own descriptors exist before we count
    fds = open_fds()
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port, limit=1 << 16)
    writer.write(build_request("GET", "/blob"))
    await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(64 * 1024)
    writer.transport.abort()
    for _ in range(100):
        await asyncio.sleep(0.02)
        if open_fds() <= fds:
            break
    assert open_fds() <= fds  # no pipe, no copy of either socket left behind
    assert service._proxy.spliced == 0
    # The upstream connection was not pooled half-read: the next request gets a clean answer.
    assert (await fetch(service.port, "GET", "/blob")).body == BULK


async def test_the_access_log_counts_the_spliced_bytes(start_app, start_proxy, tmp_path):
    port = await start_app(big_app())
    log_path = tmp_path / "access.log"
    service = await start_proxy(f"http://127.0.0.1:{port}", access_log=str(log_path))
    response = await fetch(service.port, "GET", "/blob")
    assert response.body == BULK
    service._proxy.access_log.flush()
    line = log_path.read_text().splitlines()[-1]
    sent = int(line.split('" 200 ', 1)[1].split()[0])
    assert sent == len(response.head) + len(BULK)


async def test_a_visitor_slower_than_the_upstream_still_gets_the_kernel_relay(start_app, start_proxy):
    # Small socket buffers on both sides and a slow reader: our write buffer
    # is never empty after an upstream chunk, so the relay can only start
    # when the visitor's pause ends with the buffer drained.
    import socket

    port = await start_app(big_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", service.port))
        for _ in range(100):  # the proxy's side of the connection, as over a slow network: a small send buffer
            if service._proxy.connections:
                break
            await asyncio.sleep(0.01)
        (visitor,) = service._proxy.connections
        visitor.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        await loop.sock_sendall(sock, build_request("GET", "/blob"))
        await asyncio.sleep(0.3)
        received = bytearray()
        while True:
            await asyncio.sleep(0.001)  # a slow reader throughout: a little at a time
            data = await asyncio.wait_for(loop.sock_recv(sock, 16384), TIMEOUT)
            assert data, "the proxy closed the connection early"
            received += data
            head, sep, body = received.partition(b"\r\n\r\n")
            if sep and len(body) >= len(BULK):
                break
    finally:
        sock.close()
    assert body == BULK
    assert service._proxy.spliced == 1
