"""The hub's chat feature over real websockets, with the real chat service on SQLite.

Visitors connect on /ws; agents Anna (agent), Bob (agent) and Sam (supervisor)
on their own paths. Every conversation is stored before anyone is told.
"""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from chat.service import ChatService
from cobrowse.config import ChatField, Config, ServerOptions
from cobrowse.storage.db import Database
from cobrowse.sync.broker import InMemoryBroker
from cobrowse.sync.chat import ChatHubSettings, HubChat
from cobrowse.sync.hub import AgentIdentity, Hub

from test_sync_hub import WAIT, Peer, meta, full

SECRET = b"c" * 32


async def _users(db: Database) -> dict[str, AgentIdentity]:
    from cobrowse.storage import accounts

    import argon2

    previous = accounts.set_password_hasher(argon2.PasswordHasher.from_parameters(argon2.profiles.CHEAPEST))
    try:
        made = {}
        for username, name, role in (("anna", "Anna", "agent"), ("bob", "Bob", "agent"),
                                     ("sam", "Sam", "supervisor")):
            user = await accounts.create_user(db, username, "correct horse battery", role, display_name=name)
            made[username] = AgentIdentity(user.id, name, role)
        return made
    finally:
        accounts.set_password_hasher(previous)


class ChatEnv:
    def __init__(self, client, hub: Hub, service: ChatService, agents: dict[str, AgentIdentity],
                 ended: list[str], offline: list) -> None:
        self.client = client
        self.hub = hub
        self.service = service
        self.agents = agents
        self.ended = ended
        self.offline = offline

    async def visitor(self, visitor: str = "V1", tab: str = "T1") -> Peer:
        peer = Peer(await self.client.ws_connect("/ws"))
        await peer.send({"t": "hello", "v": 1, "visitor": visitor, "tab": tab, "url": "https://shop.test/p/1",
                         "title": "Lamp"})
        await peer.until("welcome")
        return peer

    async def agent(self, who: str = "anna", watch: bool = True) -> Peer:
        peer = Peer(await self.client.ws_connect(f"/agent/{who}"))
        await peer.send({"t": "agent_hello", "v": 1})
        await peer.until("welcome")
        if watch:
            await peer.send({"t": "chat_watch", "available": True})
            await peer.until("chat_offers")
        return peer

    async def started(self, visitor: Peer, **fields) -> dict:
        await visitor.send({"t": "chat_start", "key": "start-key-1", "name": "Vera", **fields})
        return await visitor.until("chat_started")

    async def accepted(self, agent: Peer, conversation: str) -> None:
        await agent.send({"t": "chat_accept", "conversation": conversation})
        await agent.until("chat_state", conversation=conversation, status="active")

    async def active_chat(self) -> tuple[Peer, Peer, str]:
        """Anna has accepted Vera's chat: (anna, visitor, conversation id)."""
        anna = await self.agent("anna")
        visitor = await self.visitor()
        conversation = (await self.started(visitor))["conversation"]
        await self.accepted(anna, conversation)
        return anna, visitor, conversation


@pytest.fixture
async def chat_env(aiohttp_client, tmp_path):
    config = Config(server=ServerOptions(data_dir=str(tmp_path)))
    db = Database.from_config(config)
    await db.start()
    agents = await _users(db)
    service = ChatService(db, secret=SECRET, prechat_fields=(ChatField(name="order", label="Order number"),))
    hub = Hub(InMemoryBroker(), SECRET)
    ended: list[str] = []
    offline: list = []

    async def on_ended(conversation_id: str) -> None:
        ended.append(conversation_id)

    async def on_offline(message) -> None:
        offline.append(message)

    hub.chat = HubChat(hub, service, ChatHubSettings(welcome_text="Hello! How can we help?", survey=True,
                                                      on_ended=on_ended, on_offline=on_offline))
    app = web.Application()
    app.router.add_get("/ws", hub.visitor_socket)
    for username, identity in agents.items():
        async def handler(request, identity=identity):
            return await hub.agent_socket(request, identity)

        app.router.add_get(f"/agent/{username}", handler)

    async def stop(app):
        await hub.stop()

    app.on_shutdown.append(stop)
    client = await aiohttp_client(app)
    yield ChatEnv(client, hub, service, agents, ended, offline)
    await client.close()
    await db.stop()


