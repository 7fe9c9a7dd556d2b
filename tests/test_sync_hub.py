"""The hub over real websockets: a small aiohttp app routes /ws to visitors and
/agent, /supervisor to two authenticated agents. Time is a fake clock; the
1 s tick is called by hand."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket

import aiohttp
import msgspec
import pytest
from aiohttp import WSMsgType, web

from cobrowse.sync import hub as hub_module
from cobrowse.sync import protocol as p
from cobrowse.sync.broker import InMemoryBroker
from cobrowse.sync.hub import CODE_TTL, MAX_BAD_FRAMES, AgentIdentity, Hub
from cobrowse.sync.session import TAB_GRACE

SECRET = b"s" * 32
T0 = 1_700_000_000.0
WAIT = 5.0  # bound on anything that should be quick
ANNA = AgentIdentity(1, "Anna", "agent")
SAM = AgentIdentity(2, "Sam", "supervisor")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class FakeStore:
    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.events: list[tuple] = []  # the timeline: (session id, TimelineEntry)

    async def session_started(self, session, url):
        self.calls.append(("started", session.id, session.site, session.name, url))

    async def session_ended(self, session_id, reason):
        self.calls.append(("ended", session_id, reason))

    async def end_reason(self, session_id):
        return next((c[2] for c in reversed(self.calls) if c[:2] == ("ended", session_id)), None)

    async def session_resumed(self, session_id):
        self.calls.append(("resumed", session_id))

    async def participant_joined(self, session_id, user_id, role):
        self.calls.append(("joined", session_id, user_id, role))

    async def participant_left(self, session_id, user_id):
        self.calls.append(("left", session_id, user_id))

    async def record_events(self, session_id, events):
        self.events += [(session_id, event) for event in events]

    async def wait_for(self, count: int) -> list[tuple]:
        for _ in range(int(WAIT / 0.01)):
            if len(self.calls) >= count:
                return self.calls
            await asyncio.sleep(0.01)
        raise AssertionError(f"expected {count} store calls, got {self.calls}")


def tick(hub: Hub) -> None:
    hub._tick()
    hub._ticker.cancel()  # the tests tick by hand


# ----- clients ---------------------------------------------------------------------------------


class Peer:
    """One websocket client speaking JSON frames."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, frame: dict | str | bytes) -> None:
        if isinstance(frame, dict):
            await self.ws.send_str(json.dumps(frame))
        elif isinstance(frame, str):
            await self.ws.send_str(frame)
        else:
            await self.ws.send_bytes(frame)

    async def recv(self) -> dict:
        message = await self.ws.receive(timeout=WAIT)
        assert message.type is WSMsgType.TEXT, (message.type, message.data, self.ws.close_code)
        return json.loads(message.data)

    async def until(self, kind: str, **fields) -> dict:
        """The next frame of type ``kind`` (with these field values), skipping others."""
        while True:
            frame = await self.recv()
            if frame["t"] == kind and all(frame.get(k) == v for k, v in fields.items()):
                return frame

    async def sync(self) -> list[dict]:
        """Ping and wait for the pong: the hub has handled everything sent before. Returns what came first."""
        await self.send({"t": "ping", "n": 4242})
        seen = []
        while (frame := await self.recv()) != {"t": "pong", "n": 4242}:
            seen.append(frame)
        return seen

    async def closed(self) -> int:
        """Waits for the hub to close the socket; returns the close code."""
        while True:
            message = await self.ws.receive(timeout=WAIT)
            if message.type is WSMsgType.CLOSE:
                return message.data  # the code the hub sent
            if message.type in (WSMsgType.CLOSED, WSMsgType.CLOSING):
                return self.ws.close_code
            assert message.type in (WSMsgType.TEXT, WSMsgType.ERROR), message

    async def close(self) -> None:
        await self.ws.close()


class Visitor(Peer):
    visitor: str
    tab: str
    session: str | None = None
    resume: str | None = None
    seq: int = 0

    async def events(self, *batches: list[dict]) -> None:
        for batch in batches:
            await self.send({"t": "rr", "seq": self.seq, "ev": batch})
            self.seq += len(batch)


def meta(href: str = "https://shop.test/") -> dict:
    return {"type": p.RR_META, "timestamp": 1.0, "data": {"href": href, "width": 1280, "height": 800}}


def full(marker: str = "page") -> dict:
    return {"type": p.RR_FULL_SNAPSHOT, "timestamp": 2.0, "data": {"node": {"id": 1, "marker": marker}}}


def inc(*numbers: int, pad: str = "") -> list[dict]:
    return [{"type": 3, "timestamp": 3.0 + i, "data": {"source": 1, "i": i, "pad": pad}} for i in numbers]


def numbers(frame: dict) -> list:
    return [e["data"]["i"] if e["type"] == 3 else e["type"] for e in frame["ev"]]


class Env:
    def __init__(self, client, hub: Hub, clock: Clock, store: FakeStore, logged_in: dict) -> None:
        self.client = client
        self.hub = hub
        self.clock = clock
        self.store = store
        self.logged_in = logged_in  # user id -> who the console's login check says it is now

    async def raw(self, path: str = "/ws", **options) -> Peer:
        return Peer(await self.client.ws_connect(path, **options))

    async def visitor(self, visitor: str = "V1", tab: str = "T1", url: str = "https://shop.test/",
                      resume: str | None = None, **hello) -> tuple[Visitor, dict]:
        peer = Visitor(await self.client.ws_connect("/ws"))
        peer.visitor, peer.tab, peer.resume = visitor, tab, resume
        frame = {"t": "hello", "v": 1, "visitor": visitor, "tab": tab, "url": url, "title": "Shop", **hello}
        if resume:
            frame["resume"] = resume
        await peer.send(frame)
        welcome = await peer.until("welcome")
        peer.session = welcome.get("session")
        return peer, welcome

    async def sharing(self, visitor: str = "V1", tab: str = "T1", name: str = "Ada") -> tuple[Visitor, dict]:
        """A visitor who said yes and sent their first page (seq 0..3)."""
        peer, _ = await self.visitor(visitor, tab)
        await peer.send({"t": "share", "name": name})
        shared = await peer.until("shared")
        peer.session, peer.resume = shared["session"], shared["resume"]
        await peer.events([meta(), full()] + inc(0, 1))
        await peer.until("ack", seq=3)
        return peer, shared

    async def agent(self, path: str = "/agent") -> Peer:
        peer = Peer(await self.client.ws_connect(path))
        await peer.send({"t": "agent_hello", "v": 1})
        assert await peer.recv() == {"t": "welcome", "v": 1}
        return peer

    async def joined(self, session: str, path: str = "/agent", **join) -> tuple[Peer, dict]:
        peer = await self.agent(path)
        await peer.send({"t": "join", "session": session, **join})
        return peer, await peer.until("joined")


