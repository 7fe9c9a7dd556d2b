"""Shared control and operator commands: the pure state machine, then the hub over real websockets."""

from __future__ import annotations

import asyncio

import pytest

from cobrowse.sync import protocol as p
from cobrowse.sync.session import CONTROL_TIMEOUT, TAB_GRACE, Audience, CobrowseSession, Outgoing, navigation_problem
from test_sync_hub import T0, Env, env, make_env, tick  # noqa: F401 (env, make_env: fixtures)

A = p.Viewer(name="Anna", role="agent")
S = p.Viewer(name="Sam", role="supervisor")


def session_with_agents() -> CobrowseSession:
    session = CobrowseSession("S", "shop.test", "V", "Ada", T0)
    session.tab_connected("T", "https://shop.test/", "Shop", T0)
    session.agent_joined("a1", 1, A, None, T0)
    session.agent_joined("s1", 2, S, None, T0)
    session.take_records()
    return session


def of(out, kind, audience=None) -> list:
    return [o.message for o in out if isinstance(o.message, kind) and (audience is None or o.audience is audience)]


def errors(out, key: str) -> list[str]:
    return [o.message.code for o in out if isinstance(o.message, p.Error) and o.key == key]


def states(out) -> list[tuple]:
    """(controller name, allow_submit, reason) of each control_state, checking it reaches both sides alike."""
    to_visitor = of(out, p.ControlState, Audience.VISITOR)
    assert to_visitor == of(out, p.ControlState, Audience.AGENTS)
    return [(s.controller.name if s.controller else None, s.allow_submit, s.reason) for s in to_visitor]


def kinds(session: CobrowseSession) -> list[tuple]:
    return [(r.kind, r.actor) for r in session.take_records()]


def grant(session: CobrowseSession, key: str = "a1", allow_submit: bool = False, now: float = T0) -> None:
    session.control_request(key, allow_submit, now)
    session.control_answer(True, allow_submit, now + 1)
    session.take_records()


def goto(url: str, kind: str = "goto", tab: str = "T") -> p.Command:
    return p.Command(session="S", tab=tab, kind=kind, url=url)


# ----- the state machine ---------------------------------------------------------------------


def test_request_goes_to_the_visitor_and_agents_and_a_grant_makes_one_controller():
    session = session_with_agents()
    out = session.control_request("a1", True, T0)
    (asked,) = of(out, p.ControlRequested, Audience.VISITOR)
    assert asked == p.ControlRequested(session="S", agent=A, allow_submit=True, timeout=CONTROL_TIMEOUT)
    assert of(out, p.ControlRequested, Audience.AGENTS) == [asked]
    assert kinds(session) == [("control_requested", 1)]
    out = session.control_answer(True, True, T0 + 5)
    assert states(out) == [("Anna", True, "granted")]
    assert session.is_controller("a1") and not session.is_controller("s1")
    assert kinds(session) == [("control_granted", None)]


def test_the_visitor_may_grant_less_than_asked_never_more():
    session = session_with_agents()
    session.control_request("a1", True, T0)
    assert states(session.control_answer(True, False, T0 + 1)) == [("Anna", False, "granted")]
    session.control_release("a1", T0 + 2)
    session.control_request("a1", False, T0 + 3)
    assert states(session.control_answer(True, True, T0 + 4)) == [("Anna", False, "granted")]


def test_decline():
    session = session_with_agents()
    session.control_request("a1", False, T0)
    session.take_records()
    assert states(session.control_answer(False, False, T0 + 1)) == [(None, False, "declined")]
    assert session.controller is None and session.pending is None
    assert kinds(session) == [("control_declined", None)]


def test_no_answer_in_time_is_a_timeout_on_the_tick():
    session = session_with_agents()
    session.control_request("a1", False, T0)
    session.take_records()
    assert session.tick(T0 + CONTROL_TIMEOUT, 1800) == []  # not yet
    out = session.tick(T0 + CONTROL_TIMEOUT + 0.5, 1800)
    assert states(out) == [(None, False, "timeout")]
    assert kinds(session) == [("control_timeout", None)]
    assert session.control_answer(True, False, T0 + CONTROL_TIMEOUT + 1) == []  # too late: nothing to answer
    assert session.controller is None


