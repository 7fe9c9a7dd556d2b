"""The site's own websockets through the proxy: an aiohttp WebSocketResponse
upstream, aiohttp and `websockets` clients on the visitor's side."""

from __future__ import annotations

import asyncio
import os

import aiohttp
import pytest
import websockets
from aiohttp import WSMsgType, web

from conftest import TIMEOUT, RawClient, build_request, fetch


def ws_app(closes: list) -> web.Application:
    """Echoes text as "echo:<text>", binary reversed; "close-me" makes it close with 4001."""

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("chat.v2", "chat.v1"), max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                if message.data == "close-me":
                    await ws.close(code=4001, message=b"bye")
                    break
                await ws.send_str("echo:" + message.data)
            elif message.type == WSMsgType.BINARY:
                await ws.send_bytes(message.data[::-1])
        closes.append(ws.close_code)
        return ws

    async def plain(request: web.Request) -> web.Response:
        return web.Response(text="plain")

    app = web.Application()
    app.router.add_get("/ws", socket)
    app.router.add_get("/plain", plain)
    return app


async def settled(closes: list) -> None:
    """Waits for the upstream's handler to record its socket's end."""
    for _ in range(int(TIMEOUT / 0.02)):
        if closes:
            return
        await asyncio.sleep(0.02)


@pytest.fixture
async def ws_site(start_app, start_proxy):
    closes: list = []
    port = await start_app(ws_app(closes))
    service = await start_proxy(f"http://127.0.0.1:{port}")
    service.closes = closes  # what the upstream saw
    return service


async def test_text_binary_and_subprotocol_with_aiohttp(ws_site):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"http://127.0.0.1:{ws_site.port}/ws", protocols=("chat.v1", "chat.v2"),
                                      headers={"Host": "shop.test"}, max_msg_size=16 * 1024 * 1024) as ws:
            assert ws.protocol == "chat.v1"
            await ws.send_str("hello")
            assert (await ws.receive(TIMEOUT)).data == "echo:hello"
            blob = os.urandom(3 * 1024 * 1024)  # larger than any buffer on the way
            await ws.send_bytes(blob)
            message = await ws.receive(TIMEOUT)
            assert message.type == WSMsgType.BINARY and message.data == blob[::-1]
            await ws.send_str("close-me")
            message = await ws.receive(TIMEOUT)
            assert message.type == WSMsgType.CLOSE
            assert message.data == 4001 and message.extra == "bye"


async def test_visitor_close_code_reaches_the_upstream(ws_site):
    async with websockets.connect(f"ws://127.0.0.1:{ws_site.port}/ws", subprotocols=["chat.v2"],
                                  open_timeout=TIMEOUT) as ws:
        assert ws.subprotocol == "chat.v2"
        await ws.send("hi")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "echo:hi"
        await ws.send(b"\x00\x01\x02")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == b"\x02\x01\x00"
        await ws.close(code=4000, reason="done")
    await settled(ws_site.closes)
    assert ws_site.closes == [4000]


async def test_no_subprotocol_when_none_matches(ws_site):
    async with websockets.connect(f"ws://127.0.0.1:{ws_site.port}/ws", open_timeout=TIMEOUT) as ws:
        assert ws.subprotocol is None
        await ws.send("x")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "echo:x"


async def test_many_messages_both_ways_at_once(ws_site):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"http://127.0.0.1:{ws_site.port}/ws") as ws:
            count = 2000

            async def send():
                for i in range(count):
                    await ws.send_str(f"{i}:" + "p" * 1000)

            sender = asyncio.create_task(send())
            for i in range(count):
                message = await ws.receive(TIMEOUT)
                assert message.data == f"echo:{i}:" + "p" * 1000
            await sender


async def test_many_sockets_closed_by_the_upstream_leave_the_pool_usable(start_app, start_proxy):
    closes: list = []
    port = await start_app(ws_app(closes))
    service = await start_proxy(f"http://127.0.0.1:{port}", pool_size=2)
    for _ in range(4):
        async with websockets.connect(f"ws://127.0.0.1:{service.port}/ws", open_timeout=TIMEOUT) as ws:
            await ws.send("close-me")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert closed.value.rcvd.code == 4001
        await asyncio.sleep(0.1)  # let both sides' closes arrive
    assert (await fetch(service.port, "GET", "/plain")).body == b"plain"


async def test_a_refused_upgrade_is_an_ordinary_response(ws_site):
    client = await RawClient.connect(ws_site.port)
    await client.send(build_request("GET", "/plain", {
        "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}))
    response = await client.read_response()
    assert response.status == 200 and response.body == b"plain"
    assert response.header("connection") == "close"  # the connection was handed over for an upgrade
    assert await client.at_eof()
    await client.close()


async def test_websockets_can_be_turned_off(start_app, start_proxy):
    port = await start_app(ws_app([]))
    service = await start_proxy(f"http://127.0.0.1:{port}", websocket=False)
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(f"ws://127.0.0.1:{service.port}/ws", open_timeout=TIMEOUT):
            pass
    assert refused.value.response.status_code == 400


async def test_our_hub_websocket_is_handed_to_our_app_in_process(ws_site):
    """Upgrades under the prefix skip the internal socket: the connection itself changes hands."""
    before = ws_site._proxy.handoffs
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"http://127.0.0.1:{ws_site.port}/__cobrowse/ws") as ws:
            await ws.send_str('{"t":"hello","v":1,"visitor":"v1","tab":"t1","url":"http://shop.test/"}')
            assert (await ws.receive_json(timeout=10))["t"] == "welcome"
            await ws.send_str('{"t":"ping","n":3}')
            assert await ws.receive_json(timeout=10) == {"t": "pong", "n": 3}
    assert ws_site._proxy.handoffs == before + 1
    # The proxy still serves ordinary requests afterwards.
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{ws_site.port}/__cobrowse/health") as response:
            assert response.status == 200
