"""The session state machine, pure: facts in, frames out, no sockets and no clock."""

from __future__ import annotations

import msgspec
import pytest

from cobrowse.sync import protocol as p
from cobrowse.sync.session import TAB_GRACE, Audience, CobrowseSession, EndReason, Outgoing

T0 = 1_000_000.0
ANNA = p.Viewer(name="Anna", role="agent")
SAM = p.Viewer(name="Sam", role="supervisor")


def event(kind: int, data=None, ts: float = 0.0) -> p.RrwebEvent:
    return p.RrwebEvent(type=kind, timestamp=ts, data=msgspec.Raw(msgspec.json.encode(data)))


def snapshot(href: str = "https://shop.test/", size: int = 10) -> list[p.RrwebEvent]:
    """A page's first events: Meta (with its href) then the full snapshot."""
    return [event(p.RR_META, {"href": href, "width": 1280, "height": 800}),
            event(p.RR_FULL_SNAPSHOT, {"node": "x" * size})]


def incremental(n: int, start: int = 0, size: int = 0) -> list[p.RrwebEvent]:
    return [event(3, {"source": 1, "i": start + i, "pad": "y" * size}) for i in range(n)]


def new_session(**limits) -> CobrowseSession:
    return CobrowseSession("S", "shop.test", "V", "Ada", T0, **limits)


def sharing(tab: str = "T", **limits) -> CobrowseSession:
    """A session whose tab has sent its first page (snapshot + 3 events, seq 0..4)."""
    session = new_session(**limits)
    session.tab_connected(tab, "https://shop.test/", "Shop", T0)
    session.visitor_events(tab, 0, snapshot() + incremental(3), T0)
    return session


def of(out: list[Outgoing], kind, audience: Audience | None = None) -> list:
    return [o.message for o in out if isinstance(o.message, kind) and (audience is None or o.audience is audience)]


def seqs(message: p.TabEvents) -> list[int]:
    return list(range(message.seq, message.seq + len(message.ev)))


def ids(events: list[p.RrwebEvent]) -> list:
    return [msgspec.json.decode(e.data).get("i") if e.type == 3 else e.type for e in events]


# ----- sharing and relaying --------------------------------------------------------------


def test_events_are_acked_and_not_relayed_without_agents():
    session = new_session()
    _, out = session.tab_connected("T", "https://shop.test/", "Shop", T0)
    assert of(out, p.TabUpdate, Audience.AGENTS)  # the console learns about the tab
    out = session.visitor_events("T", 0, snapshot() + incremental(2), T0)
    assert [o.audience for o in out] == [Audience.VISITOR_TAB]
    assert out[0] == Outgoing(Audience.VISITOR_TAB, p.Ack(seq=3), "T")


def test_events_reach_joined_agents_in_order():
    session = sharing()
    session.agent_joined("a1", 1, ANNA, None, T0)
    out = session.visitor_events("T", 5, incremental(2, start=10), T0 + 1)
    (relay,) = of(out, p.TabEvents, Audience.AGENTS)
    assert (relay.session, relay.tab, relay.seq, relay.reset) == ("S", "T", 5, False)
    assert ids(relay.ev) == [10, 11]
    assert of(out, p.Ack) == [p.Ack(seq=6)]
    out = session.visitor_events("T", 7, incremental(1, start=12), T0 + 2)
    assert of(out, p.TabEvents)[0].seq == 7


def test_late_joiner_gets_latest_snapshot_and_every_event_since_at_once():
    session = sharing()
    session.visitor_events("T", 5, incremental(2, start=3), T0)
    out = session.agent_joined("a1", 1, ANNA, None, T0 + 5)
    assert out[0] == Outgoing(Audience.AGENT, p.Joined(
        session="S", site="shop.test", tabs=[p.TabState(tab="T", url="https://shop.test/", title="Shop")],
        viewers=[ANNA]), "a1")
    (replay,) = of(out, p.TabEvents)
    assert out[1].audience is Audience.AGENT and out[1].key == "a1"
    assert replay.reset is True and replay.seq == 0
    assert ids(replay.ev) == [p.RR_META, p.RR_FULL_SNAPSHOT, 0, 1, 2, 3, 4]
    assert of(out, p.Viewers, Audience.VISITOR) == [p.Viewers(session="S", viewers=[ANNA])]


