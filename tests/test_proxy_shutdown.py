"""Stopping the proxy gracefully: answers in progress finish, idle connections
close at once, nothing new is taken, and what is left at the deadline is cut.

The upstreams here hold their answers until the test releases them, so
nothing depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap

import pytest
from aiohttp import web

from conftest import TIMEOUT, RawClient

BODY = b"x" * 300_000  # several reads' worth: the answer is mid-body when the stop comes
HALF = len(BODY) // 2


def held_upstream(release: asyncio.Event, *, head_first: bool = True):
    """A raw upstream whose answer (or its second half) waits for ``release``."""
    async def handler(reader, writer):
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(BODY)
            if head_first:
                writer.write(head + BODY[:HALF])
                await writer.drain()
                await release.wait()
                writer.write(BODY[HALF:])
            else:
                await release.wait()
                writer.write(head + BODY)
            await writer.drain()
    return handler


async def stopping(service) -> asyncio.Task:
    """Starts ``service.stop()``; returns once the proxy no longer accepts connections."""
    task = asyncio.ensure_future(service.stop())
    port = service.port
    for _ in range(200):
        await asyncio.sleep(0.01)
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return task  # refused: the listener is closed
        writer.close()
    raise AssertionError("the proxy still accepts connections while stopping")


def cut_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "cut" in r.getMessage() and r.name == "cobrowse.proxy"]


async def test_an_answer_in_progress_finishes_before_the_proxy_stops(start_proxy, start_raw, caplog):
    caplog.set_level(logging.INFO, "cobrowse.proxy")
    release = asyncio.Event()
    service = await start_proxy(f"http://127.0.0.1:{await start_raw(held_upstream(release))}",
                                shutdown_timeout=TIMEOUT * 3)
    idle = await RawClient.connect(service.port)  # kept alive after one answer
    await idle.send(b"GET /first HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    release.set()
    assert await idle.read_body(await idle.read_head()) == BODY
    release.clear()
    busy = await RawClient.connect(service.port)
    await busy.send(b"GET /download HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    assert (await busy.read_head()).status == 200
    await busy.reader.readexactly(HALF)  # the busy answer is now waiting on its upstream

    stop = await stopping(service)
    # The idle connection closes while the busy answer is still held up...
    assert await idle.at_eof()
    assert not stop.done()
    # ...which then finishes whole, on a connection that closes after it.
    release.set()
    assert await asyncio.wait_for(busy.reader.readexactly(len(BODY) - HALF), TIMEOUT) == BODY[HALF:]
    assert await busy.at_eof()
    await asyncio.wait_for(stop, TIMEOUT)
    assert cut_warnings(caplog) == []
    assert any("waiting up to" in r.getMessage() for r in caplog.records)


async def test_answers_that_begin_while_stopping_say_connection_close(start_proxy, start_raw):
    release = asyncio.Event()
    service = await start_proxy(f"http://127.0.0.1:{await start_raw(held_upstream(release, head_first=False))}",
                                shutdown_timeout=TIMEOUT * 3)
    client = await RawClient.connect(service.port)
    # Two pipelined requests, both received before the stop: both are answered.
    await client.send(b"GET /a HTTP/1.1\r\nHost: shop.test\r\n\r\nGET /b HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    await asyncio.sleep(0.1)
    stop = await stopping(service)
    release.set()
    first = await client.read_head()
    assert first.header("Connection") is None  # another answer follows on this connection
    assert await client.read_body(first) == BODY
    second = await client.read_head()
    assert second.header("Connection") == "close"
    assert await client.read_body(second) == BODY
    assert await client.at_eof()
    await asyncio.wait_for(stop, TIMEOUT)


async def test_what_is_left_at_the_deadline_is_cut(start_proxy, start_raw, caplog):
    caplog.set_level(logging.INFO, "cobrowse.proxy")
    never = asyncio.Event()
    service = await start_proxy(f"http://127.0.0.1:{await start_raw(held_upstream(never))}", shutdown_timeout=0.5)
    client = await RawClient.connect(service.port)
    await client.send(b"GET /stuck HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    await client.read_head()
    await client.reader.readexactly(HALF)
    await asyncio.wait_for(service.stop(), TIMEOUT)
    rest = await asyncio.wait_for(client.reader.read(), TIMEOUT)
    assert len(rest) < len(BODY) - HALF  # cut short, not completed
    assert cut_warnings(caplog) == ["stopping: cut 1 connection(s) with answers still in progress"]


async def test_a_second_stop_request_cuts_at_once(start_proxy, start_raw, caplog):
    """Cancelling the stop (a second SIGTERM or Ctrl-C) cuts what is left and
    still closes everything else."""
    caplog.set_level(logging.INFO, "cobrowse.proxy")
    never = asyncio.Event()
    service = await start_proxy(f"http://127.0.0.1:{await start_raw(held_upstream(never))}",
                                shutdown_timeout=TIMEOUT * 10)
    client = await RawClient.connect(service.port)
    await client.send(b"GET /stuck HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    await client.read_head()
    stop = await stopping(service)
    stop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stop
    assert await client.at_eof()
    assert cut_warnings(caplog) == ["stopping: cut 1 connection(s) with answers still in progress"]
    assert service.db is None  # the rest of the shutdown ran


async def test_a_site_websocket_is_closed_at_once(start_proxy, start_app, caplog):
    caplog.set_level(logging.INFO, "cobrowse.proxy")
    upstream_closed = asyncio.Event()

    async def ws_handler(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:
            pass
        upstream_closed.set()
        return ws

    app = web.Application()
    app.router.add_get("/socket", ws_handler)
    service = await start_proxy(f"http://127.0.0.1:{await start_app(app)}", shutdown_timeout=TIMEOUT * 10)
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"http://127.0.0.1:{service.port}/socket") as ws:
            await ws.send_str("hello")
            stop = await stopping(service)
            message = await asyncio.wait_for(ws.receive(), TIMEOUT)
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
            await asyncio.wait_for(stop, TIMEOUT)  # not the ten-fold timeout: nothing waits for the tunnel
    await asyncio.wait_for(upstream_closed.wait(), TIMEOUT)  # the upstream's side is closed too
    assert cut_warnings(caplog) == []


async def held_console_request(service) -> RawClient:
    """A console request whose body never comes: its handler waits until cancelled."""
    client = await RawClient.connect(service.console_port)
    await client.send(b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      b"Origin: http://127.0.0.1:%d\r\nContent-Length: 100\r\n\r\n{\"user" % service.console_port)
    await asyncio.sleep(0.1)
    return client


async def test_the_console_stops_listening_and_shares_the_deadline(start_proxy, start_raw):
    never = asyncio.Event()
    grace = 3.0
    service = await start_proxy(f"http://127.0.0.1:{await start_raw(held_upstream(never))}", shutdown_timeout=grace)
    download = await RawClient.connect(service.port)
    await download.send(b"GET /stuck HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    await download.read_head()
    console = await held_console_request(service)
    loop = asyncio.get_running_loop()
    started = loop.time()
    stop = await stopping(service)
    with pytest.raises(OSError):  # the console's listener closed with the proxy's
        await asyncio.open_connection("127.0.0.1", service.console_port)
    await asyncio.wait_for(stop, TIMEOUT * 3)
    # One deadline for both: one after the other they would take twice as long.
    assert loop.time() - started < 1.8 * grace
    assert await console.at_eof() and await download.at_eof()


async def test_a_second_stop_request_during_the_console_shutdown_still_closes_everything(start_proxy, start_raw):
    service = await start_proxy(f"http://127.0.0.1:{await start_raw(held_upstream(asyncio.Event()))}",
                                shutdown_timeout=TIMEOUT * 10)
    console = await held_console_request(service)
    socket_dir = service._socket_dir
    stop = await stopping(service)  # the proxy has nothing to wait for: the console's request holds it up
    await asyncio.sleep(0.3)
    assert not stop.done()
    stop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stop
    assert await console.at_eof()
    assert service.db is None and service._runners == [] and not os.path.exists(socket_dir)


async def test_hub_handshakes_are_not_handed_over_while_stopping(start_proxy, start_raw):
    import aiohttp

    service = await start_proxy(f"http://127.0.0.1:{await start_raw(held_upstream(asyncio.Event()))}")
    proxy = service._proxy
    proxy.begin_drain()
    before = proxy.handoffs
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(f"http://127.0.0.1:{service.port}/__cobrowse/ws") as ws:
                message = await asyncio.wait_for(ws.receive(), TIMEOUT)
                assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        except aiohttp.ClientError:
            pass  # refused outright: as good
    assert proxy.handoffs == before


async def test_error_answers_while_stopping_say_connection_close(start_proxy, start_raw, service_data_dir):
    from cobrowse.config import Site

    release = asyncio.Event()
    port = await start_raw(held_upstream(release, head_first=False))
    service = await start_proxy(sites=(Site(host="shop.test", upstream=f"http://127.0.0.1:{port}"),),
                                shutdown_timeout=TIMEOUT * 3)
    client = await RawClient.connect(service.port)
    # The second goes to a host no site serves: our own 421, the last answer.
    await client.send(b"GET /a HTTP/1.1\r\nHost: shop.test\r\n\r\nGET /b HTTP/1.1\r\nHost: other.test\r\n\r\n")
    await asyncio.sleep(0.1)
    stop = await stopping(service)
    release.set()
    first = await client.read_response()
    assert first.status == 200
    second = await client.read_response()
    assert second.status == 421 and second.header("Connection") == "close"
    assert await client.at_eof()
    await asyncio.wait_for(stop, TIMEOUT)


# ---------------------------------------------------------------------------
# The whole service: SIGTERM to `cobrowse serve`


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_sigterm_lets_a_download_finish(tmp_path, start_raw):
    release = asyncio.Event()
    upstream = await start_raw(held_upstream(release))
    port, console = _free_port(), _free_port()
    config = tmp_path / "cobrowse.toml"
    config.write_text(textwrap.dedent(f"""
        [server]
        listen = "127.0.0.1:{port}"
        data_dir = "{tmp_path / 'data'}"
        [console]
        listen = "127.0.0.1:{console}"
        [[site]]
        host = "*"
        upstream = "http://127.0.0.1:{upstream}"
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("COBROWSE_")}
    env["COBROWSE_SERVER_SHUTDOWN_TIMEOUT"] = "120"  # from the environment, over the default of 10
    server = subprocess.Popen([sys.executable, "-m", "cobrowse", "serve", "--config", str(config)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        client = None
        for _ in range(300):
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            try:
                client = await RawClient.connect(port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        assert client is not None, "cobrowse serve did not start"
        await client.send(b"GET /download HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        assert (await client.read_head()).status == 200
        await client.reader.readexactly(HALF)
        server.send_signal(signal.SIGTERM)
        for _ in range(300):  # until the listener is closed
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await asyncio.sleep(0.05)
            except OSError:
                break
        else:
            raise AssertionError("cobrowse serve still accepts connections after SIGTERM")
        assert server.poll() is None  # still there, for the download
        release.set()
        assert await asyncio.wait_for(client.reader.readexactly(len(BODY) - HALF), TIMEOUT) == BODY[HALF:]
        assert await client.at_eof()
        returncode = await asyncio.wait_for(asyncio.to_thread(server.wait), 60)
        err = server.stderr.read().decode()
        assert returncode == 0, err
        # (counted from the stop's start: a little under the 120 s configured)
        assert re.search(r"waiting up to 1[12]\d s for 1 connection\(s\)", err), err
        assert "cut" not in err and "Traceback" not in err
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
