"""The hub: the websocket I/O shell around the session state machine.

Visitors connect on the site's own origin (``<prefix>ws``); agents connect
from the console. Every frame is decoded into its typed definition first:
a bad frame gets an ``error`` frame back and is counted, and the connection
goes on (only a flood of them closes it). Frames out go through the broker,
encoded once however many agents receive them, and each connection writes
from its own bounded outbox so one slow agent never holds up the rest.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import msgspec
from aiohttp import WSMsgType, web

from . import protocol as p
from .chat import AGENT_FRAMES as CHAT_AGENT_FRAMES
from .chat import VISITOR_FRAMES as CHAT_VISITOR_FRAMES
from .chat import HubChat, VisitorChat
from .direct import DirectWebSocketResponse
from .broker import QUEUE_TOPIC, Broker, agent_topic, agents_topic, visitor_tab_topic, visitor_topic
from .ratelimit import KeyedLimiter, TokenBucket
from . import screenshare
from .screenshare import ScreenShares, ScreenShareSettings
from ..proxy.headers import forwarded_client
from .session import Audience, CobrowseSession, EndReason, Outgoing, TimelineEntry

log = logging.getLogger("cobrowse.hub")

CODE_TTL = 600.0  # a share code is good for ten minutes
HELLO_TIMEOUT = 10.0
MAX_BAD_FRAMES = 50  # per connection, before we stop listening to it
LASER_RATE, LASER_BURST = 40.0, 80.0  # laser frames follow the cursor (~30/s): a bucket of their own
_FRAME_HEAD_16 = struct.Struct("!BBH").pack  # FIN + text opcode, length 126..65535 (RFC 6455 5.2)
_FRAME_HEAD_64 = struct.Struct("!BBQ").pack
# A tab's events are acknowledged at once when it had no ack for this long, else
# together at the end of the interval: acks are cumulative (like TCP's), and one
# per frame would be a third of the hub's writes for a visitor typing away.
ACK_INTERVAL = 0.25
TICK_SLICE = 200  # sessions looked after per callback of the 1 s housekeeping tick
OUTBOX_LIMIT = 64 * 1024 * 1024  # bytes queued for one slow connection before it is dropped
ENDED_MEMORY = 24 * 3600.0  # how long an ended session's resume token stays refused
AUTH_RECHECK = 60.0  # seconds between checks that the connected agents' logins still hold (joins: at once)
QUEUE_INTERVAL = 0.25  # at most this often the whole queue goes to every watching agent
SHARE_RATE, SHARE_BURST = 1 / 30, 5  # new sessions one visitor connection may start


@dataclass(frozen=True, slots=True)
class AgentIdentity:
    user_id: int
    name: str
    role: str  # agent | supervisor | admin


class SessionStore(Protocol):
    """Where session starts, ends and participants are recorded (the database)."""

    async def session_started(self, session: CobrowseSession, url: str) -> None: ...
    async def session_ended(self, session_id: str, reason: str) -> None: ...
    async def end_reason(self, session_id: str) -> str | None:
        """Why a recorded session ended; None while open or unknown (asked on resuming one this hub does not hold)."""
    async def session_resumed(self, session_id: str) -> None:
        """A session this hub did not hold goes on (after a restart): its record is open again."""
    async def participant_joined(self, session_id: str, user_id: int, role: str) -> None: ...
    async def participant_left(self, session_id: str, user_id: int) -> None: ...
    async def record_events(self, session_id: str, events: list[TimelineEntry]) -> None:
        """The session's timeline: pages visited, markers, control changes, commands."""


Authenticate = Callable[[web.Request], Awaitable[AgentIdentity | None]]
# The same check for many requests at once (one database query for every agent connected).
AuthenticateMany = Callable[[list[web.Request]], Awaitable[list[AgentIdentity | None]]]
# A site host -> the origins agents may send its visitors to, besides the site's own
# (http and https on the session's host are always allowed).
NavigationOrigins = Callable[[str], Iterable[str]]


