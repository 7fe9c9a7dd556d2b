"""Messages handled as they arrive (cobrowse/sync/direct.py): order kept, failures contained,
and the heartbeat that costs nothing per message still pings the silent and drops the dead."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from cobrowse.sync.direct import DirectWebSocketResponse


def echo_app(log: list, *, decline=(), slow=(), fail=(), heartbeat=None, sockets=None):
    """A handler that takes what ``handle_now`` accepts at once and the rest in its loop.

    ``decline``: texts handle_now leaves to the loop (and "report", answered with
    the log); ``slow``: texts the loop
    takes 0.2 s over (the task is busy meanwhile); ``fail``: texts handle_now
    raises on.
    """
    async def handler(request):
        ws = DirectWebSocketResponse(heartbeat=heartbeat)
        await ws.prepare(request)
        if sockets is not None:
            sockets.append(ws)

        def handle_now(data) -> bool:
            if data in fail:
                raise RuntimeError("boom")
            if data in decline or data in slow or data == "report":
                return False
            log.append(("now", data))
            return True

        while True:
            message = await ws.receive_or_handle(handle_now)
            if message.type is not WSMsgType.TEXT:
                break
            log.append(("loop", message.data))
            if message.data in slow:
                await asyncio.sleep(0.2)
            if message.data == "report":
                await ws.send_json(log)
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    return app


async def test_the_fast_way_is_taken(aiohttp_client):
    """With the aiohttp we install, messages reach handle_now without the queue."""
    log, sockets = [], []
    client = await aiohttp_client(echo_app(log, sockets=sockets))
    ws = await client.ws_connect("/ws")
    for text in ("a", "b", "c"):
        await ws.send_str(text)
    await ws.send_str("report")
    assert await ws.receive_json(timeout=5) == [["now", "a"], ["now", "b"], ["now", "c"], ["loop", "report"]]
    assert sockets[0].direct and sockets[0].lazy_heartbeat
    await ws.close()


async def test_order_is_kept_around_declined_and_slow_messages(aiohttp_client):
    """A message behind one the loop is still handling waits its turn: never handled at once
    ahead of it, even when handle_now would take it."""
    log = []
    client = await aiohttp_client(echo_app(log, decline={"b"}, slow={"slow"}))
    ws = await client.ws_connect("/ws")
    for text in ("a", "b", "c", "slow", "d", "e"):
        await ws.send_str(text)
    await asyncio.sleep(0.5)  # "d" and "e" arrive while the loop sleeps over "slow"
    await ws.send_str("f")
    await ws.send_str("report")
    seen = await ws.receive_json(timeout=5)
    assert [text for _, text in seen] == ["a", "b", "c", "slow", "d", "e", "f", "report"]
    assert ["loop", "d"] in seen and ["loop", "e"] in seen  # waited in the queue behind "slow"
    assert seen[0] == ["now", "a"] and seen[-2] == ["now", "f"]  # and the fast way again after
    await ws.close()


async def test_a_failing_handler_ends_that_socket_only(aiohttp_client, caplog):
    log = []
    client = await aiohttp_client(echo_app(log, fail={"bad"}))
    broken = await client.ws_connect("/ws")
    other = await client.ws_connect("/ws")
    with caplog.at_level(logging.ERROR, logger="cobrowse.hub"):
        await broken.send_str("bad")
        message = await broken.receive(timeout=5)
    assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    assert "handling a websocket message failed" in caplog.text
    await other.send_str("report")
    assert await other.receive_json(timeout=5) == [["loop", "report"]]
    await other.close()


async def test_a_talking_peer_is_not_pinged(aiohttp_client):
    """Data from the peer is proof enough that it is there (as with aiohttp's own heartbeat)."""
    client = await aiohttp_client(echo_app([], heartbeat=0.2))
    ws = await client.ws_connect("/ws", autoping=False)
    pings = 0

    async def count():
        nonlocal pings
        async for message in ws:
            pings += message.type is WSMsgType.PING

    reader = asyncio.ensure_future(count())
    for _ in range(30):  # 1.5 s, talking every 50 ms
        await ws.send_str("x")
        await asyncio.sleep(0.05)
    assert pings == 0
    assert not ws.closed
    await asyncio.sleep(0.7)  # then silent: pinged within two heartbeats
    assert pings >= 1
    reader.cancel()
    await ws.close()


async def test_a_silent_peer_that_answers_pings_stays(aiohttp_client):
    client = await aiohttp_client(echo_app([], heartbeat=0.2))
    ws = await client.ws_connect("/ws")  # aiohttp's client answers pings while receiving
    reader = asyncio.ensure_future(ws.receive())
    await asyncio.sleep(1.5)
    assert not reader.done() and not ws.closed
    reader.cancel()
    await ws.close()


@pytest.mark.parametrize("talked_before", [False, True])
async def test_a_peer_that_ignores_pings_is_dropped(aiohttp_client, talked_before):
    sockets = []
    client = await aiohttp_client(echo_app([], heartbeat=0.2, sockets=sockets))
    ws = await client.ws_connect("/ws", autoping=False)  # and never reads: no pong goes back
    if talked_before:
        await ws.send_str("x")
    for _ in range(40):
        if sockets and sockets[0].closed:
            break
        await asyncio.sleep(0.05)
    assert sockets[0].closed  # ping after 0.2-0.4 s, no pong within 0.1 s more
    await ws.close()
