"""The kernel relay (cobrowse/proxy/splice.py): the rest of a long identity
body goes from the upstream's socket to the visitor's with splice(2).

Real upstreams (aiohttp, and raw asyncio servers for the ones that
misbehave) and a raw client; ``_proxy.spliced`` counts the bodies the kernel
finished, so each test knows which path it exercised."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import struct

import pytest
from aiohttp import web

from cobrowse.proxy import splice
from conftest import TIMEOUT, RawClient, build_request, fetch
from test_proxy_http import NAVIGATE, SNIPPET

pytestmark = [
    pytest.mark.skipif(not splice.AVAILABLE, reason="splice(2) is Linux only"),
]
# Each test under both loops (conftest's loop factories): `cobrowse serve` runs
# on uvloop, whose transports own their descriptors differently from asyncio's.
LOOP_FACTORIES = ("asyncio", "uvloop")

MiB = 1 << 20
PEERS = web.AppKey("peers", list)
HEAD = b"<!doctype html><html><head><title>Big</title></head><body>"
# Not a repeating pattern: a byte out of place or a piece sent twice shows.
BULK = hashlib.shake_256(b"cobrowse").digest(4 * MiB)
PAGE = HEAD + BULK + b"</body></html>"
LONG = BULK * 4


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


async def slow_visitor(service, loop) -> "socket.socket":
    """A visitor as over a slow network: small socket buffers at both ends."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", service.port))
    for _ in range(100):
        if service._proxy.connections:
            break
        await asyncio.sleep(0.01)
    (visitor,) = service._proxy.connections
    visitor.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    return sock


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
    port = await start_app(big_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    loop = asyncio.get_running_loop()
    sock = await slow_visitor(service, loop)
    try:
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


@pytest.fixture
def small_pieces_upstream():
    """An upstream that sends a 16 MiB body (more than the sockets' buffers hold) in 1,400-byte writes (one network
    packet's worth each), from a thread: each write its own piece of data."""
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(LONG))
            try:
                for i in range(0, len(LONG), 1400):
                    if stop.is_set():
                        return
                    conn.sendall(LONG[i:i + 1400])
            except OSError:
                return
            stop.wait(TIMEOUT)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    server.close()
    thread.join(TIMEOUT)


async def test_small_upstream_pieces_and_a_waiting_visitor(small_pieces_upstream, start_proxy):
    # Pieces of one packet each, relayed while the visitor reads, then a
    # visitor who stops for a while: the relay waits (not watching a socket
    # it cannot take from: see test_a_pipe_full_of_small_pieces_is_not_watched_in_vain,
    # which can count that), and the body still arrives whole.
    service = await start_proxy(f"http://127.0.0.1:{small_pieces_upstream}")
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port, limit=1 << 16)
    try:
        writer.write(build_request("GET", "/blob"))
        await reader.readuntil(b"\r\n\r\n")
        received = await reader.readexactly(MiB)  # the relay runs, taking the pieces one by one
        assert any(e.kernel is not None for e in service._proxy.active)
        await asyncio.sleep(1.0)  # then the visitor reads nothing for a while
        assert any(e.kernel is not None for e in service._proxy.active)  # still waiting on the visitor
        received += await asyncio.wait_for(reader.readexactly(len(LONG) - MiB), TIMEOUT)
    finally:
        writer.close()
    assert received == LONG


async def test_the_access_log_counts_what_the_relay_sent_before_a_stall(start_raw, start_proxy, tmp_path):
    port = await start_raw(await upstream_cutting_off_at(3 * MiB, then_sleep=30))
    log_path = tmp_path / "access.log"
    service = await start_proxy(f"http://127.0.0.1:{port}", read_timeout=0.5, access_log=str(log_path))
    client = await RawClient.connect(service.port)
    try:
        await client.send(build_request("GET", "/blob"))
        response = await client.read_head()
        body = bytearray()
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
            while True:
                data = await asyncio.wait_for(client.reader.read(1 << 20), TIMEOUT)
                if not data:
                    raise asyncio.IncompleteReadError(bytes(body), len(BULK))
                body += data
    finally:
        await client.close()
    assert len(body) == 3 * MiB
    service._proxy.access_log.flush()
    line = log_path.read_text().splitlines()[-1]
    assert int(line.split('" 200 ', 1)[1].split()[0]) == len(response.head) + 3 * MiB


