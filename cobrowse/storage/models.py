"""ORM models (SQLAlchemy 2, typed ``Mapped[...]``).

Conventions, so that later tables (chat conversations, messages, files,
tickets) fit in without surprises:

* Every table is in :data:`Base.metadata`, whose naming convention gives every
  index and constraint a stable name (Alembic needs names to alter or drop
  them, and SQLite's batch mode needs them to rebuild a table).
* Timestamps are :class:`UTCDateTime`: timezone-aware UTC ``datetime`` in
  Python on every backend (SQLite stores naive UTC text, PostgreSQL
  ``timestamptz``). Use :func:`utcnow` for defaults.
* Enumerations are Python ``StrEnum`` stored as short strings (``native_enum=False``),
  so PostgreSQL needs no ``CREATE TYPE`` and adding a value is a small migration.
* Relationships that are not needed on every load are ``lazy="raise"``: under
  asyncio an accidental lazy load is an error anyway, better to see it at once.
* The schema is created only by migrations (``migrations/versions``), never by
  ``metadata.create_all``; ``tests/test_storage.py`` checks that the two agree.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Base",
    "UTCDateTime",
    "utcnow",
    "Role",
    "ParticipantRole",
    "EndReason",
    "User",
    "UserDepartment",
    "CobrowseSession",
    "CobrowseParticipant",
    "EventKind",
    "CobrowseEvent",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    Binds: aware datetimes are converted to UTC; naive ones are refused (a naive
    time is ambiguous and almost always a bug). SQLite gets naive UTC (it has no
    time zones; ISO text in UTC sorts correctly). Results are always aware UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: use an aware datetime (e.g. cobrowse.storage.utcnow())")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Role(enum.StrEnum):
    """An account's role (what each may do is enforced where it matters: console, API)."""

    agent = "agent"
    supervisor = "supervisor"
    admin = "admin"


class ParticipantRole(enum.StrEnum):
    """The part someone plays in one co-browse session."""

    agent = "agent"
    supervisor = "supervisor"


class EndReason(enum.StrEnum):
    """Why a co-browse session ended. Stored as text without a CHECK constraint, so
    a new reason needs no migration (validation happens in Python)."""

    visitor_stopped = "visitor_stopped"
    agent_ended = "agent_ended"
    idle_timeout = "idle_timeout"
    server_shutdown = "server_shutdown"


class EventKind(enum.StrEnum):
    """What a timeline entry (:class:`CobrowseEvent`) records. Stored as text without a
    CHECK constraint, so a new kind needs no migration (validation happens in Python)."""

    page = "page"  # a tab's page changed (detail: tab, url, title)
    marker_placed = "marker_placed"  # detail: tab, id, kind, note, pinned, url
    marker_cleared = "marker_cleared"  # detail: tab, ids, by (agent | visitor | navigation)
    control_requested = "control_requested"  # control_*: agent_id, agent (name), allow_submit
    control_granted = "control_granted"
    control_declined = "control_declined"
    control_revoked = "control_revoked"
    control_released = "control_released"
    control_timeout = "control_timeout"
    control_left = "control_left"
    control_ended = "control_ended"  # the visitor's last tab closed; detail adds pending
    command_sent = "command_sent"  # detail: tab, kind (goto | open), url
    command_result = "command_result"  # detail: tab, kind, url, ok, reason
    # Screen sharing and voice calls (cobrowse/sync/screenshare.py; actor: the agent, or None).
    screen_share_requested = "screen_share_requested"  # detail: agent (name), audio
    screen_share_declined = "screen_share_declined"  # detail: reason (declined | timeout | withdrawn | left)
    screen_share_started = "screen_share_started"  # detail: tab, agents (names who may receive it)
    screen_share_stopped = "screen_share_stopped"  # detail: by (visitor | agent | hub), agent, reason
    screen_share_failed = "screen_share_failed"  # detail: reason (denied | unsupported | no_path | error)
    call_requested = "call_requested"  # call_*: the same details as screen_share_*
    call_declined = "call_declined"
    call_started = "call_started"
    call_ended = "call_ended"
    call_failed = "call_failed"


