"""The chat's HTTP endpoints on a running service: who may read and write what.

Visitors prove a conversation with its token header on the site's origin;
agents use the console's login cookie, and see only what their role and
departments allow.
"""

from __future__ import annotations

import asyncio
import json
import dataclasses
from pathlib import Path
from urllib.parse import quote

import aiohttp
import argon2
import pytest

from chat_clients import AgentClient, VisitorClient, agent_cookie, start_shop_upstream
from cobrowse.config import Department
from cobrowse.server import Service
from cobrowse.storage import accounts
from conftest import make_config

PASSWORD = "correct horse battery"




@pytest.fixture
async def running(tmp_path):
    runner, upstream_port = await start_shop_upstream()
    config = dataclasses.replace(
        make_config(f"http://127.0.0.1:{upstream_port}", data_dir=str(tmp_path)),
        departments=(Department(id="sales", name="Sales"), Department(id="support", name="Support")))
    previous = accounts.set_password_hasher(argon2.PasswordHasher.from_parameters(argon2.profiles.CHEAPEST))
    service = Service(config)
    await service.start()
    await accounts.create_user(service.db, "anna", PASSWORD, display_name="Anna", departments=["sales"])
    await accounts.create_user(service.db, "carl", PASSWORD, display_name="Carl", departments=["support"])
    await accounts.create_user(service.db, "sam", PASSWORD, "supervisor", display_name="Sam")
    cookies = {name: await agent_cookie(service.console_port, name, PASSWORD) for name in ("anna", "carl", "sam")}
    try:
        yield service, cookies
    finally:
        accounts.set_password_hasher(previous)
        await service.stop()
        await runner.cleanup()


def _console(service: Service) -> str:
    return f"http://127.0.0.1:{service.console_port}"


async def _as(http: aiohttp.ClientSession, method: str, service: Service, cookie: str, path: str, **options):
    headers = {"Cookie": cookie, "Origin": _console(service), **options.pop("headers", {})}
    async with http.request(method, _console(service) + path, headers=headers, **options) as response:
        return response.status, await response.read(), response.headers


async def test_offline_messages_follow_departments(running):
    service, cookies = running
    visitor = VisitorClient(f"ws://127.0.0.1:{service.port}/__cobrowse/ws")
    await visitor._open()
    visitor.reader = asyncio.ensure_future(visitor._read(visitor.ws))
    for key, department in (("offline-sales-1", "sales"), ("offline-support-1", "support")):
        await visitor.write({"t": "leave_message", "key": key, "name": "Vera", "email": "vera@example.com",
                             "department": department, "text": f"for {department}"})
        await visitor.wait_for(lambda key=key: any(f.get("key") == key for f in visitor.frames), "stored")
    await visitor.close()
    async with aiohttp.ClientSession() as http:
        texts = {}
        for name in ("anna", "carl", "sam"):
            status, body, _ = await _as(http, "GET", service, cookies[name], "/api/chat/offline?state=open")
            assert status == 200
            texts[name] = sorted(m["text"] for m in json.loads(body)["messages"])
        assert texts == {"anna": ["for sales"], "carl": ["for support"], "sam": ["for sales", "for support"]}
        support = next(m for m in await service.chat.service.offline("open") if m.department == "support")
        status, _, _ = await _as(http, "POST", service, cookies["anna"], f"/api/chat/offline/{support.id}/resolve")
        assert status == 404, "another department's message is not Anna's to resolve"
        status, _, _ = await _as(http, "POST", service, cookies["carl"], f"/api/chat/offline/{support.id}/resolve")
        assert status == 200
        status, _, _ = await _as(http, "GET", service, cookies["anna"], "/api/chat/conversations?state=bogus")
        assert status == 400


