"""The hub's chat feature: carries chat frames between a visitor's tabs and agents.

The conversation itself lives in the database (``chat.service.ChatService``):
this module checks who may do what, stores through the service, and only then
tells anyone. A sender gets ``chat_ack`` after the message is committed; every
other socket of the conversation gets ``chat_msg``. The broker is a wake-up,
not storage: a client that missed a frame gets it from ``chat_sync``.

docs/chat.md describes the flow.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import protocol as p
from .ratelimit import KeyedLimiter, TokenBucket
from .session import EndReason

if TYPE_CHECKING:  # the hub imports us
    from .hub import AgentIdentity, Connection, Hub
    from .session import CobrowseSession

log = logging.getLogger("cobrowse.hub.chat")

START_RATE, START_BURST = 1 / 60, 3  # new chats / offline messages per visitor socket
MAX_OFFERS = 100  # waiting chats listed to an agent (oldest first); more wait their turn
OFFERS_INTERVAL = 0.25  # at most this often every watching agent gets its list of waiting chats
ADDRESS_SWEEP_AT = 10_000  # addresses remembered before the full ones are forgotten
OFFERS_STOP_WAIT = 5.0  # s a stopping hub lets the list in progress finish
HISTORY_PAGE = 200  # messages per chat_history; clients ask for the next page on `more`
NOT_SHARING = "the visitor is not sharing their page with you; commands need a shared page and control"
COMMAND_PREFIXES = {"goto:": "goto", "open:": "open"}

VISITOR_FRAMES = frozenset({p.ChatStart, p.ChatResume, p.LeaveMessage, p.ChatSurvey, p.ChatSend, p.ChatSync,
                            p.ChatTyping, p.ChatSeen, p.ChatEnd})
AGENT_FRAMES = frozenset({p.ChatWatch, p.ChatAccept, p.ChatOpen, p.ChatClose, p.ChatTransfer, p.ChatSend,
                          p.ChatSync, p.ChatTyping, p.ChatSeen, p.ChatEnd})


def visitor_topic(conversation: str) -> str:
    return f"chat:{conversation}:visitor"


def agents_topic(conversation: str) -> str:
    return f"chat:{conversation}:agents"


@dataclass(frozen=True, slots=True)
class ChatHubSettings:
    welcome_text: str = ""  # plain-text form of the welcome message ("" = none)
    welcome_rich: Any = None  # its sanitized node tree (chat.text.rich_tree), or None
    survey: bool = False  # ask the visitor for a rating when the chat ends
    typing: bool = True  # relay typing indicators
    offline_enabled: bool = True  # take "leave a message"
    idle_timeout: float = 1800.0  # a chat with no message for this long ends; 0 = never
    starts_per_address: int = 30  # new chats + messages left per visitor address per hour; 0 = no limit
    # Called (in the background) when a conversation ends and when a visitor leaves
    # an offline message: transcripts and notices go out by mail.
    on_ended: Callable[[str], Awaitable[None]] | None = None
    on_offline: Callable[[Any], Awaitable[None]] | None = None


@dataclass(slots=True)
class VisitorChat:
    """What one visitor socket knows of its conversation."""

    conversation: str | None = None
    # New chats and offline messages this socket may start: each reaches every
    # available agent (and mailboxes), so a script must not make hundreds.
    starts: TokenBucket = field(default_factory=lambda: TokenBucket(rate=START_RATE, burst=START_BURST, now=0.0))


@dataclass(slots=True)
class AgentChat:
    """What one agent socket knows: the conversations it opened, whether it takes offers."""

    key: str
    connection: Connection
    agent: AgentIdentity
    opened: set[str] = field(default_factory=set)
    watching: bool = False
    available: bool = False
    departments: tuple[str, ...] = ()


class ChatError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class HubChat:
    def __init__(self, hub: Hub, service, settings: ChatHubSettings = ChatHubSettings()) -> None:
        self.hub = hub
        self.service = service
        self.settings = settings
        self._watchers: dict[str, AgentChat] = {}
        self._agents: dict[str, AgentChat] = {}  # every agent connection here, by key
        self._offers_timer: asyncio.TimerHandle | None = None
        self._offers_task: asyncio.Task | None = None
        self._offers_sent = -OFFERS_INTERVAL
        self._offers_dirty = False
        self._posting: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._idle_task: asyncio.Task | None = None
        # Conversations whose first visitor message has been offered (bounded: see offers).
        self._previewed: set[str] = set()
        # Waiting conversations whose visitor was told nobody is available (bounded: see offers).
        self._unstaffed: set[str] = set()
        self._stopped = False
        # Per address as well as per socket: a script opening many sockets must not fill
        # agents' lists and the contact inbox.
        per_hour = settings.starts_per_address
        self._starts_by_address = KeyedLimiter(rate=per_hour / 3600, burst=per_hour) if per_hour > 0 else None

    # ----- availability (the widget's "chat or leave a message") ------------------

    def available(self, department: str = "") -> bool:
        """Is an agent taking chats (of this department) on this node now?"""
        for watcher in self._watchers.values():
            if watcher.available and (not department or not watcher.departments
                                      or department in watcher.departments or watcher.agent.role != "agent"):
                return True
        return False

    def available_departments(self) -> set[str] | None:
        """Departments with someone available; None: someone takes every department."""
        found: set[str] = set()
        for watcher in self._watchers.values():
            if not watcher.available:
                continue
            if not watcher.departments or watcher.agent.role != "agent":
                return None
            found.update(watcher.departments)
        return found

    def agent_statuses(self) -> dict[int, str]:
        """Each user with a console open here: ``available`` (takes chats) or ``away``.
        Users without a console open are not listed (offline)."""
        statuses: dict[int, str] = {}
        for chat in self._agents.values():
            if chat.watching and chat.available:
                statuses[chat.agent.user_id] = "available"
            else:
                statuses.setdefault(chat.agent.user_id, "away")
        return statuses

    # ----- visitors ----------------------------------------------------------------

    async def visitor_frame(self, connection: Connection, state, frame, site: str) -> None:
        chat: VisitorChat = state.chat
        try:
            await self._visitor_frame(connection, state, chat, frame, site)
        except ChatError as exc:
            connection.send(p.Error(code=exc.code, message=exc.message, re=type(frame).__struct_config__.tag))
        except Exception as exc:  # the service's own errors, and the unexpected
            self._service_error(connection, frame, exc)

    async def _visitor_frame(self, connection: Connection, state, chat: VisitorChat, frame, site: str) -> None:
        kind = type(frame)
        service = self.service
        if kind is p.ChatStart:
            existing = await service.open_for_visitor(state.visitor, site=site)
            if existing is not None:
                # One open chat per visitor: a second "start" (another tab, a script) continues it.
                conversation = existing
            elif not self._may_start(chat, state):
                raise ChatError("rate_limited", "too many new chats; wait a little")
            else:
                conversation = await service.start(
                    site=site, visitor_id=state.visitor, key=frame.key, name=frame.name, email=frame.email,
                    department=frame.department, fields=dict(frame.fields), url=frame.url or state.url,
                    title=frame.title or state.title, timezone=frame.tz)
            self._attach_visitor(connection, chat, conversation.id)
            connection.send(p.ChatStarted(conversation=conversation.id,
                                          token=service.token(conversation.id, state.visitor), key=frame.key))
            if state.session is not None and state.session.ended is None:
                await self.link_session(conversation.id, state.session)
            connection.send(await self._state(conversation.id, for_agents=False))
            await self._history(connection, conversation.id, 0, notes=False)
            self.offers_changed()
        elif kind is p.ChatResume:
            conversation_id = service.check_token(frame.token, state.visitor)
            if conversation_id is None or await service.get(conversation_id) is None:
                raise ChatError("bad_token", "this conversation cannot be continued; start a new one")
            self._attach_visitor(connection, chat, conversation_id)
            if state.session is not None and state.session.ended is None:
                await self.link_session(conversation_id, state.session)
            connection.send(await self._state(conversation_id, for_agents=False))
            await self._history(connection, conversation_id, frame.after, notes=False)
            await self._send_marks(connection, conversation_id, by="agent")
        elif kind is p.LeaveMessage:
            if not self.settings.offline_enabled:
                raise ChatError("offline_disabled", "messages cannot be left here")
            if not self._may_start(chat, state):
                raise ChatError("rate_limited", "too many messages; wait a little")
            message, created = await service.leave_message(
                site=site, key=frame.key, name=frame.name, email=frame.email, department=frame.department,
                text=frame.text, fields=dict(frame.fields), url=state.url)
            if chat.conversation is not None:
                unanswered = await service.get(chat.conversation)
                if unanswered is not None and unanswered.status == "waiting":
                    # A message left instead of waiting on: the chat nobody took ends here.
                    await self._end(unanswered.id, "visitor", line="The visitor left a message instead of waiting.")
            connection.send(p.OfflineStored(key=frame.key))
            if created:
                nudge = p.OfflineLeft(department=frame.department or "")
                for watcher in list(self._watchers.values()):
                    if not watcher.connection.closed:
                        watcher.connection.send(nudge)
            if created and self.settings.on_offline is not None:
                self.hub._persist(self.settings.on_offline(message))
        else:
            conversation_id = chat.conversation
            if conversation_id is None:
                raise ChatError("no_conversation", "start a chat first")
            if kind is p.ChatSend:
                created = await self._send(connection, conversation_id, frame, sender="visitor", kind="text",
                                           name=state.name or "")
                if created and conversation_id not in self._previewed:
                    # The first words of a waiting chat show in the agents' offers.
                    self._previewed.add(conversation_id)
                    self.offers_changed()
            elif kind is p.ChatSync:
                await self._history(connection, conversation_id, frame.after, notes=False)
            elif kind is p.ChatTyping:
                if self.settings.typing:
                    self._publish(agents_topic(conversation_id),
                                  p.ChatTyping(on=frame.on, conversation=conversation_id, who="visitor"))
            elif kind is p.ChatSeen:
                delivered, read = await service.seen(conversation_id, "visitor", frame.delivered, frame.read)
                self._publish(agents_topic(conversation_id),
                              p.ChatSeen(delivered=delivered, read=read, conversation=conversation_id, by="visitor"))
            elif kind is p.ChatEnd:
                await self._end(conversation_id, "visitor")
            elif kind is p.ChatSurvey:
                if not self.settings.survey:
                    raise ChatError("survey_disabled", "this site asks for no rating")
                await service.survey(conversation_id, frame.rating, frame.comment)
                connection.send(await self._state(conversation_id, for_agents=False))

    def _attach_visitor(self, connection: Connection, chat: VisitorChat, conversation_id: str) -> None:
        if chat.conversation == conversation_id:
            return
        if chat.conversation is not None:
            connection.unsubscribe_named(visitor_topic(chat.conversation))
        chat.conversation = conversation_id
        connection.subscribe_named(self.hub.broker, visitor_topic(conversation_id))

    def _may_start(self, chat: VisitorChat, state) -> bool:
        """A new chat or a message left: within this socket's rate and its address's."""
        now = self.hub.clock()
        if not chat.starts.take(now):
            return False
        limiter = self._starts_by_address
        if limiter is None:
            return True
        if len(limiter) > ADDRESS_SWEEP_AT:
            limiter.sweep(now)
        return limiter.allow(state.address or "?", now)

    # ----- agents ------------------------------------------------------------------

    def agent_connected(self, key: str, connection: Connection, agent: AgentIdentity) -> AgentChat:
        chat = AgentChat(key=key, connection=connection, agent=agent)
        self._agents[key] = chat
        return chat

    def agent_gone(self, chat: AgentChat) -> None:
        self._agents.pop(chat.key, None)
        if self._watchers.pop(chat.key, None) is not None:
            self.offers_changed()  # availability changed for the widgets' config; lists stay right
        for conversation_id in chat.opened:
            chat.connection.unsubscribe_named(agents_topic(conversation_id))
        chat.opened.clear()

    async def agent_frame(self, chat: AgentChat, frame, joined: dict[str, CobrowseSession]) -> None:
        try:
            await self._agent_frame(chat, frame, joined)
        except ChatError as exc:
            chat.connection.send(p.Error(code=exc.code, message=exc.message, re=type(frame).__struct_config__.tag))
        except Exception as exc:
            self._service_error(chat.connection, frame, exc)

    async def _agent_frame(self, chat: AgentChat, frame, joined: dict[str, CobrowseSession]) -> None:
        kind = type(frame)
        service = self.service
        connection = chat.connection
        agent = chat.agent
        if kind is p.ChatWatch:
            chat.watching = True
            chat.available = frame.available
            chat.departments = tuple(await service.agent_departments(agent.user_id))
            self._watchers[chat.key] = chat
            await self._send_offers([chat])  # (and waiting visitors learn if anyone takes chats now)
            return
        conversation_id = frame.conversation
        if not conversation_id:
            raise ChatError("bad_frame", "say which conversation")
        if kind is p.ChatAccept:
            before = await service.get(conversation_id)
            await service.accept(conversation_id, _user(agent))
            if before is not None and before.status == "active" and before.agent_id == agent.user_id:
                # A repeated accept (a double click, a resend): theirs already; greet once.
                self._open(chat, conversation_id)
                connection.send(await self._state(conversation_id, for_agents=True))
                await self._history(connection, conversation_id, 0, notes=True)
                await self._send_marks(connection, conversation_id, by="visitor")
                return
            self._open(chat, conversation_id)
            taken = p.ChatTaken(conversation=conversation_id, by=_participant(agent))
            for watcher in list(self._watchers.values()):
                watcher.connection.send(taken)
            await self._broadcast_state(conversation_id)
            await self._history(connection, conversation_id, 0, notes=True)
            await self._welcome(conversation_id, agent)
            self.offers_changed()
            return
        if kind is p.ChatOpen:
            conversation = await service.get(conversation_id)
            if conversation is None:
                raise ChatError("not_found", "no such conversation")
            if not await service.can_open(conversation, _user(agent)):
                raise ChatError("forbidden", "this conversation is another agent's")
            if conversation_id not in chat.opened:
                await service.add_participant(conversation_id, _user(agent))
            self._open(chat, conversation_id)
            connection.send(await self._state(conversation_id, for_agents=True))
            await self._history(connection, conversation_id, frame.after, notes=True)
            await self._send_marks(connection, conversation_id, by="visitor")
            return
        if kind is p.ChatClose:
            self._close(chat, conversation_id)
            return
        if conversation_id not in chat.opened:
            raise ChatError("not_found", "open or accept this conversation first")
        if kind in _HOLDER_FRAMES:
            conversation = await service.get(conversation_id)
            if conversation is None:
                raise ChatError("not_found", "no such conversation")
            if agent.role == "agent" and conversation.agent_id != agent.user_id:
                # Looking in (or handed on) is not holding: writing is for the holder and supervisors.
                raise ChatError("forbidden", "this chat is another agent's now")
        if kind is p.ChatSend:
            await self._agent_send(chat, conversation_id, frame, joined)
        elif kind is p.ChatSync:
            await self._history(connection, conversation_id, frame.after, notes=True)
        elif kind is p.ChatTyping:
            if not self.settings.typing:
                return
            typing = p.ChatTyping(on=frame.on, conversation=conversation_id, who=agent.name)
            self._publish(visitor_topic(conversation_id), typing)
            self._publish(agents_topic(conversation_id), typing)
        elif kind is p.ChatSeen:
            delivered, read = await service.seen(conversation_id, "agent", frame.delivered, frame.read)
            self._publish(visitor_topic(conversation_id),
                          p.ChatSeen(delivered=delivered, read=read, conversation=conversation_id, by="agent"))
            self._publish(agents_topic(conversation_id),
                          p.ChatSeen(delivered=delivered, read=read, conversation=conversation_id, by="agent"))
        elif kind is p.ChatEnd:
            await self._end(conversation_id, "agent", line=f"{agent.name} ended the chat.")
        elif kind is p.ChatTransfer:
            department = frame.department or None
            target = frame.agent or None
            await service.transfer(conversation_id, _user(agent), to_user_id=target, department=department)
            for other in list(self._agents.values()):
                # The one who handed it on no longer follows it (supervisors keep looking in).
                if other.agent.user_id == agent.user_id and agent.role == "agent":
                    self._close(other, conversation_id)
            where = f"the {department} team" if department and target is None else "another agent"
            await self._system(conversation_id, f"{agent.name} transferred this chat to {where}.", kind="event")
            await self._broadcast_state(conversation_id)
            await self._unfollow_lost(conversation_id)
            await self._unjoin_lost(conversation_id)
            if target is not None:
                await self._hand_to(target, conversation_id)
            self.offers_changed()

    async def _agent_send(self, chat: AgentChat, conversation_id: str, frame: p.ChatSend,
                          joined: dict[str, CobrowseSession]) -> None:
        agent = chat.agent
        command = None if frame.private else _command_of(frame.text)
        if command is not None and self._command_session(conversation_id, joined) is None:
            raise ChatError("command_failed", NOT_SHARING)
        created = await self._send(chat.connection, conversation_id, frame, sender="agent",
                                   kind="note" if frame.private else ("command" if command else "text"),
                                   name=agent.name, agent_id=agent.user_id)
        if command is not None and created:
            # Run once, after it is stored: a resent message (same id) never navigates twice.
            problem = self._run_command(chat, conversation_id, command, joined)
            if problem is not None:
                await self._system(conversation_id, f"The page command was not run: {problem}", kind="event")
                raise ChatError("command_failed", problem)

    def _command_session(self, conversation_id: str, joined: dict[str, CobrowseSession]) -> CobrowseSession | None:
        return next((s for s in joined.values() if s.ended is None
                     and self._linked.get(s.id) == conversation_id), None)

    def _run_command(self, chat: AgentChat, conversation_id: str, command: tuple[str, str],
                     joined: dict[str, CobrowseSession]) -> str | None:
        """``goto: url`` / ``open: url``: the co-browse command on the visitor's latest tab."""
        session = self._command_session(conversation_id, joined)
        if session is None:
            return NOT_SHARING
        tab = _current_tab(session)
        if tab is None:
            return "the visitor has no open tab"
        kind, url = command
        frame = p.Command(session=session.id, tab=tab, kind=kind, url=url)
        hub = self.hub
        extra = tuple(hub.navigation_origins(session.site)) if hub.navigation_origins else ()
        out = session.command(chat.key, frame, extra, hub.clock())
        for item in out:
            if isinstance(item.message, p.Error):
                return item.message.message
        hub._route(session, out)
        return None

    async def _hand_to(self, user_id: int, conversation_id: str) -> None:
        """A chat handed to a named colleague opens in their console at once (as an
        accepted one does): the state, the history and the visitor's read marks, on
        each of their sockets that is not following it already."""
        for other in list(self._agents.values()):
            if other.agent.user_id != user_id or conversation_id in other.opened or other.connection.closed:
                continue
            self._open(other, conversation_id)
            other.connection.send(await self._state(conversation_id, for_agents=True))
            await self._history(other.connection, conversation_id, 0, notes=True)
            await self._send_marks(other.connection, conversation_id, by="visitor")

    async def _unfollow_lost(self, conversation_id: str) -> None:
        """After a transfer, the agents who may no longer open the conversation (the
        holder a supervisor handed it away from) stop following it: no more messages,
        notes or history on their sockets. They get the transfer's event and state
        first, so their console says who has it now."""
        conversation = await self.service.get(conversation_id)
        for other in list(self._agents.values()):
            if conversation_id in other.opened and (
                    conversation is None or not await self.service.can_open(conversation, _user(other.agent))):
                self._close(other, conversation_id)

    async def _unjoin_lost(self, conversation_id: str) -> None:
        """After a transfer, agents who may no longer open the conversation stop seeing the
        visitor's page too (and lose control of it): the visitor shared it for this chat,
        with whoever holds it, not with everyone who ever did."""
        session = self.session_of(conversation_id)
        if session is None:
            return
        conversation = await self.service.get(conversation_id)
        lost: set[int] = set()
        for agent in {a.user_id: a for a in self.hub.agents_in(session.id)}.values():
            if conversation is None or not await self.service.can_open(conversation, _user(agent)):
                lost.add(agent.user_id)
        if lost:
            self.hub.remove_agents(session.id, lost, "transferred")

    async def may_join(self, agent: AgentIdentity, session_id: str) -> str | None:
        """Why the agent may not join this co-browse session (None: they may). A page
        shared inside a chat that goes on is for those who may open the chat."""
        conversation_id = self._linked.get(session_id)
        if conversation_id is None:
            return None
        try:
            conversation = await self.service.get(conversation_id)
            if conversation is None or conversation.ended or await self.service.can_open(conversation, _user(agent)):
                return None
        except Exception:  # the database is away: refuse now, the console can ask again
            log.exception("could not check who may join session %s", session_id)
            return "that could not be checked just now; try again"
        return "this visitor is sharing their page in a chat with another agent"

    def _open(self, chat: AgentChat, conversation_id: str) -> None:
        if conversation_id not in chat.opened:
            chat.opened.add(conversation_id)
            chat.connection.subscribe_named(self.hub.broker, agents_topic(conversation_id))

    def _close(self, chat: AgentChat, conversation_id: str) -> None:
        if conversation_id in chat.opened:
            chat.opened.discard(conversation_id)
            chat.connection.unsubscribe_named(agents_topic(conversation_id))

    # ----- co-browse sessions linked to conversations ------------------------------

    @property
    def _linked(self) -> dict[str, str]:
        # session id -> conversation id, for sessions of this node
        return self.hub.chat_links

    async def link_session(self, conversation_id: str, session: CobrowseSession) -> None:
        if self._linked.get(session.id) == conversation_id:
            return
        conversation = await self.service.get(conversation_id)
        if conversation is None or conversation.ended:
            return  # shared after the chat ended: a session of its own, as without a chat
        self._linked[session.id] = conversation_id
        await self.service.link_session(conversation_id, session.id)
        if not session.name and conversation.visitor_name:
            session.name = conversation.visitor_name  # the queue says who it is, as the chat does
        self.hub._publish_queue()  # its card now says it is in a chat
        await self._broadcast_state(conversation_id)

    def session_gone(self, session: CobrowseSession) -> None:
        conversation_id = self._linked.pop(session.id, None)
        if conversation_id is not None:
            self.hub._persist(self._broadcast_state(conversation_id))

    def session_of(self, conversation_id: str) -> CobrowseSession | None:
        for session_id, linked in self._linked.items():
            if linked == conversation_id:
                session = self.hub.sessions.get(session_id)
                if session is not None and session.ended is None:
                    return session
        return None

    def conversation_of(self, session_id: str) -> str | None:
        return self._linked.get(session_id)

    # ----- shared steps ------------------------------------------------------------

    def posting(self, conversation_id: str) -> asyncio.Lock:
        """Held while a message of this conversation is stored and published.

        Seqs are given at commit. Without the lock, two messages committed as N and
        N+1 by two sockets can be published N+1 first; a client that reconnects in
        between resyncs after N+1 and never sees N. (Locks live while in use.)
        """
        lock = self._posting.get(conversation_id)
        if lock is None:
            lock = self._posting[conversation_id] = asyncio.Lock()
        return lock

    async def _send(self, connection: Connection, conversation_id: str, frame: p.ChatSend, *, sender: str,
                    kind: str, name: str = "", agent_id: int | None = None) -> bool:
        async with self.posting(conversation_id):
            message, created = await self.service.post(conversation_id, client_id=frame.id, sender=sender,
                                                       text=frame.text, kind=kind, agent_id=agent_id, name=name)
            # Committed: now, and only now, the sender may show it as sent.
            connection.send(p.ChatAck(id=message.client_id, seq=message.seq, at=_timestamp(message.at),
                                      conversation=conversation_id))
            if created:
                self._publish_message(conversation_id, message)
        return created

    def file_posted(self, conversation_id: str, message) -> None:
        """A file message stored by an upload (an HTTP request, not a frame): tell everyone."""
        self._publish_message(conversation_id, message)

    async def post_event(self, conversation_id: str, text: str) -> None:
        """A timeline line in plain words (screen sharing started...), stored and shown to both sides."""
        await self._system(conversation_id, text, kind="event")

    async def _system(self, conversation_id: str, text: str, *, kind: str = "system", rich: Any = None,
                      client_id: str | None = None) -> None:
        async with self.posting(conversation_id):
            message, created = await self.service.post(
                conversation_id, client_id=client_id or f"sys-{secrets.token_urlsafe(12)}", sender="system",
                text=text, kind=kind, rich=rich)
            if created:
                self._publish_message(conversation_id, message)

    async def _welcome(self, conversation_id: str, agent: AgentIdentity) -> None:
        settings = self.settings
        if settings.welcome_text or settings.welcome_rich:
            # One welcome per acceptance (a transfer accepted again greets again).
            await self._system(conversation_id, settings.welcome_text, rich=settings.welcome_rich)
        await self._system(conversation_id, f"{agent.name} joined the chat.", kind="event")

    def _publish_message(self, conversation_id: str, message) -> None:
        frame = p.encode(p.ChatMessageFrame(conversation=conversation_id, m=self.service.wire(message)))
        if message.kind != "note":  # private notes never reach the visitor's sockets
            self.hub.broker.publish(visitor_topic(conversation_id), frame)
        self.hub.broker.publish(agents_topic(conversation_id), frame)

    async def _history(self, connection: Connection, conversation_id: str, after: int, *, notes: bool) -> None:
        """One page of messages after ``after``; with ``more``, the client asks for the next
        (so a long conversation never floods a socket's outbox in one go)."""
        if connection.closed:
            return
        # Live messages published while the page is read wait behind it: a client that saw a
        # newer message first, and dropped before the page came, would resync after that
        # newer one and never ask for the page's messages again.
        holding = connection.hold()
        frame = None
        try:
            messages, more = await self.service.history(conversation_id, max(0, after), notes=notes,
                                                        limit=HISTORY_PAGE)
            frame = p.encode(p.ChatHistory(conversation=conversation_id,
                                           messages=[self.service.wire(m) for m in messages], more=more))
        finally:
            if holding:
                connection.release(frame)
            elif frame is not None:
                connection.deliver(frame)

    async def _send_marks(self, connection: Connection, conversation_id: str, *, by: str) -> None:
        """How far the other side (``by``) has received and read, for a client that
        (re)opens a conversation after a page load or a reconnect: the live chat_seen
        frames went out before it was there, and its own messages would otherwise
        fall back from "Read" to "Sent"."""
        conversation = await self.service.get(conversation_id)
        if conversation is None or connection.closed:
            return
        delivered, read = ((conversation.agent_delivered, conversation.agent_read) if by == "agent"
                           else (conversation.visitor_delivered, conversation.visitor_read))
        if delivered or read:
            connection.send(p.ChatSeen(delivered=delivered, read=read, conversation=conversation_id, by=by))

    async def _state(self, conversation_id: str, *, for_agents: bool) -> p.ChatState:
        conversation = await self.service.get(conversation_id)
        if conversation is None:
            raise ChatError("not_found", "no such conversation")
        session = self.session_of(conversation_id)
        agents = await self.service.participants(conversation_id)
        state = p.ChatState(conversation=conversation_id, status=conversation.status, agents=agents,
                            session=session.id if session is not None else "",
                            department=conversation.department)
        if for_agents:
            state.visitor = conversation.visitor_name
            state.email = conversation.visitor_email
            state.fields = dict(conversation.fields or {})
            state.url = conversation.url or ""
        elif conversation.status == "ended":
            # (No survey for a chat nobody answered.)
            state.survey = (self.settings.survey and conversation.survey_rating is None
                            and conversation.accepted_at is not None)
        elif conversation.status == "waiting":
            state.available = self.available(conversation.department)
            # What the visitor is told now: _tell_staffing sends only changes from here.
            (self._unstaffed.discard if state.available else self._unstaffed.add)(conversation_id)
        return state

    async def _broadcast_state(self, conversation_id: str) -> None:
        self._publish(visitor_topic(conversation_id), await self._state(conversation_id, for_agents=False))
        self._publish(agents_topic(conversation_id), await self._state(conversation_id, for_agents=True))

    async def _end(self, conversation_id: str, by: str, line: str | None = None) -> None:
        conversation = await self.service.get(conversation_id)
        if conversation is not None and conversation.status != "ended":
            # Said before the end: an ended conversation takes no more messages, and the
            # line belongs in both sides' view and transcript.
            line = line or {"visitor": "The visitor ended the chat.", "agent": "The agent ended the chat.",
                            "idle": "The chat ended after a long silence."}.get(by, "The chat ended.")
            try:
                await self._system(conversation_id, line, kind="event")
            except Exception as exc:  # ended meanwhile (by the other side): its own line is there
                if getattr(exc, "code", None) != "ended":
                    raise
        ended = await self.service.end(conversation_id, by)
        session = self.session_of(conversation_id)
        if session is not None:
            # The visitor shared their page for this chat: it stops with it.
            self.hub.end_session(session.id, EndReason.CHAT_ENDED)
        await self._broadcast_state(conversation_id)
        if ended is None:
            return  # it had ended already: this side now knows
        self.offers_changed()
        if self.settings.on_ended is not None:
            self.hub._persist(self.settings.on_ended(conversation_id))

    def _publish(self, topic: str, message: p.Message) -> None:
        self.hub.broker.publish(topic, p.encode(message))

    def _service_error(self, connection: Connection, frame, exc: Exception) -> None:
        tag = type(frame).__struct_config__.tag
        code = getattr(exc, "code", None)
        if isinstance(code, str):
            connection.send(p.Error(code=code, message=str(getattr(exc, "message", exc))[:300], re=tag))
            return
        log.exception("chat frame %s failed", tag, exc_info=exc)
        connection.send(p.Error(code="server_error", message="that did not work; try again", re=tag))

    # ----- offers ------------------------------------------------------------------

    def offers_changed(self) -> None:
        """Send every watching agent its list again, soon (changes close together go out once)."""
        if self._stopped:
            return  # (sockets closing at shutdown: nobody to tell, and the database is going)
        if self._offers_timer is not None or (self._offers_task is not None and not self._offers_task.done()):
            self._offers_dirty = True
            return
        loop = asyncio.get_running_loop()
        wait = max(0.0, self._offers_sent + OFFERS_INTERVAL - loop.time())
        self._offers_timer = loop.call_later(wait, self._offers_due)

    def _offers_due(self) -> None:
        self._offers_timer = None
        self._offers_dirty = False
        self._offers_sent = asyncio.get_running_loop().time()
        self._offers_task = asyncio.ensure_future(self._send_offers(list(self._watchers.values())))
        self._offers_task.add_done_callback(self._offers_done)

    def _offers_done(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("could not send chat offers", exc_info=task.exception())
        if self._offers_dirty:
            self._offers_dirty = False
            self.offers_changed()

    async def _send_offers(self, watchers: list[AgentChat]) -> None:
        # (Even with nobody watching: the visitors waiting must learn that.)
        waiting = await self.service.waiting()
        previews = await self.service.previews([c.id for c in waiting]) if waiting else {}
        self._previewed &= {c.id for c in waiting}  # only waiting chats need it
        await self._tell_staffing(waiting)
        for watcher in watchers:
            if watcher.connection.closed:
                continue
            # Away stops the alerts and routing, not the view: an away agent still sees
            # who waits (and may take a chat), so nobody waits unseen.
            mine = [c for c in waiting if _may_take(watcher, c.department)][:MAX_OFFERS]
            watcher.connection.send(p.ChatOffers(offers=[
                p.ChatOffer(conversation=c.id, name=c.visitor_name, department=c.department, url=c.url or "",
                            since=_timestamp(c.created_at), preview=previews.get(c.id, ""))
                for c in mine]))

    async def _tell_staffing(self, waiting: list) -> None:
        """Waiting visitors whose chance of an agent changed (the last one available went
        away, or someone came back) get their state again: the widget then offers to
        leave a message, or stops offering it."""
        unstaffed = {c.id for c in waiting if not self.available(c.department)}
        # (Chats no longer waiting are left out: their own state has gone out.)
        changed = unstaffed ^ (self._unstaffed & {c.id for c in waiting})
        self._unstaffed = unstaffed
        for conversation_id in changed:
            try:
                self._publish(visitor_topic(conversation_id), await self._state(conversation_id, for_agents=False))
            except ChatError:
                pass  # gone meanwhile

    # ----- idle chats ----------------------------------------------------------------

    def start(self) -> None:
        if self.settings.idle_timeout > 0:
            self._idle_task = asyncio.ensure_future(self._end_idle_chats())

    async def _end_idle_chats(self) -> None:
        """Chats nobody wrote in for ``idle_timeout`` end (and their transcripts go out)."""
        period = min(60.0, max(1.0, self.settings.idle_timeout / 10))
        while True:
            await asyncio.sleep(period)
            try:
                for conversation in await self.service.idle_conversations(self.settings.idle_timeout):
                    await self._end(conversation.id, "idle")
            except Exception:  # the database is away: try again next time
                log.exception("could not end idle chats")

    async def stop(self) -> None:
        self._stopped = True
        if self._idle_task is not None:
            self._idle_task.cancel()
            self._idle_task = None
        if self._offers_timer is not None:
            self._offers_timer.cancel()
            self._offers_timer = None
        if self._offers_task is not None:
            # A list in progress finishes first: cut off in the middle of a query, the
            # database connection is left closing, and the process never exits.
            await asyncio.wait([self._offers_task], timeout=OFFERS_STOP_WAIT)
            self._offers_task.cancel()


_HOLDER_FRAMES = frozenset({p.ChatSend, p.ChatEnd, p.ChatTransfer})


def _may_take(watcher: AgentChat, department: str) -> bool:
    # The service applies the same rule when an agent accepts.
    return (watcher.agent.role != "agent" or not department or not watcher.departments
            or department in watcher.departments)


def _command_of(text: str) -> tuple[str, str] | None:
    stripped = text.strip()
    lowered = stripped[:5].lower()
    for prefix, kind in COMMAND_PREFIXES.items():
        if lowered.startswith(prefix):
            url = stripped[len(prefix):].strip()
            if url and " " not in url and "\n" not in url:
                return kind, url
    return None


def _current_tab(session: CobrowseSession) -> str | None:
    """The visitor's tab a chat command acts on: the last open, connected one."""
    best = None
    for tab in session.tabs.values():
        if tab.open and tab.connected:
            best = tab.id  # dicts keep insertion order: the newest tab last
    return best


def _participant(agent: AgentIdentity) -> p.ChatParticipant:
    return p.ChatParticipant(id=agent.user_id, name=agent.name, role=agent.role)


def _user(agent: AgentIdentity) -> AgentIdentity:
    # The chat service's permission checks read user_id, name and role: the identity has them.
    return agent


def _timestamp(value) -> float:
    if value is None:
        return 0.0
    if isinstance(value, (int, float)):
        return float(value)
    return value.timestamp()


__all__ = ["HubChat", "ChatHubSettings", "VisitorChat", "AgentChat", "VISITOR_FRAMES",
           "AGENT_FRAMES", "visitor_topic", "agents_topic"]
