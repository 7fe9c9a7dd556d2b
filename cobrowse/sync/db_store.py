"""Records session starts, ends, participants and timelines in the database, off the live path.

The hub hands changes over without waiting; one worker writes them in order,
so a participant (or a timeline event) is never recorded before the session it
belongs to.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from ..storage import cobrowse_sessions as records
from ..storage import timeline
from ..storage.db import Database
from .session import CobrowseSession, TimelineEntry

log = logging.getLogger("cobrowse.hub.store")


class DatabaseSessionStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: asyncio.Queue = asyncio.Queue()
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        self._worker = asyncio.ensure_future(self._work())

    async def stop(self) -> None:
        await self._queue.join()
        if self._worker is not None:
            self._worker.cancel()

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await job()
            except Exception:
                log.exception("could not record a session change")
            finally:
                self._queue.task_done()

    async def _enqueue(self, job) -> None:
        self._queue.put_nowait(job)

    async def session_started(self, session: CobrowseSession, url: str) -> None:
        await self._enqueue(lambda: records.start_session(
            self._db, site_host=session.site, visitor_id=session.visitor_id, page_url=url[:2048],
            session_id=session.id))

    async def end_reason(self, session_id: str) -> str | None:
        """Why a recorded session ended (None: open or unknown); read at once, beside the writes."""
        reason = await records.end_reason(self._db, session_id)
        return reason.value if reason is not None else None

    async def session_resumed(self, session_id: str) -> None:
        await self._enqueue(lambda: records.reopen_after_shutdown(self._db, session_id))

    async def session_ended(self, session_id: str, reason: str) -> None:
        await self._enqueue(lambda: records.end_session(self._db, session_id, reason))

    async def participant_joined(self, session_id: str, user_id: int, role: str) -> None:
        participant_role = "agent" if role == "agent" else "supervisor"
        await self._enqueue(lambda: records.add_participant(self._db, session_id, user_id, participant_role))

    async def participant_left(self, session_id: str, user_id: int) -> None:
        await self._enqueue(lambda: records.participant_left(self._db, session_id, user_id))

    async def record_events(self, session_id: str, events: list[TimelineEntry]) -> None:
        rows = [timeline.NewEvent(kind=e.kind, at=datetime.fromtimestamp(e.at, UTC), actor_id=e.actor,
                                  detail=e.detail) for e in events]
        await self._enqueue(lambda: timeline.add_events(self._db, session_id, rows))