def build_app(hub: Hub, logged_in: dict[int, AgentIdentity | None]) -> web.Application:
    def agent_route(agent: AgentIdentity):
        async def authenticate(request):
            return logged_in.get(agent.user_id, agent)

        async def handler(request):
            return await hub.agent_socket(request, agent, authenticate)

        return handler

    app = web.Application()
    app.router.add_get("/ws", hub.visitor_socket)
    app.router.add_get("/agent", agent_route(ANNA))
    app.router.add_get("/supervisor", agent_route(SAM))
    app.router.add_get("/anna2", agent_route(ANNA))  # Anna's second window

    async def stop(app):
        await hub.stop()

    app.on_shutdown.append(stop)
    return app


@pytest.fixture
async def make_env(aiohttp_client):
    async def make(store: FakeStore | None = None, clock: Clock | None = None, **options) -> Env:
        clock = clock or Clock()
        store = store or FakeStore()
        hub = Hub(InMemoryBroker(), SECRET, store=store, clock=clock, **options)
        logged_in: dict[int, AgentIdentity | None] = {}
        return Env(await aiohttp_client(build_app(hub, logged_in)), hub, clock, store, logged_in)

    return make


@pytest.fixture
async def env(make_env) -> Env:
    return await make_env()


# ----- the endpoint and its frames -------------------------------------------------------------


async def test_visitor_hello_gets_welcome(env):
    peer, welcome = await env.visitor()
    assert welcome == {"t": "welcome", "v": 1}
    assert await peer.sync() == []


@pytest.mark.parametrize("path, first, code, re", [
    ("/ws", {"t": "share"}, "bad_frame", "share"),
    ("/ws", {"t": "hello", "v": 2, "visitor": "V", "tab": "T", "url": "u"}, "bad_version", "hello"),
    ("/ws", {"t": "hello", "v": 1, "tab": "T", "url": "u"}, "bad_frame", "hello"),
    ("/ws", "not json", "bad_frame", None),
    ("/agent", {"t": "watch"}, "bad_frame", "watch"),
    ("/agent", {"t": "agent_hello", "v": 0}, "bad_version", "agent_hello"),
    ("/agent", {"t": "hello", "v": 1, "visitor": "V", "tab": "T", "url": "u"}, "bad_frame", "hello"),
])
async def test_first_frame_must_be_hello_of_version_1(env, path, first, code, re):
    peer = await env.raw(path)
    await peer.send(first)
    error = await peer.recv()
    assert error["t"] == "error" and error["code"] == code and error.get("re") == re
    assert await peer.closed() == 1008


async def test_a_newer_client_hears_bad_version_even_if_its_hello_changed(env):
    peer = await env.raw()
    await peer.send({"t": "hello", "v": 2, "client": "future"})  # v2 may shape hello differently
    error = await peer.recv()
    assert error["code"] == "bad_version"
    assert await peer.closed() == 1008


async def test_no_hello_in_time_closes(env, monkeypatch):
    monkeypatch.setattr(hub_module, "HELLO_TIMEOUT", 0.2)
    peer = await env.raw()
    assert await peer.closed() == 1008


@pytest.mark.parametrize("frame, re", [
    ({"t": "nope"}, "nope"),  # unknown type
    ({"t": "rr", "seq": "zero", "ev": []}, "rr"),  # wrong field type
    ({"t": "rr", "seq": 0}, "rr"),  # missing field
    ({"t": "nav"}, "nav"),
    ({"t": "join", "session": "x"}, "join"),  # an agent's frame
    ("{oops", None),  # not JSON
    ("[1, 2]", None),
    (b"\xff\xfe", None),  # binary, not UTF-8
    # Nested past what the decoder recurses into: a few kilobytes, in a skipped field too.
    ('{"t":"rr","seq":0,"ev":[{"type":4,"timestamp":1,"data":' + "[" * 3000 + "]" * 3000 + "}]}", None),
    ('{"t":"ping","n":1,"z":' + "[" * 3000 + "]" * 3000 + "}", None),
    ('{"t":"chat_send","id":"abcdefgh","text":"x","z":' + "[" * 3000 + "]" * 3000 + "}", None),
])
async def test_bad_frames_are_answered_counted_and_survived(env, frame, re):
    peer, _ = await env.visitor()
    before = env.hub.bad_frames
    await peer.send(frame)
    error = await peer.recv()
    assert error["t"] == "error" and error["code"] == "bad_frame" and error.get("re") == re
    assert error["message"]
    assert env.hub.bad_frames == before + 1
    await peer.send({"t": "ping", "n": 7})
    assert await peer.recv() == {"t": "pong", "n": 7}


async def test_agent_bad_frames_are_answered_and_survived(env):
    agent = await env.agent()
    await agent.send({"t": "join", "since": {"T": "x"}})
    error = await agent.recv()
    assert (error["code"], error["re"]) == ("bad_frame", "join")
    assert env.hub.bad_frames == 1
    await agent.send({"t": "watch"})
    assert (await agent.recv())["t"] == "queue"
    await agent.send('{"t":"ping","n":1,"z":' + "[" * 3000 + "]" * 3000 + "}")  # nested too deeply
    error = await agent.recv()
    assert (error["code"], error["message"]) == ("bad_frame", "nested too deeply")
    await agent.send({"t": "ping", "n": 2})
    assert await agent.recv() == {"t": "pong", "n": 2}


async def test_a_first_frame_nested_too_deeply_is_answered(env):
    peer = await env.raw()
    await peer.send('{"t":"hello","v":1,"visitor":"a","tab":"b","url":"c","x":' + "[" * 3000 + "]" * 3000 + "}")
    error = await peer.recv()
    assert (error["code"], error["message"]) == ("bad_frame", "nested too deeply")
    assert await peer.closed() == 1008


async def test_a_flood_of_bad_frames_closes_the_connection(env):
    peer, _ = await env.visitor()
    for _ in range(MAX_BAD_FRAMES + 1):
        await peer.send("nope")
    assert await peer.closed() == 1008
    assert env.hub.bad_frames == MAX_BAD_FRAMES + 1
    other, _ = await env.visitor("V2", "T2")
    assert await other.sync() == []