def _enum(cls: type[enum.Enum], name: str, length: int, *, constraint: bool = True) -> sa.Enum:
    # Stored as VARCHAR(length) (+ a named CHECK constraint unless constraint=False):
    # portable, no PostgreSQL ENUM type to migrate; the length leaves room for new values.
    return sa.Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=constraint,
        length=length,
        validate_strings=True,
        values_callable=lambda e: [member.value for member in e],
    )


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class User(Base):
    """An account: agent, supervisor or admin. Never deleted, only disabled
    (co-browse participants and, later, chat messages refer to it)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Unique case-insensitively: always stored lowercased (see accounts.normalize_username).
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(100))
    role: Mapped[Role] = mapped_column(_enum(Role, "role", 16))
    password_hash: Mapped[str] = mapped_column(sa.String(255))  # argon2id, PHC string format
    disabled: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)
    # Where chat transcripts go when ``transcripts`` is on (docs/chat.md "Transcripts").
    email: Mapped[str | None] = mapped_column(sa.String(254), default=None)
    transcripts: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # Console logins issued before this moment are void: "Log out" ends the login
    # everywhere its cookie went (cookies are signed, not stored, so this is the lever).
    logins_valid_after: Mapped[datetime | None] = mapped_column(default=None)

    def __repr__(self) -> str:  # never shows the password hash
        state = " disabled" if self.disabled else ""
        return f"<User {self.id} {self.username!r} {self.role.value}{state}>"


class UserDepartment(Base):
    """A department an account serves (chat routing: ``[[department]]`` ids in the config).

    An agent with no rows here takes chats of every department."""

    __tablename__ = "user_departments"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    department: Mapped[str] = mapped_column(sa.String(32), primary_key=True)

    def __repr__(self) -> str:
        return f"<UserDepartment user={self.user_id} {self.department!r}>"


class CobrowseSession(Base):
    """One co-browse session: a visitor sharing their page with agents."""

    __tablename__ = "cobrowse_sessions"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)  # public random id
    site_host: Mapped[str] = mapped_column(sa.String(255))  # the Site.host it runs on
    visitor_id: Mapped[str] = mapped_column(sa.String(128), index=True)  # kept by the visitor script
    page_url: Mapped[str | None] = mapped_column(sa.Text)  # the page shared at the start
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    end_reason: Mapped[EndReason | None] = mapped_column(_enum(EndReason, "end_reason", 32, constraint=False))

    participants: Mapped[list[CobrowseParticipant]] = relationship(
        back_populates="cobrowse_session",
        lazy="selectin",
        order_by="CobrowseParticipant.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    @property
    def active(self) -> bool:
        return self.ended_at is None

    def __repr__(self) -> str:
        state = "active" if self.ended_at is None else f"ended ({self.end_reason})"
        return f"<CobrowseSession {self.id} {self.site_host} {state}>"


class CobrowseParticipant(Base):
    """An agent or supervisor in a session. Leaving and re-joining adds a new row."""

    __tablename__ = "cobrowse_participants"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[str] = mapped_column(
        sa.ForeignKey("cobrowse_sessions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    role: Mapped[ParticipantRole] = mapped_column(_enum(ParticipantRole, "role", 16))
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    left_at: Mapped[datetime | None] = mapped_column(default=None)

    cobrowse_session: Mapped[CobrowseSession] = relationship(back_populates="participants", lazy="raise")
    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)

    def __repr__(self) -> str:
        return f"<CobrowseParticipant {self.id} session={self.session_id} user={self.user_id} {self.role.value}>"


class CobrowseEvent(Base):
    """One entry of a session's timeline: a page visited, a marker, a control change, a command.

    Written by the hub through its session store, off the live path; read with
    :func:`cobrowse.storage.timeline.list_events`. ``actor_id`` is the agent who
    did it; None when the visitor did (a grant, a revoke, a command's result)
    or nobody did (a page load, a timeout).
    """

    __tablename__ = "cobrowse_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[str] = mapped_column(
        sa.ForeignKey("cobrowse_sessions.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[EventKind] = mapped_column(_enum(EventKind, "kind", 32, constraint=False))
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)

    def __repr__(self) -> str:
        return f"<CobrowseEvent {self.id} session={self.session_id} {self.kind.value}>"
