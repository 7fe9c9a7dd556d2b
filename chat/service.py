"""The chat domain (docs/chat.md): conversations, messages, routing, canned
replies, offline messages, files and transcript recipients.

    service = ChatService.from_config(db, config, secret=secret)
    conversation = await service.start(site="shop.example.com", visitor_id=v, key=k, name="Ann")
    message, stored = await service.post(conversation.id, client_id=m, sender="visitor", text="Hi")

The database is the truth; the hub (cobrowse/sync/chat.py) only carries frames.
Every write is one short transaction (``Database.transaction()``: ``BEGIN
IMMEDIATE`` on SQLite), so a method that returns has committed, and a client
can be acknowledged. Concurrency is settled by the database, so several
processes (or nodes on one PostgreSQL) may serve the same chats: seqs come
from an ``UPDATE ... RETURNING`` on the conversation row, accepting is a
conditional ``UPDATE ... WHERE status = 'waiting'``, and idempotency keys are
unique constraints (a race that slips past a lookup lands on the constraint
and is answered with the stored row). On SQLite, a service's writes also queue
in memory before they queue for the database's lock: only for speed (see
``ChatService.__init__``), so one process should share one service.

Methods return plain frozen dataclasses (:class:`Conversation`,
:class:`Message`, ...), never ORM objects. Problems a client can cause raise
:class:`ChatError` with a ``code`` fit for an ``error`` frame or an HTTP status:
``not_found``, ``forbidden``, ``taken``, ``ended``, ``bad_request``,
``too_large`` (a text or file over its limit), ``bad_type``.

Agents are passed as any object with ``user_id``, ``name`` and ``role``
(:class:`ChatUser`; the hub's ``AgentIdentity`` is one).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
import sqlalchemy as sa

from cobrowse.storage.models import Role, User, UserDepartment
from cobrowse.sync import protocol as p

from .models import (
    CANNED_NAME_LENGTH,
    EMAIL_LENGTH,
    FILE_NAME_LENGTH,
    ID_LENGTH,
    NAME_LENGTH,
    SITE_HOST_LENGTH,
    CannedResponse,
    CannedScope,
    ChatConversation,
    ChatFileRow,
    ChatMessageRow,
    ChatParticipantRow,
    ChatSessionLink,
    ChatTranscriptMail,
    ConversationStatus,
    EndedBy,
    MailAudience,
    MessageKind,
    OfflineMessageRow,
    ParticipationRole,
    Sender,
    Uploader,
)
from .transcript import zone_of

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from cobrowse.config import ChatField, Config, Department
    from cobrowse.storage.db import Database

__all__ = [
    "ChatService",
    "ChatError",
    "ChatUser",
    "Conversation",
    "Message",
    "ChatFileRecord",
    "Canned",
    "OfflineMessage",
    "chat_token",
    "check_chat_token",
    "new_message_id",
    "wire_message",
    "clean_text",
    "MAX_CANNED_BODY",
    "MAX_SURVEY_COMMENT",
    "MAX_HISTORY",
]

MAX_CANNED_BODY = 4000
MAX_SURVEY_COMMENT = 2000
MAX_HISTORY = 1000  # most messages one history() call returns
VISITOR_ID_LENGTH = 128

_ID_RE = re.compile(r"[A-Za-z0-9_-]{8,64}")  # client message ids, start and offline keys
_SLUG_RE = re.compile(r"[a-z0-9_-]{1,32}")  # department ids, canned reply names
# Control characters (C0 except \t and \n, DEL, C1) and lone surrogates, which
# cannot even be stored as UTF-8. \r goes too: "\r\n" becomes "\n".
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# A visitor's address: one "@", a dot in the domain, nothing that separates addresses.
# No "?", "&", "=" or "%" either: an address ends up in mailto: links, where those add headers.
_EMAIL_RE = re.compile(r'[^\s@<>(),;:"\[\]\\?&=%]{1,64}@[^\s@<>(),;:"\[\]\\.?&=%]+(\.[^\s@<>(),;:"\[\]\\.?&=%]+)+')
_SHA256_RE = re.compile(r"[0-9a-f]{64}")

# Which kinds each sender may post (files go through record_file as well).
_KINDS_BY_SENDER: dict[Sender, frozenset[MessageKind]] = {
    Sender.visitor: frozenset({MessageKind.text, MessageKind.file}),
    Sender.agent: frozenset({MessageKind.text, MessageKind.note, MessageKind.file, MessageKind.command,
                             MessageKind.event}),
    Sender.system: frozenset({MessageKind.system, MessageKind.event}),
}
_NEEDS_TEXT = frozenset({MessageKind.text, MessageKind.note, MessageKind.command})
_PRIVILEGED = frozenset({Role.supervisor.value, Role.admin.value})
_SCOPE_RANK = {CannedScope.agent: 3, CannedScope.department: 2, CannedScope.site: 1}


class ChatError(Exception):
    """A request the service refuses; ``code`` says why (see the module docstring)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ChatError({self.code!r}, {self.message!r})"