async def test_oversized_agent_frame_closes_with_1009_and_others_carry_on(env):
    visitor, shared = await env.sharing()
    watcher, _ = await env.joined(shared["session"], "/supervisor")
    await watcher.until("tab_rr")
    big = await env.agent()
    await big.send({"t": "join", "session": "x" * (p.MAX_AGENT_FRAME + 10)})
    assert await big.closed() == 1009
    await visitor.events(inc(2))
    assert numbers(await watcher.until("tab_rr")) == [2]
    assert (await env.agent()) is not None  # new connections still work


async def test_oversized_visitor_frame_closes_with_1009(env, monkeypatch):
    monkeypatch.setattr(p, "MAX_VISITOR_FRAME", 100_000)
    visitor, shared = await env.sharing()
    await visitor.events(inc(2, pad="x" * 120_000))
    assert await visitor.closed() == 1009
    resumed, welcome = await env.visitor(resume=shared["resume"])
    assert welcome["session"] == shared["session"] and welcome["have_seq"] == 3


async def test_too_many_events_in_one_frame(env, monkeypatch):
    visitor, _ = await env.sharing()
    monkeypatch.setattr(p, "MAX_EVENTS_PER_BATCH", 3)
    await visitor.send({"t": "rr", "seq": 4, "ev": inc(4, 5, 6, 7)})
    assert await visitor.recv() == {"t": "error", "code": "too_large", "message": "too many events in one frame",
                                    "re": "rr"}


async def test_visitor_flood_is_rate_limited_not_fatal(env):
    peer, _ = await env.visitor()
    for n in range(450):
        await peer.send({"t": "ping", "n": n})
    frames = [await peer.recv() for _ in range(450)]
    assert [f.get("n", 0) for f in frames if f["t"] == "pong"] == list(range(400))
    assert all(f["t"] == "error" and f["code"] == "rate_limited" for f in frames[400:])
    env.clock.now += 1.0  # the bucket refills with time
    assert await peer.sync() == []


async def test_agent_flood_is_rate_limited_not_fatal(env):
    agent = await env.agent()
    for n in range(70):
        await agent.send({"t": "ping", "n": n})
    frames = [await agent.recv() for _ in range(70)]
    assert sum(f["t"] == "pong" for f in frames) == 60
    assert {f["code"] for f in frames[60:]} == {"rate_limited"}
    env.clock.now += 1.0
    assert await agent.sync() == []


# ----- sharing, the queue, joining ---------------------------------------------------------------


async def test_share_gets_a_code_and_a_resume_token(env):
    peer, _ = await env.visitor()
    await peer.send({"t": "share", "name": "Ada"})
    shared = await peer.recv()
    assert shared["t"] == "shared"
    assert len(shared["code"]) == 6 and shared["code"].isdigit()
    assert shared["code_expires"] == T0 + CODE_TTL
    assert env.hub.check_resume(shared["resume"], "V1") == shared["session"]
    assert env.hub.check_resume(shared["resume"], "someone else") is None
    await peer.send({"t": "share"})  # sharing already: no second session
    assert await peer.sync() == []
    assert list(env.hub.sessions) == [shared["session"]]


async def test_events_before_share_are_refused(env):
    peer, _ = await env.visitor()
    await peer.events([meta(), full()])
    assert await peer.recv() == {"t": "error", "code": "not_sharing", "message": "share before sending events",
                                 "re": "rr"}
    assert env.hub.sessions == {}


async def test_watch_gets_the_queue_and_its_updates(env):
    agent = await env.agent()
    await agent.send({"t": "watch"})
    assert await agent.recv() == {"t": "queue", "sessions": []}
    visitor, shared = await env.sharing()
    queue = await agent.until("queue")
    assert queue["sessions"] == [{"session": shared["session"], "site": env.hub.sessions[shared["session"]].site,
                                  "url": "https://shop.test/", "title": "Shop", "name": "Ada", "since": T0}]
    watcher, _ = await env.joined(shared["session"], "/supervisor")
    assert (await agent.until("queue"))["sessions"][0]["viewers"] == 1
    await watcher.close()
    assert "viewers" not in (await agent.until("queue"))["sessions"][0]  # the viewer count drops back
    await visitor.send({"t": "stop"})
    assert await agent.until("queue") == {"t": "queue", "sessions": []}


async def test_the_queue_follows_page_loads_and_a_visitor_leaving(env):
    agent = await env.agent()
    await agent.send({"t": "watch"})
    await agent.until("queue")
    visitor, shared = await env.sharing()
    await agent.until("queue")
    # An ordinary page load: the old page's socket goes, the new page's says hello.
    await visitor.close()
    next_page, _ = await env.visitor(resume=shared["resume"], url="https://shop.test/cart", title="Cart")
    entry = (await agent.until("queue"))["sessions"][0]
    assert (entry["url"], entry["title"]) == ("https://shop.test/cart", "Cart")
    assert "away_since" not in entry
    # The visitor closes the tab: once past a page load's grace, the card says so.
    gone_at = env.clock.now
    await next_page.close()
    await asyncio.sleep(0.05)
    env.clock.now += TAB_GRACE + 1
    tick(env.hub)
    assert (await agent.until("queue"))["sessions"][0]["away_since"] == gone_at


async def test_watching_twice_still_gets_each_queue_once(env):
    agent = await env.agent()
    await agent.send({"t": "watch"})
    await agent.send({"t": "watch"})
    assert await agent.recv() == {"t": "queue", "sessions": []}
    assert await agent.recv() == {"t": "queue", "sessions": []}
    visitor, shared = await env.sharing()
    await agent.until("queue")
    await visitor.send({"t": "stop"})
    assert await agent.until("queue") == {"t": "queue", "sessions": []}
    assert await agent.sync() == [], "one queue per change, not one per watch frame"


async def test_no_queue_is_built_while_nobody_watches(env, monkeypatch):
    built = []
    real = env.hub._queue
    monkeypatch.setattr(env.hub, "_queue", lambda: built.append(1) or real())
    visitor, shared = await env.sharing()
    await visitor.send({"t": "nav", "url": "https://shop.test/cart"})
    await visitor.sync()
    await asyncio.sleep(0.3)  # past QUEUE_INTERVAL: a queue would be due by now
    assert built == []
    agent = await env.agent()
    await agent.send({"t": "watch"})
    assert (await agent.until("queue"))["sessions"][0]["url"] == "https://shop.test/cart"


async def test_agent_joins_by_session_id(env):
    visitor, shared = await env.sharing()
    agent, joined = await env.joined(shared["session"])
    assert joined == {"t": "joined", "session": shared["session"], "site": env.hub.sessions[shared["session"]].site,
                      "tabs": [{"tab": "T1", "url": "https://shop.test/", "title": "Shop"}],
                      "viewers": [{"name": "Anna", "role": "agent"}]}
    page = await agent.until("tab_rr")
    assert (page["tab"], page["seq"], page["reset"], numbers(page)) == ("T1", 0, True, [4, 2, 0, 1])
    assert page["ev"][1]["data"] == {"node": {"id": 1, "marker": "page"}}