async def test_a_chat_from_start_to_end(chat_env):
    env = chat_env
    anna = await env.agent("anna")
    visitor = await env.visitor()
    started = await env.started(visitor, email="vera@example.com")
    conversation = started["conversation"]
    assert (await visitor.until("chat_state"))["status"] == "waiting"

    offers = await anna.until("chat_offers")
    assert [(o["conversation"], o["name"]) for o in offers["offers"]] == [(conversation, "Vera")]

    await visitor.send({"t": "chat_send", "id": "visitor-msg-1", "text": "Is the lamp in stock?"})
    ack = await visitor.until("chat_ack", id="visitor-msg-1")
    assert ack["seq"] == 1

    offers = await anna.until("chat_offers")
    assert offers["offers"][0]["preview"] == "Is the lamp in stock?", "the offer shows the first words"
    await env.accepted(anna, conversation)
    history = await anna.until("chat_history")
    assert [m["text"] for m in history["messages"]][:1] == ["Is the lamp in stock?"]
    state = await visitor.until("chat_state", status="active")
    assert [a["name"] for a in state["agents"]] == ["Anna"]
    welcome = await visitor.until("chat_msg")
    assert (welcome["m"]["sender"], welcome["m"]["text"]) == ("system", "Hello! How can we help?")

    await anna.send({"t": "chat_send", "conversation": conversation, "id": "agent-msg-1", "text": "It is!"})
    assert (await anna.until("chat_ack", id="agent-msg-1"))["conversation"] == conversation
    got = await visitor.until("chat_msg")
    while got["m"]["id"] != "agent-msg-1":
        got = await visitor.until("chat_msg")
    assert (got["m"]["sender"], got["m"]["name"], got["m"]["text"]) == ("agent", "Anna", "It is!")

    # Typing and read receipts cross over, stamped by the hub.
    await visitor.send({"t": "chat_typing", "on": True, "text": "secret draft"})
    typing = await anna.until("chat_typing")
    assert typing == {"t": "chat_typing", "on": True, "conversation": conversation, "who": "visitor"}
    await visitor.send({"t": "chat_seen", "delivered": got["m"]["seq"], "read": got["m"]["seq"]})
    seen = await anna.until("chat_seen")
    assert (seen["by"], seen["read"]) == ("visitor", got["m"]["seq"])

    await visitor.send({"t": "chat_end"})
    ended = await visitor.until("chat_state", status="ended")
    assert ended["survey"] is True
    await anna.until("chat_state", status="ended")
    await visitor.send({"t": "chat_survey", "rating": 5, "comment": "quick"})
    after_survey = await visitor.until("chat_state", status="ended")
    assert "survey" not in after_survey
    stored = await env.service.get(conversation)
    assert (stored.survey_rating, stored.survey_comment) == (5, "quick")
    for _ in range(50):
        if env.ended:
            break
        await asyncio.sleep(0.02)
    assert env.ended == [conversation], "transcripts go out when it ends"

    await visitor.send({"t": "chat_send", "id": "visitor-msg-2", "text": "one more"})
    error = await visitor.until("error")
    assert (error["code"], error["re"]) == ("ended", "chat_send")


async def test_a_retried_message_is_stored_and_shown_once(chat_env):
    env = chat_env
    anna, visitor, conversation = await env.active_chat()
    for _ in range(3):
        await visitor.send({"t": "chat_send", "id": "same-id-123", "text": "hello"})
    acks = [await visitor.until("chat_ack", id="same-id-123") for _ in range(3)]
    assert len({a["seq"] for a in acks}) == 1
    await anna.sync()
    history, more = await env.service.history(conversation, 0, notes=True)
    assert [m.text for m in history].count("hello") == 1


async def test_only_one_agent_gets_a_chat(chat_env):
    env = chat_env
    anna, bob = await env.agent("anna"), await env.agent("bob")
    visitor = await env.visitor()
    conversation = (await env.started(visitor))["conversation"]
    await anna.until("chat_offers")
    await bob.until("chat_offers")
    await asyncio.gather(anna.send({"t": "chat_accept", "conversation": conversation}),
                         bob.send({"t": "chat_accept", "conversation": conversation}))
    results = []
    taken = []
    for agent in (anna, bob):
        while True:
            frame = await agent.recv()
            if frame["t"] == "chat_taken":
                taken.append(frame["conversation"])
            if frame["t"] == "error" and frame["re"] == "chat_accept":
                results.append("taken")
                assert frame["code"] == "taken"
                break
            if frame["t"] == "chat_state" and frame.get("status") == "active":
                results.append("won")
                break
    assert sorted(results) == ["taken", "won"]
    loser = bob if results[1] == "taken" else anna
    if len(taken) < 2:
        taken.append((await loser.until("chat_taken"))["conversation"])
    assert conversation in taken
    offers = await loser.until("chat_offers")
    assert offers["offers"] == [], "a taken chat is offered no more"