def test_new_snapshot_replaces_the_buffer():
    session = sharing()
    session.visitor_events("T", 5, incremental(3), T0)
    session.agent_joined("a1", 1, ANNA, None, T0)
    # A new page in the same tab: some trailing events of the old page, then Meta + FullSnapshot.
    out = session.visitor_events("T", 8, incremental(2, start=50) + snapshot("https://shop.test/cart")
                                 + incremental(1, start=60), T0)
    (relay,) = of(out, p.TabEvents, Audience.AGENTS)
    assert relay.reset is True and relay.seq == 10  # the events before the snapshot are superseded
    assert ids(relay.ev) == [p.RR_META, p.RR_FULL_SNAPSHOT, 60]
    assert of(out, p.Ack) == [p.Ack(seq=12)]
    assert session.tabs["T"].url == "https://shop.test/cart"  # the Meta event's href is the authority
    late = of(session.agent_joined("a2", 2, SAM, None, T0), p.TabEvents)[0]
    assert (late.seq, ids(late.ev), late.reset) == (10, [p.RR_META, p.RR_FULL_SNAPSHOT, 60], True)


def test_soft_limit_asks_the_visitor_for_a_snapshot_once():
    session = sharing(soft_limit=2_000, hard_limit=1_000_000)
    out = session.visitor_events("T", 5, incremental(5, size=100), T0)
    assert not of(out, p.SnapshotPlease)
    out = session.visitor_events("T", 10, incremental(20, size=100), T0)
    assert [o for o in out if isinstance(o.message, p.SnapshotPlease)] == [
        Outgoing(Audience.VISITOR_TAB, p.SnapshotPlease(), "T")]
    out = session.visitor_events("T", 30, incremental(20, size=100), T0)
    assert not of(out, p.SnapshotPlease)  # asked already
    session.visitor_events("T", 50, snapshot(), T0)
    assert session.tabs["T"].buffer_bytes < 2_000 and len(session.tabs["T"].events) == 2
    out = session.visitor_events("T", 52, incremental(30, size=100), T0)
    assert of(out, p.SnapshotPlease)  # a new snapshot re-arms the request


def test_hard_limit_drops_the_buffer_but_live_agents_keep_watching():
    session = sharing(soft_limit=1_000, hard_limit=5_000)
    session.agent_joined("a1", 1, ANNA, None, T0)
    out = session.visitor_events("T", 5, incremental(20, size=100), T0)
    assert of(out, p.SnapshotPlease)
    out = session.visitor_events("T", 25, incremental(40, size=100), T0)  # the visitor did not answer
    tab = session.tabs["T"]
    assert tab.events == [] and tab.buffer_bytes == 0
    assert of(out, p.TabEvents, Audience.AGENTS)[0].seq == 25
    # Whoever is watching still applies the next events on what they have...
    out = session.visitor_events("T", 65, incremental(2, start=99), T0)
    assert ids(of(out, p.TabEvents, Audience.AGENTS)[0].ev) == [99, 100]
    assert of(out, p.Ack) == [p.Ack(seq=66)]
    # ... but nothing unreplayable goes to a late joiner: they wait for the snapshot.
    assert not of(session.agent_joined("a2", 2, SAM, None, T0), p.TabEvents)
    out = session.visitor_events("T", 67, snapshot(), T0)
    assert {o.audience for o in out if isinstance(o.message, p.TabEvents)} == {Audience.AGENTS}
    assert of(session.agent_joined("a3", 3, SAM, None, T0), p.TabEvents)[0].seq == 67


def test_one_huge_batch_past_the_hard_limit_asks_for_a_snapshot():
    session = sharing(soft_limit=1_000, hard_limit=5_000)
    out = session.visitor_events("T", 5, incremental(60, size=100), T0)
    assert session.tabs["T"].events == []
    assert of(out, p.SnapshotPlease)


# ----- seq ------------------------------------------------------------------------------


def test_resent_duplicates_are_skipped():
    session = sharing()
    session.agent_joined("a1", 1, ANNA, None, T0)
    # The visitor reconnected and resends 3..6 though the hub already holds up to 4.
    out = session.visitor_events("T", 3, incremental(4, start=3), T0)
    (relay,) = of(out, p.TabEvents)
    assert relay.seq == 5 and ids(relay.ev) == [5, 6]
    assert of(out, p.Ack) == [p.Ack(seq=6)]
    # An entire batch already held: only an ack.
    out = session.visitor_events("T", 2, incremental(3), T0)
    assert out == [Outgoing(Audience.VISITOR_TAB, p.Ack(seq=6), "T")]
    assert len(session.tabs["T"].events) == 7