async def test_agent_joins_by_code(env):
    visitor, shared = await env.sharing()
    agent = await env.agent()
    await agent.send({"t": "join", "code": f" {shared['code']} "})
    assert (await agent.recv())["session"] == shared["session"]
    assert (await agent.recv())["t"] == "tab_rr"


async def test_the_code_of_an_ended_session_joins_nothing(env):
    visitor, shared = await env.sharing()
    await visitor.send({"t": "stop"})
    await visitor.until("ended")
    agent = await env.agent()
    await agent.send({"t": "join", "code": shared["code"]})
    assert (await agent.recv())["code"] == "not_found"
    assert env.hub._codes == {} and env.hub._code_of == {}


@pytest.mark.parametrize("join", [{"code": "000000"}, {"session": "nope"}, {}])
async def test_join_of_nothing_is_not_found(env, join):
    visitor, shared = await env.sharing()
    if join.get("code") == shared["code"]:
        join = {"code": "000001"}
    agent = await env.agent()
    await agent.send({"t": "join", **join})
    assert await agent.recv() == {"t": "error", "code": "not_found", "message": "no such session is being shared",
                                  "re": "join"}


async def test_code_guessing_is_rate_limited(env):
    visitor, shared = await env.sharing()
    wrong = f"{(int(shared['code']) + 1) % 10**6:06d}"
    agent = await env.agent()
    for _ in range(10):
        await agent.send({"t": "join", "code": wrong})
        assert (await agent.recv())["code"] == "not_found"
    await agent.send({"t": "join", "code": shared["code"]})  # even the right code: too many tries
    assert (await agent.recv())["code"] == "rate_limited"
    other = await env.agent("/supervisor")  # another agent from the same address
    await other.send({"t": "join", "code": shared["code"]})
    assert (await other.recv())["code"] == "rate_limited"
    env.clock.now += 61  # one more try a minute
    tick(env.hub)
    await agent.send({"t": "join", "code": shared["code"]})
    assert (await agent.until("joined"))["session"] == shared["session"]


@pytest.mark.parametrize("trusted", [False, True])
async def test_code_guesses_count_per_address_whatever_x_forwarded_for_says(make_env, trusted):
    # The console's listener is not behind our proxy: a client's own
    # X-Forwarded-For must not give each guess a fresh address. Behind a trusted
    # TLS terminator, the entry it added is the agent's address.
    env = await make_env(trust_forwarded=trusted)
    visitor, shared = await env.sharing()
    wrong = f"{(int(shared['code']) + 1) % 10**6:06d}"
    anna = Peer(await env.client.ws_connect("/agent", headers={"X-Forwarded-For": "10.0.0.1"}))
    await anna.send({"t": "agent_hello", "v": 1})
    await anna.recv()
    for _ in range(10):
        await anna.send({"t": "join", "code": wrong})
        assert (await anna.recv())["code"] == "not_found"
    # The terminator's entry comes last, on the header's own line or appended to the client's.
    headers = [("X-Forwarded-For", "10.0.0.1"), ("X-Forwarded-For", "10.0.0.2")] if trusted else \
        {"X-Forwarded-For": "10.0.0.1, 10.0.0.2"}
    sam = Peer(await env.client.ws_connect("/supervisor", headers=headers))
    await sam.send({"t": "agent_hello", "v": 1})
    await sam.recv()
    await sam.send({"t": "join", "code": shared["code"]})
    if trusted:
        assert (await sam.until("joined"))["session"] == shared["session"]
    else:
        assert (await sam.recv())["code"] == "rate_limited"


async def test_expired_code_is_refused(env):
    visitor, shared = await env.sharing()
    env.clock.now += CODE_TTL + 1
    tick(env.hub)
    agent = await env.agent()
    await agent.send({"t": "join", "code": shared["code"]})
    assert (await agent.recv())["code"] == "not_found"
    await agent.send({"t": "join", "session": shared["session"]})  # the session itself lives on
    assert (await agent.recv())["t"] == "joined"


async def test_code_just_before_expiry_works_without_a_tick(env):
    visitor, shared = await env.sharing()
    env.clock.now += CODE_TTL
    agent = await env.agent()
    await agent.send({"t": "join", "code": shared["code"]})
    assert (await agent.recv())["t"] == "joined"
    env.clock.now += 1
    await agent.send({"t": "join", "code": shared["code"]})
    assert (await agent.until("error"))["code"] == "not_found"


# ----- watching -----------------------------------------------------------------------------------


async def test_visitor_events_reach_the_agent_in_order(env):
    visitor, shared = await env.sharing()
    agent, _ = await env.joined(shared["session"])
    await agent.until("tab_rr")
    for start in range(2, 62, 3):
        await visitor.events(inc(start, start + 1, start + 2))
    got = []
    while len(got) < 60:
        frame = await agent.until("tab_rr")
        assert frame["seq"] == 4 + len(got) and "reset" not in frame
        got += numbers(frame)
    assert got == list(range(2, 62))
    acks = []
    while not acks or acks[-1] < 63:
        acks.append((await visitor.until("ack"))["seq"])
    assert acks == sorted(set(acks)) and acks[-1] == 63, "cumulative acks, up to the last event"


async def test_acks_come_at_once_after_a_quiet_interval_and_together_within_one(env, monkeypatch):
    monkeypatch.setattr(hub_module, "ACK_INTERVAL", 30.0)
    visitor, shared = await env.sharing()  # its ack came at once: the socket's first
    await visitor.events(inc(4), inc(5, 6), inc(7))
    await visitor.send({"t": "stop"})
    # Within the interval the acks wait and merge; any other frame takes the waiting one
    # out first (an ack never arrives after the end of its session).
    assert await visitor.recv() == {"t": "ack", "seq": 7}
    assert await visitor.recv() == {"t": "ended", "session": shared["session"], "reason": "visitor_stopped"}


async def test_a_waiting_ack_goes_out_at_the_end_of_its_interval(env, monkeypatch):
    monkeypatch.setattr(hub_module, "ACK_INTERVAL", 0.2)
    visitor, shared = await env.sharing()
    await visitor.events(inc(4), inc(5, 6), inc(7))
    acks = []
    while not acks or acks[-1] < 7:
        acks.append((await visitor.until("ack"))["seq"])
    assert len(acks) <= 2 and acks[-1] == 7, acks  # (4 alone, if this machine took 0.2 s to send it)


