"""Escalation to screen sharing and voice calls: the hub's rules, pure code, no I/O.

When the mirrored page is not enough, an agent asks the visitor to share a tab,
a window or their screen (``getDisplayMedia``), or offers a voice call. The
media go browser to browser over WebRTC; the hub only carries the signalling
(``signal`` frames) and decides who may send what to whom:

* A visitor is asked only after an agent's ``screen_request``, and nothing is
  shared without their click: ``screen_answer started`` is refused unless the
  visitor accepted a request first (the widget asks only from a click, which
  ``getDisplayMedia`` needs anyway).
* **Agents offer, the visitor answers.** Each agent connection in the session
  makes its own RTCPeerConnection to the visitor's sharing tab and sends the
  offer; the visitor's browser answers with its screen (and microphone) in it.
  That way the visitor never needs the list of agents, agents who join late (or
  whose console reloads) just offer again, and only one side ever offers, so
  two offers never cross (no "glare"). Adding a call to a share, or a share to
  a call, is the same agent offering again on the same connection.
* ``signal`` frames go only between the visitor's sharing tab and agent
  connections joined to the session, addressed by ``agent``: a small number the
  hub gives each agent connection of the session (never reused within it). An
  agent who leaves cannot receive anything more, and the visitor is told
  (``signal bye``) to close that agent's connection.
* Offers, answers and candidates are checked (size, shape) and rate limited,
  like every other frame.

Each method returns the frames to send as :class:`~cobrowse.sync.session.Outgoing`
values and appends what belongs in the timeline to the session's ``records``
(drained by the hub into ``cobrowse_events``). :func:`chat_text` gives each of
those records in plain words, for the conversation's chat.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Any

from . import protocol as p
from .ratelimit import TokenBucket
from .session import Audience, CobrowseSession, Outgoing, TimelineEntry

REQUEST_TIMEOUT = 60.0  # seconds the visitor has to answer a request
REQUEST_RATE, REQUEST_BURST = 1 / 20, 3  # requests one agent connection may make
SIGNAL_RATE, SIGNAL_BURST = 20.0, 120.0  # signal frames per sender (candidates come in bursts)
SDP_RATE, SDP_BURST = 0.5, 8.0  # offers and answers per sender (each up to MAX_SDP)
FAIL_REASONS = frozenset({"denied", "unsupported", "no_path", "error"})
MAX_MID = 64
MAX_UFRAG = 256
MAX_MLINE = 64

VISITOR_FRAMES = frozenset({p.ScreenAnswer, p.Signal})
AGENT_FRAMES = frozenset({p.ScreenRequest, p.ScreenStop, p.Signal})

_SDP_TEXT = re.compile(r"[\t\r\n\x20-\x7e\u00a0-\uffff]*")  # printable text and line ends only
_CANDIDATE_TEXT = re.compile(r"[\x20-\x7e]*")

IDLE, ACCEPTED, LIVE = "idle", "accepted", "live"
SCREEN, CALL = "screen", "call"
_KINDS = {  # media -> (requested, declined, started, stopped, failed) timeline kinds
    SCREEN: ("screen_share_requested", "screen_share_declined", "screen_share_started", "screen_share_stopped",
             "screen_share_failed"),
    CALL: ("call_requested", "call_declined", "call_started", "call_ended", "call_failed"),
}


# ----- settings ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScreenShareSettings:
    """What the service's ``[screenshare]`` section says (see docs/configuration.md)."""

    enabled: bool = True
    ice_servers: tuple[p.IceServer, ...] = ()  # none: host candidates only (loopback, a LAN)
    policy: str = "all"  # relay: TURN only (hides the visitor's and agents' addresses from each other)
    turn_secret: str = ""  # a TURN server's shared secret: time-limited credentials per session
    turn_ttl: float = 3600.0  # how long such credentials last

    def ice_config(self, session_id: str, now: float) -> p.IceConfig:
        servers = []
        for server in self.ice_servers:
            if self.turn_secret and not server.username and any(u.startswith(("turn:", "turns:"))
                                                                    for u in server.urls):
                username, credential = turn_credentials(self.turn_secret, session_id, now + self.turn_ttl)
                server = p.IceServer(urls=list(server.urls), username=username, credential=credential)
            servers.append(server)
        return p.IceConfig(servers=servers, policy="relay" if self.policy == "relay" else "all", session=session_id)