def test_an_answer_after_the_timeout_but_before_the_tick_is_a_timeout():
    session = session_with_agents()
    session.control_request("a1", False, T0)
    out = session.control_answer(True, False, T0 + CONTROL_TIMEOUT + 0.1)
    assert states(out) == [(None, False, "timeout")]
    assert session.controller is None


def test_one_controller_at_a_time_and_one_pending_request():
    session = session_with_agents()
    session.control_request("a1", False, T0)
    out = session.control_request("s1", False, T0 + 1)
    assert errors(out, "s1") == ["control_busy"] and "waiting" in out[0].message.message
    session.control_answer(True, False, T0 + 2)
    out = session.control_request("s1", False, T0 + 3)
    assert errors(out, "s1") == ["control_busy"] and "Anna controls" in out[0].message.message
    assert errors(session.control_request("a1", True, T0 + 3), "a1") == ["control_busy"]
    assert session.is_controller("a1")


def test_the_visitor_takes_control_back():
    session = session_with_agents()
    grant(session)
    assert states(session.control_answer(False, False, T0 + 10)) == [(None, False, "revoked")]
    assert kinds(session) == [("control_revoked", None)]
    assert session.control_answer(False, False, T0 + 11) == []  # nothing left to revoke


def test_the_controller_releases_and_others_cannot():
    session = session_with_agents()
    grant(session)
    assert errors(session.control_release("s1", T0 + 5), "s1") == ["not_controlling"]
    assert states(session.control_release("a1", T0 + 6)) == [(None, False, "released")]
    assert kinds(session) == [("control_released", 1)]
    assert errors(session.control_release("a1", T0 + 7), "a1") == ["not_controlling"]


def test_a_pending_request_can_be_withdrawn():
    session = session_with_agents()
    session.control_request("a1", False, T0)
    assert states(session.control_release("a1", T0 + 1)) == [(None, False, "released")]
    assert session.pending is None
    assert session.control_answer(True, False, T0 + 2) == []


@pytest.mark.parametrize("pending", [False, True])
def test_the_controller_leaving_ends_control(pending):
    session = session_with_agents()
    if pending:
        session.control_request("a1", False, T0)
    else:
        grant(session)
    session.take_records()
    out = session.agent_left("a1", T0 + 5)
    assert states(out) == [(None, False, "left")]
    assert of(out, p.Viewers)  # and the viewers change as ever
    assert session.controller is None and session.pending is None
    assert kinds(session) == [("control_left", 1)]
    assert states(session.agent_left("s1", T0 + 6)) == []  # someone else leaving changes nothing


@pytest.mark.parametrize("pending", [False, True])
def test_control_ends_when_the_visitor_leaves_and_is_asked_for_again_on_return(pending):
    session = session_with_agents()
    session.tab_connected("T2", "https://shop.test/cart", "Cart", T0)
    if pending:
        session.control_request("a1", False, T0)
    else:
        grant(session)
    session.take_records()
    # One of two tabs closing changes nothing: the visitor is still there.
    session.tab_disconnected("T2", T0 + 1)
    out = session.tick(T0 + 1 + TAB_GRACE + 1, 1800)
    assert of(out, p.TabUpdate) and states(out) == []
    assert (session.controller or session.pending) is not None
    # The last one closing (past the grace a page load gets) ends control, on both sides.
    session.tab_disconnected("T", T0 + 20)
    out = session.tick(T0 + 20 + TAB_GRACE + 1, 1800)
    assert states(out) == [(None, False, "visitor_left")]
    assert session.controller is None and session.pending is None
    records = session.take_records()
    assert [(r.kind, r.detail["agent"], r.detail["pending"]) for r in records] == [("control_ended", "Anna", pending)]
    # Back, much later: nobody controls the page, and the agent has to ask again.
    _, out = session.tab_connected("T", "https://shop.test/", "Shop", T0 + 3600)
    assert states(out) == [] and not of(session.visitor_restore("T", T0 + 3600), p.ControlState)
    click = p.AgentInput(session="S", tab="T", action="click", node=1)
    assert errors(session.agent_input("a1", click, T0 + 3601), "a1") == ["not_controlling"]