async def test_late_supervisor_sees_the_current_page(env):
    visitor, shared = await env.sharing()
    agent, _ = await env.joined(shared["session"])
    await visitor.events(inc(2, 3))
    await visitor.send({"t": "nav", "url": "https://shop.test/#reviews"})
    await visitor.events(inc(4))
    await visitor.events([meta("https://shop.test/cart"), full("cart")] + inc(5), inc(6, 7))
    await visitor.sync()
    supervisor, joined = await env.joined(shared["session"], "/supervisor")
    assert joined["tabs"] == [{"tab": "T1", "url": "https://shop.test/cart"}]  # nav said no title
    assert joined["viewers"] == [{"name": "Anna", "role": "agent"}, {"name": "Sam", "role": "supervisor"}]
    page = await supervisor.recv()
    assert page["t"] == "tab_rr" and page["reset"] is True and page["seq"] == 7
    assert numbers(page) == [4, 2, 5, 6, 7]
    assert page["ev"][1]["data"]["node"]["marker"] == "cart"
    await visitor.events(inc(8))
    assert (await supervisor.until("tab_rr"))["seq"] == 12
    seen = [f for f in await agent.sync() if f["t"] in ("tab_rr", "tab")]
    assert [f["t"] for f in seen] == ["tab_rr", "tab_rr", "tab", "tab_rr", "tab_rr", "tab_rr", "tab_rr"]
    assert [numbers(f) for f in seen if f["t"] == "tab_rr"][1:] == [[2, 3], [4], [4, 2, 5], [6, 7], [8]]


async def test_visitor_learns_who_watches(env):
    visitor, shared = await env.sharing()
    agent, _ = await env.joined(shared["session"])
    assert await visitor.until("viewers") == {"t": "viewers", "session": shared["session"],
                                              "viewers": [{"name": "Anna", "role": "agent"}]}
    supervisor, _ = await env.joined(shared["session"], "/supervisor")
    assert (await visitor.until("viewers"))["viewers"] == [{"name": "Anna", "role": "agent"},
                                                          {"name": "Sam", "role": "supervisor"}]
    second_window, _ = await env.joined(shared["session"], "/anna2")
    assert len((await visitor.until("viewers"))["viewers"]) == 2  # Anna once
    await supervisor.send({"t": "leave", "session": shared["session"]})
    assert (await visitor.until("viewers"))["viewers"] == [{"name": "Anna", "role": "agent"}]
    # Who left sees nothing more of the page.
    await supervisor.sync()
    await visitor.events(inc(424242))
    while numbers(await agent.until("tab_rr")) != [424242]:
        pass
    assert not [f for f in await supervisor.sync() if f.get("session") == shared["session"]]
    await agent.close()
    await second_window.close()
    assert (await visitor.until("viewers"))["viewers"] == [{"name": "Anna", "role": "agent"}]
    assert (await visitor.until("viewers"))["viewers"] == []
    # A tab that resumes is told who watches right away.
    supervisor2, _ = await env.joined(shared["session"], "/supervisor")
    _, welcome = await env.visitor(tab="T2", resume=shared["resume"])
    assert welcome["viewers"] == [{"name": "Sam", "role": "supervisor"}]


async def test_visitor_stop_ends_every_view_at_once(env):
    visitor, shared = await env.sharing()
    agent, _ = await env.joined(shared["session"])
    supervisor, _ = await env.joined(shared["session"], "/supervisor")
    other_tab, _ = await env.visitor(tab="T2", resume=shared["resume"])
    await visitor.send({"t": "stop"})
    ended = {"t": "ended", "session": shared["session"], "reason": "visitor_stopped"}
    assert await agent.until("ended") == ended
    assert await supervisor.until("ended") == ended
    assert await visitor.until("ended") == ended
    assert await other_tab.until("ended") == ended
    assert env.hub.sessions == {}
    await visitor.events(inc(2))  # nothing flows after the stop
    assert (await visitor.until("error"))["code"] == "not_sharing"
    await agent.send({"t": "join", "session": shared["session"]})
    assert (await agent.until("error"))["code"] == "not_found"
    await agent.send({"t": "join", "code": shared["code"]})
    assert (await agent.until("error"))["code"] == "not_found"


async def test_visitor_can_share_again_after_stopping(env):
    visitor, first = await env.sharing()
    await visitor.send({"t": "stop"})
    await visitor.until("ended")
    await visitor.send({"t": "share"})
    second = await visitor.until("shared")
    assert second["session"] != first["session"]
    await visitor.send({"t": "rr", "seq": 0, "ev": [meta(), full()]})
    await visitor.until("ack", seq=1)
    agent, _ = await env.joined(second["session"])
    assert (await agent.until("tab_rr"))["session"] == second["session"]


async def test_agent_end_ends_it_for_the_visitor(env):
    visitor, shared = await env.sharing()
    agent, _ = await env.joined(shared["session"])
    supervisor, _ = await env.joined(shared["session"], "/supervisor")
    stranger = await env.agent("/anna2")
    await stranger.send({"t": "end", "session": shared["session"]})  # not in the session
    assert (await stranger.recv())["code"] == "not_found"
    await agent.send({"t": "end", "session": shared["session"]})
    ended = {"t": "ended", "session": shared["session"], "reason": "agent_ended"}
    assert await visitor.until("ended") == ended
    assert await supervisor.until("ended") == ended
    assert await agent.until("ended") == ended
    assert env.hub.sessions == {}


async def test_tab_grace_and_bye_through_the_hub(env):
    visitor, shared = await env.sharing()
    agent, _ = await env.joined(shared["session"])
    second, _ = await env.visitor(tab="T2", url="https://shop.test/help", resume=shared["resume"])
    assert (await agent.until("tab"))["state"] == {"tab": "T2", "url": "https://shop.test/help", "title": "Shop"}
    await second.send({"t": "bye"})
    await second.close()
    assert (await agent.until("tab"))["state"]["open"] is False  # at once
    await visitor.close()  # no bye: a page load, perhaps
    await asyncio.sleep(0.05)
    env.clock.now += TAB_GRACE - 1
    tick(env.hub)
    assert [f["t"] for f in await agent.sync()] == []
    env.clock.now += 2
    tick(env.hub)
    assert (await agent.until("tab"))["state"] == {"tab": "T1", "url": "https://shop.test/", "title": "Shop",
                                                   "open": False}