class Connection:
    """One websocket: frames go straight to the socket when nothing is waiting, else to an outbox
    drained by the connection's own writer task.

    Writing at once is what a relay should do with a frame it cannot batch: the
    outbox and its task cost two task switches and an event per frame, a third
    of the hub's CPU per relayed message. The outbox is still there for what
    cannot go at once: a socket whose kernel buffer is full (a slow reader),
    compressed frames (aiohttp's compressor keeps the stream state), and
    anything behind those (frames never overtake each other).
    """

    __slots__ = ("ws", "outbox", "queued", "wake", "writer", "unsubscribers", "named", "closed", "peer",
                 "transport", "sending", "frame_writer", "loop", "ack_seq", "ack_sent", "ack_timer", "held")

    def __init__(self, ws: web.WebSocketResponse, peer: str, transport: asyncio.BaseTransport | None = None) -> None:
        self.ws = ws
        self.transport = transport
        self.outbox: deque[bytes] = deque()
        self.queued = 0
        self.wake = asyncio.Event()
        self.writer = asyncio.ensure_future(self._write())
        self.unsubscribers: list[Callable[[], None]] = []
        # Subscriptions a feature drops on its own (a chat's topics), apart from the session's.
        self.named: dict[str, Callable[[], None]] = {}
        self.closed = False
        self.peer = peer
        self.sending = False  # the writer task is inside a send: frames behind it wait their turn
        writer = getattr(ws, "_writer", None)  # aiohttp's: its state says when not to write past it
        ok = all(hasattr(writer, name) for name in ("compress", "_closing", "transport"))
        self.frame_writer = writer if ok else None  # (an aiohttp that changed: always through the outbox)
        self.loop = asyncio.get_running_loop()
        self.ack_seq = -1  # the seq the next ack to this (visitor) socket carries
        self.ack_sent = -ACK_INTERVAL
        self.ack_timer: asyncio.TimerHandle | None = None
        self.held: list[bytes] | None = None  # frames waiting behind an answer being prepared (see hold)

    def deliver(self, frame: bytes) -> None:
        if self.closed:
            return
        if self.held is not None:
            self.held.append(frame)
            return
        if self.ack_timer is not None:
            # A waiting ack goes first: frames keep the order they were made in
            # (an ack must never arrive after the `ended` of its session, say).
            self.ack_timer.cancel()
            self._send_ack()
        if not self.outbox and not self.sending and self._write_now(frame):
            return
        self.outbox.append(frame)
        self.queued += len(frame)
        if self.queued > OUTBOX_LIMIT:
            log.warning("dropping %s: %d bytes queued and not read", self.peer, self.queued)
            self.closed = True
            self.outbox.clear()
            self.queued = 0
            if self.transport is not None:
                # It reads nothing, so no closing handshake would get through: cut it off,
                # and its handler ends (the agent leaves, the viewers list is right again).
                self.writer.cancel()
                self.transport.abort()
            else:
                asyncio.ensure_future(self.ws.close(code=1013, message=b"too slow"))
            return
        self.wake.set()

    def _write_now(self, frame: bytes) -> bool:
        """Write one text frame to the socket if it can go now, uncompressed; False to queue it."""
        writer = self.frame_writer
        if writer is None or writer.compress or writer._closing:
            return False
        transport = writer.transport
        if transport.is_closing() or transport.get_write_buffer_size():
            return False
        size = len(frame)
        if size < 126:
            transport.write(bytes((0x81, size)) + frame)
        elif size < 65536:
            transport.write(_FRAME_HEAD_16(0x81, 126, size) + frame)
        else:
            transport.writelines((_FRAME_HEAD_64(0x81, 127, size), frame))
        return True

    def send(self, message: p.Message) -> None:
        self.deliver(p.encode(message))

    def hold(self) -> bool:
        """Frames delivered from now on wait until ``release``: for an answer that must reach the
        client before them (a chat history read from the database). False if already holding."""
        if self.held is not None:
            return False
        self.held = []
        return True

    def release(self, first: bytes | None = None) -> None:
        """``first`` goes out, then what waited, in order."""
        held, self.held = self.held or [], None
        if first is not None:
            self.deliver(first)
        for frame in held:
            self.deliver(frame)

    def ack(self, seq: int) -> None:
        """Acknowledge a visitor's events up to ``seq``: now, or with the others of this interval."""
        self.ack_seq = seq
        if self.ack_timer is not None:
            return  # one is due and will carry this seq too
        wait = self.ack_sent + ACK_INTERVAL - self.loop.time()
        if wait > 0:
            self.ack_timer = self.loop.call_later(wait, self._send_ack)
        else:
            self._send_ack()

    def _send_ack(self) -> None:
        self.ack_timer = None
        self.ack_sent = self.loop.time()
        self.deliver(p.encode(p.Ack(seq=self.ack_seq)))

    async def _write(self) -> None:
        ws = self.ws
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                self.sending = True
                while self.outbox:
                    frame = self.outbox.popleft()
                    self.queued -= len(frame)
                    await ws.send_frame(frame, WSMsgType.TEXT)
                self.sending = False
        except (ConnectionError, asyncio.CancelledError, RuntimeError):
            pass

    def subscribe(self, broker: Broker, topic: str) -> None:
        self.unsubscribers.append(broker.subscribe(topic, self.deliver))

    def unsubscribe(self) -> None:
        for unsubscribe in self.unsubscribers:
            unsubscribe()
        self.unsubscribers.clear()

    def subscribe_named(self, broker: Broker, topic: str) -> None:
        if topic not in self.named:
            self.named[topic] = broker.subscribe(topic, self.deliver)

    def unsubscribe_named(self, topic: str) -> None:
        unsubscribe = self.named.pop(topic, None)
        if unsubscribe is not None:
            unsubscribe()

    async def close(self) -> None:
        self.closed = True
        if self.ack_timer is not None:
            self.ack_timer.cancel()
            self.ack_timer = None
        self.unsubscribe()
        for topic in list(self.named):
            self.unsubscribe_named(topic)
        # Let what is queued go out first (an `ended` frame, say), briefly.
        if self.outbox and not self.ws.closed:
            self.wake.set()
            for _ in range(20):
                if not self.outbox:
                    break
                await asyncio.sleep(0.01)
        self.writer.cancel()