def test_a_page_load_keeps_control():
    session = session_with_agents()
    grant(session)
    session.tab_disconnected("T", T0 + 2)
    session.tab_connected("T", "https://shop.test/cart", "Cart", T0 + 2.5)  # the next page, same tab
    assert states(session.tick(T0 + 2 + TAB_GRACE + 1, 1800)) == []
    assert session.controller is not None


def test_a_late_joiner_learns_who_controls_and_what_is_pending():
    session = session_with_agents()
    grant(session)
    out = session.agent_joined("a2", 3, p.Viewer(name="Bo", role="agent"), None, T0 + 3)
    assert of(out, p.ControlState, Audience.AGENT) == [
        p.ControlState(session="S", controller=A, allow_submit=False, reason="granted")]
    session.control_release("a1", T0 + 4)
    session.control_request("s1", True, T0 + 10)
    out = session.agent_joined("a3", 4, p.Viewer(name="Cy", role="agent"), None, T0 + 15)
    assert of(out, p.ControlRequested, Audience.AGENT) == [
        p.ControlRequested(session="S", agent=S, allow_submit=True, timeout=CONTROL_TIMEOUT - 5)]
    assert session.visitor_restore("T", T0 + 15) == of(out, p.ControlRequested)


def test_input_only_from_the_controller_and_submit_only_if_allowed():
    session = session_with_agents()
    click = p.AgentInput(session="S", tab="T", action="click", node=12)
    submit = p.AgentInput(session="S", tab="T", action="submit", node=30)
    assert errors(session.agent_input("a1", click, T0), "a1") == ["not_controlling"]
    grant(session)
    assert session.agent_input("a1", click, T0 + 2) == [Outgoing(Audience.VISITOR_TAB, click, "T")]
    assert errors(session.agent_input("s1", click, T0 + 2), "s1") == ["not_controlling"]
    assert errors(session.agent_input("a1", submit, T0 + 2), "a1") == ["submit_not_allowed"]
    assert errors(session.agent_input("a1", p.AgentInput(session="S", tab="T9", action="click"), T0), "a1") == [
        "not_found"]
    session.control_release("a1", T0 + 3)
    grant(session, allow_submit=True, now=T0 + 4)
    assert of(session.agent_input("a1", submit, T0 + 6), p.AgentInput, Audience.VISITOR_TAB) == [submit]
    assert session.take_records() == []  # input is not part of the timeline


def test_input_refused_reaches_the_agents_with_its_session_and_tab():
    session = session_with_agents()
    out = session.input_refused("T", p.InputRefused(action="input", reason="masked"))
    assert of(out, p.InputRefused, Audience.AGENTS) == [
        p.InputRefused(action="input", reason="masked", session="S", tab="T")]


@pytest.mark.parametrize("url", [
    "https://shop.test/cart", "http://shop.test/", "https://SHOP.test:443/a?b#c", "https://pay.example.com/x",
])
def test_allowed_urls(url):
    assert navigation_problem(url, "shop.test", ["https://pay.example.com"]) is None


@pytest.mark.parametrize("url", [
    "javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)", "data:text/html,<b>x</b>",
    "file:///etc/passwd", "ftp://shop.test/", "https://evil.test/", "https://shop.test.evil.test/",
    "https://shop.test:8443/", "http://pay.example.com/", "https://user:pw@shop.test/", "https://evil.test\\@shop.test/",
    "//shop.test/", "/cart", "https:///cart", "https://shop.test/\nx", "https://" + "a" * 3000,
])
def test_refused_urls(url):
    assert navigation_problem(url, "shop.test", ["https://pay.example.com"]) is not None


