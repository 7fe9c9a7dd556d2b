"""The reverse proxy when things go wrong: dead, silent and dying upstreams,
bad requests, visitors who leave. Each fault must end in a clear answer or a
cut connection, never a hang, and must not affect other visitors."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest
from aiohttp import web

from conftest import TIMEOUT, RawClient, build_request, echo_app, fetch

NAVIGATE = {"Sec-Fetch-Dest": "document", "Accept": "text/html"}


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def silent_upstream(reader, writer):
    """Accepts, reads the request, never answers."""
    await reader.readuntil(b"\r\n\r\n")
    await asyncio.sleep(3600)


# ---------------------------------------------------------------------------
# Upstream unreachable or silent
# ---------------------------------------------------------------------------


async def test_refused_connection_gives_502_quickly(start_proxy):
    service = await start_proxy(f"http://127.0.0.1:{free_port()}")
    client = await RawClient.connect(service.port)
    started = time.monotonic()
    page = await client.request("GET", "/", NAVIGATE)
    assert time.monotonic() - started < 5
    assert page.status == 502
    assert page.header("content-type").startswith("text/html") and b"not reachable" in page.body
    assert page.header("cache-control") == "no-store"
    api = await client.request("GET", "/api", {"Sec-Fetch-Dest": "empty"})  # same connection: still in step
    assert api.status == 502 and api.header("content-type").startswith("text/plain")
    await client.close()


async def test_silent_upstream_gives_504_after_read_timeout(start_raw, start_proxy):
    port = await start_raw(silent_upstream)
    service = await start_proxy(f"http://127.0.0.1:{port}", read_timeout=1.0)
    started = time.monotonic()
    response = await fetch(service.port, "GET", "/", NAVIGATE)
    elapsed = time.monotonic() - started
    assert response.status == 504
    assert b"too long" in response.body
    assert 0.9 <= elapsed < 6, elapsed  # the sweep runs once a second: up to two seconds late, never early


async def test_no_timeout_before_read_timeout(start_app, start_proxy):
    """The sweep's clock lags; an upstream answering well within the timeout
    must never be cut off, whenever in the sweep's second the request came."""
    async def slowish(request: web.Request) -> web.Response:
        await asyncio.sleep(0.6)
        return web.Response(text="in time")

    app = web.Application()
    app.router.add_get("/", slowish)
    port = await start_app(app)
    service = await start_proxy(f"http://127.0.0.1:{port}", read_timeout=1.0)

    async def staggered(delay: float):
        await asyncio.sleep(delay)
        return await fetch(service.port)

    responses = await asyncio.gather(*(staggered(i * 0.25) for i in range(4)))
    assert [r.status for r in responses] == [200] * 4, [r.body for r in responses]


async def test_slow_upload_is_not_an_upstream_timeout(start_app, start_proxy):
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}", read_timeout=1.0)
    client = await RawClient.connect(service.port)
    pieces = [b"x" * 1000] * 7
    await client.send(build_request("POST", "/upload", {"Content-Length": str(sum(map(len, pieces)))}))
    for piece in pieces:  # 2.45 s in all (over twice the timeout), never quiet for long
        await asyncio.sleep(0.35)
        await client.send(piece)
    response = await client.read_response()
    assert response.status == 200 and response.json()["length"] == 7000
    await client.close()