async def test_private_notes_never_reach_the_visitor(chat_env):
    env = chat_env
    anna = await env.agent("anna")
    sam = await env.agent("sam")
    visitor = await env.visitor()
    conversation = (await env.started(visitor))["conversation"]
    await env.accepted(anna, conversation)
    await sam.send({"t": "chat_open", "conversation": conversation})
    await sam.until("chat_history")
    await anna.send({"t": "chat_send", "conversation": conversation, "id": "note-000001",
                     "text": "NOTE-CANARY: refund approved", "private": True})
    await anna.until("chat_ack", id="note-000001")
    note = await sam.until("chat_msg")
    while note["m"]["id"] != "note-000001":
        note = await sam.until("chat_msg")
    assert note["m"]["kind"] == "note"
    await anna.send({"t": "chat_send", "conversation": conversation, "id": "after-note-1", "text": "done"})
    seen = []
    while True:
        frame = await visitor.recv()
        seen.append(frame)
        if frame["t"] == "chat_msg" and frame["m"]["id"] == "after-note-1":
            break
    assert "NOTE-CANARY" not in repr(seen)
    # Nor in the history a visitor tab fetches.
    await visitor.send({"t": "chat_sync", "after": 0})
    assert "NOTE-CANARY" not in repr(await visitor.until("chat_history"))


async def test_another_tab_continues_with_the_token_and_a_stranger_cannot(chat_env):
    env = chat_env
    anna = await env.agent("anna")
    visitor = await env.visitor()
    started = await env.started(visitor)
    conversation, token = started["conversation"], started["token"]
    await env.accepted(anna, conversation)
    await visitor.send({"t": "chat_send", "id": "first-message", "text": "from tab one"})
    await visitor.until("chat_ack")

    second = await env.visitor(tab="T2")
    await second.send({"t": "chat_resume", "token": token, "after": 0})
    assert (await second.until("chat_state"))["status"] == "active"
    history = await second.until("chat_history")
    assert "from tab one" in [m["text"] for m in history["messages"]]

    stranger = await env.visitor(visitor="V-other")
    await stranger.send({"t": "chat_resume", "token": token, "after": 0})
    assert (await stranger.until("error"))["code"] == "bad_token"
    await stranger.send({"t": "chat_send", "id": "sneaky-message", "text": "hi"})
    assert (await stranger.until("error"))["code"] == "no_conversation"


async def test_a_reopened_conversation_says_how_far_the_other_side_has_read(chat_env):
    """After a page load (chat_resume) or a console reload (chat_open), each side
    learns the other's stored read marks: its own messages stay "Read"."""
    env = chat_env
    anna, visitor = await env.agent("anna"), await env.visitor()
    started = await env.started(visitor)
    conversation, token = started["conversation"], started["token"]
    await env.accepted(anna, conversation)
    await anna.send({"t": "chat_send", "conversation": conversation, "id": "agent-says", "text": "Hello"})
    agent_seq = (await anna.until("chat_ack", id="agent-says"))["seq"]
    await visitor.send({"t": "chat_send", "id": "visitor-says", "text": "Hi"})
    visitor_seq = (await visitor.until("chat_ack", id="visitor-says"))["seq"]
    await visitor.send({"t": "chat_seen", "delivered": agent_seq, "read": agent_seq})
    await anna.until("chat_seen", by="visitor")
    await anna.send({"t": "chat_seen", "conversation": conversation, "delivered": visitor_seq, "read": visitor_seq})
    await visitor.until("chat_seen", by="agent")

    tab = await env.visitor(tab="T2")
    await tab.send({"t": "chat_resume", "token": token, "after": 0})
    await tab.until("chat_history")
    marks = await tab.until("chat_seen")
    assert (marks["by"], marks["delivered"], marks["read"]) == ("agent", visitor_seq, visitor_seq)

    console = await env.agent("anna", watch=False)
    await console.send({"t": "chat_open", "conversation": conversation})
    await console.until("chat_history")
    marks = await console.until("chat_seen")
    assert (marks["by"], marks["delivered"], marks["read"]) == ("visitor", agent_seq, agent_seq)


async def test_agents_open_only_what_they_may(chat_env):
    env = chat_env
    anna = await env.agent("anna")
    bob = await env.agent("bob", watch=False)
    visitor = await env.visitor()
    conversation = (await env.started(visitor))["conversation"]
    await env.accepted(anna, conversation)
    await bob.send({"t": "chat_open", "conversation": conversation})
    assert (await bob.until("error"))["code"] == "forbidden"
    await bob.send({"t": "chat_send", "conversation": conversation, "id": "bob-message", "text": "hi"})
    assert (await bob.until("error"))["code"] == "not_found"
    sam = await env.agent("sam", watch=False)
    await sam.send({"t": "chat_open", "conversation": conversation})
    assert (await sam.until("chat_state"))["visitor"] == "Vera"