async def test_files_and_transcripts_only_for_the_conversations_people(running):
    service, cookies = running
    console = _console(service)
    visitor = VisitorClient(f"ws://127.0.0.1:{service.port}/__cobrowse/ws")
    await visitor.connect()
    anna = AgentClient(f"ws://127.0.0.1:{service.console_port}/ws", cookies["anna"], console)
    await anna.connect()
    await anna.wait_for(lambda: any(o["conversation"] == visitor.conversation for o in anna.offers), "the offer")
    await anna.accept(visitor.conversation)
    site = f"http://127.0.0.1:{service.port}/__cobrowse/chat"
    async with aiohttp.ClientSession() as http:
        upload = {"X-Cobrowse-Chat": visitor.token, "X-Cobrowse-File-Name": quote("réçu.pdf"),
                  "Content-Type": "application/pdf", "X-Cobrowse-Message-Id": "upload-id-0001"}
        async with http.post(f"{site}/files", data=b"%PDF-1.4 receipt", headers=upload) as response:
            assert response.status == 200, await response.text()
            file_id = (await response.json())["file"]["id"]
        async with http.post(f"{site}/files", data=b"<script>", headers={
                **upload, "X-Cobrowse-File-Name": "page.html", "Content-Type": "text/html",
                "X-Cobrowse-Message-Id": "upload-id-0002"}) as response:
            assert response.status == 415, "types off the allow-list are refused"
        async with http.post(f"{site}/files", data=b"x", headers={**upload, "X-Cobrowse-Chat": "forged.token"}) as r:
            assert r.status == 403

        async with http.get(f"{site}/files/{file_id}", headers={"X-Cobrowse-Chat": visitor.token}) as response:
            assert response.status == 200 and await response.read() == b"%PDF-1.4 receipt"
            assert response.headers["Content-Disposition"].startswith("attachment")
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        async with http.get(f"{site}/files/{file_id}") as response:
            assert response.status == 403, "no token, no file"
        stranger = VisitorClient(f"ws://127.0.0.1:{service.port}/__cobrowse/ws")
        await stranger.connect()
        async with http.get(f"{site}/files/{file_id}", headers={"X-Cobrowse-Chat": stranger.token}) as response:
            assert response.status == 404, "another visitor's token does not open this conversation's files"
        async with http.get(f"{site}/transcript.txt", headers={"X-Cobrowse-Chat": visitor.token}) as response:
            assert response.status == 200 and "réçu.pdf" in await response.text()

        status, body, _ = await _as(http, "GET", service, cookies["anna"], f"/api/chat/files/{file_id}")
        assert status == 200 and body == b"%PDF-1.4 receipt"
        status, _, _ = await _as(http, "GET", service, cookies["carl"], f"/api/chat/files/{file_id}")
        assert status == 403, "not Carl's conversation"
        status, _, _ = await _as(http, "GET", service, cookies["sam"], f"/api/chat/files/{file_id}")
        assert status == 200, "supervisors may look in"
        for fmt in ("txt", "json", "html"):
            path = f"/api/chat/conversations/{visitor.conversation}/transcript.{fmt}"
            status, body, headers = await _as(http, "GET", service, cookies["anna"], path)
            assert status == 200 and b"Vera" in body
            status, _, _ = await _as(http, "GET", service, cookies["carl"], path)
            assert status == 403
        # Canned replies: own for anyone, site-wide for supervisors only.
        status, _, _ = await _as(http, "POST", service, cookies["carl"], "/api/chat/canned",
                                 json={"scope": "site", "name": "hello", "body": "Hello!"})
        assert status == 403
        status, _, _ = await _as(http, "POST", service, cookies["carl"], "/api/chat/canned",
                                 json={"scope": "agent", "name": "hello", "body": "Hi, Carl here"})
        assert status == 201
        status, _, _ = await _as(http, "POST", service, cookies["sam"], "/api/chat/canned",
                                 json={"scope": "site", "name": "hello", "body": "Hello!"})
        assert status == 201
        status, body, _ = await _as(http, "GET", service, cookies["carl"], "/api/chat/canned")
        assert [c["body"] for c in json.loads(body)["canned"] if c["name"] == "hello"] == [
            "Hi, Carl here"], "the agent's own reply wins over the site's of the same name"
        # Writes from another origin are refused outright.
        status, _, _ = await _as(http, "POST", service, cookies["sam"], "/api/chat/canned",
                                 json={"scope": "site", "name": "evil", "body": "x"},
                                 headers={"Origin": "https://evil.example"})
        assert status == 403
    for side in (visitor, anna, stranger):
        await side.close()