def turn_credentials(secret: str, session_id: str, expires: float) -> tuple[str, str]:
    """The TURN REST API's time-limited credentials (coturn ``use-auth-secret``)."""
    username = f"{int(expires)}:{session_id[:32]}"
    credential = base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()
    return username, credential


def settings_from_config(options: Any) -> ScreenShareSettings:
    """From ``Config.screenshare`` (any object with the same attributes)."""
    servers = tuple(p.IceServer(urls=list(s.urls), username=s.username, credential=s.credential)
                    for s in options.ice_servers)
    return ScreenShareSettings(enabled=options.enabled, ice_servers=servers, policy=options.ice_transport_policy,
                               turn_secret=options.turn_secret, turn_ttl=options.turn_ttl)


# ----- validation -------------------------------------------------------------------------------


def signal_problem(frame: p.Signal) -> str | None:
    """Why a signal frame cannot be relayed (None: it can)."""
    if frame.kind in ("offer", "answer"):
        if frame.candidate is not None:
            return f"an {frame.kind} carries no candidate"
        if not frame.sdp:
            return f"an {frame.kind} needs its sdp"
        if len(frame.sdp) > p.MAX_SDP:
            return f"the sdp is longer than {p.MAX_SDP} characters"
        if not frame.sdp.startswith("v=0") or not _SDP_TEXT.fullmatch(frame.sdp):
            return "the sdp is not a session description"
        return None
    if frame.sdp:
        return f"a {frame.kind} carries no sdp"
    if frame.kind == "bye":
        return "a bye carries no candidate" if frame.candidate is not None else None
    candidate = frame.candidate
    if candidate is None:
        return "a candidate frame needs its candidate"
    text = candidate.candidate
    if len(text) > p.MAX_CANDIDATE or not _CANDIDATE_TEXT.fullmatch(text):
        return "the candidate is too long or has characters it cannot have"
    if text and not text.startswith("candidate:"):
        return 'a candidate starts with "candidate:" (or is empty: the end of candidates)'
    if candidate.sdpMid is not None and (len(candidate.sdpMid) > MAX_MID
                                         or not _CANDIDATE_TEXT.fullmatch(candidate.sdpMid)):
        return "the candidate's sdpMid is not valid"
    if candidate.sdpMLineIndex is not None and not 0 <= candidate.sdpMLineIndex <= MAX_MLINE:
        return "the candidate's sdpMLineIndex is out of range"
    if candidate.usernameFragment is not None and (len(candidate.usernameFragment) > MAX_UFRAG
                                                   or not _CANDIDATE_TEXT.fullmatch(candidate.usernameFragment)):
        return "the candidate's usernameFragment is not valid"
    return None


# ----- state ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Request:
    key: str  # the asking agent's connection
    user_id: int
    name: str
    peer: int
    video: bool
    audio: bool
    expires: float

    @property
    def media(self) -> tuple[str, ...]:
        return tuple(m for m, wanted in ((SCREEN, self.video), (CALL, self.audio)) if wanted)

    @property
    def primary(self) -> str:
        return SCREEN if self.video else CALL


@dataclass(slots=True)
class Media:
    """The screen share, or the call: idle, accepted (the visitor is choosing / allowing) or live."""

    state: str = IDLE
    key: str = ""  # the agent connection whose request it answers (the call's other end)
    user_id: int = 0
    name: str = ""


