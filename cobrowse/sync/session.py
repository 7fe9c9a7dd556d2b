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

Markers live per tab and per page: a new page (another URL, fragment aside)
drops every marker that is not pinned. Shared control is one controller at a
time, granted by the visitor, with one pending request at most. What is worth
keeping (pages visited, markers, control changes, commands) is appended to
:attr:`CobrowseSession.records` as :class:`TimelineEntry` values, which the hub
drains into the session store after every call.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

import msgspec

from .protocol import (
    MAX_NOTE,
    MAX_POINTS,
    MAX_TEXT,
    RR_FULL_SNAPSHOT,
    RR_META,
    Ack,
    AgentInput,
    Command,
    CommandResult,
    ControlRequested,
    ControlState,
    Ended,
    Error,
    InputRefused,
    Joined,
    Laser,
    Marker,
    MarkerAdd,
    MarkerRemove,
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
CONTROL_TIMEOUT = 30.0  # seconds the visitor has to answer a control request
MAX_MARKERS = 100  # per tab
MAX_TABS = 32  # tabs a session keeps; closed ones make room for new ones, open ones do not
MAX_MARKER_ID = 64


class Audience(Enum):
    VISITOR_TAB = "visitor_tab"  # one tab of the visitor (key = tab id)
    VISITOR = "visitor"  # every tab of the visitor
    AGENTS = "agents"  # every agent in the session
    AGENT = "agent"  # one agent (key = agent key)
    OTHER_AGENTS = "other_agents"  # every agent in the session but one (key = the one left out)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """Something worth keeping in the session's timeline (``cobrowse_events``)."""

    at: float  # unix time
    kind: str  # page | marker_placed | marker_cleared | control_* | command_sent | command_result
    actor: int | None = None  # the agent's user id; None: the visitor (or the hub, for a timeout)
    detail: dict[str, Any] = field(default_factory=dict)


class Outgoing(msgspec.Struct, frozen=True, gc=False):
    """A message and who gets it (a msgspec struct: made for every frame, and built in C)."""

    audience: Audience
    message: Message
    key: str | None = None


class EndReason(str, Enum):
    VISITOR_STOPPED = "visitor_stopped"
    AGENT_ENDED = "agent_ended"
    IDLE_TIMEOUT = "idle_timeout"
    CHAT_ENDED = "chat_ended"  # the chat it was shared for ended
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
    markers: dict[str, Marker] = field(default_factory=dict)  # of the current page (and pinned ones)

    def state(self) -> TabState:
        return TabState(tab=self.id, url=self.url, title=self.title, open=self.open)


@dataclass(slots=True)
class Participant:
    key: str  # the agent's connection key
    user_id: int
    viewer: Viewer


@dataclass(slots=True)
class Control:
    """Who controls the visitor's page (or asks to): one agent connection."""

    key: str
    user_id: int
    viewer: Viewer
    allow_submit: bool
    expires: float = 0.0  # a pending request: when no answer counts as declined


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
        self.controller: Control | None = None
        self.pending: Control | None = None  # a control request waiting for the visitor's answer
        self.records: list[TimelineEntry] = []  # drained by the hub into the session store
        # When the visitor last had no page open (their last tab closed, or
        # gone past its grace); None while one is open. Agents see it in the queue.
        self.away_since: float | None = None

    def take_records(self) -> list[TimelineEntry]:
        records, self.records = self.records, []
        return records

    def _record(self, now: float, kind: str, actor: int | None = None, /, **detail: Any) -> None:
        self.records.append(TimelineEntry(now, kind, actor, detail))

    # ----- visitor side ----------------------------------------------------------

    def room_for_tab(self, tab_id: str) -> bool:
        """Whether ``tab_id`` may join: a known tab always; a new one while there is room,
        made by forgetting the oldest closed tabs (their pages are gone anyway)."""
        if tab_id in self.tabs or len(self.tabs) < MAX_TABS:
            return True
        for old in [t.id for t in self.tabs.values() if not t.open]:
            if len(self.tabs) < MAX_TABS:
                break
            del self.tabs[old]
        return len(self.tabs) < MAX_TABS

    def tab_connected(self, tab_id: str, url: str, title: str, now: float,
                      last_seq: int = -1) -> tuple[int, list[Outgoing]]:
        """A visitor tab (re)connected; returns the highest seq it need not resend, and frames to send.

        A tab new to this session (or to this hub, after a restart) goes on with its own
        numbering after ``last_seq``, from a snapshot: a seq never stands for two events, so
        an agent's ``since`` from before a restart cannot pass for the new stream.
        """
        self.last_activity = now
        self.away_since = None
        tab = self.tabs.get(tab_id)
        out: list[Outgoing] = []
        if tab is None:
            start = max(0, last_seq + 1)
            tab = self.tabs[tab_id] = Tab(tab_id, url[:2048], title[:2048], connections=1, first_seq=start,
                                          next_seq=start)
            self._record(now, "page", tab=tab.id, url=tab.url, title=tab.title)
        else:
            tab.connections += 1
            tab.connected = True
            tab.gone_since = None
            reopened = not tab.open
            tab.open = True
            changed = tab.url != url or tab.title != title or reopened
            before = tab.url
            tab.url, tab.title = url[:2048], title[:2048]
            # The tab's new page gets its markers after `welcome` (see visitor_restore).
            out += self._page_changed(tab, before, now, notify_visitor=False, reopened=reopened)
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
            return self._close_tab(tab, now)
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
            before = tab.url
            _update_url_from_meta(tab, events)
            page_change = self._page_changed(tab, before, now)
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
        if reset:
            out += page_change  # after the new page, so the console finds the pinned markers on it
        out.append(Outgoing(Audience.VISITOR_TAB, Ack(seq=tab.next_seq - 1), tab_id))
        return out

    def navigated(self, tab_id: str, url: str, title: str, now: float) -> list[Outgoing]:
        tab = self.tabs.get(tab_id)
        if tab is None:
            return []
        self.last_activity = now
        before = tab.url
        tab.url, tab.title = url[:2048], title[:2048]
        # A same-document navigation that changes only the query (a filter box
        # writing ?q= as the visitor types) is the same page: markers stay.
        return [Outgoing(Audience.AGENTS, TabUpdate(session=self.id, state=tab.state()))] + \
            self._page_changed(tab, before, now, same_document=True)

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
        # After the pages: the markers on them, and who controls (or asks to).
        for tab in self.tabs.values():
            out += [Outgoing(Audience.AGENT, self._mark_frame(tab, marker), key) for marker in tab.markers.values()]
        out += [Outgoing(Audience.AGENT, message, key) for message in self._control_frames(now)]
        out += self._viewers_changed()
        return out

    def agent_left(self, key: str, now: float) -> list[Outgoing]:
        participant = self.participants.pop(key, None)
        if participant is None:
            return []
        self.last_activity = now
        out = self._viewers_changed()
        if self.controller is not None and self.controller.key == key:
            self._record(now, "control_left", participant.user_id, **_who(self.controller))
            self.controller = None
            out += self._control_changed("left")
        elif self.pending is not None and self.pending.key == key:
            self._record(now, "control_left", participant.user_id, **_who(self.pending), pending=True)
            self.pending = None
            out += self._control_changed("left")
        return out

    def viewers(self) -> list[Viewer]:
        # One entry per person, however many windows they have open.
        seen: dict[int, Viewer] = {}
        for participant in self.participants.values():
            seen.setdefault(participant.user_id, participant.viewer)
        return list(seen.values())

    def _viewers_changed(self) -> list[Outgoing]:
        message = Viewers(session=self.id, viewers=self.viewers())
        return [Outgoing(Audience.VISITOR, message), Outgoing(Audience.AGENTS, message)]

    # ----- markers ------------------------------------------------------------------

    def mark(self, key: str, tab_id: str, marker: Marker, now: float) -> list[Outgoing]:
        """An agent places (or replaces: same id) a marker on a tab's current page."""
        participant = self.participants.get(key)
        if participant is None:
            return [_error(key, "not_found", "you are not in that session", "mark")]
        tab = self.tabs.get(tab_id)
        about = {"id": marker.id[:64] or None, "node": marker.anchor.node if marker.anchor.node >= 0 else None}
        if tab is None or not tab.open:
            return [_error(key, "not_found", "no such open tab in this session", "mark", **about)]
        problem = marker_problem(marker)
        if problem is not None:
            return [_error(key, "bad_marker", problem, "mark", **about)]
        if marker.id not in tab.markers and len(tab.markers) >= MAX_MARKERS:
            return [_error(key, "too_many", f"a tab holds at most {MAX_MARKERS} markers; clear some", "mark",
                           **about)]
        self.last_activity = now
        marker = msgspec.structs.replace(marker, by=participant.viewer.name, agent=participant.user_id)
        tab.markers[marker.id] = marker
        self._record(now, "marker_placed", participant.user_id, tab=tab.id, id=marker.id, kind=marker.kind,
                     note=marker.note, pinned=marker.pinned, url=tab.url)
        return [Outgoing(Audience.VISITOR_TAB, self._mark_frame(tab, marker, for_visitor=True), tab.id),
                Outgoing(Audience.AGENTS, self._mark_frame(tab, marker))]

    def unmark(self, key: str, tab_id: str, marker_id: str | None, now: float) -> list[Outgoing]:
        """An agent clears one marker of a tab (or every one: ``marker_id`` None)."""
        participant = self.participants.get(key)
        if participant is None:
            return [_error(key, "not_found", "you are not in that session", "unmark")]
        tab = self.tabs.get(tab_id)
        if tab is None:
            return [_error(key, "not_found", "no such tab in this session", "unmark")]
        self.last_activity = now
        return self._remove_markers(tab, marker_id, now, participant.user_id, "agent", to_visitor=True)

    def visitor_unmark(self, tab_id: str, marker_id: str | None, now: float) -> list[Outgoing]:
        """The visitor clears one marker on their page (or every one)."""
        tab = self.tabs.get(tab_id)
        if tab is None:
            return []
        self.last_activity = now
        return self._remove_markers(tab, marker_id, now, None, "visitor", to_visitor=False)

    def _remove_markers(self, tab: Tab, marker_id: str | None, now: float, actor: int | None, by: str,
                        to_visitor: bool) -> list[Outgoing]:
        if marker_id is None:
            ids = list(tab.markers)
            tab.markers.clear()
        elif tab.markers.pop(marker_id, None) is not None:
            ids = [marker_id]
        else:
            return []  # gone already (cleared from the other side meanwhile): nothing to say
        if not ids:
            return []
        self._record(now, "marker_cleared", actor, tab=tab.id, ids=ids, by=by)
        frame = MarkerRemove(session=self.id, tab=tab.id, id=marker_id)
        out = [Outgoing(Audience.AGENTS, frame)]
        if to_visitor:
            out.insert(0, Outgoing(Audience.VISITOR_TAB, frame, tab.id))
        return out

    def _page_changed(self, tab: Tab, before: str, now: float, notify_visitor: bool = True,
                      reopened: bool = False, same_document: bool = False) -> list[Outgoing]:
        """The tab's URL may have changed: a new page records a visit and drops the markers not pinned.

        Whoever had markers hears ``unmark`` (all) and then ``mark`` for each pinned one: they
        are found again on the new page by selector or quote.
        """
        page_of = _path_of if same_document else _page_of
        if page_of(before) == page_of(tab.url) and not reopened:
            return []
        self._record(now, "page", tab=tab.id, url=tab.url, title=tab.title)
        if not tab.markers:
            return []
        dropped = [m.id for m in tab.markers.values() if not m.pinned]
        tab.markers = {m.id: m for m in tab.markers.values() if m.pinned}
        if dropped:
            self._record(now, "marker_cleared", None, tab=tab.id, ids=dropped, by="navigation")
        clear = MarkerRemove(session=self.id, tab=tab.id)
        out = [Outgoing(Audience.AGENTS, clear)]
        out += [Outgoing(Audience.AGENTS, self._mark_frame(tab, marker)) for marker in tab.markers.values()]
        if notify_visitor:
            out.append(Outgoing(Audience.VISITOR_TAB, clear, tab.id))
            out += [Outgoing(Audience.VISITOR_TAB, self._mark_frame(tab, marker, for_visitor=True), tab.id)
                    for marker in tab.markers.values()]
        return out

    def _mark_frame(self, tab: Tab, marker: Marker, for_visitor: bool = False) -> MarkerAdd:
        if for_visitor and marker.agent:
            marker = msgspec.structs.replace(marker, agent=0)  # agents' user ids stay among agents
        return MarkerAdd(session=self.id, tab=tab.id, marker=marker)

    def laser(self, key: str, frame: Laser) -> list[Outgoing]:
        """A transient pointer: relayed to the tab and the other agents, never kept."""
        participant = self.participants.get(key)
        if participant is None:
            return [_error(key, "not_found", "you are not in that session", "laser")]
        tab = self.tabs.get(frame.tab)
        if tab is None or not tab.open:
            return []  # the tab went away under the cursor: not worth an error at 30 frames a second
        if frame.anchor is not None and anchor_problem(frame.anchor) is not None:
            return [_error(key, "bad_frame", "the laser's anchor is not valid", "laser")]
        relay = Laser(session=self.id, tab=tab.id, anchor=frame.anchor, x=_unit(frame.x), y=_unit(frame.y),
                      by=participant.viewer.name)
        to_agents = msgspec.structs.replace(relay, agent=participant.user_id)
        return [Outgoing(Audience.VISITOR_TAB, relay, tab.id), Outgoing(Audience.OTHER_AGENTS, to_agents, key)]

    # ----- shared control -----------------------------------------------------------

    def control_request(self, key: str, allow_submit: bool, now: float) -> list[Outgoing]:
        """An agent asks the visitor for control. One controller and one pending request at most:
        anything else is refused (``control_busy``), never queued."""
        participant = self.participants.get(key)
        if participant is None:
            return [_error(key, "not_found", "you are not in that session", "control_request")]
        if self.controller is not None:
            message = ("you control the page already (release it and ask again to change what you may do)"
                       if self.controller.key == key else f"{self.controller.viewer.name} controls the page")
            return [_error(key, "control_busy", message, "control_request")]
        if self.pending is not None:
            return [_error(key, "control_busy",
                           f"{self.pending.viewer.name} is waiting for the visitor's answer", "control_request")]
        self.last_activity = now
        self.pending = Control(key, participant.user_id, participant.viewer, allow_submit, now + CONTROL_TIMEOUT)
        self._record(now, "control_requested", participant.user_id, **_who(self.pending))
        frame = ControlRequested(session=self.id, agent=participant.viewer, allow_submit=allow_submit,
                                 timeout=CONTROL_TIMEOUT)
        return [Outgoing(Audience.VISITOR, frame), Outgoing(Audience.AGENTS, frame)]

    def control_answer(self, granted: bool, allow_submit: bool, now: float) -> list[Outgoing]:
        """The visitor answers the pending request, or (granted false) takes control back."""
        self.last_activity = now
        pending = self.pending
        if pending is not None:
            if now > pending.expires:
                return self._control_timeout(now)  # too late: the tick had not come round yet
            self.pending = None
            if granted and pending.key in self.participants:
                # The visitor may grant less than asked (no submit), never more.
                self.controller = Control(pending.key, pending.user_id, pending.viewer,
                                          pending.allow_submit and allow_submit)
                self._record(now, "control_granted", None, **_who(self.controller))
                return self._control_changed("granted")
            self._record(now, "control_declined", None, **_who(pending))
            return self._control_changed("declined")
        if not granted and self.controller is not None:
            controller, self.controller = self.controller, None
            self._record(now, "control_revoked", None, **_who(controller))
            return self._control_changed("revoked")
        return []  # nothing to answer (a late click after a timeout, say)

    def control_release(self, key: str, now: float) -> list[Outgoing]:
        """The controller hands control back (or an agent withdraws its pending request)."""
        participant = self.participants.get(key)
        if participant is None:
            return [_error(key, "not_found", "you are not in that session", "control_release")]
        if self.controller is not None and self.controller.key == key:
            controller, self.controller = self.controller, None
        elif self.pending is not None and self.pending.key == key:
            controller, self.pending = self.pending, None
        else:
            return [_error(key, "not_controlling", "you do not control the page", "control_release")]
        self.last_activity = now
        self._record(now, "control_released", participant.user_id, **_who(controller))
        return self._control_changed("released")

    def _control_timeout(self, now: float) -> list[Outgoing]:
        pending, self.pending = self.pending, None
        if pending is None:
            return []
        self._record(now, "control_timeout", None, **_who(pending))
        return self._control_changed("timeout")

    def _control_changed(self, reason: str) -> list[Outgoing]:
        controller = self.controller
        frame = ControlState(session=self.id, controller=controller.viewer if controller else None,
                             allow_submit=controller.allow_submit if controller else False, reason=reason)
        return [Outgoing(Audience.VISITOR, frame), Outgoing(Audience.AGENTS, frame)]

    def _control_frames(self, now: float) -> list[Message]:
        """The control situation for someone arriving: who controls, and any request pending."""
        frames: list[Message] = []
        if self.controller is not None:
            frames.append(ControlState(session=self.id, controller=self.controller.viewer,
                                       allow_submit=self.controller.allow_submit, reason="granted"))
        if self.pending is not None:
            frames.append(ControlRequested(session=self.id, agent=self.pending.viewer,
                                           allow_submit=self.pending.allow_submit,
                                           timeout=max(0.0, round(self.pending.expires - now, 1))))
        return frames

    def is_controller(self, key: str) -> bool:
        return self.controller is not None and self.controller.key == key

    def visitor_restore(self, tab_id: str, now: float) -> list[Message]:
        """What a visitor tab's new connection needs after `welcome`: its markers, and control."""
        tab = self.tabs.get(tab_id)
        frames: list[Message] = ([self._mark_frame(tab, m, for_visitor=True) for m in tab.markers.values()]
                                 if tab else [])
        return frames + self._control_frames(now)

    def agent_input(self, key: str, frame: AgentInput, now: float) -> list[Outgoing]:
        """An action on the visitor's page: only from the controller, `submit` only if granted."""
        if key not in self.participants:
            return [_error(key, "not_found", "you are not in that session", "input")]
        controller = self.controller
        if controller is None or controller.key != key:
            return [_error(key, "not_controlling", "ask the visitor for control first", "input")]
        tab = self.tabs.get(frame.tab)
        if tab is None or not tab.open:
            return [_error(key, "not_found", "no such open tab in this session", "input")]
        if frame.action == "submit" and not controller.allow_submit:
            return [_error(key, "submit_not_allowed", "the visitor did not allow submitting forms", "input")]
        self.last_activity = now
        return [Outgoing(Audience.VISITOR_TAB, msgspec.structs.replace(frame, session=self.id), tab.id)]

    def input_refused(self, tab_id: str, frame: InputRefused) -> list[Outgoing]:
        if tab_id not in self.tabs:
            return []
        relay = InputRefused(action=frame.action[:32], reason=frame.reason[:200], session=self.id, tab=tab_id)
        return [Outgoing(Audience.AGENTS, relay)]

    # ----- operator commands ----------------------------------------------------------

    def command(self, key: str, frame: Command, extra_origins: Collection[str], now: float) -> list[Outgoing]:
        """`goto`/`open` a URL in the visitor's browser: needs control, and an allowed http(s) origin."""
        participant = self.participants.get(key)
        if participant is None:
            return [_error(key, "not_found", "you are not in that session", "command")]
        if not self.is_controller(key):
            return [_error(key, "not_controlling", "ask the visitor for control first", "command")]
        tab = self.tabs.get(frame.tab)
        if tab is None or not tab.open:
            return [_error(key, "not_found", "no such open tab in this session", "command")]
        problem = navigation_problem(frame.url, self.site, extra_origins)
        if problem is not None:
            return [_error(key, "refused", problem, "command")]
        self.last_activity = now
        self._record(now, "command_sent", participant.user_id, tab=tab.id, kind=frame.kind, url=frame.url)
        return [Outgoing(Audience.VISITOR_TAB, msgspec.structs.replace(frame, session=self.id), tab.id)]

    def command_result(self, tab_id: str, frame: CommandResult, now: float) -> list[Outgoing]:
        if tab_id not in self.tabs:
            return []
        relay = CommandResult(kind=frame.kind, url=frame.url[:MAX_TEXT], ok=frame.ok, reason=frame.reason[:64],
                              session=self.id, tab=tab_id)
        self._record(now, "command_result", None, tab=tab_id, kind=relay.kind, url=relay.url, ok=relay.ok,
                     reason=relay.reason)
        return [Outgoing(Audience.AGENTS, relay)]

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
                out += self._close_tab(tab, tab.gone_since)
        if self.pending is not None and now > self.pending.expires and self.ended is None:
            out += self._control_timeout(now)
        if self.ended is None and now - self.last_activity > idle_timeout:
            out += self.end(EndReason.IDLE_TIMEOUT)
        return out

    def _close_tab(self, tab: Tab, gone_at: float) -> list[Outgoing]:
        if not tab.open:
            return []
        tab.open = False
        tab.events.clear()
        tab.buffer_bytes = 0
        tab.awaiting_snapshot = True
        tab.markers.clear()  # a closed tab has no page to show them on (agents drop them with the tab)
        out = [Outgoing(Audience.AGENTS, TabUpdate(session=self.id, state=tab.state()))]
        if not any(t.open for t in self.tabs.values()):
            self.away_since = gone_at
            out += self._control_ends_with_visitor_gone(gone_at)
        return out

    def _control_ends_with_visitor_gone(self, gone_at: float) -> list[Outgoing]:
        # The visitor's "yes" was for the page in front of them. When they come back
        # (a minute or a day later), nobody should be clicking in it without asking again.
        if self.controller is None and self.pending is None:
            return []
        ended = self.controller or self.pending
        was_pending = self.controller is None
        self.controller = self.pending = None
        self._record(gone_at, "control_ended", None, **_who(ended), pending=was_pending)
        return self._control_changed("visitor_left")

    def queue_entry(self) -> QueueEntry:
        tab = next((t for t in self.tabs.values() if t.open), None) or next(iter(self.tabs.values()), None)
        return QueueEntry(session=self.id, site=self.site, url=tab.url if tab else "", title=tab.title if tab else "",
                          name=self.name, since=self.started_at, viewers=len(self.viewers()),
                          away_since=self.away_since)


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
        except (msgspec.DecodeError, RecursionError):
            return
        href = data.get("href") if isinstance(data, dict) else None
        if isinstance(href, str):
            tab.url = href[:2048]


def _size(events: list[RrwebEvent]) -> int:
    return sum(len(event.data) for event in events) + 40 * len(events)


def _error(key: str, code: str, message: str, re: str, id: str | None = None, node: int | None = None) -> Outgoing:
    """An error for one agent; ``id``/``node``: the marker or element it is about, so the console can point at it."""
    return Outgoing(Audience.AGENT, Error(code=code, message=message, re=re, id=id, node=node), key)


def _who(control: Control) -> dict[str, Any]:
    return {"agent_id": control.user_id, "agent": control.viewer.name, "allow_submit": control.allow_submit}


def _page_of(url: str) -> str:
    """A page is its URL without the fragment: an anchor jump keeps the markers, another page drops them."""
    return url.partition("#")[0]


def _path_of(url: str) -> str:
    """For same-document navigations: the URL without query and fragment."""
    return url.partition("#")[0].partition("?")[0]


def _unit(value: float) -> float:
    return min(1.0, max(0.0, value)) if math.isfinite(value) else 0.5


def anchor_problem(anchor) -> str | None:
    if anchor.node < -1 or anchor.start < -1 or anchor.end < -1:
        return "anchor node, start and end are -1 or more"
    if len(anchor.selector) > MAX_TEXT or len(anchor.quote) > MAX_TEXT:
        return f"anchor selector and quote are at most {MAX_TEXT} characters"
    if anchor.node < 0 and not anchor.selector and not anchor.quote:
        return "the anchor needs a node, a selector or a quote"
    return None


def marker_problem(marker: Marker) -> str | None:
    """Why the hub refuses a marker, or None. Notes are plain text: kept as they are, never interpreted."""
    if not 0 < len(marker.id) <= MAX_MARKER_ID:
        return f"marker id must be 1 to {MAX_MARKER_ID} characters"
    if len(marker.note) > MAX_NOTE:
        return f"a note is at most {MAX_NOTE} characters"
    problem = anchor_problem(marker.anchor)
    if problem is not None:
        return problem
    anchor, points = marker.anchor, marker.points
    if len(points) > MAX_POINTS:
        return f"a drawing has at most {MAX_POINTS} points"
    if not all(0.0 <= x <= 1.0 and 0.0 <= y <= 1.0 for x, y in points):
        return "points are within 0..1 of the anchor's box"
    if marker.kind == "draw":
        if len(points) < 2:
            return "a drawing needs at least 2 points"
    elif points:
        return f"only drawings have points, not {marker.kind} markers"
    if marker.kind == "text":
        if not anchor.quote:
            return "a text marker needs the quote of the highlighted words"
        if (anchor.start, anchor.end) != (-1, -1) and not 0 <= anchor.start < anchor.end:
            return "a text marker's start and end are both -1, or 0 <= start < end"
    elif anchor.start != -1 or anchor.end != -1:
        return "only text markers have start and end"
    if marker.kind == "field" and anchor.node < 0 and not anchor.selector:
        return "a field marker needs the field's node or selector"
    return None


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL (default port left out), lowercased; None if it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None or parts.password is not None:
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != _DEFAULT_PORTS[scheme] else "")


def site_origins(site: str, extra_origins: Collection[str] = ()) -> set[str]:
    """Where agents may send the visitor: the session's site host over http and https, and ``extra_origins``."""
    allowed = {origin_of(f"{scheme}://{site}") for scheme in ("http", "https")}
    allowed |= {origin_of(origin) for origin in extra_origins}
    allowed.discard(None)
    return allowed  # type: ignore[return-value]


def navigation_problem(url: str, site: str, extra_origins: Collection[str] = ()) -> str | None:
    """Why an agent may not send the visitor to ``url``, or None when it is allowed."""
    if len(url) > MAX_TEXT:
        return f"the URL is longer than {MAX_TEXT} characters"
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F or c == "\\" for c in url):
        return "the URL has spaces, control characters or backslashes"
    origin = origin_of(url)
    if origin is None:
        return "only http and https URLs with a host (and no user name or password) are allowed"
    if origin not in site_origins(site, extra_origins):
        return f"{origin} is not one of this site's origins (see the site's navigation_origins)"
    return None