def test_commands_need_control_and_an_allowed_url():
    session = session_with_agents()
    assert errors(session.command("a1", goto("https://shop.test/cart"), (), T0), "a1") == ["not_controlling"]
    grant(session)
    assert errors(session.command("a1", goto("javascript:alert(1)"), (), T0 + 2), "a1") == ["refused"]
    assert errors(session.command("a1", goto("https://evil.test/"), (), T0 + 2), "a1") == ["refused"]
    assert errors(session.command("a1", goto("https://shop.test/", tab="T9"), (), T0 + 2), "a1") == ["not_found"]
    assert session.take_records() == []
    out = session.command("a1", goto("https://shop.test/cart", "open"), (), T0 + 3)
    assert of(out, p.Command, Audience.VISITOR_TAB) == [goto("https://shop.test/cart", "open")]
    out = session.command_result("T", p.CommandResult(kind="open", url="https://shop.test/cart", ok=False,
                                                      reason="popup_blocked"), T0 + 4)
    assert of(out, p.CommandResult, Audience.AGENTS) == [p.CommandResult(
        kind="open", url="https://shop.test/cart", ok=False, reason="popup_blocked", session="S", tab="T")]
    records = session.take_records()
    assert [(r.kind, r.actor, r.detail) for r in records] == [
        ("command_sent", 1, {"tab": "T", "kind": "open", "url": "https://shop.test/cart"}),
        ("command_result", None, {"tab": "T", "kind": "open", "url": "https://shop.test/cart", "ok": False,
                                  "reason": "popup_blocked"}),
    ]


# ----- through the hub -----------------------------------------------------------------------


async def controlling(env: Env, allow_submit: bool = False):
    """A sharing visitor, Anna in control (granted as asked), Sam watching."""
    visitor, shared = await env.sharing()
    session = shared["session"]
    anna, _ = await env.joined(session)
    sam, _ = await env.joined(session, "/supervisor")
    await anna.send({"t": "control_request", "session": session, "allow_submit": allow_submit})
    asked = await visitor.until("control_requested")
    assert asked == {"t": "control_requested", "session": session, "agent": {"name": "Anna", "role": "agent"},
                     "allow_submit": allow_submit, "timeout": CONTROL_TIMEOUT}
    await visitor.send({"t": "control", "granted": True, "allow_submit": allow_submit})
    state = {"t": "control_state", "session": session, "controller": {"name": "Anna", "role": "agent"},
             "reason": "granted"}
    if allow_submit:
        state["allow_submit"] = True
    for peer in (visitor, anna, sam):
        assert await peer.until("control_state") == state
    return visitor, anna, sam, session


async def test_grant_input_and_release_through_the_hub(env):
    visitor, anna, sam, session = await controlling(env)
    click = {"t": "input", "session": session, "tab": "T1", "action": "click", "node": 12}
    await anna.send(click)
    assert await visitor.until("input") == click
    await sam.send(click)
    assert await sam.until("error") == {"t": "error", "code": "not_controlling",
                                        "message": "ask the visitor for control first", "re": "input"}
    await anna.send({**click, "action": "submit"})
    assert (await anna.until("error"))["code"] == "submit_not_allowed"
    assert await visitor.sync() == []  # neither reached the visitor
    await visitor.send({"t": "input_refused", "action": "input", "reason": "masked"})
    for peer in (anna, sam):
        assert await peer.until("input_refused") == {"t": "input_refused", "action": "input", "reason": "masked",
                                                     "session": session, "tab": "T1"}
    await anna.send({"t": "control_release", "session": session})
    for peer in (visitor, anna, sam):
        assert await peer.until("control_state") == {"t": "control_state", "session": session,
                                                     "reason": "released"}
    await anna.send(click)
    assert (await anna.until("error"))["code"] == "not_controlling"