async def test_sharing_from_the_chat_links_the_session(chat_env):
    env = chat_env
    anna, visitor, conversation = await env.active_chat()
    await visitor.send({"t": "share", "name": "Vera"})
    shared = await visitor.until("shared")
    state = await anna.until("chat_state", conversation=conversation, session=shared["session"])
    assert state["status"] == "active"
    assert await env.service.sessions_of(conversation) == [shared["session"]]

    # goto: needs the shared page and control; without control it is refused in words.
    await visitor.send({"t": "rr", "seq": 0, "ev": [meta(), full()]})
    await anna.send({"t": "join", "session": shared["session"]})
    await anna.until("joined")
    await anna.send({"t": "chat_send", "conversation": conversation, "id": "goto-000001",
                     "text": "goto: https://shop.test/cart"})
    error = await anna.until("error", re="chat_send")
    assert error["code"] == "command_failed" and "control" in error["message"]

    await visitor.send({"t": "stop"})
    state = await anna.until("chat_state", conversation=conversation)
    while state.get("session"):
        state = await anna.until("chat_state", conversation=conversation)


async def test_offline_message_is_stored_once_and_handed_to_mail(chat_env):
    env = chat_env
    anna = await env.agent()
    visitor = await env.visitor()
    frame = {"t": "leave_message", "key": "offline-key-1", "name": "Vera", "email": "vera@example.com",
             "text": "Call me back"}
    await visitor.send(frame)
    await visitor.until("offline_stored", key="offline-key-1")
    await visitor.send(frame)
    await visitor.until("offline_stored", key="offline-key-1")
    for _ in range(50):
        if env.offline:
            break
        await asyncio.sleep(0.02)
    assert [m.text for m in env.offline] == ["Call me back"]
    assert len(await env.service.offline("open")) == 1
    # Watching agents are nudged once (not for the repeat), with nothing of the message in the nudge.
    assert await anna.until("offline_left") == {"t": "offline_left"}
    assert [f for f in await anna.sync() if f["t"] == "offline_left"] == []


async def test_away_stops_alerts_not_the_view_and_a_waiting_visitor_learns_nobody_is_there(chat_env):
    env = chat_env
    anna = await env.agent("anna", watch=False)
    await anna.send({"t": "chat_watch", "available": False})
    await anna.until("chat_offers")
    visitor = await env.visitor()
    conversation = (await env.started(visitor))["conversation"]
    # Nobody takes chats: the visitor's waiting chat says so.
    state = await visitor.until("chat_state", conversation=conversation)
    assert (state["status"], state["available"]) == ("waiting", False)
    # Anna is away, yet she sees who waits (and may take it).
    offers = await anna.until("chat_offers")
    while not offers["offers"]:
        offers = await anna.until("chat_offers")
    assert [o["conversation"] for o in offers["offers"]] == [conversation]

    # She comes back: the visitor is told someone is there; away again, and gone: told again.
    await anna.send({"t": "chat_watch", "available": True})
    state = await visitor.until("chat_state", conversation=conversation)
    assert state["status"] == "waiting" and "available" not in state  # (true: left out)
    await anna.send({"t": "chat_watch", "available": False})
    assert (await visitor.until("chat_state", conversation=conversation))["available"] is False
    await anna.send({"t": "chat_watch", "available": True})
    assert "available" not in await visitor.until("chat_state", conversation=conversation)
    await anna.ws.close()
    assert (await visitor.until("chat_state", conversation=conversation))["available"] is False

    # The visitor leaves a message instead: the chat nobody took ends, and says why.
    await visitor.send({"t": "leave_message", "key": "instead-1", "name": "Vera", "email": "vera@example.com",
                        "text": "Is the lamp in stock?"})
    assert (await visitor.until("chat_state", conversation=conversation))["status"] == "ended"
    await visitor.until("offline_stored", key="instead-1")
    stored, _ = await env.service.history(conversation, 0, notes=True)
    assert stored[-1].text == "The visitor left a message instead of waiting."
    assert [m.text for m in await env.service.offline("open")] == ["Is the lamp in stock?"]


async def test_new_chats_and_messages_left_are_limited_per_address_not_only_per_socket(chat_env):
    env = chat_env
    env.hub.chat = HubChat(env.hub, env.service, ChatHubSettings(starts_per_address=3))
    left = 0
    for n in range(3):  # a script: a fresh socket each time, each within its own rate
        visitor = await env.visitor(visitor=f"V{n}", tab=f"T{n}")
        await visitor.send({"t": "leave_message", "key": f"flood-{n}-a", "name": "Bot", "email": "bot@example.com",
                            "text": "spam"})
        await visitor.send({"t": "chat_start", "key": f"flood-{n}-b", "name": "Bot"})
        for frame in await visitor.sync():
            left += frame["t"] in ("offline_stored", "chat_started")
            if frame["t"] == "error":
                assert frame["code"] == "rate_limited" and frame["re"] in ("leave_message", "chat_start")
    assert left == 3, "the address's budget, not 2 per socket"
    assert len(await env.service.offline("open")) == 2