async def test_a_visitor_sends_files_only_with_an_agent_and_so_many_per_chat(running):
    service, cookies = running
    chat = service.chat.config.chat
    service.chat.config = dataclasses.replace(service.chat.config,
                                              chat=dataclasses.replace(chat, max_visitor_files=2))
    visitor = VisitorClient(f"ws://127.0.0.1:{service.port}/__cobrowse/ws")
    await visitor.connect()
    site = f"http://127.0.0.1:{service.port}/__cobrowse/chat"
    files = service.config.chat_files_dir

    def upload(n: int) -> dict:
        return {"X-Cobrowse-Chat": visitor.token, "X-Cobrowse-File-Name": f"photo-{n}.png",
                "Content-Type": "image/png", "X-Cobrowse-Message-Id": f"upload-id-{n:04d}"}

    def stored() -> int:
        return len(list(Path(files).glob("*"))) if Path(files).is_dir() else 0

    async with aiohttp.ClientSession() as http:
        async with http.post(f"{site}/files", data=b"\x89PNG one", headers=upload(1)) as response:
            assert response.status == 409, "nobody has joined the chat yet"
            assert (await response.json())["error"] == "not_active"
        sam = AgentClient(f"ws://127.0.0.1:{service.console_port}/ws", cookies["sam"], _console(service))
        await sam.connect()
        await sam.wait_for(lambda: any(o["conversation"] == visitor.conversation for o in sam.offers), "the offer")
        await sam.accept(visitor.conversation)
        for n in (1, 2):
            async with http.post(f"{site}/files", data=b"\x89PNG %d" % n, headers=upload(n)) as response:
                assert response.status == 200, await response.text()
        before = stored()
        async with http.post(f"{site}/files", data=b"\x89PNG three", headers=upload(3)) as response:
            assert response.status == 429
            assert (await response.json())["error"] == "too_many_files"
        assert stored() == before, "a refused file leaves nothing on disk"
        async with http.post(f"{site}/files", data=b"\x89PNG 2", headers=upload(2)) as response:
            assert response.status == 200, "a retried upload is the same file, not a new one"
        # The agent's own files are not counted.
        status, _, _ = await _as(http, "POST", service, cookies["sam"],
                                 f"/api/chat/conversations/{visitor.conversation}/files", data=b"\x89PNG agent",
                                 headers={"X-Cobrowse-File-Name": "agent.png", "Content-Type": "image/png",
                                          "X-Cobrowse-Message-Id": "agent-upload-0001"})
        assert status == 200
    for side in (visitor, sam):
        await side.close()


async def test_the_team_view_shows_supervisors_who_is_there_and_what_goes_on(running):
    service, cookies = running
    console = _console(service)
    waiting, taken = (VisitorClient(f"ws://127.0.0.1:{service.port}/__cobrowse/ws", name=name)
                      for name in ("Wendy", "Tom"))
    await waiting.connect()
    await taken.connect()
    anna = AgentClient(f"ws://127.0.0.1:{service.console_port}/ws", cookies["anna"], console)
    await anna.connect()
    await anna.wait_for(lambda: any(o["conversation"] == taken.conversation for o in anna.offers), "the offer")
    await anna.accept(taken.conversation)
    carl = AgentClient(f"ws://127.0.0.1:{service.console_port}/ws", cookies["carl"], console)
    await carl.connect()
    await carl.write({"t": "chat_watch", "available": False})  # (away)
    async with aiohttp.ClientSession() as http:
        status, body, _ = await _as(http, "GET", service, cookies["anna"], "/api/chat/team")
        assert status == 403, "agents do not see the team view"
        for _ in range(100):  # until the hub has read Carl's frame
            status, body, _ = await _as(http, "GET", service, cookies["sam"], "/api/chat/team")
            assert status == 200
            team = json.loads(body)
            if any(a["name"] == "Carl" and a["status"] == "away" for a in team["agents"]):
                break
            await asyncio.sleep(0.05)
        agents = {a["name"]: (a["status"], a["chats"], a["departments"]) for a in team["agents"]}
        assert agents == {"Anna": ("available", 1, ["sales"]), "Carl": ("away", 0, ["support"]),
                          "Sam": ("offline", 0, [])}
        chats = [(c["visitor_name"], c["status"], c["agent"]) for c in team["chats"]]
        assert chats == [("Wendy", "waiting", ""), ("Tom", "active", "Anna")]
        # Anyone transferring a chat sees who is there.
        status, body, _ = await _as(http, "GET", service, cookies["anna"], "/api/chat/agents")
        assert {a["name"]: a["status"] for a in json.loads(body)["agents"]} == {
            "Anna": "available", "Carl": "away", "Sam": "offline"}
    for client in (waiting, taken, anna, carl):
        await client.close()