def test_a_gap_asks_for_a_snapshot_and_relays_nothing_unreplayable():
    session = sharing()
    session.agent_joined("a1", 1, ANNA, None, T0)
    out = session.visitor_events("T", 9, incremental(2, start=9), T0)  # 5..8 were lost
    assert of(out, p.SnapshotPlease) == [p.SnapshotPlease()]
    assert not of(out, p.TabEvents)
    assert of(out, p.Ack) == [p.Ack(seq=10)]
    out = session.visitor_events("T", 11, incremental(1, start=11), T0)
    assert not of(out, p.TabEvents) and not of(out, p.SnapshotPlease)  # asked once
    late = session.agent_joined("a2", 2, SAM, None, T0)
    assert not of(late, p.TabEvents)  # nothing to replay the old buffer onto
    out = session.visitor_events("T", 12, snapshot() + incremental(1, start=14), T0)
    (relay,) = of(out, p.TabEvents)
    assert relay.reset and relay.seq == 12


def test_a_gap_in_a_batch_that_starts_with_a_snapshot_needs_no_request():
    session = sharing()
    out = session.visitor_events("T", 40, snapshot() + incremental(1), T0)
    assert not of(out, p.SnapshotPlease)
    assert session.tabs["T"].first_seq == 40 and session.tabs["T"].next_seq == 43
    assert of(out, p.Ack) == [p.Ack(seq=42)]


def test_events_before_the_first_snapshot_are_not_relayed():
    session = new_session()
    session.tab_connected("T", "u", "", T0)
    session.agent_joined("a1", 1, ANNA, None, T0)
    out = session.visitor_events("T", 0, incremental(2), T0)
    assert not of(out, p.TabEvents)
    assert of(out, p.SnapshotPlease)


def test_rejoin_with_since_gets_only_what_was_missed():
    session = sharing()
    session.agent_joined("a1", 1, ANNA, None, T0)
    session.agent_left("a1", T0)
    session.visitor_events("T", 5, incremental(3, start=5), T0)
    out = session.agent_joined("a1b", 1, ANNA, {"T": 4}, T0)
    (missed,) = of(out, p.TabEvents)
    assert (missed.seq, missed.reset, ids(missed.ev)) == (5, False, [5, 6, 7])
    # Nothing missed: nothing sent.
    assert not of(session.agent_joined("a1c", 1, ANNA, {"T": 7}, T0), p.TabEvents)
    # Seen something from before the current snapshot: the whole page again.
    session.visitor_events("T", 8, snapshot(), T0)
    (again,) = of(session.agent_joined("a1d", 1, ANNA, {"T": 6}, T0), p.TabEvents)
    assert again.reset and again.seq == 8
    # Unknown tab in `since`, or a seq from the future (a hub restart): the whole page.
    (future,) = of(session.agent_joined("a1e", 1, ANNA, {"T": 500, "X": 3}, T0), p.TabEvents)
    assert future.reset and future.seq == 8


# ----- tabs -------------------------------------------------------------------------------


def test_a_second_tab_is_a_second_tab_state():
    session = sharing("T1")
    session.agent_joined("a1", 1, ANNA, None, T0)
    have, out = session.tab_connected("T2", "https://shop.test/help", "Help", T0)
    assert have == -1
    assert of(out, p.TabUpdate) == [p.TabUpdate(session="S", state=p.TabState(
        tab="T2", url="https://shop.test/help", title="Help"))]
    session.visitor_events("T2", 0, snapshot("https://shop.test/help"), T0)
    joined = session.agent_joined("a2", 2, SAM, None, T0)
    assert [t.tab for t in of(joined, p.Joined)[0].tabs] == ["T1", "T2"]
    assert {m.tab for m in of(joined, p.TabEvents)} == {"T1", "T2"}


def test_tab_grace_keeps_a_navigating_tab_open():
    session = sharing()
    session.agent_joined("a1", 1, ANNA, None, T0)
    assert session.tab_disconnected("T", T0 + 1) == []  # a page load: no change yet
    assert session.tick(T0 + 1 + TAB_GRACE - 0.5, 1800) == []
    have, out = session.tab_connected("T", "https://shop.test/", "Shop", T0 + 1 + TAB_GRACE - 0.4)
    assert have == 4 and out == []  # the same tab continues, nothing for agents to redraw
    assert session.tick(T0 + 60, 1800) == []
    assert session.tabs["T"].open