async def test_submit_when_allowed(env):
    visitor, anna, sam, session = await controlling(env, allow_submit=True)
    submit = {"t": "input", "session": session, "tab": "T1", "action": "submit", "node": 40}
    await anna.send(submit)
    assert await visitor.until("input") == submit


async def test_second_request_is_refused_while_someone_controls(env):
    visitor, anna, sam, session = await controlling(env)
    await sam.send({"t": "control_request", "session": session})
    error = await sam.until("error")
    assert (error["code"], error["re"]) == ("control_busy", "control_request")
    assert await visitor.sync() == []


async def test_the_visitor_revokes(env):
    visitor, anna, sam, session = await controlling(env)
    await visitor.send({"t": "control", "granted": False})
    for peer in (visitor, anna, sam):
        assert await peer.until("control_state") == {"t": "control_state", "session": session, "reason": "revoked"}
    await anna.send({"t": "input", "session": session, "tab": "T1", "action": "click", "node": 1})
    assert (await anna.until("error"))["code"] == "not_controlling"


async def test_the_controller_disconnecting_ends_control(env):
    visitor, anna, sam, session = await controlling(env)
    await anna.close()
    for peer in (visitor, sam):
        assert await peer.until("control_state") == {"t": "control_state", "session": session, "reason": "left"}


async def test_a_request_times_out_on_the_tick(env):
    visitor, shared = await env.sharing()
    session = shared["session"]
    anna, _ = await env.joined(session)
    await anna.send({"t": "control_request", "session": session})
    await visitor.until("control_requested")
    await anna.sync()
    env.clock.now += CONTROL_TIMEOUT + 1
    tick(env.hub)
    for peer in (visitor, anna):
        assert await peer.until("control_state") == {"t": "control_state", "session": session, "reason": "timeout"}


async def test_a_reloaded_visitor_page_learns_the_control_state(env):
    visitor, anna, sam, session = await controlling(env)
    await visitor.close()
    again, welcome = await env.visitor(resume=visitor.resume)
    assert welcome["session"] == session
    assert await again.until("control_state") == {"t": "control_state", "session": session,
                                                  "controller": {"name": "Anna", "role": "agent"},
                                                  "reason": "granted"}


async def test_control_frames_need_a_joined_session_and_a_sharing_tab(env):
    visitor, shared = await env.sharing()
    outsider = await env.agent()
    for frame in ({"t": "control_request", "session": shared["session"]},
                  {"t": "control_release", "session": shared["session"]},
                  {"t": "input", "session": shared["session"], "tab": "T1", "action": "click"},
                  {"t": "command", "session": shared["session"], "tab": "T1", "kind": "goto",
                   "url": "https://shop.test/"}):
        await outsider.send(frame)
        error = await outsider.until("error")
        assert (error["code"], error["re"]) == ("not_found", frame["t"])
    assert await visitor.sync() == []
    lonely, _ = await env.visitor("V9", "T9")
    for frame in ({"t": "control", "granted": True}, {"t": "unmark"},
                  {"t": "command_result", "kind": "goto", "url": "u", "ok": True},
                  {"t": "input_refused", "action": "click", "reason": "masked"}):
        await lonely.send(frame)
        error = await lonely.until("error")
        assert (error["code"], error["re"]) == ("not_sharing", frame["t"])