async def test_idle_timeout_ends_the_session(make_env):
    env = await make_env(idle_timeout=300)
    visitor, shared = await env.sharing()
    agent, _ = await env.joined(shared["session"])
    env.clock.now += 200
    await visitor.events(inc(2))
    await visitor.until("ack")
    env.clock.now += 250
    tick(env.hub)
    assert shared["session"] in env.hub.sessions
    env.clock.now += 100
    tick(env.hub)
    ended = {"t": "ended", "session": shared["session"], "reason": "idle_timeout"}
    assert await visitor.until("ended") == ended
    assert await agent.until("ended") == ended
    assert env.hub.sessions == {}
    calls = await env.store.wait_for(3)
    assert calls[-1] == ("ended", shared["session"], "idle_timeout")


async def test_the_housekeeping_tick_looks_after_sessions_in_slices(make_env, monkeypatch):
    monkeypatch.setattr(hub_module, "TICK_SLICE", 2)
    env = await make_env(idle_timeout=300)
    visitors = [await env.sharing(visitor=f"V{i}") for i in range(5)]
    env.clock.now += 400
    tick(env.hub)
    assert len(env.hub.sessions) == 3, "the first slice at once, the others in later callbacks"
    for visitor, shared in visitors:
        assert await visitor.until("ended") == {"t": "ended", "session": shared["session"], "reason": "idle_timeout"}
    assert env.hub.sessions == {}


async def test_hub_stop_is_a_restart_not_an_end(env):
    visitor, shared = await env.sharing()
    agent, _ = await env.joined(shared["session"])
    await agent.until("tab_rr")
    await env.hub.stop()
    assert await visitor.closed() == 1012  # come back and resume
    assert await agent.closed() == 1012
    await asyncio.sleep(0.05)
    assert ("ended", shared["session"], "server_shutdown") not in env.store.calls


# ----- resume -------------------------------------------------------------------------------------


async def test_visitor_resumes_on_the_next_page(env):
    visitor, shared = await env.sharing()
    agent, _ = await env.joined(shared["session"])
    await agent.until("tab_rr")
    await visitor.close()  # the page unloads
    next_page, welcome = await env.visitor(url="https://shop.test/cart", resume=shared["resume"], last_seq=3)
    assert welcome == {"t": "welcome", "v": 1, "session": shared["session"], "have_seq": 3,
                       "viewers": [{"name": "Anna", "role": "agent"}]}
    assert (await agent.until("tab"))["state"]["url"] == "https://shop.test/cart"
    next_page.seq = 4
    await next_page.events([meta("https://shop.test/cart"), full("cart")])
    assert (await next_page.until("ack"))["seq"] == 5
    page = await agent.until("tab_rr")
    assert (page["seq"], page["reset"], numbers(page)) == (4, True, [4, 2])
    assert [f for f in await next_page.sync() if f["t"] == "snapshot"] == []  # no request needed


async def test_reconnect_before_the_old_socket_is_seen_to_close(env):
    visitor, shared = await env.sharing()
    agent, _ = await env.joined(shared["session"])
    new_page, welcome = await env.visitor(resume=shared["resume"])
    assert welcome["have_seq"] == 3
    await visitor.close()  # the old page's close arrives late
    await asyncio.sleep(0.05)
    env.clock.now += TAB_GRACE + 5
    tick(env.hub)
    assert [f for f in await agent.sync() if f["t"] == "tab"] == []
    assert env.hub.sessions[shared["session"]].tabs["T1"].open


async def test_a_session_ended_before_a_restart_stays_ended_for_a_stale_tab(make_env):
    env = await make_env()
    visitor, shared = await env.sharing()
    await visitor.send({"t": "stop"})
    await visitor.until("ended")
    await env.store.wait_for(2)
    # A new hub (a restart: nothing in memory) over the same records; a tab that
    # missed the stop comes back with its token.
    restarted = await make_env(store=env.store, clock=env.clock)
    stale = await restarted.raw()
    await stale.send({"t": "hello", "v": 1, "visitor": "V1", "tab": "T2", "url": "https://shop.test/",
                      "resume": shared["resume"]})
    assert await stale.recv() == {"t": "ended", "session": shared["session"], "reason": "visitor_stopped"}
    assert await stale.recv() == {"t": "welcome", "v": 1}, "welcomed, but not into the session"
    assert restarted.hub.sessions == {}
    assert ("resumed", shared["session"]) not in env.store.calls


async def test_a_session_a_shutdown_ended_goes_on_and_is_reopened(make_env):
    env = await make_env()
    visitor, shared = await env.sharing()
    env.store.calls.append(("ended", shared["session"], "server_shutdown"))  # what start-up records
    restarted = await make_env(store=env.store, clock=env.clock)
    await visitor.close()
    resumed, welcome = await restarted.visitor(resume=shared["resume"], last_seq=3)
    assert welcome["session"] == shared["session"]
    await env.store.wait_for(3)
    assert env.store.calls[-1] == ("resumed", shared["session"])


async def test_hub_restart_resume_then_snapshot(make_env):
    env = await make_env()
    visitor, shared = await env.sharing()
    await visitor.events(inc(2, 3))
    await visitor.until("ack", seq=5)
    # The hub goes away without a goodbye; a new one with the same secret takes over.
    restarted = await make_env(clock=env.clock)
    await visitor.close()
    resumed, welcome = await restarted.visitor(resume=shared["resume"], last_seq=5)
    # It holds nothing, and needs nothing up to the visitor's last seq: go on after it, from a snapshot.
    assert welcome == {"t": "welcome", "v": 1, "session": shared["session"], "have_seq": 5}
    assert await resumed.recv() == {"t": "snapshot"}
    resumed.seq = welcome["have_seq"] + 1
    await resumed.events([meta("https://shop.test/"), full("after restart")] + inc(9))
    assert [f["t"] for f in await resumed.sync()] == ["ack"]  # no second snapshot request
    agent, joined = await restarted.joined(shared["session"])
    assert joined["tabs"][0]["tab"] == "T1"
    page = await agent.until("tab_rr")
    assert (page["seq"], page["reset"], numbers(page)) == (6, True, [4, 2, 9])
    assert page["ev"][1]["data"]["node"]["marker"] == "after restart"


async def test_agent_rejoining_after_a_hub_restart_gets_the_new_snapshot(make_env):
    env = await make_env()
    visitor, shared = await env.sharing()
    agent, _ = await env.joined(shared["session"])
    await visitor.events(inc(2, 3))
    assert (await agent.until("tab_rr", seq=4))["ev"]  # the agent has seen up to seq 5
    restarted = await make_env(clock=env.clock)
    await visitor.close()
    await agent.close()
    resumed, welcome = await restarted.visitor(resume=shared["resume"], last_seq=5)
    resumed.seq = welcome.get("have_seq", -1) + 1  # the rule every client follows
    await resumed.events([meta(), full("after restart")] + inc(*range(20, 30)))
    await resumed.sync()
    # The console rejoins with what it had seen on the old hub: that must not pass for the new stream.
    rejoined, _ = await restarted.joined(shared["session"], since={"T1": 5})
    page = await rejoined.until("tab_rr")
    assert page["reset"] is True and page["ev"][1]["data"]["node"]["marker"] == "after restart"


