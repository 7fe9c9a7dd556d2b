"""Records of co-browse sessions: when they started and ended, why, and who took part.

The live state (views, pointers, control) is in memory in the sync hub; this is
the durable record. Sessions returned here have ``participants`` loaded (each
with its ``user``).
"""

from __future__ import annotations

import secrets
from datetime import datetime

import sqlalchemy as sa

from .db import Database
from .models import CobrowseParticipant, CobrowseSession, EndReason, ParticipantRole, User, utcnow

__all__ = [
    "CobrowseSessionError",
    "new_session_id",
    "start_session",
    "end_session",
    "end_open_sessions",
    "add_participant",
    "participant_left",
    "get_session",
    "end_reason",
    "reopen_after_shutdown",
    "list_sessions",
]


class CobrowseSessionError(Exception):
    """An impossible request, e.g. joining a session that has ended or does not exist."""


def new_session_id() -> str:
    """A public session id: 18 random bytes, URL-safe base64 (24 characters)."""
    return secrets.token_urlsafe(18)


def _reason(reason: EndReason | str) -> EndReason:
    try:
        return EndReason(reason)
    except ValueError:
        choices = ", ".join(r.value for r in EndReason)
        raise CobrowseSessionError(f"invalid end reason {reason!r}: one of {choices}") from None


async def start_session(
    db: Database,
    *,
    site_host: str,
    visitor_id: str,
    page_url: str | None = None,
    session_id: str | None = None,
    started_at: datetime | None = None,
) -> CobrowseSession:
    """Record a new session (a fresh random id unless ``session_id`` is given; a
    ``session_id`` already recorded raises CobrowseSessionError)."""
    record = CobrowseSession(
        id=session_id or new_session_id(),
        site_host=site_host,
        visitor_id=visitor_id,
        page_url=page_url,
        started_at=started_at or utcnow(),
        ended_at=None,
        end_reason=None,
        participants=[],
    )
    try:
        async with db.transaction() as s:
            s.add(record)
    except sa.exc.IntegrityError:
        raise CobrowseSessionError(f"co-browse session {record.id!r} already exists") from None
    return record


async def end_session(
    db: Database, session_id: str, reason: EndReason | str, *, ended_at: datetime | None = None
) -> CobrowseSession | None:
    """Mark a session ended and every participant still in it as left.

    Idempotent: a session that has already ended keeps its first end time and
    reason. Returns the session, or None if there is no such session.
    """
    reason = _reason(reason)
    now = ended_at or utcnow()
    async with db.transaction() as s:
        record = await s.get(CobrowseSession, session_id)
        if record is None:
            return None
        if record.ended_at is None:
            record.ended_at = now
            record.end_reason = reason
            for participant in record.participants:
                if participant.left_at is None:
                    participant.left_at = now
    return record


async def end_open_sessions(db: Database, reason: EndReason | str = EndReason.server_shutdown) -> int:
    """End every session still open (at start-up: left open by a crash; at shutdown).
    Returns how many were ended."""
    reason = _reason(reason)
    now = utcnow()
    async with db.transaction() as s:
        open_ids = sa.select(CobrowseSession.id).where(CobrowseSession.ended_at.is_(None))
        await s.execute(
            sa.update(CobrowseParticipant)
            .where(CobrowseParticipant.session_id.in_(open_ids), CobrowseParticipant.left_at.is_(None))
            .values(left_at=now)
        )
        result = await s.execute(
            sa.update(CobrowseSession)
            .where(CobrowseSession.ended_at.is_(None))
            .values(ended_at=now, end_reason=reason)
        )
        return result.rowcount


async def add_participant(
    db: Database, session_id: str, user_id: int, role: ParticipantRole | str = ParticipantRole.agent
) -> CobrowseParticipant:
    """Record that a user joined a session. Re-joining after leaving adds a new row;
    joining while already in the session returns the existing row."""
    try:
        role = ParticipantRole(role)
    except ValueError:
        raise CobrowseSessionError(f"invalid participant role {role!r}: agent or supervisor") from None
    async with db.transaction() as s:
        record = await s.get(CobrowseSession, session_id)
        if record is None:
            raise CobrowseSessionError(f"no co-browse session {session_id!r}")
        if record.ended_at is not None:
            raise CobrowseSessionError(f"co-browse session {session_id!r} has ended")
        user = await s.get(User, user_id)
        if user is None:
            raise CobrowseSessionError(f"no user with id {user_id}")
        if user.disabled:
            raise CobrowseSessionError(f"user {user.username!r} is disabled")
        for participant in record.participants:
            if participant.user_id == user_id and participant.left_at is None:
                return participant
        participant = CobrowseParticipant(session_id=session_id, user=user, role=role, joined_at=utcnow())
        record.participants.append(participant)
    return participant


async def participant_left(
    db: Database, session_id: str, user_id: int, *, left_at: datetime | None = None
) -> bool:
    """Record that a user left a session; False if they were not in it."""
    async with db.transaction() as s:
        result = await s.execute(
            sa.update(CobrowseParticipant)
            .where(
                CobrowseParticipant.session_id == session_id,
                CobrowseParticipant.user_id == user_id,
                CobrowseParticipant.left_at.is_(None),
            )
            .values(left_at=left_at or utcnow())
        )
        return result.rowcount > 0


async def end_reason(db: Database, session_id: str) -> EndReason | None:
    """Why a recorded session ended; None while it is open, or if there is no such session."""
    async with db.session(read_only=True) as s:
        reason = await s.scalar(sa.select(CobrowseSession.end_reason).where(CobrowseSession.id == session_id))
    return EndReason(reason) if reason else None


async def reopen_after_shutdown(db: Database, session_id: str) -> bool:
    """A session the last shutdown (or crash) closed goes on: open again, as if never ended.

    Only an end by ``server_shutdown``: a visitor who stopped, an agent who ended
    and an idle timeout are final. True if the record was reopened.
    """
    async with db.transaction() as s:
        result = await s.execute(
            sa.update(CobrowseSession)
            .where(CobrowseSession.id == session_id, CobrowseSession.end_reason == EndReason.server_shutdown)
            .values(ended_at=None, end_reason=None)
        )
        return result.rowcount > 0


async def get_session(db: Database, session_id: str) -> CobrowseSession | None:
    async with db.session(read_only=True) as s:
        return await s.get(CobrowseSession, session_id)


async def list_sessions(
    db: Database, *, active: bool | None = None, visitor_id: str | None = None, limit: int = 100
) -> list[CobrowseSession]:
    """Newest first. ``active``: True for open sessions only, False for ended ones."""
    query = sa.select(CobrowseSession).order_by(CobrowseSession.started_at.desc()).limit(limit)
    if active is True:
        query = query.where(CobrowseSession.ended_at.is_(None))
    elif active is False:
        query = query.where(CobrowseSession.ended_at.is_not(None))
    if visitor_id is not None:
        query = query.where(CobrowseSession.visitor_id == visitor_id)
    async with db.session(read_only=True) as s:
        return list(await s.scalars(query))