async def test_bad_chat_frames_get_error_frames(chat_env):
    env = chat_env
    visitor = await env.visitor()
    await visitor.send({"t": "chat_send", "id": "x", "text": 5})
    error = await visitor.until("error")
    assert (error["code"], error["re"]) == ("bad_frame", "chat_send")
    await visitor.send({"t": "chat_start", "key": "k" * 20, "email": "not an email"})
    error = await visitor.until("error")
    assert error["re"] == "chat_start"
    await visitor.send({"t": "ping", "n": 1})
    assert await visitor.until("pong") == {"t": "pong", "n": 1}, "the connection goes on"


async def test_chat_frames_without_chat_get_an_error(aiohttp_client):
    hub = Hub(InMemoryBroker(), SECRET)
    app = web.Application()
    app.router.add_get("/ws", hub.visitor_socket)
    client = await aiohttp_client(app)
    peer = Peer(await client.ws_connect("/ws"))
    await peer.send({"t": "hello", "v": 1, "visitor": "V", "tab": "T", "url": "https://shop.test/"})
    await peer.until("welcome")
    await peer.send({"t": "chat_start", "key": "abcdefgh"})
    error = await asyncio.wait_for(peer.until("error"), WAIT)
    assert error["code"] == "chat_disabled"
    await hub.stop()


async def test_a_second_start_continues_the_open_chat(chat_env):
    env = chat_env
    visitor = await env.visitor()
    first = await env.started(visitor)
    other_tab = await env.visitor(tab="T2")
    await other_tab.send({"t": "chat_start", "key": "another-key-2", "name": "Vera"})
    again = await other_tab.until("chat_started")
    assert again["conversation"] == first["conversation"], "one open chat per visitor"
    assert len(await env.service.waiting()) == 1


async def test_a_repeated_accept_greets_once(chat_env):
    env = chat_env
    anna, visitor, conversation = await env.active_chat()
    await anna.send({"t": "chat_accept", "conversation": conversation})
    await anna.until("chat_history")
    await anna.sync()
    history, _ = await env.service.history(conversation, 0, notes=True)
    assert [m.text for m in history].count("Hello! How can we help?") == 1
    assert [m.text for m in history].count("Anna joined the chat.") == 1


async def test_who_handed_a_chat_on_writes_no_more(chat_env):
    env = chat_env
    anna, bob = await env.agent("anna"), await env.agent("bob")
    visitor = await env.visitor()
    conversation = (await env.started(visitor))["conversation"]
    await env.accepted(anna, conversation)
    await anna.send({"t": "chat_transfer", "conversation": conversation, "agent": env.agents["bob"].user_id})
    await anna.sync()
    await anna.send({"t": "chat_send", "conversation": conversation, "id": "after-transfer", "text": "still me"})
    error = await anna.until("error", re="chat_send")
    assert error["code"] in ("forbidden", "not_found")
    await anna.send({"t": "chat_open", "conversation": conversation})
    assert (await anna.until("error", re="chat_open"))["code"] == "forbidden"
    await bob.send({"t": "chat_open", "conversation": conversation})
    await bob.until("chat_history")
    await bob.send({"t": "chat_send", "conversation": conversation, "id": "bob-now-1", "text": "Bob here"})
    assert (await bob.until("chat_ack", id="bob-now-1"))["seq"] > 0


async def test_a_chat_handed_to_a_colleague_opens_in_their_console_at_once(chat_env):
    env = chat_env
    anna, bob = await env.agent("anna"), await env.agent("bob")
    visitor = await env.visitor()
    conversation = (await env.started(visitor))["conversation"]
    await env.accepted(anna, conversation)
    await visitor.send({"t": "chat_send", "id": "before-handing", "text": "Where is my parcel?"})
    await visitor.until("chat_ack", id="before-handing")
    await anna.send({"t": "chat_transfer", "conversation": conversation, "agent": env.agents["bob"].user_id})
    # Bob asked for nothing: the chat comes to him, with what was said so far.
    state = await bob.until("chat_state", conversation=conversation)
    assert state["status"] == "active" and "Bob" in [a["name"] for a in state["agents"]]
    history = await bob.until("chat_history", conversation=conversation)
    assert "Where is my parcel?" in [m["text"] for m in history["messages"]]
    # ... and he follows it from now on.
    await visitor.send({"t": "chat_send", "id": "after-handing", "text": "Hello Bob"})
    got = await bob.until("chat_msg", conversation=conversation)
    while got["m"]["text"] != "Hello Bob":
        got = await bob.until("chat_msg", conversation=conversation)
    await bob.send({"t": "chat_send", "conversation": conversation, "id": "bob-answers", "text": "Hi!"})
    assert (await bob.until("chat_ack", id="bob-answers"))["seq"] > 0


