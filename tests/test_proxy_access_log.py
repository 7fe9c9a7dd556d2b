"""The proxy's access log (`server.access_log`): a line per request in the
combined format plus the time taken, against a real upstream, read back from
the file the service wrote."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import struct

import pytest

from conftest import TIMEOUT, fetch
from test_proxy_http import NAVIGATE, site_app

# address - - [time] "request" status bytes "referer" "user agent" seconds
LINE = re.compile(r'^(\S+) - - \[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] "(.*?)" (\d{3}) (\d+) "(.*?)" "(.*?)" '
                  r'(\d+\.\d{3})$')


async def raw_exchange(port: int, request: bytes) -> bytes:
    """Every byte the proxy sends back for ``request`` (which closes the connection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    data = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    return data


def read_log(service, path) -> list[re.Match]:
    service._proxy.access_log.flush()  # (the proxy's sweep does this once a second)
    lines = open(path, encoding="ascii").read().splitlines()
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    return matches


@pytest.fixture
async def logged(start_app, start_proxy, tmp_path):
    async def start(**options):
        port = await start_app(site_app())
        path = str(tmp_path / "access.log")
        service = await start_proxy(f"http://127.0.0.1:{port}", access_log=path, **options)
        return service, path, port
    return start


async def test_each_request_is_a_line_with_its_status_size_and_time(logged):
    service, path, _ = await logged()
    page = await raw_exchange(service.port, b"GET /page?q=1 HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n"
                              b"Sec-Fetch-Dest: document\r\nAccept: text/html\r\nReferer: https://shop.test/\r\n"
                              b"User-Agent: Mozilla/5.0 (X11) \"quoted\" \xe9\r\n\r\n")
    image = await raw_exchange(service.port, b"GET /image.png HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n")
    missing = await fetch(service.port, "GET", "/nowhere")
    bad = await raw_exchange(service.port, b"GET /x HTTP/1.1\r\nHost: a b\r\n\r\n")
    lines = read_log(service, path)
    assert [m[3] for m in lines] == ["GET /page?q=1 HTTP/1.1", "GET /image.png HTTP/1.1", "GET /nowhere HTTP/1.1",
                                     "GET /x HTTP/1.1"]
    assert [m[4] for m in lines] == ["200", "200", str(missing.status), "400"]
    assert [int(m[5]) for m in lines[:2]] == [len(page), len(image)]
    assert int(lines[3][5]) == len(bad)
    assert all(m[1] == "127.0.0.1" for m in lines)
    assert lines[0][6] == "https://shop.test/" and lines[1][6] == "-"
    # Quotes and bytes outside ASCII are escaped: a header cannot forge a field or a line.
    assert lines[0][7] == r"Mozilla/5.0 (X11) \x22quoted\x22 \xE9"
    assert all(float(m[8]) < TIMEOUT for m in lines)


async def test_upstream_failures_and_visitors_who_leave_are_logged(start_app, start_proxy, start_raw, tmp_path):
    path = str(tmp_path / "access.log")
    hang = asyncio.Event()

    async def slow(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        await hang.wait()

    slow_port = await start_raw(slow)
    service = await start_proxy(f"http://127.0.0.1:{slow_port}", access_log=path)
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.2)
    # The visitor gives up before any answer: a reset, not a half-close (after
    # which a client still gets its answer).
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
    for _ in range(100):
        if service._proxy.access_log._pending:
            break
        await asyncio.sleep(0.02)
    hang.set()
    down = await start_proxy("http://127.0.0.1:9", access_log=path)  # nothing listens there
    assert (await fetch(down.port, "GET", "/")).status == 502
    lines = read_log(service, path) + read_log(down, path)[1:]
    assert [(m[3], m[4]) for m in lines] == [("GET /slow HTTP/1.1", "499"), ("GET / HTTP/1.1", "502")]


async def test_the_address_is_the_one_a_trusted_terminator_added(logged):
    service, path, _ = await logged(trust_forwarded=True)
    await fetch(service.port, "GET", "/image.png", [("X-Forwarded-For", "198.51.100.1, 203.0.113.7")])
    await fetch(service.port, "GET", "/image.png", [("X-Forwarded-For", "198.51.100.1"),
                                                    ("X-Forwarded-For", "203.0.113.8")])
    assert [m[1] for m in read_log(service, path)] == ["203.0.113.7", "203.0.113.8"]


async def test_a_visitors_own_forwarded_header_is_not_believed(logged):
    service, path, _ = await logged()
    await fetch(service.port, "GET", "/image.png", {"X-Forwarded-For": "203.0.113.7"})
    assert [m[1] for m in read_log(service, path)] == ["127.0.0.1"]


async def test_a_rotated_log_is_opened_again_under_its_name(logged):
    service, path, _ = await logged()
    await fetch(service.port, "GET", "/image.png")
    read_log(service, path)
    os.rename(path, path + ".1")  # what logrotate does
    await fetch(service.port, "GET", "/page", NAVIGATE)
    assert [m[3] for m in read_log(service, path)] == ["GET /page HTTP/1.1"]
    assert len(open(path + ".1").read().splitlines()) == 1


async def test_no_log_by_default(start_app, start_proxy):
    port = await start_app(site_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    assert service._proxy.access_log is None
    assert (await fetch(service.port, "GET", "/image.png")).status == 200


async def test_an_odd_forwarded_address_is_escaped_and_the_sweep_goes_on(logged):
    # Whatever a terminator passes on as the last X-Forwarded-For entry: no
    # space may split the field, and writing it must not break the sweep
    # (which also runs the timeouts): the next second's lines are written too.
    service, path, _ = await logged(trust_forwarded=True)
    await fetch(service.port, "GET", "/image.png", [("X-Forwarded-For", "1.2.3.4, \xe9vil x")])
    for _ in range(100):  # written by the sweep, within about a second
        if os.path.exists(path) and open(path).read():
            break
        await asyncio.sleep(0.05)
    await fetch(service.port, "GET", "/page", NAVIGATE)
    for _ in range(100):
        if len(open(path).read().splitlines()) == 2:
            break
        await asyncio.sleep(0.05)
    lines = [LINE.match(line) for line in open(path).read().splitlines()]
    assert [m[1] for m in lines] == [r"\xE9vil\x20x", "127.0.0.1"]


async def test_requests_cut_off_by_the_shutdown_are_logged(start_proxy, start_raw, tmp_path):
    path = str(tmp_path / "access.log")

    async def silent(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(TIMEOUT)

    # Cut after a short grace: the upstream is silent for longer.
    service = await start_proxy(f"http://127.0.0.1:{await start_raw(silent)}", access_log=path, shutdown_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    writer.write(b"GET /waiting HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.2)
    await service.stop()
    await asyncio.wait_for(reader.read(), TIMEOUT)  # the proxy closed the connection
    for _ in range(50):
        if os.path.exists(path) and open(path).read():
            break
        await asyncio.sleep(0.02)
    assert [(m[3], m[4]) for m in map(LINE.match, open(path).read().splitlines())] == [("GET /waiting HTTP/1.1", "499")]
    writer.close()


async def test_a_refusal_waiting_behind_another_request_is_logged_when_the_visitor_leaves(start_proxy, start_raw,
                                                                                          tmp_path):
    path = str(tmp_path / "access.log")

    async def silent(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(TIMEOUT)

    service = await start_proxy(f"http://127.0.0.1:{await start_raw(silent)}", access_log=path, max_body_size=1000)
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: shop.test\r\n\r\n"
                 b"POST /big HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 5000\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
    await asyncio.sleep(0.2)
    assert [(m[3], m[4]) for m in read_log(service, path)] == [("GET /slow HTTP/1.1", "499"),
                                                                ("POST /big HTTP/1.1", "499")]


async def test_a_request_refused_for_its_headers_keeps_its_request_line(logged):
    service, path, _ = await logged()
    big = b"X-Big: " + b"y" * 9000 + b"\r\n"
    answer = await raw_exchange(service.port, b"GET /with-big-headers HTTP/1.1\r\nHost: shop.test\r\n" + big + b"\r\n")
    garbage = await raw_exchange(service.port, b"\x16\x03\x01 not http\r\n\r\n")
    lines = read_log(service, path)
    assert [(m[3], m[4], int(m[5])) for m in lines] == [("GET /with-big-headers HTTP/1.1", "431", len(answer)),
                                                         ("-", "400", len(garbage))]


async def test_the_hubs_websockets_are_logged_when_they_close(logged):
    """They are handed to our app rather than relayed, yet belong in the log:
    one line when each closes, with 101, what was sent and how long it was open."""
    import aiohttp

    service, path, _ = await logged()
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"http://127.0.0.1:{service.port}/__cobrowse/ws?from=test",
                                      headers={"User-Agent": "agent/1.0", "Referer": "http://shop.test/cart"}) as ws:
            await ws.send_str('{"t":"hello","v":1,"visitor":"v1","tab":"t1","url":"http://shop.test/"}')
            assert (await ws.receive_json(timeout=10))["t"] == "welcome"
            await asyncio.sleep(0.2)
    await fetch(service.port, "GET", "/page")  # an ordinary request after it
    for _ in range(100):
        lines = read_log(service, path)
        if len(lines) == 2:
            break
        await asyncio.sleep(0.05)
    socket_line = next(m for m in lines if "/__cobrowse/ws" in m[3])
    assert socket_line[1] == "127.0.0.1"
    assert socket_line[3] == "GET /__cobrowse/ws?from=test HTTP/1.1"
    assert socket_line[4] == "101"
    assert int(socket_line[5]) > 100  # the handshake's answer and the welcome, at least
    assert (socket_line[6], socket_line[7]) == ("http://shop.test/cart", "agent/1.0")
    assert float(socket_line[8]) >= 0.2  # open that long
    assert [m[3] for m in lines].count("GET /page HTTP/1.1") == 1  # the proxy's own line, once
    assert len(lines) == 2