async def test_forged_resume_token_is_refused(env):
    visitor, shared = await env.sharing()
    session_id = shared["session"]
    forged = f"{session_id}.{base64.urlsafe_b64encode(os.urandom(18)).decode()}"
    for token in (forged, "nonsense", f"{session_id}.é", "é"):
        peer, welcome = await env.visitor(visitor="V1", resume=token)
        assert welcome == {"t": "welcome", "v": 1}
    # Someone else's visitor id with the right token.
    thief = Visitor(await env.client.ws_connect("/ws"))
    await thief.send({"t": "hello", "v": 1, "visitor": "V2", "tab": "T9", "url": "u", "resume": shared["resume"]})
    assert await thief.recv() == {"t": "error", "code": "bad_resume",
                                  "message": "this sharing session cannot be resumed", "re": "hello"}
    assert await thief.recv() == {"t": "welcome", "v": 1}
    await thief.send({"t": "rr", "seq": 0, "ev": [meta(), full()]})
    assert (await thief.recv())["code"] == "not_sharing"
    assert list(env.hub.sessions[session_id].tabs) == ["T1"]


async def test_resume_after_the_session_ended_is_refused(env):
    visitor, shared = await env.sharing()
    await visitor.send({"t": "stop"})
    await visitor.until("ended")
    # Another tab was loading a page as the visitor stopped: it must not bring the session back.
    late_tab = Visitor(await env.client.ws_connect("/ws"))
    await late_tab.send({"t": "hello", "v": 1, "visitor": "V1", "tab": "T2", "url": "u", "resume": shared["resume"]})
    assert await late_tab.recv() == {"t": "ended", "session": shared["session"], "reason": "visitor_stopped"}
    assert await late_tab.recv() == {"t": "welcome", "v": 1}
    late_tab.seq = 0
    await late_tab.events([meta(), full()])
    assert (await late_tab.recv())["code"] == "not_sharing"
    assert env.hub.sessions == {}


# ----- delivery -----------------------------------------------------------------------------------


def ws_client_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def participants(env: Env, session: str, count: int) -> None:
    """Until the hub counts ``count`` agents in the session (a raw-socket join has no answer we read)."""
    for _ in range(int(WAIT / 0.01)):
        if len(env.hub.sessions[session].participants) == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} participants in {session}")


async def stalled_agent(port: int, session: str, path: str = "/agent") -> socket.socket:
    """An agent that joins and then never reads a byte."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    await loop.sock_sendall(sock, (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                                   f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    await loop.sock_sendall(sock, ws_client_frame(b'{"t":"agent_hello","v":1}'))
    await loop.sock_sendall(sock, ws_client_frame(msgspec.json.encode({"t": "join", "session": session})))
    return sock


async def test_a_stalled_agent_does_not_hold_up_the_others(env):
    visitor, shared = await env.sharing()
    stalled = await stalled_agent(env.client.port, shared["session"])
    try:
        await participants(env, shared["session"], 1)
        agent, _ = await env.joined(shared["session"])
        await agent.until("tab_rr")
        pad = "x" * 100_000
        for i in range(2, 82):  # 8 MB the stalled agent never reads
            await visitor.events(inc(i, pad=pad))
        got = []
        while len(got) < 80:
            got += numbers(await agent.until("tab_rr"))
        assert got == list(range(2, 82))
        assert any(c.queued > 1_000_000 for c in env.hub._connections)  # it really is stuck
    finally:
        stalled.close()


async def read_server_frames(sock: socket.socket, count: int, kind: str) -> list[dict]:
    """Read the HTTP upgrade answer, then unmasked server text frames, until ``count`` frames of ``kind``."""
    loop = asyncio.get_running_loop()
    data = b""
    while b"\r\n\r\n" not in data:
        data += await loop.sock_recv(sock, 65536)
    data = data.split(b"\r\n\r\n", 1)[1]
    frames: list[dict] = []
    while sum(f["t"] == kind for f in frames) < count:
        head = 2 + {126: 2, 127: 8}.get(data[1] & 0x7F, 0) if len(data) >= 2 else 2
        if len(data) >= head:
            size = data[1] & 0x7F
            size = int.from_bytes(data[2:head], "big") if head > 2 else size
            if len(data) >= head + size:
                assert data[0] == 0x81, "a final, uncompressed text frame"
                frames.append(msgspec.json.decode(data[head:head + size]))
                data = data[head + size:]
                continue
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 5)
        assert chunk, "the hub closed the socket"
        data += chunk
    return frames


async def test_frames_wait_behind_a_full_socket_and_keep_their_order(env):
    """Frames go straight to a socket that takes them; once its buffers are full, the rest wait
    in the connection's outbox, and everything arrives once, in order, when the agent reads again."""
    visitor, shared = await env.sharing()
    sock = await stalled_agent(env.client.port, shared["session"])
    try:
        await participants(env, shared["session"], 1)
        connection = next(c for c in env.hub._connections if c.peer.startswith("agent"))
        pad = "x" * 80_000
        for i in range(2, 102):  # 8 MB: more than the socket buffers hold (the kernel's grow to ~4 MB)
            await visitor.events(inc(i, pad=pad))
        await visitor.until("ack", seq=103)  # (events 2..101 are seq 4..103)
        assert connection.outbox, "the socket is full: frames wait in the outbox"
        frames = await read_server_frames(sock, 101, "tab_rr")  # the first page's snapshot, then 2..101
        got = [n for f in frames if f["t"] == "tab_rr" for n in numbers(f)]
        assert got[-100:] == list(range(2, 102))
        assert not connection.outbox and connection.queued == 0
    finally:
        sock.close()


# ----- agents are checked on every join ---------------------------------------------------------


async def test_agent_is_authenticated_again_on_every_join(env):
    visitor, shared = await env.sharing()
    agent, _ = await env.joined(shared["session"])
    await agent.until("tab_rr")
    env.logged_in[ANNA.user_id] = None  # disabled, or the password changed, since the socket opened
    await agent.send({"t": "join", "session": shared["session"]})
    assert await agent.until("error") == {"t": "error", "code": "unauthorized", "message": "log in again",
                                          "re": "join"}
    assert await agent.closed() == 1008
    assert await visitor.until("viewers", viewers=[])
    env.logged_in[ANNA.user_id] = AgentIdentity(1, "Anna B.", "supervisor")  # renamed and promoted
    again, joined = await env.joined(shared["session"])
    assert joined["viewers"] == [{"name": "Anna B.", "role": "supervisor"}]