async def test_a_holder_a_supervisor_transfers_away_from_stops_following_the_chat(chat_env):
    env = chat_env
    anna, bob, sam = await env.agent("anna"), await env.agent("bob"), await env.agent("sam", watch=False)
    visitor = await env.visitor()
    conversation = (await env.started(visitor))["conversation"]
    await env.accepted(anna, conversation)
    await sam.send({"t": "chat_open", "conversation": conversation})
    await sam.until("chat_history")
    await sam.send({"t": "chat_transfer", "conversation": conversation, "agent": env.agents["bob"].user_id})
    # Anna is told (the event, the state naming Bob), then her socket no longer follows it.
    event = await anna.until("chat_msg", conversation=conversation)
    while event["m"]["sender"] != "system" or "transferred" not in event["m"]["text"]:
        event = await anna.until("chat_msg", conversation=conversation)
    assert event["m"]["text"] == "Sam transferred this chat to another agent."
    state = await anna.until("chat_state", conversation=conversation)
    assert "Anna" not in [a["name"] for a in state["agents"]] and "Bob" in [a["name"] for a in state["agents"]]
    # Sam's next chat frame is handled after the transfer has run to its end.
    await sam.send({"t": "chat_sync", "conversation": conversation, "after": 0})
    await sam.until("chat_history")
    await anna.sync()

    await visitor.send({"t": "chat_send", "id": "after-the-transfer", "text": "VISITOR-AFTER"})
    await visitor.until("chat_ack", id="after-the-transfer")
    await sam.send({"t": "chat_send", "conversation": conversation, "id": "sam-note-1", "text": "NOTE-AFTER",
                    "private": True})
    await sam.until("chat_ack", id="sam-note-1")
    bob_got = repr(await bob.sync())  # (handed to Bob: he follows it)
    assert "VISITOR-AFTER" in bob_got and "NOTE-AFTER" in bob_got
    assert "AFTER" not in repr(await anna.sync())
    await anna.send({"t": "chat_sync", "conversation": conversation, "after": 0})
    assert (await anna.until("error", re="chat_sync"))["code"] == "not_found"
    # Nor does her list of recent chats name it (or the visitor) any more.
    assert await env.service.recent(env.agents["anna"]) == []


async def _shared_in_chat(env, agent: Peer, visitor: Peer, conversation: str) -> str:
    """The visitor shares from the chat, and ``agent`` watches the page with control."""
    await visitor.send({"t": "share"})
    session = (await visitor.until("shared"))["session"]
    await visitor.send({"t": "rr", "seq": 0, "ev": [meta(), full()]})
    await agent.until("chat_state", conversation=conversation, session=session)
    await agent.send({"t": "join", "session": session})
    await agent.until("joined", session=session)
    await agent.send({"t": "control_request", "session": session})
    await visitor.until("control_requested")
    await visitor.send({"t": "control", "granted": True})
    await agent.until("control_state", reason="granted")
    return session


async def test_the_page_shared_in_a_chat_goes_with_the_chat_when_it_is_handed_on(chat_env):
    env = chat_env
    anna, bob, sam = await env.agent("anna"), await env.agent("bob"), await env.agent("sam", watch=False)
    await bob.send({"t": "watch"})
    visitor = await env.visitor()
    conversation = (await env.started(visitor))["conversation"]
    await env.accepted(anna, conversation)
    session = await _shared_in_chat(env, anna, visitor, conversation)
    # The queue names the visitor as the chat does, and says the page is shared in a chat.
    queue = await bob.until("queue")
    while not any(e.get("chat") for e in queue["sessions"]):
        queue = await bob.until("queue")
    assert [(e["session"], e["name"], e["chat"]) for e in queue["sessions"]] == [(session, "Vera", True)]
    # Nobody else may watch it from the queue: only those who may open the chat.
    await bob.send({"t": "join", "session": session})
    assert (await bob.until("error", re="join"))["code"] == "forbidden"
    await sam.send({"t": "join", "session": session})
    await sam.until("joined", session=session)

    await anna.send({"t": "chat_transfer", "conversation": conversation, "agent": env.agents["bob"].user_id})
    # Anna no longer sees the page nor controls it; for her, the session is over.
    assert (await anna.until("ended", session=session))["reason"] == "transferred"
    viewers = await visitor.until("viewers")
    while "Anna" in [v["name"] for v in viewers["viewers"]]:
        viewers = await visitor.until("viewers")
    assert [v["name"] for v in viewers["viewers"]] == ["Sam"]
    state = await visitor.until("control_state", session=session, reason="left")
    assert state.get("controller") is None
    await visitor.send({"t": "rr", "seq": 2, "ev": [meta()]})
    await visitor.until("ack")
    assert not [f for f in await anna.sync() if f.get("session") == session]
    await anna.send({"t": "laser", "session": session, "tab": "T1", "x": 0.5, "y": 0.5})
    await anna.send({"t": "join", "session": session})
    assert (await anna.until("error", re="join"))["code"] == "forbidden"
    # Bob, who holds the chat now, sees the page; the visitor shares on.
    await bob.send({"t": "join", "session": session})
    await bob.until("joined", session=session)
    assert env.hub.sessions[session].ended is None


