"""A real Service writes each co-browse session's start, end and participants to its database."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from cobrowse.storage import accounts, cobrowse_sessions

HELLO = {"t": "hello", "v": 1, "visitor": "visitor-1", "tab": "tab-1", "url": "http://shop.test/cart", "title": "Cart"}
SNAPSHOT = {"t": "rr", "seq": 0, "ev": [
    {"type": 4, "timestamp": 1, "data": {"href": "http://shop.test/cart", "width": 800, "height": 600}},
    {"type": 2, "timestamp": 2, "data": {"node": {"type": 0, "childNodes": [], "id": 1}, "initialOffset": {"top": 0, "left": 0}}},
]}


async def receive(ws, kind: str) -> dict:
    while True:
        message = json.loads(await ws.receive_str(timeout=10))
        if message["t"] == kind:
            return message


async def wait_for(predicate, timeout: float = 10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting for the database"
        await asyncio.sleep(0.05)


async def test_start_end_and_participants_are_stored(start_app, start_proxy):
    from aiohttp import web

    async def ok(request):
        return web.Response(text="ok")

    upstream = web.Application()
    upstream.router.add_get("/", ok)
    service = await start_proxy(f"http://127.0.0.1:{await start_app(upstream)}")
    await accounts.create_user(service.db, "anna", "correct horse battery", role="agent", display_name="Anna")
    console = f"http://127.0.0.1:{service.console_port}"

    # unsafe=True: the jar keeps cookies from an IP host (the console at 127.0.0.1).
    async with aiohttp.ClientSession() as visitor_http, \
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as agent_http:
        visitor = await visitor_http.ws_connect(f"http://127.0.0.1:{service.port}/__cobrowse/ws",
                                                headers={"Host": "shop.test"})
        await visitor.send_json(HELLO)
        await receive(visitor, "welcome")
        await visitor.send_json({"t": "share", "name": "Sam"})
        shared = await receive(visitor, "shared")
        await visitor.send_json(SNAPSHOT)
        await receive(visitor, "ack")

        record = await wait_for(lambda: cobrowse_sessions.get_session(service.db, shared["session"]))
        assert record.site_host == "shop.test" and record.visitor_id == "visitor-1"
        assert record.page_url == "http://shop.test/cart" and record.ended_at is None

        login = await agent_http.post(f"{console}/api/login", json={"username": "anna",
                                                                    "password": "correct horse battery"},
                                      headers={"Origin": console})
        assert login.status == 200
        agent = await agent_http.ws_connect(f"{console}/ws", headers={"Origin": console})
        await agent.send_json({"t": "agent_hello", "v": 1})
        await receive(agent, "welcome")
        await agent.send_json({"t": "join", "code": shared["code"]})
        await receive(agent, "joined")

        async def joined():
            record = await cobrowse_sessions.get_session(service.db, shared["session"])
            return record if record and record.participants else None

        record = await wait_for(joined)
        (participant,) = record.participants
        assert participant.user.username == "anna" and participant.left_at is None

        await visitor.send_json({"t": "stop"})
        assert (await receive(agent, "ended"))["reason"] == "visitor_stopped"

        async def ended():
            record = await cobrowse_sessions.get_session(service.db, shared["session"])
            return record if record.ended_at is not None else None

        record = await wait_for(ended)
        assert str(record.end_reason) in ("visitor_stopped", "EndReason.visitor_stopped")
        assert record.participants[0].left_at is not None  # ending the session lets everyone go
        await agent.close()
        await visitor.close()
