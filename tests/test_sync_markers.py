"""Markers and the laser pointer: the pure state machine, then the hub over real websockets."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from cobrowse.sync import protocol as p
from cobrowse.sync.hub import LASER_BURST
from cobrowse.sync.session import MAX_MARKERS, Audience, CobrowseSession, marker_problem
from test_sync_hub import T0, Env, env, make_env  # noqa: F401 (env, make_env: fixtures)

A = p.Viewer(name="Anna", role="agent")
S = p.Viewer(name="Sam", role="supervisor")


def event(kind: int, data=None) -> p.RrwebEvent:
    return p.RrwebEvent(type=kind, timestamp=0.0, data=msgspec.Raw(msgspec.json.encode(data)))


def snapshot(href: str) -> list[p.RrwebEvent]:
    return [event(p.RR_META, {"href": href}), event(p.RR_FULL_SNAPSHOT, {"node": 1})]


def sharing() -> CobrowseSession:
    session = CobrowseSession("S", "shop.test", "V", "Ada", T0)
    session.tab_connected("T", "https://shop.test/", "Shop", T0)
    session.visitor_events("T", 0, snapshot("https://shop.test/"), T0)
    session.agent_joined("a1", 1, A, None, T0)
    session.agent_joined("s1", 2, S, None, T0)
    session.take_records()
    return session


def element(id: str = "m1", pinned: bool = False, note: str = "", **anchor) -> p.Marker:
    return p.Marker(id=id, kind="element", anchor=p.Anchor(**(anchor or {"node": 12, "selector": "#buy"})),
                    note=note, pinned=pinned)


def of(out, kind, audience=None) -> list:
    return [o.message for o in out if isinstance(o.message, kind) and (audience is None or o.audience is audience)]


def errors(out, key: str = "a1") -> list[str]:
    return [o.message.code for o in out if isinstance(o.message, p.Error) and o.key == key]


def marker_ids(session: CobrowseSession, tab: str = "T") -> list[str]:
    return list(session.tabs[tab].markers)


# ----- the state machine ---------------------------------------------------------------------


def test_a_marker_is_kept_signed_and_sent_to_the_tab_and_every_agent():
    session = sharing()
    out = session.mark("a1", "T", element(note="<b>click here</b> & pay"), T0 + 1)
    signed = p.MarkerAdd(session="S", tab="T", marker=element(note="<b>click here</b> & pay"))
    signed.marker.by = "Anna"
    for_agents = p.MarkerAdd(session="S", tab="T", marker=element(note="<b>click here</b> & pay"))
    for_agents.marker.by, for_agents.marker.agent = "Anna", 1  # whose it is, by id: for agents only
    assert [(o.audience, o.key) for o in out] == [(Audience.VISITOR_TAB, "T"), (Audience.AGENTS, None)]
    assert of(out, p.MarkerAdd) == [signed, for_agents]
    assert session.tabs["T"].markers["m1"].note == "<b>click here</b> & pay"  # plain text, as it came
    (record,) = session.take_records()
    assert (record.kind, record.actor, record.detail["id"], record.detail["note"]) == (
        "marker_placed", 1, "m1", "<b>click here</b> & pay")


def test_by_cannot_be_forged():
    session = sharing()
    marker = element()
    marker.by = "The Visitor's Bank"
    (frame, _) = of(session.mark("s1", "T", marker, T0), p.MarkerAdd)
    assert frame.marker.by == "Sam"


def test_same_id_replaces():
    session = sharing()
    session.mark("a1", "T", element(note="one"), T0)
    session.mark("s1", "T", element(note="two"), T0)
    assert [m.note for m in session.tabs["T"].markers.values()] == ["two"]


@pytest.mark.parametrize("marker, problem", [
    (element(id=""), "id"),
    (element(id="x" * 65), "id"),
    (element(note="n" * (p.MAX_NOTE + 1)), "note"),
    (p.Marker(id="m", kind="element", anchor=p.Anchor()), "needs a node"),
    (p.Marker(id="m", kind="element", anchor=p.Anchor(node=-5)), "-1 or more"),
    (p.Marker(id="m", kind="element", anchor=p.Anchor(selector="s" * 3000)), "at most"),
    (p.Marker(id="m", kind="draw", anchor=p.Anchor(node=3), points=[(0.1, 0.1)]), "at least 2"),
    (p.Marker(id="m", kind="draw", anchor=p.Anchor(node=3), points=[(0.1, 0.1), (1.2, 0.5)]), "0..1"),
    (p.Marker(id="m", kind="draw", anchor=p.Anchor(node=3), points=[(0.1, -0.1), (0.2, 0.5)]), "0..1"),
    (p.Marker(id="m", kind="draw", anchor=p.Anchor(node=3), points=[(0.5, 0.5)] * (p.MAX_POINTS + 1)), "at most"),
    (p.Marker(id="m", kind="element", anchor=p.Anchor(node=3), points=[(0.1, 0.1), (0.2, 0.2)]), "only drawings"),
    (p.Marker(id="m", kind="text", anchor=p.Anchor(node=3)), "quote"),
    (p.Marker(id="m", kind="text", anchor=p.Anchor(node=3, quote="abc", start=5, end=2)), "start"),
    (p.Marker(id="m", kind="element", anchor=p.Anchor(node=3, start=0, end=2)), "only text"),
    (p.Marker(id="m", kind="field", anchor=p.Anchor(quote="Email")), "field"),
])
def test_bad_markers_are_refused(marker, problem):
    session = sharing()
    assert problem in marker_problem(marker)
    out = session.mark("a1", "T", marker, T0)
    assert errors(out) == ["bad_marker"] and len(out) == 1
    # The error says which marker (and element) it is about, so the console can point at it.
    assert out[0].message.id == (marker.id[:64] or None)
    assert out[0].message.node == (marker.anchor.node if marker.anchor.node >= 0 else None)
    assert marker_ids(session) == [] and session.take_records() == []


@pytest.mark.parametrize("marker", [
    p.Marker(id="m", kind="draw", anchor=p.Anchor(node=3), points=[(0, 0), (1, 1)] * (p.MAX_POINTS // 2)),
    p.Marker(id="m", kind="text", anchor=p.Anchor(node=3, quote="free delivery", start=4, end=17)),
    p.Marker(id="m", kind="text", anchor=p.Anchor(selector="p.note", quote="free delivery")),
    p.Marker(id="m", kind="field", anchor=p.Anchor(selector="input[name=email]"), note="n" * p.MAX_NOTE),
    p.Marker(id="x" * 64, kind="element", anchor=p.Anchor(quote="Buy now")),
])
def test_good_markers(marker):
    assert marker_problem(marker) is None


def test_markers_need_an_open_tab_and_a_participant():
    session = sharing()
    assert errors(session.mark("a1", "T9", element(), T0)) == ["not_found"]
    assert errors(session.mark("stranger", "T", element(), T0), "stranger") == ["not_found"]
    session.tab_disconnected("T", T0, closing=True)
    assert errors(session.mark("a1", "T", element(), T0)) == ["not_found"]


def test_a_tab_holds_a_bounded_number_of_markers():
    session = sharing()
    for n in range(MAX_MARKERS):
        assert not errors(session.mark("a1", "T", element(f"m{n}"), T0))
    assert errors(session.mark("a1", "T", element("one too many"), T0)) == ["too_many"]
    assert not errors(session.mark("a1", "T", element("m7", note="edited"), T0))  # replacing is fine


def test_either_side_clears_one_or_all():
    session = sharing()
    for n in range(3):
        session.mark("a1", "T", element(f"m{n}"), T0)
    session.take_records()
    out = session.unmark("s1", "T", "m0", T0)
    assert of(out, p.MarkerRemove, Audience.VISITOR_TAB) == of(out, p.MarkerRemove, Audience.AGENTS) == [
        p.MarkerRemove(session="S", tab="T", id="m0")]
    assert session.unmark("s1", "T", "m0", T0) == []  # already gone: nothing to say
    out = session.visitor_unmark("T", "m1", T0)
    assert [(o.audience, o.message) for o in out] == [(Audience.AGENTS, p.MarkerRemove(session="S", tab="T",
                                                                                        id="m1"))]
    session.mark("a1", "T", element("m3"), T0)
    out = session.visitor_unmark("T", None, T0)
    assert of(out, p.MarkerRemove, Audience.AGENTS) == [p.MarkerRemove(session="S", tab="T")]
    assert marker_ids(session) == []
    assert [(r.kind, r.actor, r.detail.get("ids"), r.detail.get("by")) for r in session.take_records()] == [
        ("marker_cleared", 2, ["m0"], "agent"),
        ("marker_cleared", None, ["m1"], "visitor"),
        ("marker_placed", 1, None, None),
        ("marker_cleared", None, ["m2", "m3"], "visitor"),
    ]
    assert errors(session.unmark("a1", "T9", None, T0)) == ["not_found"]


@pytest.mark.parametrize("how", ["nav", "snapshot", "page load"])
def test_a_new_page_drops_markers_that_are_not_pinned(how):
    session = sharing()
    session.mark("a1", "T", element("loose"), T0)
    session.mark("a1", "T", element("pinned", pinned=True, selector="#basket"), T0)
    session.take_records()
    url = "https://shop.test/checkout"
    if how == "nav":
        out = session.navigated("T", url, "Checkout", T0 + 1)
    elif how == "snapshot":
        out = session.visitor_events("T", 2, snapshot(url), T0 + 1)
    else:
        session.tab_disconnected("T", T0 + 1)
        _, out = session.tab_connected("T", url, "Checkout", T0 + 2)
    assert marker_ids(session) == ["pinned"]
    (pinned,) = session.tabs["T"].markers.values()
    to_agents = [o.message for o in out if o.audience is Audience.AGENTS and isinstance(o.message, (
        p.MarkerRemove, p.MarkerAdd))]
    assert to_agents == [p.MarkerRemove(session="S", tab="T"), p.MarkerAdd(session="S", tab="T", marker=pinned)]
    assert pinned.agent == 1
    to_tab = [o.message for o in out if o.audience is Audience.VISITOR_TAB and not isinstance(o.message, p.Ack)]
    pinned_for_visitor = msgspec.structs.replace(pinned, agent=0)
    for_visitor = [p.MarkerRemove(session="S", tab="T"), p.MarkerAdd(session="S", tab="T", marker=pinned_for_visitor)]
    # A page load: the new page gets its markers after `welcome` (visitor_restore), not through the old socket.
    assert to_tab == ([] if how == "page load" else for_visitor)
    if how == "snapshot":  # the console hears of the markers after the new page they are on
        kinds = [type(o.message) for o in out if o.audience is Audience.AGENTS]
        assert kinds == [p.TabEvents, p.MarkerRemove, p.MarkerAdd]
    assert session.visitor_restore("T", T0 + 3) == [p.MarkerAdd(session="S", tab="T", marker=pinned_for_visitor)]
    records = [(r.kind, r.detail) for r in session.take_records()]
    assert records == [("page", {"tab": "T", "url": url, "title": "Checkout" if how != "snapshot" else "Shop"}),
                       ("marker_cleared", {"tab": "T", "ids": ["loose"], "by": "navigation"})]


def test_the_same_page_keeps_its_markers():
    session = sharing()
    session.mark("a1", "T", element(), T0)
    session.take_records()
    assert of(session.navigated("T", "https://shop.test/#reviews", "Shop", T0), p.MarkerRemove) == []
    assert of(session.visitor_events("T", 2, snapshot("https://shop.test/#reviews"), T0), p.MarkerRemove) == []
    session.tab_disconnected("T", T0)
    _, out = session.tab_connected("T", "https://shop.test/", "Shop", T0)  # a reload
    assert of(out, p.MarkerRemove) == []
    assert marker_ids(session) == ["m1"]
    assert session.take_records() == []


def test_a_closed_tab_drops_its_markers():
    session = sharing()
    session.mark("a1", "T", element(pinned=True), T0)
    session.tab_disconnected("T", T0, closing=True)
    assert marker_ids(session) == []


def test_a_late_joiner_gets_the_markers_after_the_page():
    session = sharing()
    session.mark("a1", "T", element("m1"), T0)
    session.mark("a1", "T", element("m2"), T0)
    out = session.agent_joined("a2", 3, p.Viewer(name="Bo", role="agent"), None, T0 + 1)
    mine = [o.message for o in out if o.key == "a2"]
    assert [type(m) for m in mine] == [p.Joined, p.TabEvents, p.MarkerAdd, p.MarkerAdd]
    assert [m.marker.id for m in mine[2:]] == ["m1", "m2"]
    assert mine[2].marker.by == "Anna"
    # A rejoin that missed nothing gets no page, and still the markers.
    out = session.agent_joined("a2", 3, p.Viewer(name="Bo", role="agent"), {"T": 1}, T0 + 2)
    assert [type(o.message) for o in out if o.key == "a2"] == [p.Joined, p.MarkerAdd, p.MarkerAdd]


def test_the_laser_goes_to_the_tab_and_the_other_agents_and_is_not_kept():
    session = sharing()
    frame = p.Laser(session="S", tab="T", anchor=p.Anchor(node=4), x=0.25, y=1.5)
    out = session.laser("a1", frame)
    relay = p.Laser(session="S", tab="T", anchor=p.Anchor(node=4), x=0.25, y=1.0, by="Anna")
    to_agents = p.Laser(session="S", tab="T", anchor=p.Anchor(node=4), x=0.25, y=1.0, by="Anna", agent=1)
    assert [(o.audience, o.message, o.key) for o in out] == [(Audience.VISITOR_TAB, relay, "T"),
                                                             (Audience.OTHER_AGENTS, to_agents, "a1")]
    assert marker_ids(session) == [] and session.take_records() == []
    assert session.laser("a1", p.Laser(session="S", tab="T9")) == []  # a tab gone: dropped quietly
    assert errors(session.laser("a1", p.Laser(session="S", tab="T", anchor=p.Anchor()))) == ["bad_frame"]


# ----- through the hub -----------------------------------------------------------------------


async def watched(env: Env):
    visitor, shared = await env.sharing()
    session = shared["session"]
    anna, _ = await env.joined(session)
    sam, _ = await env.joined(session, "/supervisor")
    both = [{"name": "Anna", "role": "agent"}, {"name": "Sam", "role": "supervisor"}]
    await anna.until("viewers", viewers=both)
    await visitor.until("viewers", viewers=both)
    return visitor, anna, sam, session


MARK = {"id": "m1", "kind": "text", "anchor": {"node": 12, "selector": "p.delivery", "quote": "free delivery",
                                               "start": 4, "end": 17},
        "note": "<img src=x onerror=alert(1)> is free"}


async def test_a_marker_reaches_the_visitor_and_every_agent(env):
    visitor, anna, sam, session = await watched(env)
    await anna.send({"t": "mark", "session": session, "tab": "T1", "marker": MARK})
    expected = {"t": "mark", "session": session, "tab": "T1", "marker": {**MARK, "by": "Anna"}}
    assert await visitor.until("mark") == expected  # no agent ids reach the visitor
    for peer in (anna, sam):
        assert await peer.until("mark") == {**expected, "marker": {**MARK, "by": "Anna", "agent": 1}}
    await visitor.send({"t": "unmark", "id": "m1"})
    for peer in (anna, sam):
        assert await peer.until("unmark") == {"t": "unmark", "session": session, "tab": "T1", "id": "m1"}
    assert await visitor.sync() == []  # not echoed to the visitor


async def test_marker_validation_errors(env):
    visitor, anna, sam, session = await watched(env)
    bad = [
        ({**MARK, "note": "x" * (p.MAX_NOTE + 1)}, "bad_marker"),
        ({**MARK, "kind": "draw", "points": [[0.5, 0.5], [2, 0]]}, "bad_marker"),
        ({**MARK, "id": "i" * 65}, "bad_marker"),
    ]
    for marker, code in bad:
        await anna.send({"t": "mark", "session": session, "tab": "T1", "marker": marker})
        error = await anna.until("error")
        assert (error["code"], error["re"]) == (code, "mark"), error
    await anna.send({"t": "mark", "session": session, "tab": "nope", "marker": MARK})
    assert (await anna.until("error"))["code"] == "not_found"
    await anna.send({"t": "mark", "session": session, "tab": "T1", "marker": {**MARK, "kind": "arrow"}})
    assert (await anna.until("error"))["code"] == "bad_frame"
    outsider = await env.agent()
    await outsider.send({"t": "mark", "session": session, "tab": "T1", "marker": MARK})
    assert (await outsider.until("error"))["code"] == "not_found"
    assert await visitor.sync() == []
    assert not [f for f in await sam.sync() if f["t"] in ("mark", "error")]


async def test_an_agent_clears_every_marker(env):
    visitor, anna, sam, session = await watched(env)
    for n in range(2):
        await anna.send({"t": "mark", "session": session, "tab": "T1", "marker": {**MARK, "id": f"m{n}"}})
    await sam.send({"t": "unmark", "session": session, "tab": "T1"})
    for peer in (visitor, anna, sam):
        assert await peer.until("unmark") == {"t": "unmark", "session": session, "tab": "T1"}


async def test_pinned_markers_follow_the_visitor_to_the_next_page(env):
    visitor, anna, sam, session = await watched(env)
    await anna.send({"t": "mark", "session": session, "tab": "T1", "marker": {**MARK, "id": "loose"}})
    await anna.send({"t": "mark", "session": session, "tab": "T1", "marker": {**MARK, "id": "kept", "pinned": True}})
    await visitor.until("mark", marker={**MARK, "id": "kept", "pinned": True, "by": "Anna"})
    await visitor.close()  # a link to the next page
    page, welcome = await env.visitor(resume=visitor.resume, url="https://shop.test/checkout")
    assert welcome["session"] == session
    assert await page.until("mark") == {"t": "mark", "session": session, "tab": "T1",
                                        "marker": {**MARK, "id": "kept", "pinned": True, "by": "Anna"}}
    assert await page.sync() == []  # and not the loose one
    assert await sam.until("unmark") == {"t": "unmark", "session": session, "tab": "T1"}
    assert (await sam.until("mark"))["marker"]["id"] == "kept"


async def test_a_late_agent_gets_the_markers_after_the_snapshot(env):
    visitor, anna, sam, session = await watched(env)
    await anna.send({"t": "mark", "session": session, "tab": "T1", "marker": MARK})
    await visitor.until("mark")
    late, _ = await env.joined(session, "/anna2")
    assert (await late.recv())["t"] == "tab_rr"
    assert (await late.recv()) == {"t": "mark", "session": session, "tab": "T1",
                                   "marker": {**MARK, "by": "Anna", "agent": 1}}


async def test_the_laser_is_relayed_not_echoed_and_has_its_own_rate(env):
    visitor, anna, sam, session = await watched(env)
    laser = {"t": "laser", "session": session, "tab": "T1", "anchor": {"node": 5}, "x": 0.5, "y": 0.25}
    await anna.send(laser)
    assert await visitor.until("laser") == {**laser, "by": "Anna"}
    assert await sam.until("laser") == {**laser, "by": "Anna", "agent": 1}
    assert await anna.sync() == []  # not echoed to its sender
    for _ in range(int(LASER_BURST) + 20):  # a burst past the laser bucket: the rest are dropped quietly
        await anna.send(laser)
    assert await anna.sync() == []  # no errors, and the ping still counts against the other bucket only
    got = [f for f in await visitor.sync() if f["t"] == "laser"]
    assert len(got) == LASER_BURST - 1  # the first laser took one
    env.clock.now += 1.0
    await anna.send(laser)
    assert (await visitor.until("laser"))["by"] == "Anna"
    await anna.send({**laser, "session": "elsewhere"})  # quietly dropped too
    assert await anna.sync() == []


async def test_markers_are_recorded_in_the_timeline(env):
    visitor, anna, sam, session = await watched(env)
    await anna.send({"t": "mark", "session": session, "tab": "T1", "marker": MARK})
    await visitor.until("mark")
    await visitor.send({"t": "unmark"})
    await anna.until("unmark")
    await asyncio.sleep(0.05)
    kinds = [(e.kind, e.actor, e.detail.get("by")) for s, e in env.store.events if s == session]
    assert kinds == [("page", None, None), ("marker_placed", 1, None), ("marker_cleared", None, "visitor")]


def test_a_same_document_query_change_keeps_the_markers():
    """A filter box writing ?q= as the visitor types stays the same page; a new path does not."""
    session = sharing()
    session.mark("a1", "T", element(), T0 + 1)
    session.navigated("T", "https://shop.test/?q=mug", "Shop", T0 + 2)
    assert marker_ids(session) == ["m1"]
    session.navigated("T", "https://shop.test/cart", "Cart", T0 + 3)
    assert marker_ids(session) == []