def test_navigation_to_a_new_url_is_a_tab_update():
    session = sharing()
    session.tab_disconnected("T", T0)
    _, out = session.tab_connected("T", "https://shop.test/cart", "Cart", T0 + 1)
    assert of(out, p.TabUpdate)[0].state == p.TabState(tab="T", url="https://shop.test/cart", title="Cart")
    out = session.navigated("T", "https://shop.test/cart#x", "Cart", T0 + 2)
    assert of(out, p.TabUpdate, Audience.AGENTS)[0].state.url == "https://shop.test/cart#x"


def test_tab_closes_after_grace_without_bye():
    session = sharing()
    session.tab_disconnected("T", T0)
    out = session.tick(T0 + TAB_GRACE + 1, 1800)
    assert out == [Outgoing(Audience.AGENTS, p.TabUpdate(session="S", state=p.TabState(
        tab="T", url="https://shop.test/", title="Shop", open=False)))]
    assert session.tabs["T"].events == []
    assert session.tick(T0 + TAB_GRACE + 2, 1800) == []  # once
    # The same tab coming back later reopens it and needs a new snapshot.
    _, out = session.tab_connected("T", "https://shop.test/", "Shop", T0 + 100)
    assert of(out, p.TabUpdate)[0].state.open is True
    assert session.tabs["T"].awaiting_snapshot


def test_bye_closes_the_tab_at_once():
    session = sharing()
    out = session.tab_disconnected("T", T0, closing=True)
    assert of(out, p.TabUpdate)[0].state.open is False
    assert session.tick(T0 + TAB_GRACE + 1, 1800) == []


def test_an_old_connection_closing_late_does_not_close_the_reconnected_tab():
    # The new page's socket says hello before the old page's socket is seen to close.
    session = sharing()
    session.tab_connected("T", "https://shop.test/", "Shop", T0 + 1)
    assert session.tab_disconnected("T", T0 + 2) == []
    assert session.tick(T0 + 2 + TAB_GRACE + 1, 1800) == []
    assert session.tabs["T"].open
    session.tab_disconnected("T", T0 + 30)
    assert of(session.tick(T0 + 30 + TAB_GRACE + 1, 1800), p.TabUpdate)


# ----- ending, viewers, queue ---------------------------------------------------------------


def test_idle_timeout_ends_the_session():
    session = sharing()
    session.agent_joined("a1", 1, ANNA, None, T0 + 10)
    assert session.tick(T0 + 10 + 300, 300) == []
    session.visitor_events("T", 5, incremental(1), T0 + 200)  # activity moves the deadline
    assert session.tick(T0 + 10 + 301, 300) == []
    out = session.tick(T0 + 200 + 301, 300)
    ended = p.Ended(session="S", reason="idle_timeout")
    assert out == [Outgoing(Audience.VISITOR, ended), Outgoing(Audience.AGENTS, ended)]
    assert session.ended is EndReason.IDLE_TIMEOUT
    assert session.tick(T0 + 10_000, 300) == []


def test_end_is_sent_once_to_visitor_and_agents():
    session = sharing()
    session.agent_joined("a1", 1, ANNA, None, T0)
    out = session.end(EndReason.VISITOR_STOPPED)
    ended = p.Ended(session="S", reason="visitor_stopped")
    assert out == [Outgoing(Audience.VISITOR, ended), Outgoing(Audience.AGENTS, ended)]
    assert session.end(EndReason.AGENT_ENDED) == []
    assert session.tabs["T"].events == []
    assert session.visitor_events("T", 5, incremental(1), T0) == []  # nothing after the end


def test_viewers_one_entry_per_user():
    session = sharing()
    session.agent_joined("a1", 1, ANNA, None, T0)
    out = session.agent_joined("a1-second-window", 1, ANNA, None, T0)
    assert of(out, p.Viewers, Audience.VISITOR) == [p.Viewers(session="S", viewers=[ANNA])]
    out = session.agent_joined("s1", 2, SAM, None, T0)
    assert of(out, p.Viewers, Audience.VISITOR)[0].viewers == [ANNA, SAM]
    assert of(out, p.Viewers, Audience.AGENTS)[0].viewers == [ANNA, SAM]
    out = session.agent_left("a1", T0)
    assert of(out, p.Viewers, Audience.VISITOR)[0].viewers == [ANNA, SAM]  # Anna's other window stays
    out = session.agent_left("a1-second-window", T0)
    assert of(out, p.Viewers, Audience.VISITOR)[0].viewers == [SAM]
    assert session.agent_left("a1", T0) == []


