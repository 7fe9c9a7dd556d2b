"""The co-browse session state machine: pure code, no I/O, no clock of its own.

A session is one visitor's consent to share, with the tabs they share and
the agents watching. Every method takes the facts (a frame, the time) and
returns the frames to send as :class:`Outgoing` values; the hub shell
(:mod:`cobrowse.sync.hub`) delivers them. That keeps the rules testable
without sockets and lets the shell route frames through a broker.

Each tab keeps its latest full snapshot and every event since, so an agent
who joins late sees the current page at once, without asking the visitor's
browser to record again (rrweb #394). The buffer is bounded: past
``soft_limit`` bytes the visitor is asked for a fresh snapshot, which
replaces the buffer; past ``hard_limit`` the stale buffer is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import msgspec

from .protocol import (
    RR_FULL_SNAPSHOT,
    RR_META,
    Ack,
    Ended,
    Joined,
    Message,
    QueueEntry,
    RrwebEvent,
    SnapshotPlease,
    TabEvents,
    TabState,
    TabUpdate,
    Viewer,
    Viewers,
)

SOFT_BUFFER_LIMIT = 4 * 1024 * 1024
HARD_BUFFER_LIMIT = 16 * 1024 * 1024
TAB_GRACE = 15.0  # seconds a tab may be gone (a page load) before it counts as closed


class Audience(Enum):
    VISITOR_TAB = "visitor_tab"  # one tab of the visitor (key = tab id)
    VISITOR = "visitor"  # every tab of the visitor
    AGENTS = "agents"  # every agent in the session
    AGENT = "agent"  # one agent (key = agent key)


@dataclass(frozen=True, slots=True)
class Outgoing:
    audience: Audience
    message: Message
    key: str | None = None


class EndReason(str, Enum):
    VISITOR_STOPPED = "visitor_stopped"
    AGENT_ENDED = "agent_ended"
    IDLE_TIMEOUT = "idle_timeout"
    SERVER_SHUTDOWN = "server_shutdown"


@dataclass(slots=True)
class Tab:
    id: str
    url: str
    title: str = ""
    open: bool = True
    connected: bool = True
    connections: int = 0  # sockets of this tab (a new page's may say hello before the old one's close is seen)
    gone_since: float | None = None
    events: list[RrwebEvent] = field(default_factory=list)  # from the latest full snapshot on
    buffer_bytes: int = 0
    first_seq: int = 0  # seq of events[0]
    next_seq: int = 0  # seq the next batch must start with
    awaiting_snapshot: bool = True  # nothing replayable until a full snapshot arrives
    dropped: bool = False  # past the hard limit: relay to who watches, keep nothing until a snapshot
    snapshot_requested: bool = False

    def state(self) -> TabState:
        return TabState(tab=self.id, url=self.url, title=self.title, open=self.open)


@dataclass(slots=True)
class Participant:
    key: str  # the agent's connection key
    user_id: int
    viewer: Viewer


class CobrowseSession:
    def __init__(self, session_id: str, site: str, visitor_id: str, name: str, started_at: float,
                 soft_limit: int = SOFT_BUFFER_LIMIT, hard_limit: int = HARD_BUFFER_LIMIT) -> None:
        self.id = session_id
        self.site = site
        self.visitor_id = visitor_id
        self.name = name
        self.started_at = started_at
        self.last_activity = started_at
        self.ended: EndReason | None = None
        self.tabs: dict[str, Tab] = {}
        self.participants: dict[str, Participant] = {}
        self.soft_limit = soft_limit
        self.hard_limit = hard_limit

    # ----- visitor side ----------------------------------------------------------

    def tab_connected(self, tab_id: str, url: str, title: str, now: float,
                      last_seq: int = -1) -> tuple[int, list[Outgoing]]:
        """A visitor tab (re)connected; returns the highest seq it need not resend, and frames to send.

        A tab new to this session (or to this hub, after a restart) goes on with its own
        numbering after ``last_seq``, from a snapshot: a seq never stands for two events, so
        an agent's ``since`` from before a restart cannot pass for the new stream.
        """
        self.last_activity = now
        tab = self.tabs.get(tab_id)
        out: list[Outgoing] = []
        if tab is None:
            start = max(0, last_seq + 1)
            tab = self.tabs[tab_id] = Tab(tab_id, url[:2048], title[:2048], connections=1, first_seq=start,
                                          next_seq=start)
        else:
            tab.connections += 1
            tab.connected = True
            tab.gone_since = None
            reopened = not tab.open
            tab.open = True
            changed = tab.url != url or tab.title != title or reopened
            tab.url, tab.title = url[:2048], title[:2048]
            if not changed:
                return tab.next_seq - 1, out
        out.append(Outgoing(Audience.AGENTS, TabUpdate(session=self.id, state=tab.state())))
        return tab.next_seq - 1, out

    def tab_disconnected(self, tab_id: str, now: float, closing: bool = False) -> list[Outgoing]:
        tab = self.tabs.get(tab_id)
        if tab is None:
            return []
        tab.connections = max(0, tab.connections - 1)
        if tab.connections:
            return []  # the tab lives on in its newer connection
        tab.connected = False
        if closing:
            return self._close_tab(tab)
        tab.gone_since = now
        return []

    def visitor_events(self, tab_id: str, seq: int, events: list[RrwebEvent], now: float) -> list[Outgoing]:
        tab = self.tabs.get(tab_id)
        if tab is None or self.ended is not None or not events:
            return []
        self.last_activity = now
        out: list[Outgoing] = []
        if seq < tab.next_seq:
            # A resend after a reconnect overlapping what we hold: keep only what is new.
            skip = tab.next_seq - seq
            if skip >= len(events):
                return [Outgoing(Audience.VISITOR_TAB, Ack(seq=tab.next_seq - 1), tab_id)]
            events = events[skip:]
            seq = tab.next_seq
        start = _last_snapshot_start(events)
        reset = start is not None
        if seq > tab.next_seq:
            # Events were lost in between: what follows cannot be replayed on what we have.
            tab.awaiting_snapshot = True
            tab.events.clear()
            tab.buffer_bytes = 0
            tab.next_seq = seq
            if not reset and not tab.snapshot_requested:
                tab.snapshot_requested = True
                out.append(Outgoing(Audience.VISITOR_TAB, SnapshotPlease(), tab_id))

        if reset:
            dropped = events[:start]
            events = events[start:]
            seq += len(dropped)
            tab.events = list(events)
            tab.first_seq = seq
            tab.buffer_bytes = _size(events)
            tab.awaiting_snapshot = False
            tab.dropped = False
            tab.snapshot_requested = False
            _update_url_from_meta(tab, events)
        elif tab.awaiting_snapshot:
            tab.next_seq = seq + len(events)
            out.append(Outgoing(Audience.VISITOR_TAB, Ack(seq=tab.next_seq - 1), tab_id))
            if not tab.snapshot_requested:
                tab.snapshot_requested = True
                out.append(Outgoing(Audience.VISITOR_TAB, SnapshotPlease(), tab_id))
            return out
        elif not tab.dropped:
            tab.events.extend(events)
            tab.buffer_bytes += _size(events)
        tab.next_seq = seq + len(events)

        if tab.buffer_bytes > self.hard_limit:
            # The visitor did not answer our request for a snapshot in time:
            # late joiners will wait for the next one instead of replaying megabytes
            # (agents already watching go on applying events to what they have).
            tab.events.clear()
            tab.buffer_bytes = 0
            tab.dropped = True
            if not tab.snapshot_requested:
                tab.snapshot_requested = True
                out.append(Outgoing(Audience.VISITOR_TAB, SnapshotPlease(), tab_id))
        elif tab.buffer_bytes > self.soft_limit and not tab.snapshot_requested:
            tab.snapshot_requested = True
            out.append(Outgoing(Audience.VISITOR_TAB, SnapshotPlease(), tab_id))

        if self.participants:
            out.append(Outgoing(Audience.AGENTS, TabEvents(session=self.id, tab=tab_id, seq=seq, ev=events,
                                                           reset=reset)))
        out.append(Outgoing(Audience.VISITOR_TAB, Ack(seq=tab.next_seq - 1), tab_id))
        return out

    def navigated(self, tab_id: str, url: str, title: str, now: float) -> list[Outgoing]:
        tab = self.tabs.get(tab_id)
        if tab is None:
            return []
        self.last_activity = now
        tab.url, tab.title = url[:2048], title[:2048]
        return [Outgoing(Audience.AGENTS, TabUpdate(session=self.id, state=tab.state()))]

    # ----- agents -------------------------------------------------------------------

    def agent_joined(self, key: str, user_id: int, viewer: Viewer, since: dict[str, int] | None,
                     now: float) -> list[Outgoing]:
        """An authorised agent joins: they get the current page of every tab at once."""
        self.last_activity = now
        self.participants[key] = Participant(key, user_id, viewer)
        out = [Outgoing(Audience.AGENT, Joined(session=self.id, site=self.site,
                                               tabs=[t.state() for t in self.tabs.values()],
                                               viewers=self.viewers()), key)]
        for tab in self.tabs.values():
            if not tab.events:
                continue
            seen = (since or {}).get(tab.id)
            if seen is not None and tab.first_seq < seen + 1 < tab.next_seq:
                # A rejoin after a short drop: only what was missed.
                offset = seen + 1 - tab.first_seq
                out.append(Outgoing(Audience.AGENT, TabEvents(session=self.id, tab=tab.id, seq=seen + 1,
                                                              ev=tab.events[offset:]), key))
            elif seen is not None and seen + 1 == tab.next_seq:
                continue  # nothing missed
            else:
                out.append(Outgoing(Audience.AGENT, TabEvents(session=self.id, tab=tab.id, seq=tab.first_seq,
                                                              ev=list(tab.events), reset=True), key))
        out += self._viewers_changed()
        return out

    def agent_left(self, key: str, now: float) -> list[Outgoing]:
        if self.participants.pop(key, None) is None:
            return []
        self.last_activity = now
        return self._viewers_changed()

    def viewers(self) -> list[Viewer]:
        # One entry per person, however many windows they have open.
        seen: dict[int, Viewer] = {}
        for participant in self.participants.values():
            seen.setdefault(participant.user_id, participant.viewer)
        return list(seen.values())

    def _viewers_changed(self) -> list[Outgoing]:
        message = Viewers(session=self.id, viewers=self.viewers())
        return [Outgoing(Audience.VISITOR, message), Outgoing(Audience.AGENTS, message)]

    # ----- ending -------------------------------------------------------------------

    def end(self, reason: EndReason) -> list[Outgoing]:
        if self.ended is not None:
            return []
        self.ended = reason
        message = Ended(session=self.id, reason=reason.value)
        for tab in self.tabs.values():
            tab.events.clear()
            tab.buffer_bytes = 0
        return [Outgoing(Audience.VISITOR, message), Outgoing(Audience.AGENTS, message)]

    def tick(self, now: float, idle_timeout: float) -> list[Outgoing]:
        """Periodic housekeeping: tabs gone past their grace close; an idle session ends."""
        out: list[Outgoing] = []
        for tab in self.tabs.values():
            if tab.open and not tab.connected and tab.gone_since is not None and now - tab.gone_since > TAB_GRACE:
                out += self._close_tab(tab)
        if self.ended is None and now - self.last_activity > idle_timeout:
            out += self.end(EndReason.IDLE_TIMEOUT)
        return out

    def _close_tab(self, tab: Tab) -> list[Outgoing]:
        if not tab.open:
            return []
        tab.open = False
        tab.events.clear()
        tab.buffer_bytes = 0
        tab.awaiting_snapshot = True
        return [Outgoing(Audience.AGENTS, TabUpdate(session=self.id, state=tab.state()))]

    def queue_entry(self) -> QueueEntry:
        tab = next((t for t in self.tabs.values() if t.open), None) or next(iter(self.tabs.values()), None)
        return QueueEntry(session=self.id, site=self.site, url=tab.url if tab else "", title=tab.title if tab else "",
                          name=self.name, since=self.started_at, viewers=len(self.viewers()))


def _last_snapshot_start(events: list[RrwebEvent]) -> int | None:
    """Index where the last full snapshot begins (its Meta event, if right before it)."""
    for index in range(len(events) - 1, -1, -1):
        if events[index].type == RR_FULL_SNAPSHOT:
            if index > 0 and events[index - 1].type == RR_META:
                return index - 1
            return index
    return None


def _update_url_from_meta(tab: Tab, events: list[RrwebEvent]) -> None:
    # The Meta event carries the page's href; the visitor also says `nav`, but
    # the snapshot is what agents see, so it is the authority.
    if events and events[0].type == RR_META:
        try:
            data = msgspec.json.decode(events[0].data)
        except msgspec.DecodeError:
            return
        href = data.get("href") if isinstance(data, dict) else None
        if isinstance(href, str):
            tab.url = href[:2048]


def _size(events: list[RrwebEvent]) -> int:
    return sum(len(event.data) for event in events) + 40 * len(events)