class Hub:
    def __init__(self, broker: Broker, secret: bytes, *, store: SessionStore | None = None,
                 idle_timeout: float = 1800.0, clock: Callable[[], float] = time.time,
                 navigation_origins: NavigationOrigins | None = None,
                 screenshare: ScreenShareSettings | None = None,
                 max_visitor_sockets_per_address: int = 0, trust_forwarded: bool = False) -> None:
        self.broker = broker
        self.screens = ScreenShares(screenshare)  # screen sharing and calls (cobrowse/sync/screenshare.py)
        self.navigation_origins = navigation_origins
        self._secret = secret
        self.store = store
        self.idle_timeout = idle_timeout
        self.clock = clock
        self.sessions: dict[str, CobrowseSession] = {}
        self._ended: dict[str, tuple[str, float]] = {}  # session id -> (reason, when): not to be resumed
        self._codes: dict[str, tuple[str, float]] = {}  # code -> (session id, expires)
        self._code_of: dict[str, str] = {}  # session id -> its code (while the code lasts)
        self._code_guesses = KeyedLimiter(rate=10 / 600, burst=10)  # per agent and per address
        self.bad_frames = 0  # counted for monitoring
        self._ticker: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()
        self._connections: set[Connection] = set()
        self._queue_timer: asyncio.TimerHandle | None = None
        self._tick_slice: asyncio.Handle | None = None
        self._queue_sent = -QUEUE_INTERVAL  # loop time of the last queue published
        self._queue_watchers: set[Connection] = set()  # agent connections here that sent `watch`
        self._logins: dict[Connection, _Login] = {}  # agent connections whose login is checked again
        self._agent_sockets: dict[str, _AgentSocket] = {}  # key -> what the hub knows of that agent socket
        self._login_checks: asyncio.Task | None = None
        # Chat (cobrowse/sync/chat.py), when the service has a chat store: set by the server.
        self.chat: HubChat | None = None
        self.chat_links: dict[str, str] = {}  # co-browse session id -> its conversation id
        # Open visitor sockets per address: one address opening thousands (each
        # costs memory and a share of the loop) is a script, not visitors.
        self.max_visitor_sockets_per_address = max_visitor_sockets_per_address
        self.trust_forwarded = trust_forwarded
        self._visitor_sockets: dict[str, int] = {}

    # ----- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        self._ticker = asyncio.get_running_loop().call_later(1.0, self._tick)
        if self.chat is not None:
            self.chat.start()

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self._tick_slice is not None:
            self._tick_slice.cancel()
        if self._queue_timer is not None:
            self._queue_timer.cancel()
            self._queue_timer = None
        if self._login_checks is not None:
            self._login_checks.cancel()
            self._login_checks = None
        # A stop is usually a restart: sessions are not ended, clients are told
        # to come back (1012) and resume with their tokens.
        if self.chat is not None:
            await self.chat.stop()
        for connection in list(self._connections):
            await connection.close()
            await connection.ws.close(code=1012, message=b"service restart")
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _tick(self) -> None:
        now = self.clock()
        loop = asyncio.get_running_loop()
        self._ticker = loop.call_later(1.0, self._tick)
        for code, (session_id, expires) in list(self._codes.items()):
            if expires < now:
                del self._codes[code]
                if self._code_of.get(session_id) == code:
                    del self._code_of[session_id]
        for session_id, (_, ended) in list(self._ended.items()):
            if now - ended > ENDED_MEMORY:
                del self._ended[session_id]
        self._code_guesses.sweep(now)
        self._tick_sessions(list(self.sessions.values()), 0, now)

    def _tick_sessions(self, sessions: list[CobrowseSession], start: int, now: float) -> None:
        """Housekeeping of sessions[start:start + TICK_SLICE]; the rest in the next callbacks.

        In slices because one pass over thousands of sessions in a single callback
        holds every socket up meanwhile (10,000 sessions: ~100 ms each second).
        """
        self._tick_slice = None
        for session in sessions[start:start + TICK_SLICE]:
            if self.sessions.get(session.id) is not session:
                continue  # ended meanwhile
            out = session.tick(now, self.idle_timeout)
            if out or session.records:
                self._route(session, out)
            screen = self.screens.tick(session, now)
            if screen:
                self._screen_out(session, screen)
            if session.ended is not None:
                self._persist(self.store.session_ended(session.id, session.ended.value) if self.store else None)
                self._forget(session)
        if start + TICK_SLICE < len(sessions):
            self._tick_slice = asyncio.get_running_loop().call_soon(
                self._tick_sessions, sessions, start + TICK_SLICE, now)

    # ----- resume tokens and share codes ------------------------------------------

    def resume_token(self, session_id: str, visitor_id: str) -> str:
        mac = hmac.new(self._secret, f"resume|{session_id}|{visitor_id}".encode(), hashlib.sha256).digest()[:18]
        return f"{session_id}.{base64.urlsafe_b64encode(mac).decode()}"

    def check_resume(self, token: str, visitor_id: str) -> str | None:
        session_id, _, _ = token.partition(".")
        expected = self.resume_token(session_id, visitor_id)
        return session_id if session_id and hmac.compare_digest(expected.encode(), token.encode()) else None

    def _new_code(self, session_id: str, now: float) -> tuple[str, float]:
        while True:
            code = f"{secrets.randbelow(10**6):06d}"
            if code not in self._codes:
                expires = now + CODE_TTL
                self._codes[code] = (session_id, expires)
                self._code_of[session_id] = code
                return code, expires

    # ----- visitors -------------------------------------------------------------------

    async def visitor_socket(self, request: web.Request) -> web.StreamResponse:
        peer = self.visitor_address(request)
        open_here = self._visitor_sockets.get(peer, 0)
        if self.max_visitor_sockets_per_address and open_here >= self.max_visitor_sockets_per_address:
            # Refused before the upgrade: the widget backs off (up to 10 s) and tries again.
            log.warning("refused a visitor socket from %s: %d open already (sessions.max_visitor_sockets_per_address;"
                        " behind a TLS terminator, server.trust_forwarded makes each visitor's own address count)",
                        peer, open_here)
            refused = web.Response(status=429, text="too many open connections from this address\n")
            # The proxy handed this connection to our app for good: kept alive, its
            # next requests would reach the app without passing the proxy.
            refused.force_close()
            return refused
        self._visitor_sockets[peer] = open_here + 1
        try:
            return await self._visitor_socket(request, peer)
        finally:
            left = self._visitor_sockets.pop(peer) - 1
            if left:
                self._visitor_sockets[peer] = left

    def visitor_address(self, request: web.Request) -> str:
        """The visitor's address. Visitors reach the hub through our proxy (see
        forwarded_client)."""
        return forwarded_client(request.headers.get("X-Forwarded-For"), request.remote or "?", self.trust_forwarded)

    def agent_address(self, request: web.Request) -> str:
        """The agent's address. Agents reach the console's own listener, not our
        proxy: X-Forwarded-For there is whatever the client sent, unless a trusted
        TLS terminator in front added the last entry."""
        # Every line of the header: a terminator may add its own line after the client's.
        forwarded = ",".join(request.headers.getall("X-Forwarded-For", ())) if self.trust_forwarded else ""
        if forwarded:
            return forwarded.split(",")[-1].strip() or "?"
        return request.remote or "?"

    async def _visitor_socket(self, request: web.Request, peer: str) -> web.WebSocketResponse:
        ws = DirectWebSocketResponse(max_msg_size=p.MAX_VISITOR_FRAME, compress=True, heartbeat=30.0)
        await ws.prepare(request)
        _send_uncompressed(ws)
        connection = Connection(ws, f"visitor {peer}", request.transport)
        self._connections.add(connection)
        site = request.headers.get("X-Forwarded-Host") or request.host
        state = _VisitorState(peer)
        limiter = TokenBucket(rate=100, burst=400, now=self.clock())
        try:
            hello = await self._first_frame(ws, connection, p.visitor_decoder, p.VisitorHello)
            if hello is None:
                return ws
            await self._recall_end(hello)
            self._visitor_hello(connection, state, hello, site)

            def handle_now(data) -> bool:
                # The common frames (events, pointer, scroll...) are handled as they
                # arrive; anything that waits or answers an error takes the loop below.
                if _is_chat(data) or not limiter.take(self.clock()):
                    return False
                try:
                    frame = p.visitor_decoder.decode(data)
                except (msgspec.MsgspecError, RecursionError):  # (the loop below answers bad_frame)
                    frame = None
                if frame is None or type(frame) in CHAT_VISITOR_FRAMES:
                    limiter.tokens += 1  # not taken after all: the loop below counts it
                    return False
                self._visitor_frame(connection, state, frame, site)
                return True

            while True:
                message = await ws.receive_or_handle(handle_now)
                if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                if not limiter.take(self.clock()):
                    if not await _waited_for(limiter, message.data, self.clock):
                        connection.send(p.Error(code="rate_limited", message="too many frames; slow down"))
                        continue
                frame = self._decode(connection, p.visitor_decoder, message.data)
                if frame is None:
                    state.bad_frames += 1
                    if state.bad_frames > MAX_BAD_FRAMES:
                        await ws.close(code=1008, message=b"too many bad frames")
                        break
                    continue
                if type(frame) in CHAT_VISITOR_FRAMES:
                    # Stored before anyone is told: frames of one socket are handled in order.
                    await self._chat_visitor_frame(connection, state, frame, site)
                    continue
                self._visitor_frame(connection, state, frame, site)
        finally:
            await self._visitor_gone(connection, state)
        return ws

    async def _recall_end(self, hello: p.VisitorHello) -> None:
        """Before a resume of a session this hub does not hold: has it ended for good?

        A tab that missed the end (loading a page when the visitor clicked stop, say)
        still holds the token. This hub remembers recent ends, but not across a
        restart nor past ENDED_MEMORY: the record does. Only an end by shutdown
        (this hub's or a crashed one's) lets the session go on.
        """
        if not hello.resume or self.store is None:
            return
        session_id = self.check_resume(hello.resume, hello.visitor[:64])
        if session_id is None or session_id in self.sessions or session_id in self._ended:
            return
        try:
            reason = await self.store.end_reason(session_id)
        except Exception:
            # The token proves the consent; a stale tab resuming while the database is
            # away, right after a restart, is a triple coincidence: resume (and say so).
            log.exception("could not look up how session %s ended; resuming it", session_id)
            return
        if reason is not None and reason != EndReason.SERVER_SHUTDOWN.value and session_id not in self.sessions:
            self._ended[session_id] = (reason, self.clock())

    def _visitor_hello(self, connection: Connection, state: "_VisitorState", hello: p.VisitorHello,
                       site: str) -> None:
        state.visitor = hello.visitor[:64]
        state.tab = hello.tab[:64]
        state.name = hello.name[:p.MAX_TEXT]
        state.url, state.title = hello.url, hello.title
        now = self.clock()
        session = None
        session_id = self.check_resume(hello.resume, state.visitor) if hello.resume else None
        if hello.resume and session_id is None:
            connection.send(p.Error(code="bad_resume", message="this sharing session cannot be resumed", re="hello"))
        if session_id in self._ended:
            # Ended (stopped in another tab, say, while this one loaded a page): consent is over.
            connection.send(p.Ended(session=session_id, reason=self._ended[session_id][0]))
            session_id = None
        if session_id is not None:
            session = self.sessions.get(session_id)
            if session is None:
                # The hub restarted (or this node never had it): the visitor's token
                # proves the consent; a fresh snapshot rebuilds what agents see.
                session = CobrowseSession(session_id, site, state.visitor, hello.name[:p.MAX_TEXT], now)
                self.sessions[session_id] = session
                self._persist(self.store.session_resumed(session_id) if self.store else None)
                self._publish_queue()
        if session is not None and session.ended is None and not session.room_for_tab(state.tab):
            # A session is one visitor: dozens of tabs at once is a script, not a person.
            connection.send(p.Error(code="too_many_tabs", message="this sharing session has too many open tabs",
                                    re="hello"))
            session = None
        if session is not None and session.ended is None:
            self._attach_tab(connection, state, session, now, hello.last_seq)
            have_seq = session.tabs[state.tab].next_seq - 1
            connection.send(p.Welcome(v=p.VERSION, session=session.id, have_seq=have_seq,
                                      viewers=session.viewers()))
            tab = session.tabs[state.tab]
            if tab.awaiting_snapshot:
                tab.snapshot_requested = True
                connection.send(p.SnapshotPlease())
            # This page's markers (pinned ones from the last page, or all after a reconnect), and control.
            for frame in session.visitor_restore(state.tab, now):
                connection.send(frame)
            for frame in self.screens.visitor_restore(session, state.tab, now):  # a request waiting
                connection.send(frame)
        else:
            connection.send(p.Welcome(v=p.VERSION))

    def _attach_tab(self, connection: Connection, state: "_VisitorState", session: CobrowseSession,
                    now: float, last_seq: int = -1) -> None:
        state.session = session
        connection.subscribe(self.broker, visitor_tab_topic(session.id, state.tab))
        connection.subscribe(self.broker, visitor_topic(session.id))
        _, out = session.tab_connected(state.tab, state.url, state.title, now, last_seq)
        self._route(session, out)

    def _visitor_frame(self, connection: Connection, state: "_VisitorState", frame, site: str) -> None:
        now = self.clock()
        session = state.session
        if session is not None and session.ended is not None:
            # It ended (here, in another tab, by an agent, when idle): this tab shares no more.
            connection.unsubscribe()
            state.session = session = None
        kind = type(frame)
        if kind is p.Events:
            if session is None:
                connection.send(p.Error(code="not_sharing", message="share before sending events", re="rr"))
                return
            if len(frame.ev) > p.MAX_EVENTS_PER_BATCH:
                connection.send(p.Error(code="too_large", message="too many events in one frame", re="rr"))
                return
            out = session.visitor_events(state.tab, frame.seq, frame.ev, now)
            acked = None
            for item in out:
                if type(item.message) is p.Ack:
                    acked = item.message.seq  # to this socket, coalesced (see ACK_INTERVAL)
            if acked is not None:
                out = [item for item in out if type(item.message) is not p.Ack]
            self._route(session, out)
            if acked is not None:
                connection.ack(acked)
        elif kind is p.Share:
            if session is not None:
                return  # already sharing: consent is for the whole session
            if not state.shares.take(now):
                # Each session is a queue entry for every agent and rows in the store.
                connection.send(p.Error(code="rate_limited", message="too many new sessions; wait a little",
                                        re="share"))
                return
            session_id = secrets.token_urlsafe(16)
            session = CobrowseSession(session_id, site, state.visitor, frame.name[:p.MAX_TEXT], now)
            self.sessions[session_id] = session
            # Recorded before anything of its timeline (the first page is recorded on attaching).
            self._persist(self.store.session_started(session, state.url) if self.store else None)
            self._attach_tab(connection, state, session, now)
            code, expires = self._new_code(session_id, now)
            connection.send(p.Shared(session=session_id, code=code, code_expires=expires,
                                     resume=self.resume_token(session_id, state.visitor)))
            self._publish_queue()
            if self.chat is not None and state.chat.conversation is not None:
                # Shared from the chat: the conversation's agents see the page without a code.
                self._persist(self.chat.link_session(state.chat.conversation, session))
        elif kind is p.Navigated:
            state.url, state.title = frame.url, frame.title
            if session is not None:
                self._route(session, session.navigated(state.tab, frame.url, frame.title, now))
                self._publish_queue()  # the queue shows each visitor's current page
        elif kind is p.StopSharing:
            if session is not None:
                self._end(session, EndReason.VISITOR_STOPPED)
        elif kind is p.TabClosing:
            state.closing = True
        elif kind is p.Ping:
            connection.send(p.Pong(n=frame.n))
        elif kind in _VISITOR_SESSION_FRAMES:
            if session is None:
                connection.send(p.Error(code="not_sharing", message="this tab is not sharing",
                                        re=kind.__struct_config__.tag))
                return
            if kind is p.ControlAnswer:
                out = session.control_answer(frame.granted, frame.allow_submit, now)
            elif kind is p.VisitorUnmark:
                out = session.visitor_unmark(state.tab, frame.id, now)
            elif kind is p.CommandResult:
                out = session.command_result(state.tab, frame, now)
            else:
                out = session.input_refused(state.tab, frame)
            self._route(session, out)
        elif kind in screenshare.VISITOR_FRAMES:
            if session is None:
                connection.send(p.Error(code="not_sharing", message="this tab is not sharing",
                                        re=kind.__struct_config__.tag))
                return
            self._screen_out(session, self.screens.visitor_frame(session, state.tab, connection, frame, now))
        elif kind is p.VisitorHello:
            connection.send(p.Error(code="bad_frame", message="hello was already received", re="hello"))

    async def _chat_visitor_frame(self, connection: Connection, state: "_VisitorState", frame, site: str) -> None:
        if self.chat is None:
            connection.send(p.Error(code="chat_disabled", message="chat is not available here",
                                    re=type(frame).__struct_config__.tag))
            return
        session = state.session
        if session is not None and session.ended is not None:
            connection.unsubscribe()
            state.session = None
        await _uncancelled(self.chat.visitor_frame(connection, state, frame, site))

    async def _visitor_gone(self, connection: Connection, state: "_VisitorState") -> None:
        self._connections.discard(connection)
        await connection.close()
        session = state.session
        if session is not None and session.ended is None and state.tab:
            self._route(session, session.tab_disconnected(state.tab, self.clock(), closing=state.closing))
            self._screen_out(session, self.screens.visitor_gone(session, state.tab, connection, self.clock()))

    # ----- agents ---------------------------------------------------------------------

    async def agent_socket(self, request: web.Request, agent: AgentIdentity,
                           authenticate: Authenticate | None = None,
                           authenticate_many: AuthenticateMany | None = None) -> web.WebSocketResponse:
        """An agent's socket; ``authenticate`` (the console's login check) is asked again on every
        join, and about every AUTH_RECHECK seconds (through ``authenticate_many`` if given, with
        the other agents connected)."""
        ws = DirectWebSocketResponse(max_msg_size=p.MAX_AGENT_FRAME, compress=True, heartbeat=30.0)
        await ws.prepare(request)
        key = secrets.token_urlsafe(12)
        peer = self.agent_address(request)
        connection = Connection(ws, f"agent {agent.name} {peer}", request.transport)
        self._connections.add(connection)
        connection.subscribe(self.broker, agent_topic(key))
        joined: dict[str, CobrowseSession] = {}
        self._agent_sockets[key] = _AgentSocket(connection, agent, joined)
        limiter = TokenBucket(rate=20, burst=60, now=self.clock())
        laser_limiter = TokenBucket(rate=LASER_RATE, burst=LASER_BURST, now=self.clock())
        bad_frames = 0
        chat = self.chat.agent_connected(key, connection, agent) if self.chat is not None else None
        try:
            hello = await self._first_frame(ws, connection, p.agent_decoder, p.AgentHello)
            if hello is None:
                return ws
            connection.send(p.Welcome(v=p.VERSION))
            if authenticate is not None:
                self._check_login_later(connection, _Login(request, ws, agent, authenticate, authenticate_many))

            def handle_now(data) -> bool:
                # Pointer moves, markers, control: handled as they arrive. Chat, joins (a
                # login check), bad frames and frames over the rate take the loop below.
                if _is_chat(data):
                    return False
                laser = _is_laser(data)
                bucket = laser_limiter if laser else limiter
                if not bucket.take(self.clock()):
                    return laser  # a laser over its rate is dropped quietly; the rest, below
                try:
                    frame = p.agent_decoder.decode(data)
                except (msgspec.MsgspecError, RecursionError):  # (the loop below answers bad_frame)
                    frame = None
                kind = type(frame)
                if frame is None or kind in CHAT_AGENT_FRAMES or (laser and kind is not p.Laser) or (
                        kind is p.Join and (authenticate is not None or self.chat is not None)):
                    bucket.tokens += 1  # not taken after all: the loop below counts it
                    return False
                self._agent_frame(connection, key, agent, joined, frame, peer)
                return True

            while True:
                message = await ws.receive_or_handle(handle_now)
                if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                laser = _is_laser(message.data)
                if laser:
                    # Pointer moves have their own, looser bucket; past it they are dropped quietly.
                    if not laser_limiter.take(self.clock()):
                        continue
                elif not limiter.take(self.clock()) and not await _waited_for(limiter, message.data, self.clock):
                    connection.send(p.Error(code="rate_limited", message="too many frames; slow down"))
                    continue
                frame = self._decode(connection, p.agent_decoder, message.data)
                if frame is None:
                    bad_frames += 1
                    if bad_frames > MAX_BAD_FRAMES:
                        await ws.close(code=1008, message=b"too many bad frames")
                        break
                    continue
                if laser and type(frame) is not p.Laser and not limiter.take(self.clock()):
                    connection.send(p.Error(code="rate_limited", message="too many frames; slow down"))
                    continue
                if authenticate is not None and type(frame) is p.Join:
                    # A disabled account or a changed password ends the agent's access here too.
                    current = await authenticate(request)
                    if current is None or current.user_id != agent.user_id:
                        connection.send(p.Error(code="unauthorized", message="log in again", re="join"))
                        await connection.close()
                        await ws.close(code=1008, message=b"unauthorized")
                        break
                    agent = current
                    self._agent_sockets[key].agent = current
                    login = self._logins.get(connection)
                    if login is not None:
                        login.agent = current
                if type(frame) is p.Join and frame.code is None and self.chat is not None and frame.session:
                    # A page shared inside a chat is for the agents of that chat (a code the
                    # visitor reads out is their own choice of agent, so it is not asked).
                    refusal = await self.chat.may_join(agent, frame.session)
                    if refusal is not None:
                        connection.send(p.Error(code="forbidden", message=refusal, re="join"))
                        continue
                if type(frame) in CHAT_AGENT_FRAMES:
                    if chat is None:
                        connection.send(p.Error(code="chat_disabled", message="chat is not available here",
                                                re=type(frame).__struct_config__.tag))
                    else:
                        chat.agent = agent
                        await _uncancelled(self.chat.agent_frame(chat, frame, joined))
                    continue
                self._agent_frame(connection, key, agent, joined, frame, peer)
        finally:
            self._logins.pop(connection, None)
            self._agent_sockets.pop(key, None)
            if chat is not None and self.chat is not None:
                self.chat.agent_gone(chat)
            self._connections.discard(connection)
            self._queue_watchers.discard(connection)
            for session_id in list(joined):
                self._agent_leaves(key, agent.user_id, joined, session_id)
            await connection.close()
        return ws

    def _check_login_later(self, connection: Connection, login: "_Login") -> None:
        self._logins[connection] = login
        if self._login_checks is None or self._login_checks.done():
            self._login_checks = asyncio.ensure_future(self._check_logins())

    async def _check_logins(self) -> None:
        """About every AUTH_RECHECK s: agents whose account was disabled, whose password
        changed or whose login expired stop receiving the sessions (and the queue)
        they joined before, not only the ones they would join next.

        All connected agents are checked together: one query per console's check
        (``authenticate_many``). Checked one by one, each check is a database
        round trip of ~1 ms of this process's time, split over several turns of
        the loop; with hundreds of consoles open that was a stall every few
        milliseconds for every socket here.
        """
        while self._logins:
            await asyncio.sleep(AUTH_RECHECK)
            logins = list(self._logins.items())
            groups: dict[object, list[tuple[Connection, _Login]]] = {}
            for connection, login in logins:
                groups.setdefault(login.authenticate_many or login.authenticate, []).append((connection, login))
            for group in groups.values():
                try:
                    many = group[0][1].authenticate_many
                    if many is not None:
                        verdicts = await many([login.request for _, login in group])
                    else:
                        verdicts = [await login.authenticate(login.request) for _, login in group]
                except Exception:  # the database is away: ask again next time
                    log.exception("could not check the logins of %d agents", len(group))
                    continue
                for (connection, login), current in zip(group, verdicts):
                    if self._logins.get(connection) is not login:
                        continue  # gone meanwhile
                    if current is None or current.user_id != login.agent.user_id:
                        del self._logins[connection]
                        task = asyncio.ensure_future(self._logged_out(connection, login.ws))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)

    async def _logged_out(self, connection: Connection, ws: web.WebSocketResponse) -> None:
        log.info("closing %s: its login is no longer valid", connection.peer)
        connection.send(p.Error(code="unauthorized", message="log in again"))
        await connection.close()
        await ws.close(code=1008, message=b"unauthorized")

    def _agent_frame(self, connection: Connection, key: str, agent: AgentIdentity,
                     joined: dict[str, CobrowseSession], frame, peer: str) -> None:
        now = self.clock()
        kind = type(frame)
        if kind is p.WatchQueue:
            if connection not in self._queue_watchers:  # a second `watch` must not double every queue frame
                self._queue_watchers.add(connection)
                connection.subscribe(self.broker, QUEUE_TOPIC)
            connection.send(self._queue())
        elif kind is p.Join:
            session = self._session_to_join(connection, agent, frame, peer, now)
            if session is None:
                return
            if session.id not in joined:
                joined[session.id] = session
                connection.subscribe_named(self.broker, agents_topic(session.id))
                self._persist(self.store.participant_joined(session.id, agent.user_id, agent.role)
                              if self.store else None)
            viewer = p.Viewer(name=agent.name, role="supervisor" if agent.role != "agent" else "agent")
            self._route(session, session.agent_joined(key, agent.user_id, viewer, frame.since, now))
            self._screen_out(session, self.screens.agent_joined(session, key, now))
            self._publish_queue()
        elif kind is p.Leave:
            self._agent_leaves(key, agent.user_id, joined, frame.session)
        elif kind is p.EndSession:
            session = joined.get(frame.session)
            if session is None:
                connection.send(p.Error(code="not_found", message="you are not in that session", re="end"))
                return
            self._end(session, EndReason.AGENT_ENDED)
        elif kind is p.Ping:
            connection.send(p.Pong(n=frame.n))
        elif kind in screenshare.AGENT_FRAMES:
            session = joined.get(frame.session)
            if session is None or session.ended is not None:
                connection.send(p.Error(code="not_found", message="you are not in that session",
                                        re=kind.__struct_config__.tag))
                return
            self._screen_out(session, self.screens.agent_frame(session, key, agent.user_id, agent.name, frame, now))
        elif kind in _AGENT_SESSION_FRAMES:
            session = joined.get(frame.session)
            tag = kind.__struct_config__.tag
            if session is None or session.ended is not None:
                if kind is not p.Laser:
                    connection.send(p.Error(code="not_found", message="you are not in that session", re=tag))
                return
            if kind is p.Laser:
                out = session.laser(key, frame)
            elif kind is p.MarkerAdd:
                out = session.mark(key, frame.tab, frame.marker, now)
            elif kind is p.MarkerRemove:
                out = session.unmark(key, frame.tab, frame.id, now)
            elif kind is p.ControlRequest:
                out = session.control_request(key, frame.allow_submit, now)
            elif kind is p.ControlRelease:
                out = session.control_release(key, now)
            elif kind is p.AgentInput:
                out = session.agent_input(key, frame, now)
            else:
                extra = tuple(self.navigation_origins(session.site)) if self.navigation_origins else ()
                out = session.command(key, frame, extra, now)
            self._route(session, out)
        elif kind is p.AgentHello:
            connection.send(p.Error(code="bad_frame", message="hello was already received", re="agent_hello"))

    def _agent_leaves(self, key: str, user_id: int, joined: dict[str, CobrowseSession], session_id: str) -> bool:
        """The agent socket ``key`` stops watching the session: it loses control and its
        screen share, the others see one viewer less."""
        session = joined.pop(session_id, None)
        if session is None:
            return False
        socket = self._agent_sockets.get(key)
        if socket is not None:
            # Nothing more of the page reaches this socket (before, a `leave` kept it coming).
            socket.connection.unsubscribe_named(agents_topic(session_id))
        now = self.clock()
        self._route(session, session.agent_left(key, now))
        self._screen_out(session, self.screens.agent_left(session, key, now))
        self._persist(self.store.participant_left(session.id, user_id) if self.store else None)
        self._publish_queue()  # viewer counts
        return True

    def agents_in(self, session_id: str) -> list[AgentIdentity]:
        """The agents whose sockets here watch the session (one entry per socket)."""
        return [s.agent for s in self._agent_sockets.values() if session_id in s.joined]

    def remove_agents(self, session_id: str, user_ids: set[int], reason: str) -> int:
        """Takes these users' sockets out of the session, and tells each one
        ``ended {reason}``: for them the session is over, for everyone else it goes on.
        Used when a chat is handed on: the agent who handed it on no longer sees the
        visitor's page. Returns how many sockets were taken out."""
        removed = 0
        for key, socket in list(self._agent_sockets.items()):
            if socket.agent.user_id in user_ids and self._agent_leaves(key, socket.agent.user_id, socket.joined,
                                                                      session_id):
                socket.connection.send(p.Ended(session=session_id, reason=reason))
                removed += 1
        return removed

    def end_session(self, session_id: str, reason: EndReason) -> bool:
        """Ends a live session of this process for everyone (e.g. its chat ended)."""
        session = self.sessions.get(session_id)
        if session is None or session.ended is not None:
            return False
        self._end(session, reason)
        return True

    def _session_to_join(self, connection: Connection, agent: AgentIdentity, frame: p.Join, peer: str,
                         now: float) -> CobrowseSession | None:
        if frame.code is not None:
            # Six digits are guessable: each agent and each address gets a few tries per ten minutes.
            if not (self._code_guesses.allow(f"user:{agent.user_id}", now)
                    and self._code_guesses.allow(f"addr:{peer}", now)):
                connection.send(p.Error(code="rate_limited", message="too many code attempts; wait a few minutes",
                                        re="join"))
                return None
            entry = self._codes.get(frame.code.strip())
            session = self.sessions.get(entry[0]) if entry and entry[1] >= now else None
        else:
            session = self.sessions.get(frame.session or "")
        if session is None or session.ended is not None:
            connection.send(p.Error(code="not_found", message="no such session is being shared", re="join"))
            return None
        return session

    # ----- shared plumbing -------------------------------------------------------------

    async def _first_frame(self, ws, connection: Connection, decoder, expected):
        try:
            message = await ws.receive(timeout=HELLO_TIMEOUT)
        except asyncio.TimeoutError:
            await ws.close(code=1008, message=b"no hello")
            return None
        if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return None
        tag = expected.__struct_config__.tag
        # The version first: another version's hello may not match this one's definition.
        version = p.hello_version(message.data, tag)
        if version is not None and version != p.VERSION:
            connection.send(p.Error(code="bad_version", message=f"this hub speaks protocol version {p.VERSION}",
                                    re=tag))
            await connection.close()
            await ws.close(code=1008, message=b"unsupported version")
            return None
        frame = self._decode(connection, decoder, message.data)
        if not isinstance(frame, expected):
            if frame is not None:
                connection.send(p.Error(code="bad_frame", message="the first frame must be hello",
                                        re=type(frame).__struct_config__.tag))
            await connection.close()
            await ws.close(code=1008, message=b"expected hello")
            return None
        return frame

    def _decode(self, connection: Connection, decoder, data):
        try:
            return decoder.decode(data)
        except msgspec.ValidationError as exc:
            reason = str(exc)
        except msgspec.DecodeError as exc:
            reason = f"not valid JSON: {exc}"
        except RecursionError:
            # msgspec recurses once per level of nesting, even in fields it skips: a
            # couple of kilobytes of brackets must not take the connection down.
            reason = "nested too deeply"
        self.bad_frames += 1
        connection.send(p.Error(code="bad_frame", message=reason[:300], re=p.frame_type(data)))
        return None

    def _route(self, session: CobrowseSession, outgoing: list[Outgoing]) -> None:
        broker = self.broker
        for item in outgoing:
            frame = p.encode(item.message)
            audience = item.audience
            if type(item.message) is p.TabUpdate:
                self._publish_queue()  # a card shows the visitor's page, and whether one is open at all
            if audience is Audience.AGENTS:
                broker.publish(agents_topic(session.id), frame)
            elif audience is Audience.VISITOR_TAB:
                broker.publish(visitor_tab_topic(session.id, item.key), frame)
            elif audience is Audience.VISITOR:
                broker.publish(visitor_topic(session.id), frame)
            elif audience is Audience.OTHER_AGENTS:
                for key in session.participants:
                    if key != item.key:
                        broker.publish(agent_topic(key), frame)
            else:
                broker.publish(agent_topic(item.key), frame)
        records = session.take_records()
        if records and self.store is not None:
            self._persist(self.store.record_events(session.id, records))

    def _end(self, session: CobrowseSession, reason: EndReason) -> None:
        out = session.end(reason)
        if not out:
            return  # it had ended already
        self._route(session, out)
        self._persist(self.store.session_ended(session.id, reason.value) if self.store else None)
        self._forget(session)

    def _forget(self, session: CobrowseSession) -> None:
        self.sessions.pop(session.id, None)
        self._screen_out(session, self.screens.session_ended(session, self.clock()))
        if self.chat is not None:
            self.chat.session_gone(session)
        if session.ended is not None:
            self._ended[session.id] = (session.ended.value, self.clock())
        code = self._code_of.pop(session.id, None)
        if code is not None and self._codes.get(code, ("",))[0] == session.id:
            del self._codes[code]
        self._publish_queue()

    def _screen_out(self, session: CobrowseSession, outgoing: list[Outgoing]) -> None:
        """Routes screen-share frames; their timeline records also go, in plain words, to the session's chat."""
        texts = [text for record in session.records if (text := screenshare.chat_text(record))]
        self._route(session, outgoing)
        conversation = self.chat.conversation_of(session.id) if texts and self.chat is not None else None
        for text in texts if conversation else ():
            self._persist(self.chat.post_event(conversation, text))

    def _queue(self) -> p.Queue:
        entries = []
        for session in self.sessions.values():
            if session.ended is None:
                entry = session.queue_entry()
                entry.chat = session.id in self.chat_links
                entries.append(entry)
        return p.Queue(sessions=entries)

    def _publish_queue(self) -> None:
        # The queue is the whole list, sent to every watching agent: changes that
        # come faster than QUEUE_INTERVAL (a visitor flooding `nav` or share/stop,
        # say) are sent together, in the next one.
        if self._queue_timer is not None:
            return  # one is due and will show this change too
        loop = asyncio.get_running_loop()
        wait = self._queue_sent + QUEUE_INTERVAL - loop.time()
        if wait > 0:
            self._queue_timer = loop.call_later(wait, self._send_queue)
        else:
            self._send_queue()

    def _send_queue(self) -> None:
        self._queue_timer = None
        if not self._queue_watchers:
            # Nobody here watches: building and encoding every session's entry (4x/s with
            # 10,000 sessions) would be wasted. A watcher gets the whole queue on `watch`.
            return
        self._queue_sent = asyncio.get_running_loop().time()
        self.broker.publish(QUEUE_TOPIC, p.encode(self._queue()))

    def _persist(self, coroutine) -> None:
        # Records are written beside the live path, never in its way.
        if coroutine is None:
            return
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._persisted)

    def _persisted(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("could not record a session change", exc_info=task.exception())


_AGENT_SESSION_FRAMES = frozenset({p.MarkerAdd, p.MarkerRemove, p.Laser, p.ControlRequest, p.ControlRelease,
                                   p.AgentInput, p.Command})
_VISITOR_SESSION_FRAMES = frozenset({p.ControlAnswer, p.VisitorUnmark, p.CommandResult, p.InputRefused})
_LASER_PREFIXES = (b'{"t":"laser"', b'{"t": "laser"')
_CHAT_PREFIXES = (b'{"t":"chat_', b'{"t": "chat_')


async def _uncancelled(coroutine) -> None:
    """Run a chat step to its end even if the socket's handler is cancelled meanwhile.

    A client that drops its connection gets its handler cancelled (aiohttp's
    handler cancellation). A message received must still be stored, and a
    database transaction cut off halfway would leave its connection (and,
    on SQLite, the single write lock) in an unknown state for everyone after.
    """
    task = asyncio.ensure_future(coroutine)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])  # finish storing; then this handler ends as asked
        raise


