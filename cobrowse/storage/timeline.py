"""A co-browse session's timeline: pages visited, markers, control changes, commands.

The hub records these as they happen (through its session store's single
writer, off the live path); the transcript reads them back in order with
:func:`list_events`. Details are small JSON objects whose fields depend on the
kind (see :class:`~cobrowse.storage.models.EventKind`). Notes in marker
details are plain text as the agent typed them: show them as text, never as
markup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .db import Database
from .models import CobrowseEvent, EventKind, utcnow

__all__ = ["TimelineError", "NewEvent", "add_events", "list_events"]


class TimelineError(Exception):
    """An impossible record, e.g. an unknown kind."""


@dataclass(frozen=True, slots=True)
class NewEvent:
    kind: EventKind | str
    at: datetime | None = None  # aware; default now
    actor_id: int | None = None  # the agent who did it; None: the visitor, or nobody
    detail: Mapping[str, Any] = field(default_factory=dict)


def _kind(kind: EventKind | str) -> EventKind:
    try:
        return EventKind(kind)
    except ValueError:
        raise TimelineError(f"unknown timeline event kind {kind!r}") from None


async def add_events(db: Database, session_id: str, events: Iterable[NewEvent]) -> list[CobrowseEvent]:
    """Record events of one session, in the order given, in one transaction."""
    records = [
        CobrowseEvent(session_id=session_id, at=event.at or utcnow(), kind=_kind(event.kind),
                      actor_id=event.actor_id, detail=dict(event.detail))
        for event in events
    ]
    if records:
        async with db.transaction() as s:
            s.add_all(records)
    return records


async def list_events(db: Database, session_id: str, *, kinds: Iterable[EventKind | str] | None = None,
                      limit: int | None = None) -> list[CobrowseEvent]:
    """The session's events, oldest first (in the order recorded when times are equal)."""
    query = (sa.select(CobrowseEvent).where(CobrowseEvent.session_id == session_id)
             .order_by(CobrowseEvent.at, CobrowseEvent.id))
    if kinds is not None:
        query = query.where(CobrowseEvent.kind.in_([_kind(k) for k in kinds]))
    if limit is not None:
        query = query.limit(limit)
    async with db.session(read_only=True) as s:
        return list(await s.scalars(query))