def saturated_listener() -> tuple[socket.socket, list[socket.socket]] | None:
    """A listening socket whose accept queue is full, so a new connect hangs
    in SYN_SENT (Linux drops SYNs for a full queue). None if it cannot be made so."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(address)
        fillers.append(filler)
    time.sleep(0.05)
    probe = socket.socket()
    probe.settimeout(0.3)
    try:
        probe.connect(address)
    except (socket.timeout, TimeoutError):
        return listener, fillers
    except OSError:
        pass
    finally:
        probe.close()
    for sock in (listener, *fillers):
        sock.close()
    return None


async def test_connect_timeout_gives_504(start_proxy):
    saturated = saturated_listener()
    if saturated is None:
        pytest.skip("cannot make a loopback connect hang on this system")
    listener, fillers = saturated
    try:
        port = listener.getsockname()[1]
        service = await start_proxy(f"http://127.0.0.1:{port}", connect_timeout=1.0)
        started = time.monotonic()
        response = await fetch(service.port)
        elapsed = time.monotonic() - started
        assert response.status == 504
        assert b"connecting" in response.body
        assert 0.9 <= elapsed < 5, elapsed
    finally:
        for sock in (listener, *fillers):
            sock.close()


# ---------------------------------------------------------------------------
# Bad requests
# ---------------------------------------------------------------------------


async def rejected(port: int, raw: bytes):
    client = await RawClient.connect(port)
    await client.send(raw)
    response = await client.read_response()
    closed = await client.at_eof()
    await client.close()
    return response, closed


async def test_malformed_request_gives_400(start_app, start_proxy):
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    for raw in (
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: shop.test\r\nBad Header: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: shop.test\r\n\r\n",
        b"GET /\x01 HTTP/1.1\r\nHost: shop.test\r\n\r\n",
        b"FROB(NICATE / HTTP/1.1\r\nHost: shop.test\r\n\r\n",  # a method is a token
    ):
        response, closed = await rejected(service.port, raw)
        assert response.status == 400 and closed, raw


async def test_oversized_headers_give_431(start_app, start_proxy):
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    response, closed = await rejected(service.port, build_request("GET", "/", {"X-Big": "a" * 9000}))
    assert response.status == 431 and closed
    many = [(f"X-H{i}", "v") for i in range(300)]
    response, closed = await rejected(service.port, build_request("GET", "/", many))
    assert response.status == 431 and closed


async def test_overlong_url_gives_414(start_app, start_proxy):
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    response, closed = await rejected(service.port, build_request("GET", "/" + "a" * 9000))
    assert response.status == 414 and closed


async def test_a_bad_request_after_good_pipelined_ones_is_answered_in_turn(start_app, start_proxy):
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    client = await RawClient.connect(service.port)
    await client.send(build_request("GET", "/one") + build_request("GET", "/two") + b"NONSENSE\r\n\r\n")
    assert (await client.read_response()).json()["path"] == "/one"
    assert (await client.read_response()).json()["path"] == "/two"
    assert (await client.read_response()).status == 400
    assert await client.at_eof()
    await client.close()


async def test_body_over_max_body_size_gives_413(start_app, start_proxy):
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}", max_body_size=1000)
    assert (await fetch(service.port, "POST", "/", body=b"x" * 1000)).status == 200
    response, _ = await rejected(service.port, build_request("POST", "/", body=b"x" * 1001))
    assert response.status == 413


async def test_unknown_host_without_a_wildcard_site_gives_421(start_app, start_proxy):
    from cobrowse.config import Site

    port = await start_app(echo_app())
    service = await start_proxy(sites=(Site(host="shop.test", upstream=f"http://127.0.0.1:{port}"),))
    assert (await fetch(service.port, host="shop.test")).status == 200
    response = await fetch(service.port, "GET", "/", NAVIGATE, host="other.test")
    assert response.status == 421 and b"Unknown site" in response.body


# ---------------------------------------------------------------------------
# Broken exchanges
# ---------------------------------------------------------------------------


async def test_a_visitor_leaving_mid_stream_is_logged_and_others_are_served(start_app, start_proxy, caplog):
    upstream_stopped = asyncio.Event()

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        try:
            for _ in range(10_000):  # 640 MB: far more than any buffer between us
                await response.write(b"z" * 65536)
        except (ConnectionError, RuntimeError):
            upstream_stopped.set()
            raise
        return response

    async def small(request: web.Request) -> web.Response:
        return web.Response(text="still here")

    app = web.Application()
    app.router.add_get("/endless", endless)
    app.router.add_get("/small", small)
    port = await start_app(app)
    service = await start_proxy(f"http://127.0.0.1:{port}")
    caplog.set_level(logging.INFO, logger="cobrowse.proxy")

    client = await RawClient.connect(service.port)
    await client.send(build_request("GET", "/endless"))
    assert (await client.read_head()).status == 200
    await asyncio.wait_for(client.reader.readexactly(200_000), TIMEOUT)
    client.writer.transport.abort()

    await asyncio.wait_for(upstream_stopped.wait(), TIMEOUT)  # the proxy stopped pulling from the upstream
    assert any("visitor left" in record.getMessage() for record in caplog.records)
    assert (await fetch(service.port, "GET", "/small")).body == b"still here"


@pytest.mark.parametrize("kind", ["length", "chunked", "injected"])
async def test_an_upstream_dying_mid_body_cuts_the_visitor_off(start_raw, start_proxy, kind):
    async def upstream(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        if b"/ok" in head:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            return
        if kind == "length":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n" + b"a" * 1000)
        else:
            content_type = b"text/html" if kind == "injected" else b"text/plain"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: %b\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"1e\r\n<html><head></head><body>hello\r\n" % content_type)
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.transport.abort()

    port = await start_raw(upstream)
    service = await start_proxy(f"http://127.0.0.1:{port}")
    client = await RawClient.connect(service.port)
    await client.send(build_request("GET", "/dies", NAVIGATE if kind == "injected" else {}))
    response = await client.read_head()
    assert response.status == 200
    with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
        await client.read_body(response)  # EOF before the body's end, not a hang and not a clean end
    await client.close()
    assert (await fetch(service.port, "GET", "/ok")).body == b"ok"


async def test_an_upstream_closing_without_answering_gives_502(start_raw, start_proxy):
    async def upstream(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.transport.abort()

    port = await start_raw(upstream)
    service = await start_proxy(f"http://127.0.0.1:{port}")
    response = await fetch(service.port, "POST", "/", body=b"data")
    assert response.status == 502


async def test_a_malformed_upstream_response_gives_502(start_raw, start_proxy):
    async def upstream(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\nhello")
        await writer.drain()

    port = await start_raw(upstream)
    service = await start_proxy(f"http://127.0.0.1:{port}")
    response = await fetch(service.port)
    assert response.status == 502


async def test_a_transfer_coding_nobody_asked_for_gives_502_not_a_coded_page(start_raw, start_proxy):
    """We never send TE upstream, so "Transfer-Encoding: gzip, chunked" is a
    broken upstream: re-framed, the visitor would get gzip bytes as the page
    (with our tag among them), and nothing saying so."""
    import gzip

    body = gzip.compress(b"<html><head></head><body>hi</body></html>")

    async def upstream(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                     + b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body))
        await writer.drain()

    port = await start_raw(upstream)
    service = await start_proxy(f"http://127.0.0.1:{port}")
    response = await fetch(service.port, "GET", "/", {"Sec-Fetch-Dest": "document", "Accept": "text/html"})
    assert response.status == 502
    assert b"transfer coding" in response.body


async def test_failed_exchanges_give_their_pool_places_back(start_raw, start_proxy):
    """Connections the upstream closed while in use must not count against
    pool_size forever, or the upstream becomes unreachable after a few faults."""
    async def upstream(reader, writer):
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if b"/die" in head:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
                await writer.drain()
                writer.transport.abort()
                return
            if b"/close-delimited" in head:
                writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close")
                await writer.drain()
                return
            if b"/hang-up" in head:
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    port = await start_raw(upstream)
    service = await start_proxy(f"http://127.0.0.1:{port}", pool_size=2)
    for path in ("/die", "/close-delimited", "/hang-up") * 2:
        client = await RawClient.connect(service.port)
        await client.send(build_request("POST", path, body=b"x"))
        try:
            await client.read_response("POST")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        await client.close()
    responses = await asyncio.gather(*(fetch(service.port, "GET", "/fine") for _ in range(4)))
    assert [r.body for r in responses] == [b"ok"] * 4