async def test_commands_through_the_hub(make_env):
    asked = []

    def navigation_origins(host):
        asked.append(host)
        return ["https://pay.example.com"]

    env = await make_env(navigation_origins=navigation_origins)
    visitor, anna, sam, session = await controlling(env)
    site = env.hub.sessions[session].site
    command = {"t": "command", "session": session, "tab": "T1", "kind": "goto", "url": f"http://{site}/cart"}
    await sam.send(command)
    assert (await sam.until("error"))["code"] == "not_controlling"
    for url in ("javascript:alert(document.cookie)", "https://evil.test/", "data:text/html,hi"):
        await anna.send({**command, "url": url})
        error = await anna.until("error")
        assert (error["code"], error["re"]) == ("refused", "command")
    assert await visitor.sync() == []
    await anna.send(command)
    assert await visitor.until("command") == command
    await visitor.send({"t": "command_result", "kind": "goto", "url": command["url"], "ok": True})
    for peer in (anna, sam):
        assert await peer.until("command_result") == {"t": "command_result", "kind": "goto", "url": command["url"],
                                                      "ok": True, "session": session, "tab": "T1"}
    opened = {**command, "kind": "open", "url": "https://pay.example.com/checkout"}
    await anna.send(opened)
    assert await visitor.until("command") == opened
    assert set(asked) == {site}
    await asyncio.sleep(0.05)
    records = [(e.kind, e.actor) for s, e in env.store.events if s == session and e.kind.startswith("command")]
    assert records == [("command_sent", 1), ("command_result", None), ("command_sent", 1)]


# ----- the timeline in a real service's database -------------------------------------------------


async def test_a_real_service_records_the_timeline(start_app, start_proxy):
    import json

    import aiohttp
    from aiohttp import web

    from cobrowse.config import Site
    from cobrowse.storage import accounts, timeline

    async def ok(request):
        return web.Response(text="ok")

    upstream = web.Application()
    upstream.router.add_get("/", ok)
    upstream_url = f"http://127.0.0.1:{await start_app(upstream)}"
    service = await start_proxy(sites=(Site(host="shop.test", upstream=upstream_url,
                                            navigation_origins=("https://pay.example.com",)),))
    user = await accounts.create_user(service.db, "tina", "correct horse battery", role="agent",
                                      display_name="Tina")
    console = f"http://127.0.0.1:{service.console_port}"

    async def receive(ws, kind: str) -> dict:
        while True:
            message = json.loads(await ws.receive_str(timeout=10))
            if message["t"] == kind:
                return message

    async with aiohttp.ClientSession() as visitor_http, \
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as agent_http:
        visitor = await visitor_http.ws_connect(f"http://127.0.0.1:{service.port}/__cobrowse/ws",
                                                headers={"Host": "shop.test"})
        await visitor.send_json({"t": "hello", "v": 1, "visitor": "v-tl", "tab": "t-1",
                                 "url": "http://shop.test/", "title": "Shop"})
        await receive(visitor, "welcome")
        await visitor.send_json({"t": "share"})
        shared = await receive(visitor, "shared")
        session = shared["session"]
        await visitor.send_json({"t": "rr", "seq": 0, "ev": [
            {"type": 4, "timestamp": 1, "data": {"href": "http://shop.test/", "width": 800, "height": 600}},
            {"type": 2, "timestamp": 2, "data": {"node": {"type": 0, "childNodes": [], "id": 1}}}]})
        await receive(visitor, "ack")

        login = await agent_http.post(f"{console}/api/login", json={"username": "tina",
                                                                    "password": "correct horse battery"},
                                      headers={"Origin": console})
        assert login.status == 200
        agent = await agent_http.ws_connect(f"{console}/ws", headers={"Origin": console})
        await agent.send_json({"t": "agent_hello", "v": 1})
        await receive(agent, "welcome")
        await agent.send_json({"t": "join", "session": session})
        await receive(agent, "joined")

        marker = {"id": "m1", "kind": "element", "anchor": {"selector": "#buy"}, "note": "<i>here</i>"}
        await agent.send_json({"t": "mark", "session": session, "tab": "t-1", "marker": marker})
        await receive(visitor, "mark")
        await agent.send_json({"t": "control_request", "session": session})
        await receive(visitor, "control_requested")
        await visitor.send_json({"t": "control", "granted": True})
        assert (await receive(agent, "control_state"))["reason"] == "granted"
        command = {"t": "command", "session": session, "tab": "t-1", "kind": "goto"}
        await agent.send_json({**command, "url": "javascript:alert(1)"})
        assert (await receive(agent, "error"))["code"] == "refused"
        await agent.send_json({**command, "url": "https://elsewhere.test/"})
        assert (await receive(agent, "error"))["code"] == "refused"
        await agent.send_json({**command, "kind": "open", "url": "https://pay.example.com/pay"})
        assert (await receive(visitor, "command"))["url"] == "https://pay.example.com/pay"
        await visitor.send_json({"t": "command_result", "kind": "open", "url": "https://pay.example.com/pay",
                                 "ok": False, "reason": "popup_blocked"})
        await receive(agent, "command_result")
        await agent.send_json({**command, "url": "https://shop.test/cart"})
        assert (await receive(visitor, "command"))["url"] == "https://shop.test/cart"
        await visitor.send_json({"t": "nav", "url": "http://shop.test/cart", "title": "Cart"})
        await receive(agent, "unmark")  # the marker was not pinned
        await visitor.send_json({"t": "control", "granted": False})
        assert (await receive(agent, "control_state"))["reason"] == "revoked"

        expected = [
            ("page", None), ("marker_placed", user.id), ("control_requested", user.id), ("control_granted", None),
            ("command_sent", user.id), ("command_result", None), ("command_sent", user.id), ("page", None),
            ("marker_cleared", None), ("control_revoked", None),
        ]
        for _ in range(200):
            events = await timeline.list_events(service.db, session)
            if len(events) >= len(expected):
                break
            await asyncio.sleep(0.05)
        assert [(e.kind.value, e.actor_id) for e in events] == expected
        assert events[0].detail == {"tab": "t-1", "url": "http://shop.test/", "title": "Shop"}
        assert events[1].detail["note"] == "<i>here</i>"  # as typed, never interpreted
        assert events[5].detail == {"tab": "t-1", "kind": "open", "url": "https://pay.example.com/pay",
                                    "ok": False, "reason": "popup_blocked"}
        assert events[8].detail == {"tab": "t-1", "ids": ["m1"], "by": "navigation"}
        assert all(e.at.tzinfo is not None for e in events)
        assert [e.at for e in events] == sorted(e.at for e in events)
        await agent.close()
        await visitor.close()


