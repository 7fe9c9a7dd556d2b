"""Storage: the database (SQLAlchemy 2 async; SQLite by default, PostgreSQL by URL),
its Alembic migrations (in ``migrations/``, applied on start) and small service
modules per area: :mod:`.accounts`, :mod:`.cobrowse_sessions`, :mod:`.timeline`.
The chat tables are declared in the top-level ``chat`` package (``chat.models``)
on the same ``Base``; importing this package registers them, so ``Base.metadata``
(migrations, schema checks) always holds every table.

    from cobrowse.storage import Database, accounts

    async with Database.from_config(config) as db:
        user = await accounts.authenticate(db, "alice", password)
"""

from __future__ import annotations

from . import accounts, cobrowse_sessions, timeline
from .accounts import AccountError, ensure_demo_accounts, ensure_demo_agent
from .cobrowse_sessions import CobrowseSessionError
from .db import Database, StorageError, head_revision
from .models import (
    Base,
    CobrowseEvent,
    CobrowseParticipant,
    CobrowseSession,
    EndReason,
    EventKind,
    ParticipantRole,
    Role,
    User,
    utcnow,
)

# Registers the chat tables on Base.metadata. Imported here, after .models, so
# either import order works: chat.models itself imports cobrowse.storage.models.
import chat.models  # noqa: E402,F401  isort: skip

__all__ = [
    "Database",
    "StorageError",
    "head_revision",
    "accounts",
    "cobrowse_sessions",
    "timeline",
    "AccountError",
    "CobrowseSessionError",
    "ensure_demo_agent",
    "ensure_demo_accounts",
    "Base",
    "User",
    "Role",
    "CobrowseSession",
    "CobrowseParticipant",
    "CobrowseEvent",
    "EventKind",
    "ParticipantRole",
    "EndReason",
    "utcnow",
]