async def test_ending_the_chat_ends_the_page_shared_in_it(chat_env):
    env = chat_env
    anna, visitor, conversation = await env.active_chat()
    session = await _shared_in_chat(env, anna, visitor, conversation)
    await anna.send({"t": "chat_end", "conversation": conversation})
    assert (await visitor.until("ended", session=session))["reason"] == "chat_ended"
    assert (await anna.until("ended", session=session))["reason"] == "chat_ended"
    assert session not in env.hub.sessions

    # Shared again after the chat ended, the page is a session of its own: anyone may help.
    await visitor.send({"t": "share"})
    again = (await visitor.until("shared"))["session"]
    bob = await env.agent("bob")
    await visitor.sync()
    await bob.send({"t": "join", "session": again})
    await bob.until("joined", session=again)
    assert env.hub.chat_links == {}


async def test_the_transcript_names_everyone_who_helped_the_questions_and_who_ended_it(chat_env):
    from chat import archive

    env = chat_env
    anna, bob = await env.agent("anna"), await env.agent("bob")
    visitor = await env.visitor()
    conversation = (await env.started(visitor, fields={"order": "10042"}))["conversation"]
    await env.accepted(anna, conversation)
    await anna.send({"t": "chat_transfer", "conversation": conversation, "agent": env.agents["bob"].user_id})
    await bob.until("chat_history", conversation=conversation)
    await bob.send({"t": "chat_end", "conversation": conversation})
    await visitor.until("chat_state", conversation=conversation, status="ended")
    text = await archive.render(env.service.db, env.service, conversation, audience="agent", fmt="txt")
    assert "Participants: Anna (agent), Bob (agent)" in text  # (Anna handed it on: she helped too)
    assert "Order number: 10042" in text
    assert "Bob ended the chat." in text


async def test_the_visitors_transcript_follows_the_clock_their_browser_gave(chat_env):
    from chat import archive

    env = chat_env
    visitor = await env.visitor()
    conversation = (await env.started(visitor, tz="Europe/Amsterdam"))["conversation"]
    assert (await env.service.get(conversation)).visitor_timezone == "Europe/Amsterdam"
    text = await archive.render(env.service.db, env.service, conversation, audience="visitor", fmt="txt")
    assert "All times are Europe/Amsterdam time." in text
    assert "All times are UTC." in await archive.render(env.service.db, env.service, conversation,
                                                        audience="agent", fmt="txt")
    # A name that is no time zone here is dropped, not refused: the chat starts, in UTC.
    other = await env.visitor("V2")
    conversation = (await env.started(other, tz="../../etc/passwd"))["conversation"]
    assert (await env.service.get(conversation)).visitor_timezone == ""


async def test_a_screen_share_shows_once_in_the_transcript(chat_env):
    from chat import archive
    from cobrowse.storage import timeline
    from cobrowse.sync.db_store import DatabaseSessionStore

    env = chat_env
    env.hub.store = store = DatabaseSessionStore(env.service.db)  # the timeline, as `cobrowse serve` keeps it
    store.start()
    anna, visitor, conversation = await env.active_chat()
    session = await _shared_in_chat(env, anna, visitor, conversation)
    await anna.send({"t": "screen_request", "session": session})
    await visitor.until("screen_request")
    await visitor.send({"t": "screen_answer", "state": "declined"})
    line = "Screen sharing was declined. Nothing was shared."
    got = await anna.until("chat_msg", conversation=conversation)  # the chat's own event line
    while got["m"]["text"] != line:
        got = await anna.until("chat_msg", conversation=conversation)
    for _ in range(500):  # and the session's timeline row, written beside the live path
        if any(str(e.kind) == "screen_share_declined" for e in await timeline.list_events(env.service.db, session)):
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the timeline never got the record")
    for audience in ("agent", "visitor"):
        text = await archive.render(env.service.db, env.service, conversation, audience=audience, fmt="txt")
        lines = text.splitlines()
        # One line for the request and one for the answer (the chat's, in the visitor's words).
        assert sum("your screen" in line or "their screen" in line for line in lines) == 1, text
        assert sum("declined" in line for line in lines) == 1, text
    await store.stop()