def test_queue_entry():
    session = sharing("T1")
    session.tab_connected("T2", "https://shop.test/help", "Help", T0)
    session.agent_joined("a1", 1, ANNA, None, T0)
    session.agent_joined("a1b", 1, ANNA, None, T0)
    assert session.queue_entry() == p.QueueEntry(session="S", site="shop.test", url="https://shop.test/",
                                                 title="Shop", name="Ada", since=T0, viewers=1)
    session.tab_disconnected("T1", T0, closing=True)
    assert session.queue_entry().url == "https://shop.test/help"  # the first open tab


def test_the_queue_says_when_the_visitor_has_no_page_open():
    session = sharing("T1")
    session.tab_connected("T2", "https://shop.test/help", "Help", T0)
    session.tab_disconnected("T1", T0 + 1, closing=True)
    assert session.queue_entry().away_since is None  # another tab is still open
    session.tab_disconnected("T2", T0 + 2)
    session.tick(T0 + 2 + TAB_GRACE - 1, 1800)
    assert session.queue_entry().away_since is None  # maybe a page load: not yet
    session.tick(T0 + 2 + TAB_GRACE + 1, 1800)
    assert session.queue_entry().away_since == T0 + 2  # since the tab went, not since we noticed
    session.tab_connected("T2", "https://shop.test/help", "Help", T0 + 60)
    assert session.queue_entry().away_since is None  # back


def test_long_urls_are_truncated():
    session = new_session()
    session.tab_connected("T", "https://shop.test/" + "a" * 5000, "t" * 5000, T0)
    assert len(session.tabs["T"].url) == 2048 and len(session.tabs["T"].title) == 2048
    session.navigated("T", "u" * 3000, "", T0)
    assert len(session.tabs["T"].url) == 2048


@pytest.mark.parametrize("events, start", [
    ([], None),
    (incremental(3), None),
    ([event(p.RR_FULL_SNAPSHOT, {})], 0),
    (incremental(2) + [event(p.RR_FULL_SNAPSHOT, {})], 2),
    (incremental(2) + snapshot() + incremental(1) + snapshot() + incremental(2), 5),
])
def test_snapshot_detection(events, start):
    from cobrowse.sync.session import _last_snapshot_start

    assert _last_snapshot_start(events) == start


def test_a_tab_new_to_the_hub_goes_on_with_its_own_numbering():
    # After a hub restart the resumed tab says how far it had got: the stream goes on after that.
    session = new_session()
    have, out = session.tab_connected("T", "https://shop.test/", "Shop", T0, last_seq=41)
    assert have == 41
    session.agent_joined("a1", 1, ANNA, None, T0)
    out = session.visitor_events("T", 42, snapshot() + incremental(2), T0)
    assert not of(out, p.SnapshotPlease) and of(out, p.TabEvents)[0].reset
    # An agent who had seen up to 41 (on the old hub) gets the new page whole, flagged as a reset.
    (page,) = of(session.agent_joined("a2", 2, SAM, {"T": 41}, T0), p.TabEvents)
    assert (page.seq, page.reset, len(page.ev)) == (42, True, 4)
    # A known tab keeps the hub's numbering whatever the visitor says.
    assert session.tab_connected("T", "https://shop.test/", "Shop", T0, last_seq=99)[0] == 45


def test_a_session_keeps_a_bounded_number_of_tabs():
    from cobrowse.sync.session import MAX_TABS, CobrowseSession

    session = CobrowseSession("S", "shop.test", "V", "Ada", 0.0)
    for i in range(MAX_TABS):
        assert session.room_for_tab(f"T{i}")
        session.tab_connected(f"T{i}", "https://shop.test/", "Shop", 1.0)
    assert session.room_for_tab("T0"), "a known tab always comes back"
    assert not session.room_for_tab("T-new"), "every tab is open: no room"
    session.tab_disconnected("T3", 2.0, closing=True)
    session.tick(100.0, idle_timeout=10_000)  # past the grace: T3 counts as closed
    assert not session.tabs["T3"].open
    assert session.room_for_tab("T-new") and "T3" not in session.tabs, "the closed tab made room"