async def test_past_the_relay_limit_bodies_go_through_python(start_app, start_proxy, monkeypatch):
    monkeypatch.setattr(splice, "MAX_RELAYS", 0)
    port = await start_app(big_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    assert (await fetch(service.port, "GET", "/blob")).body == BULK
    assert service._proxy.spliced == 0 and splice.active == 0


async def test_an_upstream_that_sends_more_than_its_length_is_not_reused(start_raw, start_proxy, caplog):
    # A wrong Content-Length: the bytes past it would be read as the answer
    # to the next request sent on that connection.
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.startswith(b"GET /blob "):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(BULK) + BULK + smuggled)
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nGOOD")
            await writer.drain()

    port = await start_raw(handler)
    service = await start_proxy(f"http://127.0.0.1:{port}")
    client = await RawClient.connect(service.port)
    try:
        # Pipelined: the next request goes upstream the moment the body ends.
        await client.send(build_request("GET", "/blob") + build_request("GET", "/next"))
        assert (await client.read_response()).body == BULK
        assert (await client.read_response()).body == b"GOOD"
    finally:
        await client.close()
    assert service._proxy.spliced == 1
    assert any("more than the Content-Length" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------
# KernelRelay alone, between socket pairs
# ---------------------------------------------------------------------------


class Pair:
    """A relay from one socket pair to another: we write into ``upstream``,
    the relay splices from its peer to ``visitor``'s peer, we read ``visitor``."""

    def __init__(self, length: int, prefix: bytes = b"", small_sink: bool = False) -> None:
        self.upstream, source = socket.socketpair()
        sink, self.visitor = socket.socketpair()
        if small_sink:
            sink.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            self.visitor.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        for sock in (self.upstream, source, sink, self.visitor):
            sock.setblocking(False)
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()
        self.progress = 0
        self.relay = splice.KernelRelay(asyncio.get_running_loop(), source.fileno(), sink.fileno(), length,
                                        prefix, self._done, self._progress)
        source.close()  # the relay holds its own copies, as it does of a transport's
        sink.close()

    def send(self, data: bytes) -> asyncio.Task:
        """Write into the upstream side as it takes it (in the background)."""
        return asyncio.ensure_future(asyncio.get_running_loop().sock_sendall(self.upstream, data))

    def _done(self, error, side) -> None:
        self.done.set_result((error, side))

    def _progress(self) -> None:
        self.progress += 1

    async def read(self, n: int) -> bytes:
        loop, out = asyncio.get_running_loop(), bytearray()
        while len(out) < n:
            data = await asyncio.wait_for(loop.sock_recv(self.visitor, n - len(out)), TIMEOUT)
            assert data
            out += data
        return bytes(out)

    def close(self) -> None:
        self.relay.stop()
        self.upstream.close()
        self.visitor.close()


async def test_the_relay_writes_the_prefix_then_exactly_the_length_and_notices_more():
    pair = Pair(len(BULK), prefix=b"400000\r\n")
    try:
        assert pair.relay.start()
        sending = pair.send(BULK)
        assert await pair.read(8 + len(BULK)) == b"400000\r\n" + BULK
        assert await asyncio.wait_for(pair.done, TIMEOUT) == (None, None)
        assert pair.relay.sent == 8 + len(BULK) and not pair.relay.extra
        await asyncio.wait_for(sending, TIMEOUT)
    finally:
        pair.close()
    body = BULK[:100_000]
    pair = Pair(len(body))
    try:
        await asyncio.wait_for(pair.send(body + b"NEXT"), TIMEOUT)  # four bytes past the length, all there
        assert pair.relay.start()
        assert await pair.read(len(body)) == body
        assert await asyncio.wait_for(pair.done, TIMEOUT) == (None, None)
        assert pair.relay.extra
    finally:
        pair.close()


async def test_the_check_for_extra_bytes_does_not_wait_on_a_default_timeout():
    body = BULK[:100_000]
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(5.0)  # some library in the process may set one
    pair = Pair(len(body))
    try:
        await asyncio.wait_for(pair.send(body), TIMEOUT)
        assert pair.relay.start()
        assert await pair.read(len(body)) == body
        assert await asyncio.wait_for(pair.done, 1.0) == (None, None)
        assert not pair.relay.extra
    finally:
        socket.setdefaulttimeout(previous)
        pair.close()


async def test_the_visitor_taking_bytes_after_holding_the_relay_up_counts_as_progress():
    # Everything the upstream sent is in the pipe; the visitor has not read.
    # When it does, the upstream's time allowed starts again (the exchange's
    # read timeout), though nothing more came from the upstream.
    length = 256 * 1024
    pair = Pair(length + 1, small_sink=True)  # one byte more than sent: the relay waits on the upstream after
    try:
        assert pair.relay.start()
        pair.send(BULK[:length])
        for _ in range(100):
            await asyncio.sleep(0.01)
            if pair.relay.remaining == 1 and pair.relay.waiting_on_sink:
                break
        assert pair.relay.remaining == 1 and pair.relay.waiting_on_sink
        progress = pair.progress
        assert await pair.read(length) == BULK[:length]
        await asyncio.sleep(0.05)
        assert pair.progress > progress and not pair.relay.waiting_on_sink
        pair.send(b"!")
        assert await pair.read(1) == b"!"
        assert await asyncio.wait_for(pair.done, TIMEOUT) == (None, None)
    finally:
        pair.close()


async def test_a_visitor_gone_mid_relay_is_reported_as_theirs():
    pair = Pair(len(BULK), small_sink=True)
    try:
        assert pair.relay.start()
        pair.send(BULK[:MiB])
        pair.visitor.close()
        error, side = await asyncio.wait_for(pair.done, TIMEOUT)
        assert side == "visitor" and "writing to the visitor" in error
    finally:
        pair.close()


async def test_a_visitor_connection_over_tls_is_never_spliced(start_app, start_proxy, tmp_path):
    # `serve` listens in plain HTTP, but the proxy's protocol can sit behind
    # any listener: spliced bytes would bypass the TLS layer and corrupt the
    # stream, so a TLS connection keeps the Python path.
    import ssl

    import aiohttp
    import trustme

    ca = trustme.CA()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    port = await start_app(big_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    server = await asyncio.get_running_loop().create_server(service._proxy, "127.0.0.1", 0, ssl=server_context)
    try:
        tls_port = server.sockets[0].getsockname()[1]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"https://127.0.0.1:{tls_port}/blob", ssl=client_context,
                                   headers={"Host": "shop.test"}) as response:
                assert response.status == 200
                assert await response.read() == BULK
    finally:
        server.close()
    assert service._proxy.spliced == 0


async def test_a_relay_failing_as_the_visitors_buffer_drains_aborts_cleanly(start_app, start_proxy, monkeypatch):
    # The relay starts when the visitor's buffer has drained, which the
    # transport reports from inside its own write handling. A relay that
    # fails at once (the upstream reset while paused) aborts the visitor's
    # connection: not from inside that handling, which asyncio's transport
    # does not survive (it would close the connection twice).
    import errno
    import types

    loop = asyncio.get_running_loop()
    errors: list = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    real_os = splice.os

    def failing_splice(source, sink, count, flags=0):
        raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")

    shim = {name: getattr(real_os, name) for name in dir(real_os) if not name.startswith("__")}
    shim["splice"] = failing_splice
    monkeypatch.setattr(splice, "os", types.SimpleNamespace(**shim))
    port = await start_app(big_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    sock = await slow_visitor(service, loop)
    try:
        await loop.sock_sendall(sock, build_request("GET", "/blob"))
        await asyncio.sleep(0.5)  # our buffer fills: the relay is left for when it drains
        received = bytearray()
        with pytest.raises(ConnectionError):
            while True:
                data = await asyncio.wait_for(loop.sock_recv(sock, 65536), TIMEOUT)
                if not data:
                    raise ConnectionResetError("closed")
                received += data
    finally:
        sock.close()
    await asyncio.sleep(0.2)
    assert len(received) < len(BULK)
    assert not errors, [e.get("message") for e in errors]
    assert splice.active == 0


async def test_a_pipelined_answer_behind_a_full_buffer_waits_for_the_visitor(start_app, start_proxy):
    # The transport says its buffer is full once, while the first answer is
    # going out. The second answer starts behind it: it must not read its
    # upstream into the buffer regardless (megabytes for a big body), and its
    # body still gets the kernel relay once the buffer drains.
    loop = asyncio.get_running_loop()
    port = await start_app(big_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    sock = await slow_visitor(service, loop)
    (visitor,) = service._proxy.connections
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            if not visitor.closed:
                peak = max(peak, visitor.transport.get_write_buffer_size())
            await asyncio.sleep(0.002)

    watcher = asyncio.ensure_future(watch())
    received = bytearray()
    try:
        await loop.sock_sendall(sock, build_request("GET", "/chunked") + build_request("GET", "/blob"))
        while not (received.count(b"HTTP/1.1 200 OK\r\n") == 2 and received.endswith(BULK)):
            data = await asyncio.wait_for(loop.sock_recv(sock, 65536), TIMEOUT)
            assert data
            received += data
            await asyncio.sleep(0.002)
    finally:
        watcher.cancel()
        sock.close()
    assert received.endswith(BULK)
    assert peak < 1024 * 1024  # not the second body piled up in memory
    assert service._proxy.spliced == 1


async def test_a_pipe_full_of_small_pieces_is_not_watched_in_vain(monkeypatch):
    # Every piece a socket hands over takes a page of the pipe, however small:
    # 64 pieces of 100 bytes fill a 256 KiB pipe. The source stays readable,
    # but nothing can move until the visitor reads: the relay must stop
    # watching it meanwhile instead of being called back again and again.
    calls = [0]  # callbacks that moved nothing
    source_ready = splice.KernelRelay._source_ready

    def counting(self) -> None:
        before = self.remaining
        source_ready(self)
        if not self.done and self.remaining == before:
            calls[0] += 1

    monkeypatch.setattr(splice.KernelRelay, "_source_ready", counting)
    pieces = [BULK[i:i + 100] for i in range(0, 100 * 1000, 100)]
    pair = Pair(100 * 1000, small_sink=True)
    try:
        assert pair.relay.start()
        sent = 0
        for _ in range(50):  # one send, one piece, as many as the sockets hold
            try:
                while sent < len(pieces):
                    pair.upstream.send(pieces[sent])
                    sent += 1
            except BlockingIOError:
                pass
            await asyncio.sleep(0.01)
        assert pair.relay.waiting_on_sink and pair.relay.remaining > 0
        before = calls[0]
        await asyncio.sleep(0.3)
        assert calls[0] - before < 20
        sending = pair.send(b"".join(pieces[sent:]))
        assert await pair.read(100 * 1000) == b"".join(pieces)
        await asyncio.wait_for(sending, TIMEOUT)
        assert await asyncio.wait_for(pair.done, TIMEOUT) == (None, None)
    finally:
        pair.close()