# ----- persistence ------------------------------------------------------------------------------


async def test_store_records_the_session_and_its_participants(env):
    visitor, shared = await env.sharing(name="Ada")
    session = shared["session"]
    site = env.hub.sessions[session].site
    agent, _ = await env.joined(session)
    supervisor, _ = await env.joined(session, "/supervisor")
    await supervisor.send({"t": "leave", "session": session})
    await supervisor.sync()
    await agent.close()
    await visitor.until("viewers", viewers=[])
    agent2, _ = await env.joined(session, "/anna2")
    await agent2.send({"t": "end", "session": session})
    await agent2.until("ended")
    await agent2.send({"t": "end", "session": session})  # again: recorded once
    await agent2.sync()
    await agent2.close()
    await env.store.wait_for(8)
    await asyncio.sleep(0.05)  # and nothing more
    assert env.store.calls == [
        ("started", session, site, "Ada", "https://shop.test/"),
        ("joined", session, 1, "agent"),
        ("joined", session, 2, "supervisor"),
        ("left", session, 2),
        ("left", session, 1),
        ("joined", session, 1, "agent"),
        ("ended", session, "agent_ended"),
        ("left", session, 1),
    ]


async def test_store_records_a_visitor_stop(env):
    visitor, shared = await env.sharing()
    await visitor.send({"t": "stop"})
    await visitor.until("ended")
    await visitor.send({"t": "stop"})
    await visitor.sync()
    await env.store.wait_for(2)
    await asyncio.sleep(0.05)
    assert env.store.calls[1:] == [("ended", shared["session"], "visitor_stopped")]


async def test_a_failing_store_does_not_break_the_session(make_env, caplog):
    class BrokenStore(FakeStore):
        async def session_started(self, session, url):
            raise RuntimeError("database down")

    env = await make_env(store=BrokenStore())
    visitor, shared = await env.sharing()
    agent, _ = await env.joined(shared["session"])
    assert (await agent.until("tab_rr"))["reset"] is True
    assert "could not record a session change" in caplog.text


async def test_a_stalled_agent_past_the_outbox_limit_is_cut_off(env, monkeypatch):
    monkeypatch.setattr(hub_module, "OUTBOX_LIMIT", 2_000_000)
    visitor, shared = await env.sharing()
    stalled = await stalled_agent(env.client.port, shared["session"], "/supervisor")
    try:
        await visitor.until("viewers", viewers=[{"name": "Sam", "role": "supervisor"}])
        agent, _ = await env.joined(shared["session"])
        await agent.until("tab_rr")
        pad = "x" * 100_000
        for i in range(2, 82):
            await visitor.events(inc(i, pad=pad))
        got = []
        while len(got) < 80:
            got += numbers(await agent.until("tab_rr"))
        assert got == list(range(2, 82))
        # Sam's socket is cut off rather than closed politely (he would never read the close):
        # he leaves at once and the visitor is told.
        assert await visitor.until("viewers", viewers=[{"name": "Anna", "role": "agent"}])
        assert len(env.hub.sessions[shared["session"]].participants) == 1
        assert all(c.queued < 2_000_000 for c in env.hub._connections)
    finally:
        stalled.close()


async def test_a_session_takes_no_more_open_tabs_than_its_limit(env):
    from cobrowse.sync.session import MAX_TABS

    first, shared = await env.sharing()
    tabs = [first]
    for i in range(1, MAX_TABS):
        peer, welcome = await env.visitor(tab=f"T{i + 1}", resume=shared["resume"])
        assert welcome["session"] == shared["session"]
        tabs.append(peer)
    extra = await env.raw()
    await extra.send({"t": "hello", "v": 1, "visitor": "V1", "tab": "T-extra", "url": "https://shop.test/",
                      "resume": shared["resume"]})
    assert await extra.recv() == {"t": "error", "code": "too_many_tabs",
                                  "message": "this sharing session has too many open tabs", "re": "hello"}
    assert await extra.recv() == {"t": "welcome", "v": 1}, "welcomed, but not into the session"
    assert len(env.hub.sessions[shared["session"]].tabs) == MAX_TABS


# ----- sockets per address ---------------------------------------------------------------------


async def _refused(env: Env, headers: dict | None = None) -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await env.client.ws_connect("/ws", headers=headers)
    return info.value.status


async def test_visitor_sockets_per_address_are_capped(make_env):
    env = await make_env(max_visitor_sockets_per_address=2)
    first, _ = await env.visitor("V1", "T1")
    await env.visitor("V2", "T2")
    assert await _refused(env) == 429  # a third from the same address
    # Another address is counted apart.
    other = Peer(await env.client.ws_connect("/ws", headers={"X-Forwarded-For": "203.0.113.9"}))
    await other.send({"t": "hello", "v": 1, "visitor": "V3", "tab": "T3", "url": "https://shop.test/", "title": "x"})
    await other.until("welcome")
    # A socket that closes makes room.
    await first.close()
    for _ in range(int(WAIT / 0.01)):
        if env.hub._visitor_sockets.get("127.0.0.1") == 1:
            break
        await asyncio.sleep(0.01)
    again, _ = await env.visitor("V1", "T1")
    await again.sync()


async def test_behind_a_trusted_terminator_the_visitor_is_the_address_it_added(make_env):
    env = await make_env(max_visitor_sockets_per_address=1, trust_forwarded=True)
    # Our proxy appends the address it saw: the terminator's, the same for everyone.
    a = await env.client.ws_connect("/ws", headers={"X-Forwarded-For": "198.51.100.1, 10.0.0.5"})
    b = await env.client.ws_connect("/ws", headers={"X-Forwarded-For": "198.51.100.2, 10.0.0.5"})
    assert set(env.hub._visitor_sockets) == {"198.51.100.1", "198.51.100.2"}
    assert await _refused(env, {"X-Forwarded-For": "198.51.100.1, 10.0.0.5"}) == 429
    await a.close()
    await b.close()


async def test_without_trust_the_last_address_counts(make_env):
    env = await make_env(max_visitor_sockets_per_address=1)
    a = await env.client.ws_connect("/ws", headers={"X-Forwarded-For": "198.51.100.1, 10.0.0.5"})
    # A visitor could write anything before our proxy's entry: only that entry counts.
    assert await _refused(env, {"X-Forwarded-For": "198.51.100.2, 10.0.0.5"}) == 429
    await a.close()