def _send_uncompressed(ws: web.WebSocketResponse) -> None:
    """Frames to a visitor go out uncompressed; theirs to us stay compressed.

    What visitors send (page snapshots, DOM changes) compresses well, and
    their browsers pay for it. What they receive is small (acks, viewers,
    markers), and a deflate stream kept for it costs ~100 KiB of compressor
    state per connection: a thousand MB per ten thousand visitors. RFC 7692
    lets a sender leave any message uncompressed (RSV1 clear) after
    negotiating the extension; aiohttp has no per-socket switch for it, so
    its writer's level is set to none here (if aiohttp changes, frames simply
    stay compressed).
    """
    writer = getattr(ws, "_writer", None)
    if writer is not None and isinstance(getattr(writer, "compress", None), int):
        writer.compress = 0


async def _waited_for(limiter: TokenBucket, data: bytes | str, clock: Callable[[], float]) -> bool:
    """Over its rate, a chat frame waits for its turn instead of being dropped: True once taken.

    Chat is reliable and ordered: a message dropped here would be stored after
    the sender's next ones (it is resent only on a reconnect). Waiting stops
    reading this socket, so a sender over the rate is slowed down by TCP
    itself, and loses nothing. Other frames (pointer, scroll, markers) are
    dropped with an error: the next one supersedes them.
    """
    if not _is_chat(data):
        return False
    await asyncio.sleep(limiter.delay(clock()))
    if not limiter.take(clock()):
        limiter.tokens -= 1  # its wait was its due; in debt if the clock did not move (a test's)
    return True


