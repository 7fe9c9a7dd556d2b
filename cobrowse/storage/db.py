"""The database: engine, sessions and migrations.

    db = Database.from_config(config)
    await db.start()                    # opens the engine, migrates to head
    async with db.session() as s:       # an AsyncSession (expire_on_commit=False)
        ...                             # you commit
    async with db.transaction() as s:   # the same, committed at the end of the block
        ...
    async with db.session(read_only=True) as s:   # queries only
        ...
    await db.stop()

``async with Database.from_config(config) as db:`` does start/stop for you.

The URL is ``config.server.database_url`` or, when that is empty, an SQLite file
``<data_dir>/cobrowse.db`` (the directory is created with mode 0700).
``postgresql://`` / ``sqlite://`` URLs get their asyncio driver (asyncpg,
aiosqlite) added.

Migrations live in this package (``migrations/``, shipped in the wheel) and run
programmatically on every start: no ``alembic.ini``. To write a new one::

    python -m cobrowse.storage revision -m "chat tables" --autogenerate

SQLite specifics (see :func:`_sqlite_on_connect`): WAL journal,
``synchronous=FULL``, ``foreign_keys=ON``, a busy timeout, and real
transactions: SQLAlchemy emits ``BEGIN`` itself (the sqlite3 module's legacy
mode would run SELECTs outside any transaction). Sessions start with ``BEGIN
IMMEDIATE``: a transaction that reads and then writes (the usual ORM pattern,
and e.g. "next sequence number in this conversation") takes the write lock up
front and waits for it (busy timeout) instead of failing with "database is
locked" when it tries to upgrade a read lock another writer has overtaken.
``session(read_only=True)`` uses a plain ``BEGIN`` for queries, which never
wait for writers in WAL mode. On PostgreSQL both are ordinary transactions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

    from cobrowse.config import Config

__all__ = [
    "Database",
    "StorageError",
    "MIGRATIONS_DIR",
    "SQLITE_FILENAME",
    "BUSY_TIMEOUT_MS",
    "alembic_config",
    "head_revision",
]

log = logging.getLogger("cobrowse.storage")

MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")
SQLITE_FILENAME = "cobrowse.db"
_MIGRATION_LOCK = threading.Lock()
BUSY_TIMEOUT_MS = 10_000  # how long a connection waits for another writer's lock

_ASYNC_DRIVERS = {"postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}
_BEGIN_OPTION = "cobrowse_sqlite_begin"  # execution option read by the "begin" hook
_PG_MIGRATION_LOCK = 0x636F62726F777365  # pg_advisory_xact_lock key while migrating ("cobrowse")


class StorageError(Exception):
    """The database cannot be opened, migrated or used (message says which and why)."""


def alembic_config(url: str | URL | None = None) -> AlembicConfig:
    """An Alembic config for the migrations in this package (no alembic.ini).

    ``url`` is used only when env.py has to connect by itself (e.g. ``alembic``
    commands run by a developer); :meth:`Database.start` hands it a connection.
    """
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", MIGRATIONS_DIR)
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if url is not None:
        text = url.render_as_string(hide_password=False) if isinstance(url, URL) else str(url)
        cfg.set_main_option("sqlalchemy.url", text.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest migration this version of cobrowse knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _async_url(url: str | URL) -> URL:
    url = make_url(url)
    driver = _ASYNC_DRIVERS.get(url.drivername)
    return url.set(drivername=driver) if driver else url


def _sqlite_on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # Take transaction control away from the sqlite3 module; _sqlite_on_begin
    # emits BEGIN (see the module docstring).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # First, so that the pragmas below wait for another starter's lock too.
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")  # wait for locks, don't fail at once
        # Write-ahead log: readers never block the writer and vice versa, and a commit
        # is one append to the WAL file.
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL, not NORMAL: in WAL mode NORMAL already survives a crash of the process
        # (kill -9), but a power loss or OS crash can lose the last commits, because the
        # WAL is fsynced only at checkpoints. Chat acknowledges a message to its sender
        # once it is committed, and an acknowledged message must not disappear, so every
        # commit fsyncs the WAL. The cost is one fsync per write transaction.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")  # off by default in SQLite
    finally:
        cursor.close()


def _sqlite_on_begin(conn: sa.Connection) -> None:
    mode = conn.get_execution_options().get(_BEGIN_OPTION)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "immediate" else "BEGIN")


class Database:
    """The engine and session factory for one database URL."""

    def __init__(self, url: str | URL, *, data_dir: str | None = None, echo: bool = False) -> None:
        """``url``: an SQLAlchemy URL (an async driver is filled in for postgresql:// and
        sqlite://). ``data_dir``: created (0700) before an SQLite file in it is opened."""
        try:
            self.url: URL = _async_url(url)
        except sa.exc.ArgumentError as exc:
            raise StorageError(f"invalid database URL: {exc}") from None
        self.data_dir = data_dir
        self.echo = echo
        self.revision: str | None = None  # after start(): the schema revision
        self.previous_revision: str | None = None  # after start(): the revision before migrating
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._read_sessions: async_sessionmaker[AsyncSession] | None = None

    @classmethod
    def from_config(cls, config: Config) -> Database:
        """The database configured in ``config.server`` (``database_url`` or SQLite in ``data_dir``)."""
        server = config.server
        if server.database_url:
            return cls(server.database_url)
        data_dir = os.path.abspath(server.data_dir)
        return cls(URL.create("sqlite+aiosqlite", database=os.path.join(data_dir, SQLITE_FILENAME)),
                   data_dir=data_dir)

    def __repr__(self) -> str:
        return f"<Database {self.display_url}>"

    @property
    def display_url(self) -> str:
        """The URL with the password hidden, for messages and logs."""
        return self.url.render_as_string(hide_password=True)

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise StorageError("the database is not started (call await db.start())")
        return self._engine

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Open the engine and migrate the schema to the newest revision. Idempotent."""
        if self._engine is not None:
            return
        self._engine = self._create_engine()
        try:
            await self._migrate()
        except BaseException:
            await self.stop()
            raise
        self._sessions = async_sessionmaker(self._immediate(self._engine), expire_on_commit=False)
        self._read_sessions = async_sessionmaker(self._engine, expire_on_commit=False)

    async def stop(self) -> None:
        """Close every pooled connection. Idempotent; the object can be started again."""
        engine, self._engine = self._engine, None
        self._sessions = self._read_sessions = None
        if engine is not None:
            await engine.dispose()

    async def __aenter__(self) -> Database:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def session(self, *, read_only: bool = False) -> AsyncSession:
        """A new AsyncSession (use ``async with``); objects stay usable after commit.

        On SQLite its transactions take the write lock at once (``BEGIN IMMEDIATE``,
        see the module docstring), so keep them short and never await network I/O
        inside one. ``read_only=True`` for sessions that only query: they run
        alongside writers.
        """
        factory = self._read_sessions if read_only else self._sessions
        if factory is None:
            raise StorageError("the database is not started (call await db.start())")
        return factory()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """``async with db.transaction() as s:`` a write session in a transaction,
        committed at the end of the block (rolled back on an exception)."""
        async with self.session() as session, session.begin():
            yield session

    # -- internals -------------------------------------------------------------

    def _immediate(self, engine: AsyncEngine) -> AsyncEngine:
        """The engine whose transactions start with BEGIN IMMEDIATE on SQLite (same pool)."""
        return engine.execution_options(**{_BEGIN_OPTION: "immediate"}) if self.is_sqlite else engine

    def _create_engine(self) -> AsyncEngine:
        url = self.url
        kwargs: dict[str, Any] = {"echo": self.echo}
        if self.is_sqlite:
            path = url.database
            if path and path != ":memory:" and not path.startswith("file:"):
                self._prepare_sqlite_file(path)
        else:
            kwargs["pool_pre_ping"] = True  # survive a database restart
        try:
            engine = create_async_engine(url, **kwargs)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, sa.exc.InvalidRequestError, ImportError) as exc:
            raise StorageError(f"cannot use database URL {self.display_url}: {exc}") from None
        if self.is_sqlite:
            event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
            event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        return engine

    def _prepare_sqlite_file(self, path: str) -> None:
        directory = os.path.dirname(os.path.abspath(path))
        try:
            if self.data_dir is not None and not os.path.isdir(self.data_dir):
                os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
                os.chmod(self.data_dir, 0o700)  # makedirs' mode is subject to the umask
            if not os.path.exists(path):
                # An empty file is a valid empty database. Creating it ourselves makes it
                # 0600; SQLite gives the -wal and -shm files the database file's mode.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                os.close(fd)
        except FileExistsError:
            pass
        except OSError as exc:
            where = exc.filename or directory
            raise StorageError(f"cannot create the database in {where}: {exc.strerror or exc}") from None

    async def _migrate(self) -> None:
        # One migrator at a time when several processes start together: on SQLite the
        # transaction takes the write lock first (BEGIN IMMEDIATE), on PostgreSQL an
        # advisory lock (see _upgrade_to_head). Within one process, Alembic's `context`
        # and `op` are module-level proxies: two migrations in two threads at once
        # swap them under each other, hence the process-wide lock as well.
        while not _MIGRATION_LOCK.acquire(blocking=False):
            await asyncio.sleep(0.01)  # (not a thread blocked on it: a cancelled start must not keep it)
        try:
            async with self._immediate(self.engine).begin() as conn:
                self.previous_revision, self.revision = await conn.run_sync(_upgrade_to_head)
        except StorageError:
            raise
        except (sa.exc.DBAPIError, OSError) as exc:  # unreachable, refused, no such database, ...
            detail = str(getattr(exc, "orig", None) or exc).strip()
            raise StorageError(f"cannot open the database {self.display_url}: {detail}") from None
        finally:
            _MIGRATION_LOCK.release()
        if self.previous_revision != self.revision:
            log.info("database %s migrated from %s to %s", self.display_url,
                     self.previous_revision or "(empty)", self.revision)


def _upgrade_to_head(connection: sa.Connection) -> tuple[str | None, str | None]:
    """Run on a sync connection (inside ``AsyncConnection.run_sync``): upgrade to head."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
    cfg = alembic_config()
    before = MigrationContext.configure(connection).get_current_revision()
    script = ScriptDirectory.from_config(cfg)
    if before is not None:
        try:
            script.get_revision(before)
        except CommandError:
            raise StorageError(
                f"the database is at schema revision {before!r}, which this version of cobrowse "
                f"does not know (newest: {script.get_current_head()!r}); was it used by a newer cobrowse?"
            ) from None
    cfg.attributes["connection"] = connection  # env.py uses it instead of connecting itself
    command.upgrade(cfg, "head")
    after = MigrationContext.configure(connection).get_current_revision()
    return before, after