@dataclass(slots=True)
class SessionScreen:
    pending: Request | None = None
    media: dict[str, Media] = field(default_factory=lambda: {SCREEN: Media(), CALL: Media()})
    tab: str | None = None  # the visitor tab that shares or calls (set on accepting)
    connection: object = None  # that tab's socket: its page holds the media, so its close ends them
    peers: dict[str, int] = field(default_factory=dict)  # agent connection key -> peer number
    next_peer: int = 1
    limits: dict[str, tuple[TokenBucket, TokenBucket, TokenBucket]] = field(default_factory=dict)
    # Who the visitor agreed to share with: the agents (user ids) in the session when
    # they accepted. Someone joining later sees nothing until the visitor agrees again.
    consented: set[int] = field(default_factory=set)

    def active(self) -> list[str]:
        return [m for m, state in self.media.items() if state.state != IDLE]

    def peer(self, key: str) -> int:
        number = self.peers.get(key)
        if number is None:
            number = self.peers[key] = self.next_peer
            self.next_peer += 1
        return number

    def key_of(self, peer: int) -> str | None:
        return next((k for k, n in self.peers.items() if n == peer), None)


class ScreenShares:
    """Every session's screen-share state, kept beside the sessions by the hub."""

    def __init__(self, settings: ScreenShareSettings | None = None) -> None:
        self.settings = settings or ScreenShareSettings()
        self._states: dict[str, SessionScreen] = {}

    def state(self, session: CobrowseSession) -> SessionScreen:
        state = self._states.get(session.id)
        if state is None:
            state = self._states[session.id] = SessionScreen()
        return state

    # ----- agents ---------------------------------------------------------------------

    def agent_frame(self, session: CobrowseSession, key: str, user_id: int, name: str, frame,
                    now: float) -> list[Outgoing]:
        """A ScreenRequest, ScreenStop or Signal of an agent connection joined to ``session``."""
        if type(frame) is p.ScreenRequest:
            return self._request(session, key, user_id, name, frame, now)
        if type(frame) is p.ScreenStop:
            return self._agent_stop(session, key, user_id, name, frame.media, now)
        return self._agent_signal(session, key, frame, now)

    def _request(self, session: CobrowseSession, key: str, user_id: int, name: str, frame: p.ScreenRequest,
                 now: float) -> list[Outgoing]:
        state = self.state(session)
        if not self.settings.enabled:
            return [_error(key, "disabled", "screen sharing is turned off on this service", "screen_request")]
        if not (frame.video or frame.audio):
            return [_error(key, "bad_frame", "ask for the screen (video), a call (audio) or both", "screen_request")]
        if state.pending is not None:
            return [_error(key, "screen_busy", f"waiting for the visitor to answer {state.pending.name}",
                           "screen_request")]
        wanted = [m for m, on in ((SCREEN, frame.video), (CALL, frame.audio)) if on]
        busy = [m for m in wanted if state.media[m].state != IDLE]
        if busy:
            what = "the screen is already shared" if busy[0] == SCREEN else "a call is already on"
            return [_error(key, "screen_busy", what, "screen_request")]
        if not self._bucket(state, key, now)[0].take(now):
            return [_error(key, "rate_limited", "too many requests; wait a little", "screen_request")]
        request = Request(key, user_id, name, state.peer(key), frame.video, frame.audio, now + REQUEST_TIMEOUT)
        state.pending = request
        _record(session, now, _KINDS[request.primary][0], user_id, agent=name, audio=frame.audio)
        return [*self._to_visitor(session, state, self.settings.ice_config(session.id, now)),
                *self._to_visitor(session, state, self._request_frame(session, request, now)),
                Outgoing(Audience.AGENTS, self._request_frame(session, request, now))]

    def _request_frame(self, session: CobrowseSession, request: Request, now: float) -> p.ScreenRequest:
        return p.ScreenRequest(session=session.id, audio=request.audio, video=request.video, by=request.name,
                               agent=request.peer, timeout=max(0.0, round(request.expires - now, 1)))

    def _agent_stop(self, session: CobrowseSession, key: str, user_id: int, name: str, media: str,
                    now: float) -> list[Outgoing]:
        state = self.state(session)
        out: list[Outgoing] = []
        request = state.pending
        if request is not None and (not media or media in request.media):
            out += self._withdraw(session, state, "withdrawn", now, by=name, actor=user_id)
        for m in (SCREEN, CALL) if not media else (media,):
            if state.media[m].state != IDLE:
                out += self._stop(session, state, m, now, by="agent", reason="agent", agent=name, actor=user_id)
        return out

    def _agent_signal(self, session: CobrowseSession, key: str, frame: p.Signal, now: float) -> list[Outgoing]:
        state = self.state(session)
        if frame.kind == "answer":
            return [_error(key, "bad_signal", "agents offer; only the visitor answers", "signal")]
        if state.tab is None or not state.active():
            # Trailing candidates after a stop are normal; an offer is a mistake.
            return [] if frame.kind != "offer" else [
                _error(key, "not_sharing", "the visitor is not sharing their screen or on a call", "signal")]
        problem = signal_problem(frame)
        if problem is not None:
            return [_error(key, "too_large" if len(frame.sdp) > p.MAX_SDP else "bad_signal", problem, "signal")]
        participant = session.participants.get(key)
        if participant is None or participant.user_id not in state.consented:
            return [] if frame.kind != "offer" else [_error(
                key, "not_consented", "the visitor agreed to share with the agents there at the time; "
                "ask them again to include you", "signal")]
        if not self._allow_signal(state, key, frame, now):
            return [_error(key, "rate_limited", "too many signal frames; slow down", "signal")]
        relayed = p.Signal(kind=frame.kind, sdp=frame.sdp, candidate=frame.candidate, session=session.id,
                           agent=state.peer(key))
        return [Outgoing(Audience.VISITOR_TAB, relayed, state.tab)]

    def _allow_signal(self, state: SessionScreen, sender: str, frame: p.Signal, now: float) -> bool:
        _, signals, sdps = self._bucket(state, sender, now)
        return signals.take(now) and (not frame.sdp or sdps.take(now))

    def _bucket(self, state: SessionScreen, sender: str, now: float) -> tuple[TokenBucket, TokenBucket, TokenBucket]:
        """(requests, signal frames, offers and answers) of one sender: an agent key, or "tab:<id>"."""
        buckets = state.limits.get(sender)
        if buckets is None:
            buckets = state.limits[sender] = (TokenBucket(REQUEST_RATE, REQUEST_BURST, now),
                                              TokenBucket(SIGNAL_RATE, SIGNAL_BURST, now),
                                              TokenBucket(SDP_RATE, SDP_BURST, now))
        return buckets

    def agent_joined(self, session: CobrowseSession, key: str, now: float) -> list[Outgoing]:
        """An agent connection joined (or rejoined): what it needs to take part (it offers if a share is live)."""
        state = self._states.get(session.id)
        if state is None:
            return []
        state.peer(key)
        out: list[Outgoing] = []
        active = state.active()
        if active or state.pending is not None:
            out.append(Outgoing(Audience.AGENT, self.settings.ice_config(session.id, now), key))
        for m in active:
            answer = "started" if state.media[m].state == LIVE else "accepted"
            out.append(Outgoing(Audience.AGENT, p.ScreenAnswer(state=answer, media=m, session=session.id), key))
        if state.pending is not None:
            out.append(Outgoing(Audience.AGENT, self._request_frame(session, state.pending, now), key))
        return out

    def agent_left(self, session: CobrowseSession, key: str, now: float) -> list[Outgoing]:
        """An agent connection left the session (or disconnected): it gets nothing more."""
        state = self._states.get(session.id)
        if state is None:
            return []
        out: list[Outgoing] = []
        peer = state.peers.pop(key, None)
        state.limits.pop(key, None)
        if peer is not None and state.tab is not None and state.active():
            out.append(Outgoing(Audience.VISITOR_TAB, p.Signal(kind="bye", session=session.id, agent=peer),
                                state.tab))
        if state.pending is not None and state.pending.key == key:
            out += self._withdraw(session, state, "left", now)
        call = state.media[CALL]
        if call.state != IDLE and call.key == key:
            out += self._stop(session, state, CALL, now, by="hub", reason="left", agent=call.name)
        if state.media[SCREEN].state != IDLE and not any(k != key for k in session.participants):
            # Nobody left to see it.
            out += self._stop(session, state, SCREEN, now, by="hub", reason="left")
        return out

    # ----- the visitor ------------------------------------------------------------------

    def visitor_frame(self, session: CobrowseSession, tab: str, connection: object, frame,
                      now: float) -> list[Outgoing]:
        """A ScreenAnswer or Signal from one of the visitor's tabs (``connection``: its socket)."""
        state = self.state(session)
        if type(frame) is p.Signal:
            return self._visitor_signal(session, state, tab, frame, now)
        return self._answer(session, state, tab, connection, frame, now)

    def _answer(self, session: CobrowseSession, state: SessionScreen, tab: str, connection: object,
                frame: p.ScreenAnswer, now: float) -> list[Outgoing]:
        answer = frame.state
        request = state.pending
        if answer in ("accepted", "declined") or (answer == "failed" and not frame.media and request is not None):
            # The answer to the pending request (any tab may give it until one tab shares).
            if request is None or (state.tab is not None and tab != state.tab):
                return []
            state.pending = None
            if answer == "accepted":
                state.tab, state.connection = tab, connection
                state.consented = {part.user_id for part in session.participants.values()}
                for m in request.media:
                    state.media[m] = Media(ACCEPTED, request.key, request.user_id, request.name)
                relayed = p.ScreenAnswer(state="accepted", session=session.id)
            elif answer == "declined":
                _record(session, now, _KINDS[request.primary][1], None, reason="declined", agent=request.name)
                relayed = p.ScreenAnswer(state="declined", reason="declined", session=session.id)
            else:
                reason = _fail_reason(frame.reason)
                _record(session, now, _KINDS[request.primary][4], None, reason=reason, agent=request.name)
                relayed = p.ScreenAnswer(state="failed", media=request.primary, reason=reason, session=session.id)
            # Every agent learns the answer; the visitor's other tabs close their prompt.
            return [Outgoing(Audience.AGENTS, relayed), Outgoing(Audience.VISITOR, relayed)]
        if tab != state.tab:
            if answer == "started":
                return [Outgoing(Audience.VISITOR_TAB, p.Error(
                    code="not_requested", message="no agent asked for this, or it was not accepted here",
                    re="screen_answer"), tab)]
            return []
        media = [frame.media] if frame.media else state.active()
        out: list[Outgoing] = []
        for m in media:
            current = state.media[m]
            if answer == "started":
                if current.state == IDLE:
                    out.append(Outgoing(Audience.VISITOR_TAB, p.Error(
                        code="not_requested", message=f"no agent asked for the {m}", re="screen_answer"), tab))
                    continue
                if current.state == ACCEPTED:
                    current.state = LIVE
                    agents = sorted({part.viewer.name for part in session.participants.values()})
                    _record(session, now, _KINDS[m][2], None, tab=tab, agent=current.name, agents=agents)
                out.append(Outgoing(Audience.AGENTS, p.ScreenAnswer(state="started", media=m, session=session.id)))
            elif current.state == IDLE:
                continue
            elif answer == "stopped":
                out += self._stop(session, state, m, now, by="visitor", reason="visitor", tell_visitor=False)
            elif answer == "failed":
                reason = _fail_reason(frame.reason)
                state.media[m] = Media()
                _record(session, now, _KINDS[m][4], None, reason=reason, agent=current.name)
                out.append(Outgoing(Audience.AGENTS, p.ScreenAnswer(state="failed", media=m, reason=reason,
                                                                    session=session.id)))
            elif m == CALL and answer in ("muted", "unmuted"):
                out.append(Outgoing(Audience.AGENTS, p.ScreenAnswer(state=answer, media=m, session=session.id)))
        self._release(state)
        return out

    def _visitor_signal(self, session: CobrowseSession, state: SessionScreen, tab: str, frame: p.Signal,
                        now: float) -> list[Outgoing]:
        if tab != state.tab or not state.active():
            return []  # a stale tab, or candidates after a stop
        if frame.kind == "offer":
            return [Outgoing(Audience.VISITOR_TAB, p.Error(code="bad_signal", message="agents offer; answer them",
                                                           re="signal"), tab)]
        key = state.key_of(frame.agent)
        if key is None or key not in session.participants:
            return []  # that agent left: its connection is closing anyway
        problem = signal_problem(frame)
        if problem is not None:
            code = "too_large" if len(frame.sdp) > p.MAX_SDP else "bad_signal"
            return [Outgoing(Audience.VISITOR_TAB, p.Error(code=code, message=problem, re="signal"), tab)]
        if not self._allow_signal(state, "tab:" + tab, frame, now):
            return [Outgoing(Audience.VISITOR_TAB, p.Error(code="rate_limited", message="too many signal frames",
                                                           re="signal"), tab)]
        relayed = p.Signal(kind=frame.kind, sdp=frame.sdp, candidate=frame.candidate, session=session.id)
        return [Outgoing(Audience.AGENT, relayed, key)]

    def visitor_restore(self, session: CobrowseSession, tab: str, now: float) -> list[p.Message]:
        """For a visitor tab that connects (a page load): a request still waiting for an answer."""
        state = self._states.get(session.id)
        if state is None or state.pending is None or (state.tab is not None and state.tab != tab):
            return []
        return [self.settings.ice_config(session.id, now), self._request_frame(session, state.pending, now)]

    def visitor_gone(self, session: CobrowseSession, tab: str, connection: object, now: float) -> list[Outgoing]:
        """A visitor socket closed: if its page held the share or the call, they ended with it."""
        state = self._states.get(session.id)
        if state is None or state.connection is None or state.connection is not connection:
            return []
        out: list[Outgoing] = []
        for m in state.active():
            out += self._stop(session, state, m, now, by="hub", reason="disconnected", tell_visitor=False)
        return out

    # ----- time and the end -----------------------------------------------------------------

    def tick(self, session: CobrowseSession, now: float) -> list[Outgoing]:
        state = self._states.get(session.id)
        if state is None or state.pending is None or state.pending.expires > now:
            return []
        return self._withdraw(session, state, "timeout", now)

    def session_ended(self, session: CobrowseSession, now: float) -> list[Outgoing]:
        """The session ended (its ``ended`` frame tells both sides): record what it ended, forget it."""
        state = self._states.pop(session.id, None)
        if state is None:
            return []
        if state.pending is not None:
            _record(session, now, _KINDS[state.pending.primary][1], None, reason="session_ended",
                    agent=state.pending.name)
        for m in state.active():
            _record(session, now, _KINDS[m][3], None, by="hub", reason="session_ended")
        return []

    # ----- shared steps ----------------------------------------------------------------------

    def _to_visitor(self, session: CobrowseSession, state: SessionScreen, message: p.Message) -> list[Outgoing]:
        # Once a tab shares or calls, everything goes to it (the media are on its page); before, to every tab.
        if state.tab is not None:
            return [Outgoing(Audience.VISITOR_TAB, message, state.tab)]
        return [Outgoing(Audience.VISITOR, message)]

    def _withdraw(self, session: CobrowseSession, state: SessionScreen, reason: str, now: float, by: str = "",
                  actor: int | None = None) -> list[Outgoing]:
        request = state.pending
        if request is None:
            return []
        state.pending = None
        _record(session, now, _KINDS[request.primary][1], actor, reason=reason, agent=request.name)
        stop = p.ScreenStop(session=session.id, media="" if request.video and request.audio else request.primary,
                            by=by, reason=reason)
        return [*self._to_visitor(session, state, stop), Outgoing(Audience.AGENTS, stop)]

    def _stop(self, session: CobrowseSession, state: SessionScreen, media: str, now: float, *, by: str,
              reason: str, agent: str = "", actor: int | None = None, tell_visitor: bool = True) -> list[Outgoing]:
        current = state.media[media]
        state.media[media] = Media()
        detail: dict[str, Any] = {"by": by, "reason": reason}
        if agent:
            detail["agent"] = agent
        if current.state == LIVE:
            _record(session, now, _KINDS[media][3], actor, **detail)
        else:  # accepted, never started: the visitor was still choosing
            _record(session, now, _KINDS[media][1], actor, reason=reason, agent=current.name)
        out: list[Outgoing] = []
        if by == "visitor":
            out.append(Outgoing(Audience.AGENTS, p.ScreenAnswer(state="stopped", media=media, session=session.id)))
        else:
            stop = p.ScreenStop(session=session.id, media=media, by=agent if by == "agent" else "", reason=reason)
            if tell_visitor and state.tab is not None:
                out.append(Outgoing(Audience.VISITOR_TAB, stop, state.tab))
            out.append(Outgoing(Audience.AGENTS, stop))
        self._release(state)
        return out

    def _release(self, state: SessionScreen) -> None:
        if not state.active():
            state.tab = None
            state.connection = None


