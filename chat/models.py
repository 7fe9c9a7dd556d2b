"""Chat tables (docs/chat.md), on the same declarative ``Base`` as the accounts and
co-browse records, so one Alembic history (``cobrowse/storage/migrations``)
covers every table. The conventions of :mod:`cobrowse.storage.models` apply:
aware UTC timestamps, enumerations as short strings, no lazy loads.

Code outside :mod:`chat.service` should not use these classes: the service
returns plain frozen dataclasses instead, so no caller ever holds a session.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from cobrowse.storage.models import Base, _enum, utcnow

__all__ = [
    "ConversationStatus",
    "EndedBy",
    "Sender",
    "MessageKind",
    "ParticipationRole",
    "CannedScope",
    "Uploader",
    "MailAudience",
    "ChatConversation",
    "ChatMessageRow",
    "ChatParticipantRow",
    "ChatSessionLink",
    "CannedResponse",
    "ChatFileRow",
    "OfflineMessageRow",
    "ChatTranscriptMail",
]

# Column sizes shared with the service's validation.
ID_LENGTH = 64  # public random ids, client ids (idempotency keys), start/offline keys
DEPARTMENT_LENGTH = 32
SITE_HOST_LENGTH = 255
NAME_LENGTH = 500  # visitor names: cobrowse.sync.protocol.MAX_FIELD
EMAIL_LENGTH = 254  # RFC 5321 path limit
FILE_NAME_LENGTH = 255
CANNED_NAME_LENGTH = 32


class ConversationStatus(enum.StrEnum):
    waiting = "waiting"  # offered to agents
    active = "active"  # an agent holds it
    ended = "ended"


class EndedBy(enum.StrEnum):
    """Who or what ended a conversation. No CHECK constraint: a new reason needs no migration."""

    visitor = "visitor"
    agent = "agent"
    idle = "idle"
    system = "system"


class Sender(enum.StrEnum):
    visitor = "visitor"
    agent = "agent"
    system = "system"


class MessageKind(enum.StrEnum):
    """What a message is (docs/chat.md "Model"). No CHECK constraint, like EventKind."""

    text = "text"
    note = "note"  # private to agents
    file = "file"
    system = "system"  # welcome and notices
    command = "command"  # goto: / open:
    event = "event"  # timeline lines in plain words


class ParticipationRole(enum.StrEnum):
    """How someone came to take part in a conversation."""

    accepted = "accepted"  # took it from the queue
    transferred = "transferred"  # was handed it by a colleague
    opened = "opened"  # looked in (a supervisor) or opened it without holding it


class CannedScope(enum.StrEnum):
    site = "site"  # everyone (on one site, or on every site when site_host is '')
    department = "department"  # the agents of one department
    agent = "agent"  # one agent's own


class Uploader(enum.StrEnum):
    visitor = "visitor"
    agent = "agent"


class MailAudience(enum.StrEnum):
    agent = "agent"  # the agents' copy (with notes)
    visitor = "visitor"  # the visitor's copy (no notes)


class ChatConversation(Base):
    """One visitor's conversation with agents."""

    __tablename__ = "chat_conversations"
    __table_args__ = (
        # chat_start is idempotent: the widget retries with the same key until it
        # hears chat_started, and the retry must find the conversation it made.
        sa.UniqueConstraint("visitor_id", "start_key"),
        # The queue: waiting conversations, oldest first.
        sa.Index("ix_chat_conversations_status_created_at", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(ID_LENGTH), primary_key=True)  # public random id
    site_host: Mapped[str] = mapped_column(sa.String(SITE_HOST_LENGTH))
    visitor_id: Mapped[str] = mapped_column(sa.String(128), index=True)
    start_key: Mapped[str] = mapped_column(sa.String(ID_LENGTH))
    visitor_name: Mapped[str] = mapped_column(sa.String(NAME_LENGTH), default="")
    visitor_email: Mapped[str] = mapped_column(sa.String(EMAIL_LENGTH), default="")
    department: Mapped[str] = mapped_column(sa.String(DEPARTMENT_LENGTH), default="", server_default="")
    fields: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)  # pre-chat answers
    url: Mapped[str] = mapped_column(sa.Text, default="")
    title: Mapped[str] = mapped_column(sa.Text, default="")
    # The visitor's IANA time zone ("Europe/Amsterdam", from their browser), for their transcript; "" unknown.
    visitor_timezone: Mapped[str] = mapped_column(sa.String(64), default="", server_default="")
    status: Mapped[ConversationStatus] = mapped_column(_enum(ConversationStatus, "status", 16))
    agent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), index=True)  # who holds it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(default=None)  # first acceptance
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_by: Mapped[EndedBy | None] = mapped_column(_enum(EndedBy, "ended_by", 16, constraint=False))
    # The seq the next message gets; incremented in the transaction that stores it.
    next_seq: Mapped[int] = mapped_column(default=1, server_default="1")
    # Highest seq each side has received (delivered) and shown (read); only ever grow.
    visitor_delivered: Mapped[int] = mapped_column(default=0, server_default="0")
    visitor_read: Mapped[int] = mapped_column(default=0, server_default="0")
    agent_delivered: Mapped[int] = mapped_column(default=0, server_default="0")
    agent_read: Mapped[int] = mapped_column(default=0, server_default="0")
    survey_rating: Mapped[int | None] = mapped_column(default=None)
    survey_comment: Mapped[str | None] = mapped_column(sa.Text, default=None)
    survey_at: Mapped[datetime | None] = mapped_column(default=None)

    def __repr__(self) -> str:
        return f"<ChatConversation {self.id} {self.site_host} {self.status}>"