def _is_chat(data: bytes | str) -> bool:
    head = data[:16].encode() if isinstance(data, str) else data[:16]
    return head.startswith(_CHAT_PREFIXES)


def _is_laser(data: bytes | str) -> bool:
    """A cheap look at a frame's start: clients send ``t`` first (a laser sent otherwise counts as a frame)."""
    head = data[:16].encode() if isinstance(data, str) else data[:16]
    return head.startswith(_LASER_PREFIXES)


class _AgentSocket:
    """An agent socket as the rest of the hub sees it: who, and the sessions it joined."""

    __slots__ = ("connection", "agent", "joined")

    def __init__(self, connection: Connection, agent: AgentIdentity, joined: dict[str, CobrowseSession]) -> None:
        self.connection = connection
        self.agent = agent
        self.joined = joined


class _Login:
    """What checking an agent's login again needs."""

    __slots__ = ("request", "ws", "agent", "authenticate", "authenticate_many")

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, agent: AgentIdentity,
                 authenticate: Authenticate, authenticate_many: AuthenticateMany | None) -> None:
        self.request = request
        self.ws = ws
        self.agent = agent
        self.authenticate = authenticate
        self.authenticate_many = authenticate_many


class _VisitorState:
    __slots__ = ("visitor", "tab", "url", "title", "name", "session", "closing", "bad_frames", "shares", "chat",
                 "address")

    def __init__(self, address: str = "") -> None:
        self.address = address  # the visitor's address (per-address limits)
        self.chat = VisitorChat()
        self.name = ""
        self.visitor = ""
        self.tab = ""
        self.url = ""
        self.title = ""
        self.session: CobrowseSession | None = None
        self.closing = False
        self.bad_frames = 0
        self.shares = TokenBucket(rate=SHARE_RATE, burst=SHARE_BURST, now=0.0)