def _record(session: CobrowseSession, now: float, kind: str, actor: int | None, **detail: Any) -> None:
    session.records.append(TimelineEntry(now, kind, actor, detail))


def _error(key: str, code: str, message: str, re_: str) -> Outgoing:
    return Outgoing(Audience.AGENT, p.Error(code=code, message=message, re=re_), key)


def _fail_reason(reason: str) -> str:
    return reason if reason in FAIL_REASONS else "error"


# ----- the chat's words ---------------------------------------------------------------------------

_FAILED = {
    "denied": "permission to share was not given",
    "unsupported": "this browser cannot do it",
    "no_path": "no network connection could be made between the visitor's browser and the agent's",
    "error": "something went wrong in the browser",
}
_STOPPED = {
    "visitor": " by the visitor",
    "agent": " by {agent}",
    "left": " because {agent} left",
    "disconnected": " because the visitor's page closed or lost its connection",
    "session_ended": " because the co-browsing session ended",
}


def chat_text(entry: TimelineEntry) -> str | None:
    """A screen-share timeline record in plain words, for the conversation (a chat ``event`` line); None: not ours.

    The request's line says, to the visitor, what will happen if they agree.
    """
    d = entry.detail
    agent = str(d.get("agent") or "The agent")
    kind = entry.kind
    if kind == "screen_share_requested":
        text = (f"{agent} asked to see your screen. If you agree, your browser asks what to share: one tab, "
                "one window or your whole screen. Only the support agents in this session see it, nothing is "
                "installed, and you can stop sharing at any time.")
        if d.get("audio"):
            text += " They also offered a voice call, which uses your microphone."
        return text
    if kind == "call_requested":
        return (f"{agent} offered a voice call. If you accept, your browser asks to use your microphone. "
                "You can mute or hang up at any time, and the chat goes on.")
    what = "Screen sharing" if kind.startswith("screen_share") else "The voice call"
    if kind.endswith("_declined"):
        reason = d.get("reason")
        if reason == "timeout":
            return f"{agent}'s request got no answer in time. Nothing was shared."
        if reason in ("withdrawn", "left"):
            return f"{agent}'s request was withdrawn. Nothing was shared."
        if reason == "declined":
            return f"{what} was declined. Nothing was shared."
        return f"{what} did not start. Nothing was shared."
    if kind.endswith("_started"):
        if kind == "call_started":
            return f"The voice call with {agent} started."
        names = list(d.get("agents") or [])
        who = ", ".join(names) if names else "the support agents in this session"
        return f"Screen sharing started. {who} can see what the visitor shares."
    if kind in ("screen_share_stopped", "call_ended"):
        reason = str(d.get("reason"))
        if reason == "left" and not d.get("agent"):
            how = " because no agent is left in the session"
        else:
            how = _STOPPED.get(reason, "").format(agent=agent)
        end = "Screen sharing stopped" if kind == "screen_share_stopped" else "The voice call ended"
        return f"{end}{how}."
    if kind.endswith("_failed"):
        why = _FAILED.get(str(d.get("reason")), _FAILED["error"])
        return f"{what} could not start: {why}. The chat and co-browsing go on."
    return None