async def test_timeline_storage(tmp_path):
    from datetime import UTC, datetime, timedelta

    from cobrowse.config import Config, ServerOptions
    from cobrowse.storage import Database, cobrowse_sessions, timeline
    from cobrowse.storage.models import EventKind

    async with Database.from_config(Config(server=ServerOptions(data_dir=str(tmp_path)))) as db:
        await cobrowse_sessions.start_session(db, site_host="shop.test", visitor_id="v", session_id="S1")
        await cobrowse_sessions.start_session(db, site_host="shop.test", visitor_id="v", session_id="S2")
        t = datetime(2026, 1, 1, 12, tzinfo=UTC)
        await timeline.add_events(db, "S1", [
            timeline.NewEvent("page", t + timedelta(seconds=5), None, {"tab": "T", "url": "https://shop.test/b"}),
            timeline.NewEvent(EventKind.page, t, None, {"tab": "T", "url": "https://shop.test/a"}),
            timeline.NewEvent("control_timeout", t + timedelta(seconds=5), None, {}),
        ])
        await timeline.add_events(db, "S2", [timeline.NewEvent("page", t)])
        assert await timeline.add_events(db, "S2", []) == []
        events = await timeline.list_events(db, "S1")
        assert [(e.kind, e.detail.get("url")) for e in events] == [
            (EventKind.page, "https://shop.test/a"), (EventKind.page, "https://shop.test/b"),
            (EventKind.control_timeout, None)]  # by time, then in the order recorded
        assert events[0].at == t
        assert len(await timeline.list_events(db, "S1", kinds=["control_timeout"])) == 1
        assert len(await timeline.list_events(db, "S1", limit=2)) == 2
        with pytest.raises(timeline.TimelineError):
            await timeline.add_events(db, "S1", [timeline.NewEvent("coffee_break")])
        assert await timeline.list_events(db, "nope") == []