class ChatUser(Protocol):
    """An agent, supervisor or admin acting on chats (e.g. the hub's AgentIdentity)."""

    @property
    def user_id(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def role(self) -> str: ...


# ---------------------------------------------------------------------------
# What the service returns
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    site_host: str
    visitor_id: str
    visitor_name: str
    visitor_email: str
    department: str
    fields: Mapping[str, str]  # pre-chat answers
    url: str
    title: str
    status: str  # waiting | active | ended
    agent_id: int | None  # who holds it
    created_at: datetime
    accepted_at: datetime | None  # the first acceptance
    ended_at: datetime | None
    ended_by: str | None  # visitor | agent | idle | system
    last_seq: int  # the highest seq stored (0: no message yet)
    visitor_delivered: int
    visitor_read: int
    agent_delivered: int
    agent_read: int
    survey_rating: int | None
    survey_comment: str | None
    survey_at: datetime | None
    visitor_timezone: str = ""  # IANA name from the visitor's browser ("": not known)

    @property
    def ended(self) -> bool:
        return self.status == ConversationStatus.ended


@dataclass(frozen=True, slots=True)
class ChatFileRecord:
    id: str
    conversation_id: str
    client_id: str  # the id of the file's message
    uploader: str  # visitor | agent
    user_id: int | None  # the agent who sent it
    name: str
    size: int
    content_type: str
    storage_key: str  # the stored file's name under chat.files_dir
    sha256: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Message:
    conversation_id: str
    seq: int
    client_id: str  # the idempotency key (the wire's ``id``)
    at: datetime
    sender: str  # visitor | agent | system
    kind: str  # text | note | file | system | command | event
    text: str
    agent_id: int | None
    sender_name: str
    file: ChatFileRecord | None
    rich: Any  # system messages: sanitized formatting (a JSON value), else None


@dataclass(frozen=True, slots=True)
class Canned:
    id: int
    scope: str  # site | department | agent
    site_host: str  # '' = every site
    department: str  # scope department only
    user_id: int | None  # scope agent: the owner
    name: str
    body: str
    created_at: datetime
    updated_at: datetime
    created_by: int | None


@dataclass(frozen=True, slots=True)
class OfflineMessage:
    id: int
    site_host: str
    key: str
    name: str
    email: str
    department: str
    text: str
    fields: Mapping[str, str]
    url: str
    created_at: datetime
    emailed_at: datetime | None
    resolved_at: datetime | None
    resolved_by: int | None


def _conversation(row: ChatConversation) -> Conversation:
    return Conversation(
        id=row.id, site_host=row.site_host, visitor_id=row.visitor_id, visitor_name=row.visitor_name,
        visitor_email=row.visitor_email, department=row.department, fields=dict(row.fields or {}), url=row.url,
        title=row.title, status=str(row.status), agent_id=row.agent_id, created_at=row.created_at,
        accepted_at=row.accepted_at, ended_at=row.ended_at, ended_by=str(row.ended_by) if row.ended_by else None,
        last_seq=row.next_seq - 1, visitor_delivered=row.visitor_delivered, visitor_read=row.visitor_read,
        agent_delivered=row.agent_delivered, agent_read=row.agent_read, survey_rating=row.survey_rating,
        survey_comment=row.survey_comment, survey_at=row.survey_at, visitor_timezone=row.visitor_timezone or "",
    )


def _file(row: ChatFileRow) -> ChatFileRecord:
    return ChatFileRecord(
        id=row.id, conversation_id=row.conversation_id, client_id=row.client_id, uploader=str(row.uploader),
        user_id=row.user_id, name=row.name, size=row.size, content_type=row.content_type,
        storage_key=row.storage_key, sha256=row.sha256, created_at=row.created_at,
    )


def _message(row: ChatMessageRow, file: ChatFileRow | None) -> Message:
    return Message(
        conversation_id=row.conversation_id, seq=row.seq, client_id=row.client_id, at=row.at,
        sender=str(row.sender), kind=str(row.kind), text=row.text, agent_id=row.agent_id,
        sender_name=row.sender_name, file=_file(file) if file is not None else None, rich=row.rich,
    )


def _canned(row: CannedResponse) -> Canned:
    return Canned(
        id=row.id, scope=str(row.scope), site_host=row.site_host, department=row.department, user_id=row.user_id,
        name=row.name, body=row.body, created_at=row.created_at, updated_at=row.updated_at,
        created_by=row.created_by,
    )


def _offline(row: OfflineMessageRow) -> OfflineMessage:
    return OfflineMessage(
        id=row.id, site_host=row.site_host, key=row.key, name=row.name, email=row.email,
        department=row.department, text=row.text, fields=dict(row.fields or {}), url=row.url,
        created_at=row.created_at, emailed_at=row.emailed_at, resolved_at=row.resolved_at,
        resolved_by=row.resolved_by,
    )


# ---------------------------------------------------------------------------
# Helpers usable without a service
# ---------------------------------------------------------------------------


def new_message_id() -> str:
    """A fresh message id (for system messages): 22 URL-safe characters."""
    return secrets.token_urlsafe(16)


def chat_token(secret: bytes, conversation_id: str, visitor_id: str) -> str:
    """``<conversation>.<mac>``: proves that ``visitor_id`` owns the conversation
    (the same shape as the hub's co-browse resume tokens)."""
    mac = hmac.new(secret, f"chat|{conversation_id}|{visitor_id}".encode(), hashlib.sha256).digest()[:18]
    return f"{conversation_id}.{base64.urlsafe_b64encode(mac).decode()}"


def check_chat_token(secret: bytes, token: str, visitor_id: str) -> str | None:
    """The conversation id ``token`` was made for, if it was made for ``visitor_id``; else None."""
    if not isinstance(token, str) or not isinstance(visitor_id, str) or len(token) > 2 * ID_LENGTH:
        return None
    conversation_id, _, _ = token.partition(".")
    if not conversation_id:
        return None
    expected = chat_token(secret, conversation_id, visitor_id)
    return conversation_id if hmac.compare_digest(expected.encode(), token.encode()) else None


def wire_message(message: Message) -> p.ChatMessage:
    """A stored message as the hub sends it (``chat_msg``, ``chat_history``)."""
    file = None
    if message.file is not None:
        f = message.file
        file = p.ChatFile(id=f.id, name=f.name, size=f.size, type=f.content_type)
    return p.ChatMessage(
        seq=message.seq,
        id=message.client_id,
        at=message.at.timestamp(),
        sender=message.sender,  # type: ignore[arg-type]  (validated when stored)
        kind=message.kind,  # type: ignore[arg-type]
        text=message.text,
        name=message.sender_name,
        agent=message.agent_id or 0,
        file=file,
        rich=msgspec.Raw(msgspec.json.encode(message.rich)) if message.rich is not None else None,
    )


def clean_text(text: str) -> str:
    """``text`` without control characters except newline and tab."""
    return _CONTROL_RE.sub("", text)


def _single_line(text: str) -> str:
    return " ".join(clean_text(text).split())


def _is_privileged(user: ChatUser) -> bool:
    return str(getattr(user.role, "value", user.role)) in _PRIVILEGED


def _may_take(user: ChatUser, user_departments: Iterable[str], chat_department: str) -> bool:
    """The routing rule: supervisors and admins take anything; an agent takes chats
    without a department, every chat when they belong to none, else their departments'."""
    if _is_privileged(user) or not chat_department:
        return True
    departments = set(user_departments)
    return not departments or chat_department in departments


def _bad(message: str) -> ChatError:
    return ChatError("bad_request", message)


def _require_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise _bad(f"{what} must be a string")
    return value


def _check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise _bad(f"{what} must be 8 to 64 characters A-Z, a-z, 0-9, '_' or '-'")
    return value


def _limited(text: str, limit: int, what: str) -> str:
    if len(text) > limit:
        raise ChatError("too_large", f"{what} is too long ({len(text)} characters, at most {limit})")
    return text


def _enum_value(cls: type, value: object, what: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        choices = ", ".join(member.value for member in cls)
        raise _bad(f"{what} must be one of {choices}, got {value!r}") from None


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad(f"{what} must be a non-negative integer")
    return value


def _site_host(site: object) -> str:
    host = _require_str(site, "site").strip().lower()
    if not host or len(host) > SITE_HOST_LENGTH or any(ch.isspace() for ch in host):
        raise _bad("site must be a host name")
    return host


def _visitor(visitor_id: object) -> str:
    visitor = _require_str(visitor_id, "visitor id")
    if not visitor or len(visitor) > VISITOR_ID_LENGTH or _CONTROL_RE.search(visitor):
        raise _bad(f"visitor id must be 1 to {VISITOR_ID_LENGTH} printable characters")
    return visitor


def _visitor_email(email: object) -> str:
    address = _require_str(email, "email").strip()
    if address and (len(address) > EMAIL_LENGTH or not _EMAIL_RE.fullmatch(address)):
        raise _bad("email must be an address like name@example.com")
    return address


def _page_text(value: object, what: str) -> str:
    # Page URLs and titles come from the browser, not from the visitor's typing:
    # cut to the wire limit rather than refuse a chat on a page with a huge URL.
    return _single_line(_require_str(value, what))[: p.MAX_TEXT]


def _file_name(name: object) -> str:
    text = _single_line(_require_str(name, "file name"))
    text = re.split(r"[/\\]", text)[-1].strip()  # a path's last part: names never make paths
    if not text or text in (".", ".."):
        raise _bad("a file needs a name")
    if len(text) > FILE_NAME_LENGTH:
        stem, dot, ext = text.rpartition(".")
        ext = ext if dot and 0 < len(ext) <= 16 else ""
        text = text[: FILE_NAME_LENGTH - len(ext) - 1].rstrip() + "." + ext if ext else text[:FILE_NAME_LENGTH]
    return text


# ---------------------------------------------------------------------------
# The service
# ---------------------------------------------------------------------------


class ChatService:
    """Chat's domain operations on one database (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        *,
        secret: bytes,
        clock: Callable[[], float] = time.time,
        departments: Mapping[str, Department] | None = None,
        prechat_fields: Sequence[ChatField] = (),
    ) -> None:
        """``departments``: the configured ``[[department]]`` by id (when there are any,
        a chat's department must be one of them). ``prechat_fields``: the pre-chat
        form's questions; answers to anything else are refused, required ones enforced."""
        self.db = db
        self._secret = secret
        self._clock = clock
        self._departments: dict[str, Department] = dict(departments or {})
        self._fields: dict[str, ChatField] = {f.name: f for f in prechat_fields}
        # SQLite has one writer at a time. Left to themselves, concurrent writers of
        # this process would wait in SQLite's busy handler, which sleeps and polls
        # (20 posts at once: about a second). Queued here first, they take turns in
        # order and without sleeping. Other processes still meet at SQLite's lock.
        self._write_lock = asyncio.Lock() if db.is_sqlite else None

    @classmethod
    def from_config(cls, db: Database, config: Config, *, secret: bytes,
                    clock: Callable[[], float] = time.time) -> ChatService:
        """The service for ``config``: its departments, and the pre-chat fields when
        ``chat.prechat`` is on (without the form a visitor answers nothing)."""
        return cls(db, secret=secret, clock=clock,
                   departments={d.id: d for d in config.departments},
                   prechat_fields=config.chat.fields if config.chat.prechat else ())

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: committed at the end of the block, rolled back on an exception."""
        if self._write_lock is None:
            async with self.db.transaction() as s:
                yield s
            return
        async with self._write_lock, self.db.transaction() as s:
            yield s

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    # -- tokens -----------------------------------------------------------------

    # No I/O: plain methods, so the hub's hot paths need not await them.
    def token(self, conversation_id: str, visitor_id: str) -> str:
        """The chat token of ``visitor_id`` for this conversation (see :func:`chat_token`)."""
        return chat_token(self._secret, conversation_id, visitor_id)

    def check_token(self, token: str, visitor_id: str) -> str | None:
        """The conversation id the token proves ``visitor_id`` owns, or None."""
        return check_chat_token(self._secret, token, visitor_id)

    # -- conversations ----------------------------------------------------------

    async def start(
        self,
        *,
        site: str,
        visitor_id: str,
        key: str,
        name: str = "",
        email: str = "",
        department: str = "",
        fields: Mapping[str, str] | None = None,
        url: str = "",
        title: str = "",
        timezone: str = "",
    ) -> Conversation:
        """Open a conversation (status ``waiting``). Idempotent on (visitor_id, key):
        a retry returns the conversation the first call made, whatever else it says.
        ``timezone`` (the browser's IANA name) is kept only when this server knows it."""
        site_host = _site_host(site)
        visitor = _visitor(visitor_id)
        start_key = _check_id(key, "key")
        visitor_name = _limited(_single_line(_require_str(name, "name")), p.MAX_FIELD, "name")
        address = _visitor_email(email)
        department = self._check_department(department)
        answers = self._check_fields(fields, enforce_required=True)
        row = ChatConversation(
            id=secrets.token_urlsafe(16), site_host=site_host, visitor_id=visitor, start_key=start_key,
            visitor_name=visitor_name, visitor_email=address, department=department, fields=answers,
            url=_page_text(url, "url"), title=_page_text(title, "title"),
            visitor_timezone=timezone if isinstance(timezone, str) and zone_of(timezone) else "",
            status=ConversationStatus.waiting,
            agent_id=None, created_at=self._now(), next_seq=1,
        )
        query = sa.select(ChatConversation).where(ChatConversation.visitor_id == visitor,
                                                  ChatConversation.start_key == start_key)
        try:
            async with self._write() as s:
                existing = await s.scalar(query)
                if existing is not None:
                    return _conversation(existing)
                s.add(row)
        except sa.exc.IntegrityError:  # the same start, committed by another node meanwhile
            async with self.db.session(read_only=True) as s:
                existing = await s.scalar(query)
            if existing is None:
                raise
            return _conversation(existing)
        return _conversation(row)

    async def get(self, conversation_id: str) -> Conversation | None:
        if not isinstance(conversation_id, str) or len(conversation_id) > ID_LENGTH:
            return None
        async with self.db.session(read_only=True) as s:
            row = await s.get(ChatConversation, conversation_id)
            return _conversation(row) if row is not None else None

    async def open_for_visitor(self, visitor_id: str, *, site: str | None = None) -> Conversation | None:
        """The visitor's latest conversation that has not ended (on ``site``, if given)."""
        query = (
            sa.select(ChatConversation)
            .where(ChatConversation.visitor_id == visitor_id, ChatConversation.status != ConversationStatus.ended)
            .order_by(ChatConversation.created_at.desc())
            .limit(1)
        )
        if site is not None:
            query = query.where(ChatConversation.site_host == site.lower())
        async with self.db.session(read_only=True) as s:
            row = await s.scalar(query)
            return _conversation(row) if row is not None else None

    async def accept(self, conversation_id: str, user: ChatUser) -> Conversation:
        """Take a waiting conversation. Exactly one of several agents accepting at once
        wins (a conditional UPDATE); the others get ChatError('taken'). Accepting again
        what one already holds returns it (a retried accept)."""
        now = self._now()
        async with self._write() as s:
            row = await self._load(s, conversation_id)
            if row.status == ConversationStatus.ended:
                raise ChatError("ended", "this chat has ended")
            if row.status == ConversationStatus.active:
                if row.agent_id == user.user_id:
                    return _conversation(row)
                raise ChatError("taken", "another agent has taken this chat")
            if not _may_take(user, await self._user_departments(s, user.user_id), row.department):
                raise ChatError("forbidden", f"this chat is for the {row.department!r} department")
            result = await s.execute(
                sa.update(ChatConversation)
                # The department is part of the condition: a transfer may have re-routed
                # the chat since it was read (on databases that let the read go stale).
                .where(ChatConversation.id == conversation_id,
                       ChatConversation.status == ConversationStatus.waiting,
                       ChatConversation.department == row.department)
                .values(status=ConversationStatus.active, agent_id=user.user_id,
                        accepted_at=sa.func.coalesce(ChatConversation.accepted_at, now))
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:
                raise ChatError("taken", "another agent has taken this chat")
            await self._join(s, conversation_id, user.user_id, ParticipationRole.accepted, now)
            return _conversation(await self._load(s, conversation_id))

    async def can_open(self, conversation: Conversation | str, user: ChatUser) -> bool:
        """Whether ``user`` may see the conversation: its holder, those taking part in
        it now (not who handed it on), supervisors and admins."""
        if _is_privileged(user):
            return True
        if isinstance(conversation, str):
            found = await self.get(conversation)
            if found is None:
                return False
            conversation = found
        if conversation.agent_id == user.user_id:
            return True
        async with self.db.session(read_only=True) as s:
            took_part = await s.scalar(
                sa.select(ChatParticipantRow.id)
                .where(ChatParticipantRow.conversation_id == conversation.id,
                       ChatParticipantRow.user_id == user.user_id,
                       ChatParticipantRow.left_at.is_(None))
                .limit(1)
            )
        return took_part is not None

    async def add_participant(self, conversation_id: str, user: ChatUser,
                              role: ParticipationRole | str = ParticipationRole.opened) -> bool:
        """Record that ``user`` is in the conversation (e.g. opened it); False when they
        already were (and had not left)."""
        role = _enum_value(ParticipationRole, role, "role")
        now = self._now()
        async with self._write() as s:
            await self._load(s, conversation_id)
            return await self._join(s, conversation_id, user.user_id, role, now)

    async def leave(self, conversation_id: str, user_id: int) -> bool:
        """Record that the user left the conversation (they can still reopen it later)."""
        async with self._write() as s:
            return await self._part(s, conversation_id, user_id, self._now())

    async def participants(self, conversation_id: str, *, ever: bool = False) -> list[p.ChatParticipant]:
        """Who is in the conversation now (joined and not left), first joined first; with
        ``ever``, everyone who took part (those who handed it on too: the transcript's list)."""
        query = (
            sa.select(User.id, User.display_name, User.username, User.role, sa.func.min(ChatParticipantRow.id))
            .join(ChatParticipantRow, ChatParticipantRow.user_id == User.id)
            .where(ChatParticipantRow.conversation_id == conversation_id)
            .group_by(User.id, User.display_name, User.username, User.role)
            .order_by(sa.func.min(ChatParticipantRow.id))
        )
        if not ever:
            query = query.where(ChatParticipantRow.left_at.is_(None))
        async with self.db.session(read_only=True) as s:
            rows = (await s.execute(query)).all()
        return [p.ChatParticipant(id=r.id, name=r.display_name or r.username, role=str(r.role)) for r in rows]

    async def transfer(self, conversation_id: str, by_user: ChatUser, *, to_user_id: int | None = None,
                       department: str | None = None) -> Conversation:
        """Hand the conversation to an agent (it stays active, held by them) or put it
        back in the queue of ``department`` ('' = the general queue). Allowed for its
        holder, supervisors and admins."""
        if (to_user_id is None) == (department is None):
            raise _bad("transfer to an agent or to a department (one of the two)")
        if department is not None:
            department = self._check_department(department)
        now = self._now()
        async with self._write() as s:
            row = await self._load(s, conversation_id)
            if row.status == ConversationStatus.ended:
                raise ChatError("ended", "this chat has ended")
            if row.agent_id != by_user.user_id and not _is_privileged(by_user):
                raise ChatError("forbidden", "only the agent holding this chat, supervisors and admins may transfer it")
            previous = row.agent_id
            if to_user_id is not None:
                target = await s.get(User, to_user_id)
                if target is None or target.disabled:
                    raise ChatError("not_found", "no such agent")
                values: dict[str, Any] = dict(status=ConversationStatus.active, agent_id=to_user_id,
                                              accepted_at=sa.func.coalesce(ChatConversation.accepted_at, now))
            else:
                values = dict(status=ConversationStatus.waiting, agent_id=None, department=department)
            result = await s.execute(
                sa.update(ChatConversation)
                # Only if nobody ended, took or transferred it since it was read (possible
                # on PostgreSQL, where reading does not lock the row).
                .where(ChatConversation.id == conversation_id, ChatConversation.status == row.status,
                       ChatConversation.agent_id.is_(None) if previous is None
                       else ChatConversation.agent_id == previous)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:
                raise ChatError("taken", "the chat changed meanwhile; look again")
            if previous is not None and previous != to_user_id:
                await self._part(s, conversation_id, previous, now)
            if to_user_id is not None:
                await self._join(s, conversation_id, to_user_id, ParticipationRole.transferred, now)
            return _conversation(await self._load(s, conversation_id))

    async def end(self, conversation_id: str, by: EndedBy | str) -> Conversation | None:
        """End the conversation; None when it had ended already (only the first end
        counts, so callers announce and mail exactly once)."""
        ended_by = _enum_value(EndedBy, by, "ended by")
        async with self._write() as s:
            result = await s.execute(
                sa.update(ChatConversation)
                .where(ChatConversation.id == conversation_id, ChatConversation.status != ConversationStatus.ended)
                .values(status=ConversationStatus.ended, ended_at=self._now(), ended_by=ended_by)
                .execution_options(synchronize_session=False)
            )
            row = await self._load(s, conversation_id)  # not_found when there is no such conversation
            return _conversation(row) if result.rowcount == 1 else None

    async def seen(self, conversation_id: str, side: str, delivered: int, read: int) -> tuple[int, int]:
        """Record that ``side`` ('visitor' or 'agent') has received messages up to
        ``delivered`` and shown them up to ``read``. Values only grow and never pass
        the last seq; returns the stored (delivered, read)."""
        if side not in ("visitor", "agent"):
            raise _bad("side must be visitor or agent")
        read = _count(read, "read")
        delivered = max(_count(delivered, "delivered"), read)  # shown implies received
        c = ChatConversation
        delivered_col, read_col = (
            (c.visitor_delivered, c.visitor_read) if side == "visitor" else (c.agent_delivered, c.agent_read)
        )
        last = c.next_seq - 1

        def grown(column: Any, value: int) -> Any:
            # In SQL, so that concurrent updates (two tabs) never lower a value.
            bounded = sa.case((sa.literal(value) > last, last), else_=sa.literal(value))
            return sa.case((column < bounded, bounded), else_=column)

        async with self._write() as s:
            result = await s.execute(
                sa.update(c).where(c.id == conversation_id)
                .values({delivered_col: grown(delivered_col, delivered), read_col: grown(read_col, read)})
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:
                raise ChatError("not_found", "no such chat")
            stored = (await s.execute(sa.select(delivered_col, read_col).where(c.id == conversation_id))).one()
        return int(stored[0]), int(stored[1])

    async def survey(self, conversation_id: str, rating: int, comment: str = "") -> bool:
        """Store the visitor's rating (1..5) and comment. Possible once the chat has
        been accepted; only the first answer counts (False for a later one)."""
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            raise _bad("rating must be 1 to 5")
        comment = _limited(clean_text(_require_str(comment, "comment")).strip(), MAX_SURVEY_COMMENT, "comment")
        async with self._write() as s:
            result = await s.execute(
                sa.update(ChatConversation)
                .where(ChatConversation.id == conversation_id, ChatConversation.survey_at.is_(None),
                       ChatConversation.accepted_at.is_not(None))
                .values(survey_rating=rating, survey_comment=comment, survey_at=self._now())
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:
                return True
            row = await self._load(s, conversation_id)
            if row.accepted_at is None:
                raise _bad("there is nothing to rate yet: no agent has answered this chat")
            return False

    async def link_session(self, conversation_id: str, session_id: str) -> bool:
        """Link a co-browse session to the conversation; False if it already was."""
        if not isinstance(session_id, str) or not 0 < len(session_id) <= ID_LENGTH:
            raise _bad("invalid co-browse session id")
        async with self._write() as s:
            await self._load(s, conversation_id)
            if await s.get(ChatSessionLink, (conversation_id, session_id)) is not None:
                return False
            s.add(ChatSessionLink(conversation_id=conversation_id, session_id=session_id, linked_at=self._now()))
            return True

    async def sessions_of(self, conversation_id: str) -> list[str]:
        """The co-browse sessions linked to the conversation, oldest first."""
        async with self.db.session(read_only=True) as s:
            return list(await s.scalars(
                sa.select(ChatSessionLink.session_id)
                .where(ChatSessionLink.conversation_id == conversation_id)
                .order_by(ChatSessionLink.linked_at, ChatSessionLink.session_id)
            ))

    async def conversation_of_session(self, session_id: str) -> str | None:
        """The conversation a co-browse session was last linked to, if any."""
        async with self.db.session(read_only=True) as s:
            return await s.scalar(
                sa.select(ChatSessionLink.conversation_id)
                .where(ChatSessionLink.session_id == session_id)
                .order_by(ChatSessionLink.linked_at.desc())
                .limit(1)
            )

    # -- the queue and lists ----------------------------------------------------

    async def waiting(self, site: str | None = None) -> list[Conversation]:
        """Waiting conversations (on ``site``, if given), oldest first."""
        query = (
            sa.select(ChatConversation)
            .where(ChatConversation.status == ConversationStatus.waiting)
            .order_by(ChatConversation.created_at, ChatConversation.id)
        )
        if site is not None:
            query = query.where(ChatConversation.site_host == site.lower())
        async with self.db.session(read_only=True) as s:
            return [_conversation(row) for row in await s.scalars(query)]

    async def offers_for(self, user: ChatUser, waiting: Sequence[Conversation]) -> list[Conversation]:
        """The conversations in ``waiting`` that ``user`` may accept (the department rule)."""
        if _is_privileged(user):
            return list(waiting)
        departments = await self.agent_departments(user.user_id)
        return [c for c in waiting if _may_take(user, departments, c.department)]

    async def previews(self, conversation_ids: Sequence[str], length: int = 80) -> dict[str, str]:
        """The first words of each conversation's first visitor message (offers show them)."""
        if not conversation_ids:
            return {}
        first = (
            sa.select(ChatMessageRow.conversation_id, sa.func.min(ChatMessageRow.seq).label("seq"))
            .where(ChatMessageRow.conversation_id.in_(list(conversation_ids)),
                   ChatMessageRow.sender == Sender.visitor, ChatMessageRow.kind == MessageKind.text)
            .group_by(ChatMessageRow.conversation_id)
            .subquery()
        )
        query = sa.select(ChatMessageRow.conversation_id, ChatMessageRow.text).join(
            first, sa.and_(ChatMessageRow.conversation_id == first.c.conversation_id, ChatMessageRow.seq == first.c.seq)
        )
        async with self.db.session(read_only=True) as s:
            rows = (await s.execute(query)).all()
        previews = {}
        for conversation_id, text in rows:
            line = " ".join(text.split())
            previews[conversation_id] = line if len(line) <= length else line[: length - 1].rstrip() + "…"
        return previews

    async def recent(self, user: ChatUser, state: str | None = None, limit: int = 50) -> list[Conversation]:
        """The newest conversations ``user`` may open (all for supervisors and admins),
        optionally only those in ``state`` (waiting | active | ended)."""
        query = sa.select(ChatConversation).order_by(ChatConversation.created_at.desc(), ChatConversation.id)
        if state is not None:
            query = query.where(ChatConversation.status == _enum_value(ConversationStatus, state, "state"))
        if not _is_privileged(user):
            # (as can_open: not the chats they handed on, or a supervisor handed away from them)
            took_part = sa.select(ChatParticipantRow.conversation_id).where(ChatParticipantRow.user_id == user.user_id,
                                                                            ChatParticipantRow.left_at.is_(None))
            query = query.where(sa.or_(ChatConversation.agent_id == user.user_id, ChatConversation.id.in_(took_part)))
        query = query.limit(max(1, min(int(limit), 500)))
        async with self.db.session(read_only=True) as s:
            return [_conversation(row) for row in await s.scalars(query)]

    async def idle_conversations(self, idle_for: float) -> list[Conversation]:
        """Conversations not ended whose last message (or, without one, whose start)
        is more than ``idle_for`` seconds old: the ones ``chat.idle_timeout`` ends."""
        cutoff = datetime.fromtimestamp(self._clock() - idle_for, UTC)
        last_message = (
            sa.select(sa.func.max(ChatMessageRow.at))
            .where(ChatMessageRow.conversation_id == ChatConversation.id)
            .scalar_subquery()
        )
        query = (
            sa.select(ChatConversation)
            .where(ChatConversation.status != ConversationStatus.ended,
                   sa.func.coalesce(last_message, ChatConversation.created_at) < cutoff)
            .order_by(ChatConversation.created_at)
        )
        async with self.db.session(read_only=True) as s:
            return [_conversation(row) for row in await s.scalars(query)]

    async def load(self) -> dict[int, int]:
        """How many active chats each agent holds now (agents holding none are left out)."""
        query = (sa.select(ChatConversation.agent_id, sa.func.count())
                 .where(ChatConversation.status == ConversationStatus.active, ChatConversation.agent_id.is_not(None))
                 .group_by(ChatConversation.agent_id))
        async with self.db.session(read_only=True) as s:
            return {agent_id: count for agent_id, count in (await s.execute(query)).all()}

    async def departments_of_users(self) -> dict[int, list[str]]:
        """Every account's departments (accounts with none are left out: they take all)."""
        query = sa.select(UserDepartment.user_id, UserDepartment.department).order_by(UserDepartment.department)
        found: dict[int, list[str]] = {}
        async with self.db.session(read_only=True) as s:
            for user_id, department in (await s.execute(query)).all():
                found.setdefault(user_id, []).append(department)
        return found

    async def agent_departments(self, user_id: int) -> list[str]:
        """The departments an account serves (none: it takes every department's chats)."""
        async with self.db.session(read_only=True) as s:
            return await self._user_departments(s, user_id)

    # -- messages ---------------------------------------------------------------

    async def post(
        self,
        conversation_id: str,
        *,
        client_id: str | None = None,
        sender: Sender | str,
        text: str = "",
        kind: MessageKind | str = MessageKind.text,
        agent_id: int | None = None,
        name: str = "",
        file_id: str | None = None,
        rich: Any = None,
    ) -> tuple[Message, bool]:
        """Store a message with the conversation's next seq, in one transaction.

        Returns (message, True) once committed. A ``client_id`` already stored in the
        same conversation returns (that message, False): a retry, to be acked again
        but neither stored nor broadcast twice; in another conversation it is refused.
        ``client_id`` may be left out for system messages (one is generated). An
        ended conversation refuses new messages (ChatError('ended')).
        """
        sender = _enum_value(Sender, sender, "sender")
        kind = _enum_value(MessageKind, kind, "kind")
        if kind not in _KINDS_BY_SENDER[sender]:
            raise _bad(f"a {sender.value} cannot send a {kind.value} message")
        if client_id is None and sender == Sender.system:
            client_id = new_message_id()
        client_id = _check_id(client_id, "message id")
        text = self._message_text(text, kind)
        name = _limited(_single_line(_require_str(name, "name")), NAME_LENGTH, "name")
        if sender == Sender.agent and agent_id is None:
            raise _bad("an agent's message needs the agent's id")
        if kind == MessageKind.file and file_id is None:
            raise _bad("a file message needs a file")
        if rich is not None and sender != Sender.system:
            raise _bad("only system messages carry formatting")
        now = self._now()
        try:
            async with self._write() as s:
                replay = await self._replay(s, client_id, conversation_id)
                if replay is not None:
                    return replay, False
                file = None
                if file_id is not None:
                    file = await s.get(ChatFileRow, file_id)
                    if file is None or file.conversation_id != conversation_id:
                        raise ChatError("not_found", "no such file in this chat")
                seq, visitor_name = await self._take_seq(s, conversation_id)
                row = ChatMessageRow(
                    conversation_id=conversation_id, seq=seq, client_id=client_id, at=now, sender=sender,
                    kind=kind, text=text, agent_id=agent_id if sender != Sender.visitor else None,
                    sender_name=name or (visitor_name if sender == Sender.visitor else ""),
                    file_id=file_id, rich=rich,
                )
                s.add(row)
        except sa.exc.IntegrityError:
            return await self._after_race(client_id, conversation_id), False
        return _message(row, file), True

    async def history(self, conversation_id: str, after: int = 0, *, notes: bool,
                      limit: int = 500) -> tuple[list[Message], bool]:
        """Messages with seq > ``after``, oldest first, at most ``limit``; ``more`` when
        there are further ones. ``notes=False`` (the visitor) leaves notes out."""
        after = _count(after, "after")
        limit = max(1, min(int(limit), MAX_HISTORY))
        query = (
            sa.select(ChatMessageRow, ChatFileRow)
            .outerjoin(ChatFileRow, ChatFileRow.id == ChatMessageRow.file_id)
            .where(ChatMessageRow.conversation_id == conversation_id, ChatMessageRow.seq > after)
            .order_by(ChatMessageRow.seq)
            .limit(limit + 1)
        )
        if not notes:
            query = query.where(ChatMessageRow.kind != MessageKind.note)
        async with self.db.session(read_only=True) as s:
            rows = (await s.execute(query)).all()
        more = len(rows) > limit
        return [_message(message, file) for message, file in rows[:limit]], more

    def wire(self, message: Message) -> p.ChatMessage:
        """The message as a protocol struct (see :func:`wire_message`)."""
        return wire_message(message)

    # -- files ------------------------------------------------------------------

    async def files_sent(self, conversation_id: str, uploader: Uploader | str, *, other_than: str = "") -> int:
        """How many files ``uploader`` ('visitor' or 'agent') has sent in the conversation,
        not counting the one with client id ``other_than`` (a retried upload is no new file)."""
        uploader = _enum_value(Uploader, uploader, "uploader")
        async with self.db.session(read_only=True) as s:
            return int(await s.scalar(
                sa.select(sa.func.count()).select_from(ChatFileRow)
                .where(ChatFileRow.conversation_id == conversation_id, ChatFileRow.uploader == uploader,
                       ChatFileRow.client_id != other_than)
            ) or 0)

    async def record_file(
        self,
        conversation_id: str,
        *,
        uploader: Uploader | str,
        user_id: int | None,
        name: str,
        size: int,
        content_type: str,
        storage_key: str,
        sha256: str,
        client_id: str,
        agent_name: str = "",
    ) -> tuple[Message, bool]:
        """Record a stored file and its ``file`` message in one transaction.

        Idempotent on ``client_id`` like :meth:`post`: a retried upload returns
        (the first message, False), and the caller should delete the bytes it
        stored a second time (``storage_key`` of this call is then unused).
        """
        uploader = _enum_value(Uploader, uploader, "uploader")
        client_id = _check_id(client_id, "message id")
        file_name = _file_name(name)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise _bad("size must be a non-negative integer")
        content_type = _single_line(_require_str(content_type, "content type"))[:255] or "application/octet-stream"
        if not isinstance(storage_key, str) or not storage_key or len(storage_key) > 255:
            raise _bad("invalid storage key")
        if not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256.lower()):
            raise _bad("sha256 must be 64 hex digits")
        if uploader == Uploader.agent and user_id is None:
            raise _bad("an agent's file needs the agent's id")
        agent_name = _limited(_single_line(_require_str(agent_name, "name")), NAME_LENGTH, "name")
        now = self._now()
        try:
            async with self._write() as s:
                replay = await self._replay(s, client_id, conversation_id)
                if replay is not None:
                    return replay, False
                seq, visitor_name = await self._take_seq(s, conversation_id)
                file = ChatFileRow(
                    id=secrets.token_urlsafe(16), conversation_id=conversation_id, client_id=client_id,
                    uploader=uploader, user_id=user_id if uploader == Uploader.agent else None, name=file_name,
                    size=size, content_type=content_type, storage_key=storage_key, sha256=sha256.lower(),
                    created_at=now,
                )
                s.add(file)
                await s.flush()  # the message refers to it
                sender = Sender.agent if uploader == Uploader.agent else Sender.visitor
                row = ChatMessageRow(
                    conversation_id=conversation_id, seq=seq, client_id=client_id, at=now, sender=sender,
                    kind=MessageKind.file, text=file_name, agent_id=file.user_id,
                    sender_name=agent_name if sender == Sender.agent else visitor_name, file_id=file.id,
                )
                s.add(row)
        except sa.exc.IntegrityError:
            return await self._after_race(client_id, conversation_id), False
        return _message(row, file), True

    async def file(self, file_id: str) -> ChatFileRecord | None:
        if not isinstance(file_id, str) or len(file_id) > ID_LENGTH:
            return None
        async with self.db.session(read_only=True) as s:
            row = await s.get(ChatFileRow, file_id)
            return _file(row) if row is not None else None

    # -- canned replies ---------------------------------------------------------

    async def canned_for(self, user: ChatUser, site: str = "") -> list[Canned]:
        """The canned replies ``user`` may use on ``site``: site-wide ones, their
        departments', their own; for every site and for this one. When two share a
        name, the most specific wins: own > department > site-wide, and a reply for
        this site over one for every site. Sorted by name."""
        site_host = site.strip().lower() if isinstance(site, str) else ""
        async with self.db.session(read_only=True) as s:
            departments = await self._user_departments(s, user.user_id)
            rows = list(await s.scalars(
                sa.select(CannedResponse)
                .where(CannedResponse.site_host.in_(tuple({"", site_host})), self._visible_canned(user, departments))
                .order_by(CannedResponse.id)
            ))
        best: dict[str, CannedResponse] = {}
        for row in rows:  # by id: among equals, the oldest stays
            rank = (_SCOPE_RANK[row.scope], row.site_host != "")
            current = best.get(row.name)
            if current is None or rank > (_SCOPE_RANK[current.scope], current.site_host != ""):
                best[row.name] = row
        return [_canned(best[name]) for name in sorted(best)]

    async def canned_list(self, user: ChatUser) -> list[Canned]:
        """Every canned reply ``user`` may see, on every site, without resolving name
        clashes (for managing them); supervisors and admins see every shared one."""
        async with self.db.session(read_only=True) as s:
            if _is_privileged(user):
                visible = sa.or_(CannedResponse.user_id.is_(None), CannedResponse.user_id == user.user_id)
            else:
                visible = self._visible_canned(user, await self._user_departments(s, user.user_id))
            rows = await s.scalars(
                sa.select(CannedResponse).where(visible)
                .order_by(CannedResponse.name, CannedResponse.scope, CannedResponse.site_host, CannedResponse.id)
            )
            return [_canned(row) for row in rows]

    async def create_canned(self, user: ChatUser, *, scope: CannedScope | str, name: str, body: str,
                            department: str = "", site: str = "") -> Canned:
        """A new canned reply. Own ones (scope 'agent'): any agent; department and
        site-wide ones: supervisors and admins (else ChatError('forbidden'))."""
        scope = _enum_value(CannedScope, scope, "scope")
        name = self._canned_name(name)
        body = self._canned_body(body)
        site_host = self._canned_site(site)
        if scope == CannedScope.department:
            if not department:
                raise _bad("a department's canned reply needs the department")
            department = self._check_department(department)
        elif department:
            raise _bad(f"a {scope.value} canned reply has no department")
        if scope != CannedScope.agent and not _is_privileged(user):
            raise ChatError("forbidden", "only supervisors and admins manage shared canned replies")
        now = self._now()
        row = CannedResponse(
            scope=scope, site_host=site_host, department=department,
            user_id=user.user_id if scope == CannedScope.agent else None, name=name, body=body,
            created_at=now, updated_at=now, created_by=user.user_id,
        )
        try:
            async with self._write() as s:
                await self._check_canned_name_free(s, row, name)
                s.add(row)
        except sa.exc.IntegrityError:  # created concurrently
            raise _bad(f"a canned reply named {name!r} already exists here") from None
        return _canned(row)

    async def update_canned(self, user: ChatUser, canned_id: int, *, name: str | None = None,
                            body: str | None = None) -> Canned:
        """Rename a canned reply or change its text (same permissions as creating)."""
        new_name = self._canned_name(name) if name is not None else None
        new_body = self._canned_body(body) if body is not None else None
        try:
            async with self._write() as s:
                row = await self._own_canned(s, user, canned_id)
                if new_name is not None and new_name != row.name:
                    await self._check_canned_name_free(s, row, new_name)
                    row.name = new_name
                if new_body is not None:
                    row.body = new_body
                row.updated_at = self._now()
        except sa.exc.IntegrityError:
            raise _bad(f"a canned reply named {new_name!r} already exists here") from None
        return _canned(row)

    async def delete_canned(self, user: ChatUser, canned_id: int) -> None:
        async with self._write() as s:
            await s.delete(await self._own_canned(s, user, canned_id))

    # -- offline messages -------------------------------------------------------

    async def leave_message(
        self,
        *,
        site: str,
        key: str,
        name: str = "",
        email: str = "",
        department: str = "",
        text: str,
        fields: Mapping[str, str] | None = None,
        url: str = "",
    ) -> tuple[OfflineMessage, bool]:
        """Store a message left while no agent was available; idempotent on ``key``
        (a retry returns (the stored message, False))."""
        site_host = _site_host(site)
        key = _check_id(key, "key")
        row = OfflineMessageRow(
            site_host=site_host, key=key,
            name=_limited(_single_line(_require_str(name, "name")), p.MAX_FIELD, "name"),
            email=_visitor_email(email), department=self._check_department(department),
            text=self._message_text(text, MessageKind.text),
            fields=self._check_fields(fields, enforce_required=False),
            url=_page_text(url, "url"), created_at=self._now(),
        )
        query = sa.select(OfflineMessageRow).where(OfflineMessageRow.key == key)
        try:
            async with self._write() as s:
                existing = await s.scalar(query)
                if existing is not None:
                    return _offline(existing), False
                s.add(row)
        except sa.exc.IntegrityError:
            async with self.db.session(read_only=True) as s:
                existing = await s.scalar(query)
            if existing is None:
                raise
            return _offline(existing), False
        return _offline(row), True

    async def offline_message(self, message_id: int) -> OfflineMessage | None:
        async with self.db.session(read_only=True) as s:
            row = await s.get(OfflineMessageRow, message_id)
        return _offline(row) if row is not None else None

    async def offline(self, state: str = "open", limit: int = 200) -> list[OfflineMessage]:
        """Offline messages, newest first: 'open' (not resolved), 'resolved' or 'all'."""
        query = sa.select(OfflineMessageRow).order_by(OfflineMessageRow.created_at.desc(), OfflineMessageRow.id.desc())
        if state == "open":
            query = query.where(OfflineMessageRow.resolved_at.is_(None))
        elif state == "resolved":
            query = query.where(OfflineMessageRow.resolved_at.is_not(None))
        elif state != "all":
            raise _bad("state must be open, resolved or all")
        query = query.limit(max(1, min(int(limit), 1000)))
        async with self.db.session(read_only=True) as s:
            return [_offline(row) for row in await s.scalars(query)]

    async def resolve_offline(self, message_id: int, user: ChatUser) -> OfflineMessage:
        """Mark an offline message handled (by ``user``); resolving again changes nothing."""
        async with self._write() as s:
            row = await s.get(OfflineMessageRow, message_id)
            if row is None:
                raise ChatError("not_found", "no such offline message")
            if row.resolved_at is None:
                row.resolved_at = self._now()
                row.resolved_by = user.user_id
            return _offline(row)

    async def mark_offline_emailed(self, message_id: int) -> bool:
        """Record that the message was mailed; False if it already was."""
        async with self._write() as s:
            result = await s.execute(
                sa.update(OfflineMessageRow)
                .where(OfflineMessageRow.id == message_id, OfflineMessageRow.emailed_at.is_(None))
                .values(emailed_at=self._now())
                .execution_options(synchronize_session=False)
            )
            return result.rowcount == 1

    # -- transcript mail --------------------------------------------------------

    async def transcript_recipients(self, conversation_id: str, *, site_transcripts_to: Sequence[str],
                                    email_visitor: bool) -> list[tuple[str, str]]:
        """Who should get the transcript by mail and not yet have it: (address, audience).

        The union of the site's ``transcripts_to``, the department's, every agent who
        took part and opted in (an enabled account with an email and ``transcripts``
        on), and the visitor's address when ``email_visitor``. One entry per address
        (compared case-insensitively); an address on both sides gets the agents' copy.
        Addresses already in chat_transcript_mails are left out.
        """
        async with self.db.session(read_only=True) as s:
            row = await self._load(s, conversation_id)
            took_part = sa.select(ChatParticipantRow.user_id).where(
                ChatParticipantRow.conversation_id == conversation_id)
            agents = list(await s.scalars(
                sa.select(User.email)
                .where(sa.or_(User.id.in_(took_part), User.id == row.agent_id), User.transcripts.is_(True),
                       User.disabled.is_(False), User.email.is_not(None), User.email != "")
                .order_by(User.id)
            ))
            mailed = set(await s.scalars(
                sa.select(ChatTranscriptMail.address).where(ChatTranscriptMail.conversation_id == conversation_id)))
        department = self._departments.get(row.department)
        candidates: list[tuple[str, str]] = [(a, MailAudience.agent.value) for a in site_transcripts_to]
        if department is not None:
            candidates += [(a, MailAudience.agent.value) for a in department.transcripts_to]
        candidates += [(a, MailAudience.agent.value) for a in agents]
        if email_visitor and row.visitor_email:
            candidates.append((row.visitor_email, MailAudience.visitor.value))  # last: an agent copy wins
        recipients: list[tuple[str, str]] = []
        seen = set(mailed)
        for address, audience in candidates:
            address = address.strip()
            key = address.lower()
            if address and key not in seen:
                seen.add(key)
                recipients.append((address, audience))
        return recipients

    async def mark_mailed(self, conversation_id: str, address: str, audience: MailAudience | str) -> bool:
        """Claim ``address`` for this conversation's transcript: True for the first
        claim, False when it is taken (a retry, another node). Claim before sending."""
        audience = _enum_value(MailAudience, audience, "audience")
        key = _require_str(address, "address").strip().lower()
        if not key or len(key) > EMAIL_LENGTH:
            raise _bad("invalid address")
        try:
            async with self._write() as s:
                await self._load(s, conversation_id)
                taken = await s.scalar(sa.select(ChatTranscriptMail.id).where(
                    ChatTranscriptMail.conversation_id == conversation_id, ChatTranscriptMail.address == key))
                if taken is not None:
                    return False
                s.add(ChatTranscriptMail(conversation_id=conversation_id, address=key, audience=audience,
                                         sent_at=self._now()))
        except sa.exc.IntegrityError:  # claimed concurrently
            return False
        return True

    async def unmark_mailed(self, conversation_id: str, address: str) -> bool:
        """Give a claim back (sending failed), so that a later attempt may send."""
        async with self._write() as s:
            result = await s.execute(
                sa.delete(ChatTranscriptMail).where(ChatTranscriptMail.conversation_id == conversation_id,
                                                    ChatTranscriptMail.address == address.strip().lower())
            )
            return result.rowcount == 1

    # -- internals --------------------------------------------------------------

    async def _load(self, s: AsyncSession, conversation_id: str) -> ChatConversation:
        """The conversation row as the database has it now; ChatError('not_found') if none."""
        row = None
        if isinstance(conversation_id, str) and len(conversation_id) <= ID_LENGTH:
            row = await s.scalar(
                sa.select(ChatConversation).where(ChatConversation.id == conversation_id)
                .execution_options(populate_existing=True)
            )
        if row is None:
            raise ChatError("not_found", "no such chat")
        return row

    async def _take_seq(self, s: AsyncSession, conversation_id: str) -> tuple[int, str]:
        """The next seq of a conversation that has not ended (and the visitor's name).

        One UPDATE ... RETURNING: it locks the conversation row until commit, so two
        messages can never get the same seq, and no seq is skipped unless the
        transaction rolls back (then nothing was stored with it either).
        """
        row = (await s.execute(
            sa.update(ChatConversation)
            .where(ChatConversation.id == conversation_id, ChatConversation.status != ConversationStatus.ended)
            .values(next_seq=ChatConversation.next_seq + 1)
            .returning(ChatConversation.next_seq, ChatConversation.visitor_name)
            .execution_options(synchronize_session=False)
        )).one_or_none()
        if row is None:
            await self._load(s, conversation_id)  # not_found, or else:
            raise ChatError("ended", "this chat has ended")
        return row.next_seq - 1, row.visitor_name

    async def _replay(self, s: AsyncSession, client_id: str, conversation_id: str) -> Message | None:
        """The stored message with this client id (a retry), or None if there is none."""
        stored = (await s.execute(
            sa.select(ChatMessageRow, ChatFileRow)
            .outerjoin(ChatFileRow, ChatFileRow.id == ChatMessageRow.file_id)
            .where(ChatMessageRow.client_id == client_id)
        )).one_or_none()
        if stored is None:
            return None
        if stored[0].conversation_id != conversation_id:
            raise _bad("this message id is already used")
        return _message(stored[0], stored[1])

    async def _after_race(self, client_id: str, conversation_id: str) -> Message:
        """After an IntegrityError: the message stored concurrently with this client id."""
        async with self.db.session(read_only=True) as s:
            replay = await self._replay(s, client_id, conversation_id)
        if replay is None:  # the constraint that failed was not the client id's
            raise ChatError("bad_request", "the message could not be stored")
        return replay

    async def _join(self, s: AsyncSession, conversation_id: str, user_id: int, role: ParticipationRole,
                    now: datetime) -> bool:
        present = await s.scalar(
            sa.select(ChatParticipantRow.id).where(ChatParticipantRow.conversation_id == conversation_id,
                                                   ChatParticipantRow.user_id == user_id,
                                                   ChatParticipantRow.left_at.is_(None)).limit(1)
        )
        if present is not None:
            return False
        s.add(ChatParticipantRow(conversation_id=conversation_id, user_id=user_id, role=role, joined_at=now))
        await s.flush()
        return True

    async def _part(self, s: AsyncSession, conversation_id: str, user_id: int, now: datetime) -> bool:
        result = await s.execute(
            sa.update(ChatParticipantRow)
            .where(ChatParticipantRow.conversation_id == conversation_id, ChatParticipantRow.user_id == user_id,
                   ChatParticipantRow.left_at.is_(None))
            .values(left_at=now)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount > 0

    @staticmethod
    async def _user_departments(s: AsyncSession, user_id: int) -> list[str]:
        return list(await s.scalars(
            sa.select(UserDepartment.department).where(UserDepartment.user_id == user_id)
            .order_by(UserDepartment.department)
        ))

    def _check_department(self, department: object) -> str:
        department = _require_str(department, "department").strip().lower()
        if not department:
            return ""
        if not _SLUG_RE.fullmatch(department):
            raise _bad("department must be 1 to 32 characters a-z, 0-9, '_' or '-'")
        if self._departments and department not in self._departments:
            raise _bad(f"no department {department!r}")
        return department

    def field_labels(self) -> dict[str, str]:
        """The pre-chat questions' labels by field name."""
        return {name: spec.label for name, spec in self._fields.items()}

    def _check_fields(self, fields: Mapping[str, str] | None, *, enforce_required: bool) -> dict[str, str]:
        """Pre-chat answers: only configured fields, values within limits, a select's
        value one of its options, required ones present (when ``enforce_required``)."""
        if fields is None:
            fields = {}
        if not isinstance(fields, Mapping):
            raise _bad("fields must be an object")
        answers: dict[str, str] = {}
        for field_name, value in fields.items():
            spec = self._fields.get(field_name) if isinstance(field_name, str) else None
            if spec is None:
                raise _bad(f"unknown field {field_name!r}")
            value = _require_str(value, f"field {field_name}")
            value = clean_text(value).strip() if spec.type == "textarea" else _single_line(value)
            _limited(value, p.MAX_FIELD, spec.label)
            if value and spec.type == "select" and value not in spec.options:
                raise _bad(f"{spec.label}: choose one of {', '.join(spec.options)}")
            if value:
                answers[field_name] = value
        if enforce_required:
            missing = [f.label for f in self._fields.values() if f.required and f.name not in answers]
            if missing:
                raise _bad("please fill in: " + ", ".join(missing))
        return answers

    @staticmethod
    def _message_text(text: object, kind: MessageKind) -> str:
        text = clean_text(_require_str(text, "text"))
        _limited(text, p.MAX_CHAT_TEXT, "the message")
        if kind in _NEEDS_TEXT and not text.strip():
            raise _bad("the message is empty")
        return text

    # canned replies

    @staticmethod
    def _visible_canned(user: ChatUser, departments: Sequence[str]) -> Any:
        # Every department's replies for those who take every department's chats: an
        # account without departments, supervisors and admins.
        every_department = _is_privileged(user) or not departments
        return sa.or_(
            CannedResponse.scope == CannedScope.site,
            CannedResponse.scope == CannedScope.department if every_department
            else sa.and_(CannedResponse.scope == CannedScope.department, CannedResponse.department.in_(departments)),
            sa.and_(CannedResponse.scope == CannedScope.agent, CannedResponse.user_id == user.user_id),
        )

    @staticmethod
    def _canned_name(name: object) -> str:
        name = _require_str(name, "name").strip().lower().removeprefix("/")
        if not _SLUG_RE.fullmatch(name):
            raise _bad(f"a canned reply's name is 1 to {CANNED_NAME_LENGTH} characters a-z, 0-9, '_' or '-'")
        return name

    @staticmethod
    def _canned_body(body: object) -> str:
        body = clean_text(_require_str(body, "body")).strip()
        if not body:
            raise _bad("a canned reply needs a text")
        return _limited(body, MAX_CANNED_BODY, "the canned reply")

    @staticmethod
    def _canned_site(site: object) -> str:
        site = _require_str(site, "site").strip().lower()
        if len(site) > SITE_HOST_LENGTH or any(ch.isspace() for ch in site):
            raise _bad("site must be a host name, or empty for every site")
        return site

    @staticmethod
    async def _check_canned_name_free(s: AsyncSession, row: CannedResponse, name: str) -> None:
        same_owner = (
            CannedResponse.user_id == row.user_id if row.user_id is not None
            else sa.and_(CannedResponse.user_id.is_(None), CannedResponse.scope == row.scope,
                         CannedResponse.department == row.department)
        )
        clash = await s.scalar(
            sa.select(CannedResponse.id).where(same_owner, CannedResponse.site_host == row.site_host,
                                               CannedResponse.name == name).limit(1)
        )
        if clash is not None:
            raise _bad(f"a canned reply named {name!r} already exists here")

    @staticmethod
    async def _own_canned(s: AsyncSession, user: ChatUser, canned_id: int) -> CannedResponse:
        """A canned reply ``user`` may change: their own, or a shared one for supervisors
        and admins. Someone else's own replies do not exist as far as others can tell."""
        row = await s.get(CannedResponse, canned_id) if isinstance(canned_id, int) else None
        if row is None or (row.scope == CannedScope.agent and row.user_id != user.user_id):
            raise ChatError("not_found", "no such canned reply")
        if row.scope != CannedScope.agent and not _is_privileged(user):
            raise ChatError("forbidden", "only supervisors and admins manage shared canned replies")
        return row