async def test_a_long_history_comes_a_page_at_a_time(chat_env):
    from cobrowse.sync import chat as hub_chat

    env = chat_env
    visitor = await env.visitor()
    started = await env.started(visitor)
    for i in range(hub_chat.HISTORY_PAGE + 5):
        await env.service.post(started["conversation"], client_id=f"bulk-message-{i:04d}", sender="visitor",
                               text=f"line {i}")
    await visitor.sync()  # past the (empty) history that came with the start
    await visitor.send({"t": "chat_sync", "after": 0})
    page = await visitor.until("chat_history")
    assert len(page["messages"]) == hub_chat.HISTORY_PAGE and page["more"] is True
    await visitor.send({"t": "chat_sync", "after": page["messages"][-1]["seq"]})
    rest = await visitor.until("chat_history")
    assert len(rest["messages"]) == 5 and "more" not in rest


async def test_seqs_past_what_javascript_holds_are_bad_frames(chat_env):
    env = chat_env
    visitor = await env.visitor()
    await env.started(visitor)
    await visitor.send({"t": "chat_seen", "delivered": 2**63, "read": 0})
    error = await visitor.until("error")
    assert (error["code"], error["re"]) == ("bad_frame", "chat_seen")


async def test_goto_in_the_chat_sends_the_visitor_once_with_control(chat_env):
    env = chat_env
    anna, visitor, conversation = await env.active_chat()
    await visitor.send({"t": "share", "name": "Vera"})
    shared = await visitor.until("shared")
    await visitor.send({"t": "rr", "seq": 0, "ev": [meta(), full()]})
    await anna.until("chat_state", conversation=conversation, session=shared["session"])
    await anna.send({"t": "join", "session": shared["session"]})
    await anna.until("joined")
    await anna.send({"t": "control_request", "session": shared["session"]})
    await visitor.until("control_requested")
    await visitor.send({"t": "control", "granted": True})
    await anna.until("control_state", reason="granted")

    cart = f"http://{env.hub.sessions[shared['session']].site}/cart"
    goto = {"t": "chat_send", "conversation": conversation, "id": "goto-command-1", "text": f"goto: {cart}"}
    await anna.send(goto)
    await anna.send(goto)  # resent after a reconnect, say
    acks = [await anna.until("chat_ack", id="goto-command-1") for _ in range(2)]
    assert acks[0]["seq"] == acks[1]["seq"]
    command = await visitor.until("command")
    assert (command["kind"], command["url"]) == ("goto", cart)
    seen = await visitor.sync()
    assert not [f for f in seen if f["t"] == "command"], "a resent command never runs twice"
    stored, _ = await env.service.history(conversation, 0, notes=True)
    assert [m.kind for m in stored if m.client_id == "goto-command-1"] == ["command"]


async def test_messages_past_the_frame_rate_wait_their_turn_and_keep_their_order(chat_env):
    """A sender over its frame rate is slowed down, not cut short: a dropped message would be
    stored after its sender's next ones (it is resent only on a reconnect)."""
    env = chat_env
    anna, visitor, conversation = await env.active_chat()
    count = 80  # an agent's burst is 60 frames, then 20/s
    for i in range(count):
        await anna.send({"t": "chat_send", "conversation": conversation, "id": f"fast-{i:03d}", "text": f"n {i}"})
    acks = []
    while len(acks) < count:
        frame = await anna.recv()
        assert frame["t"] != "error", frame
        if frame["t"] == "chat_ack":
            acks.append((frame["id"], frame["seq"]))
    assert [message_id for message_id, _ in acks] == [f"fast-{i:03d}" for i in range(count)]
    seqs = [seq for _, seq in acks]
    assert seqs == sorted(seqs)


async def test_a_history_page_reaches_the_client_before_live_messages_published_meanwhile(chat_env, monkeypatch):
    """A client that saw a newer live message before the page, and dropped, would resync after
    that newer message and never get the page's messages: the page goes first."""
    env = chat_env
    anna, visitor, conversation = await env.active_chat()
    await visitor.sync()

    reading, go_on = asyncio.Event(), asyncio.Event()
    history = env.service.history

    async def slow_history(*args, **kwargs):
        result = await history(*args, **kwargs)  # read now, answered later: a busy database
        reading.set()
        await go_on.wait()
        return result

    monkeypatch.setattr(env.service, "history", slow_history)
    await visitor.send({"t": "chat_sync", "after": 0})
    await reading.wait()
    await anna.send({"t": "chat_send", "conversation": conversation, "id": "live-while-reading", "text": "hi"})
    await anna.until("chat_ack", id="live-while-reading")
    go_on.set()
    kinds = []
    while "chat_msg" not in kinds:
        frame = await visitor.recv()
        kinds.append(frame["t"])
    assert kinds.index("chat_history") < kinds.index("chat_msg")