class ChatFileRow(Base):
    """A file sent in a conversation: who, when, what. The bytes are in chat.files_dir
    under ``storage_key``, a random name, never the uploader's."""

    __tablename__ = "chat_files"

    id: Mapped[str] = mapped_column(sa.String(ID_LENGTH), primary_key=True)  # public random id
    conversation_id: Mapped[str] = mapped_column(
        sa.ForeignKey("chat_conversations.id", ondelete="CASCADE"), index=True
    )
    client_id: Mapped[str] = mapped_column(sa.String(ID_LENGTH), unique=True)  # its message's client id
    uploader: Mapped[Uploader] = mapped_column(_enum(Uploader, "uploader", 16))
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))  # the agent who sent it
    name: Mapped[str] = mapped_column(sa.String(FILE_NAME_LENGTH))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    content_type: Mapped[str] = mapped_column(sa.String(255))
    storage_key: Mapped[str] = mapped_column(sa.String(255))
    sha256: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<ChatFileRow {self.id} {self.name!r} {self.size}>"


class ChatMessageRow(Base):
    """One message. ``client_id`` is the sender's idempotency key, unique in the whole
    table; ``seq`` orders the messages of one conversation from 1 without gaps."""

    __tablename__ = "chat_messages"
    # The unique index leads with conversation_id, so it also serves every lookup by
    # conversation (history, transcripts): no separate index on conversation_id.
    __table_args__ = (sa.UniqueConstraint("conversation_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[str] = mapped_column(sa.ForeignKey("chat_conversations.id", ondelete="CASCADE"))
    seq: Mapped[int]
    client_id: Mapped[str] = mapped_column(sa.String(ID_LENGTH), unique=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    sender: Mapped[Sender] = mapped_column(_enum(Sender, "sender", 16))
    kind: Mapped[MessageKind] = mapped_column(_enum(MessageKind, "kind", 16, constraint=False))
    text: Mapped[str] = mapped_column(sa.Text, default="")
    agent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    sender_name: Mapped[str] = mapped_column(sa.String(NAME_LENGTH), default="")
    file_id: Mapped[str | None] = mapped_column(sa.ForeignKey("chat_files.id"))
    rich: Mapped[Any | None] = mapped_column(sa.JSON, default=None)  # sanitized formatting (system)

    def __repr__(self) -> str:
        return f"<ChatMessageRow {self.conversation_id}#{self.seq} {self.sender} {self.kind}>"


class ChatParticipantRow(Base):
    """Someone who took part in a conversation. Leaving (a transfer away) and coming
    back adds a new row, like co-browse participants."""

    __tablename__ = "chat_participants"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        sa.ForeignKey("chat_conversations.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    role: Mapped[ParticipationRole] = mapped_column(_enum(ParticipationRole, "role", 16, constraint=False))
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    left_at: Mapped[datetime | None] = mapped_column(default=None)


class ChatSessionLink(Base):
    """A co-browse session the visitor shared while in this conversation.

    No foreign key to cobrowse_sessions: the hub records sessions off its live
    path (a queue), so the link can be stored before the session row is.
    """

    __tablename__ = "chat_sessions"

    conversation_id: Mapped[str] = mapped_column(
        sa.ForeignKey("chat_conversations.id", ondelete="CASCADE"), primary_key=True
    )
    session_id: Mapped[str] = mapped_column(sa.String(ID_LENGTH), primary_key=True, index=True)
    linked_at: Mapped[datetime] = mapped_column(default=utcnow)


class CannedResponse(Base):
    """A canned reply: a short name (the shortcut) and a plain-text body.

    Scope ``agent`` belongs to ``user_id``; ``department`` to the agents of
    ``department``; ``site`` to everyone. ``site_host`` '' means every site.
    Names are unique per owner; because NULLs never collide in a unique index,
    that takes two partial indexes (own replies by user, shared ones by scope).
    """

    __tablename__ = "canned_responses"
    __table_args__ = (
        sa.CheckConstraint("(scope = 'agent') = (user_id IS NOT NULL)", name="owner"),
        sa.CheckConstraint("(scope = 'department') = (department <> '')", name="department"),
        sa.Index(
            "uq_canned_responses_own_name", "user_id", "site_host", "name", unique=True,
            sqlite_where=sa.text("user_id IS NOT NULL"), postgresql_where=sa.text("user_id IS NOT NULL"),
        ),
        sa.Index(
            "uq_canned_responses_shared_name", "scope", "site_host", "department", "name", unique=True,
            sqlite_where=sa.text("user_id IS NULL"), postgresql_where=sa.text("user_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[CannedScope] = mapped_column(_enum(CannedScope, "scope", 16))
    site_host: Mapped[str] = mapped_column(sa.String(SITE_HOST_LENGTH), default="", server_default="")
    department: Mapped[str] = mapped_column(sa.String(DEPARTMENT_LENGTH), default="", server_default="")
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(CANNED_NAME_LENGTH))
    body: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))


class OfflineMessageRow(Base):
    """A message left while no agent was available (mailed, then resolved by an agent)."""

    __tablename__ = "offline_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_host: Mapped[str] = mapped_column(sa.String(SITE_HOST_LENGTH))
    key: Mapped[str] = mapped_column(sa.String(ID_LENGTH), unique=True)  # the widget's idempotency key
    name: Mapped[str] = mapped_column(sa.String(NAME_LENGTH), default="")
    email: Mapped[str] = mapped_column(sa.String(EMAIL_LENGTH), default="")
    department: Mapped[str] = mapped_column(sa.String(DEPARTMENT_LENGTH), default="", server_default="")
    text: Mapped[str] = mapped_column(sa.Text)
    fields: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    url: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    emailed_at: Mapped[datetime | None] = mapped_column(default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    resolved_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))


class ChatTranscriptMail(Base):
    """A transcript mailed (or being mailed) to one address. The unique constraint is
    what makes "one mail per address" hold across retries and several nodes."""

    __tablename__ = "chat_transcript_mails"
    __table_args__ = (sa.UniqueConstraint("conversation_id", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[str] = mapped_column(sa.ForeignKey("chat_conversations.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(sa.String(EMAIL_LENGTH))  # lowercased
    audience: Mapped[MailAudience] = mapped_column(_enum(MailAudience, "audience", 16))
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
