"""The database layer: migrations, SQLite settings, accounts and co-browse session records."""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from argon2 import PasswordHasher, Type
from argon2.profiles import CHEAPEST, RFC_9106_LOW_MEMORY

from cobrowse.config import Config, ServerOptions
from cobrowse.storage import (
    AccountError,
    Base,
    CobrowseParticipant,
    CobrowseSessionError,
    Database,
    EndReason,
    ParticipantRole,
    Role,
    StorageError,
    User,
    accounts,
    cobrowse_sessions,
    ensure_demo_accounts,
    ensure_demo_agent,
    head_revision,
)

TABLES = {"users", "cobrowse_sessions", "cobrowse_participants", "cobrowse_events", "user_departments",
          "chat_conversations", "chat_messages", "chat_participants", "chat_sessions", "chat_files",
          "canned_responses", "offline_messages", "chat_transcript_mails"}


@pytest.fixture(autouse=True)
def cheap_hashes():
    """argon2 with minimal parameters: the real ones cost ~0.1-1 s per hash."""
    previous = accounts.set_password_hasher(PasswordHasher.from_parameters(CHEAPEST))
    yield
    accounts.set_password_hasher(previous)


def sqlite_config(tmp_path) -> Config:
    return Config(server=ServerOptions(data_dir=str(tmp_path / "data")))


@pytest.fixture
async def db(tmp_path):
    database = Database.from_config(sqlite_config(tmp_path))
    await database.start()
    yield database
    await database.stop()


async def table_names(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))


async def schema_differences(db: Database) -> list:
    def compare(conn):
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)

    async with db.engine.connect() as conn:
        return await conn.run_sync(compare)


# --- migrations and the engine ----------------------------------------------------


async def test_migrations_create_tables_on_a_fresh_file_and_are_idempotent(tmp_path):
    config = sqlite_config(tmp_path)
    db = Database.from_config(config)
    assert not (tmp_path / "data").exists()
    await db.start()
    try:
        assert (db.previous_revision, db.revision) == (None, head_revision())
        assert TABLES | {"alembic_version"} <= await table_names(db)
        await accounts.create_user(db, "alice", "password1")
    finally:
        await db.stop()
    assert os.path.isfile(tmp_path / "data" / "cobrowse.db")

    async with Database.from_config(config) as again:  # second start: nothing to do, data kept
        assert again.previous_revision == again.revision == head_revision()
        assert [u.username for u in await accounts.list_users(again)] == ["alice"]
        await again.start()  # start() twice is harmless


async def test_concurrent_first_starts_migrate_once(tmp_path):
    config = sqlite_config(tmp_path)
    dbs = [Database.from_config(config) for _ in range(3)]
    await asyncio.gather(*(db.start() for db in dbs))
    try:
        assert sorted(db.previous_revision or "" for db in dbs) == ["", head_revision(), head_revision()]
        assert all(db.revision == head_revision() for db in dbs)
    finally:
        await asyncio.gather(*(db.stop() for db in dbs))


async def test_models_match_the_migrations(db):
    assert await schema_differences(db) == []


def test_head_revision_is_the_only_head():
    from alembic.script import ScriptDirectory

    from cobrowse.storage.db import alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [head_revision()]
    assert head_revision() == "0005"


async def test_sqlite_pragmas_on_every_connection(db):
    async with db.engine.connect() as one, db.engine.connect() as two:  # two pooled connections
        for conn in (one, two):
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
            assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == 2  # FULL
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() >= 1000


async def test_foreign_keys_are_enforced(db):
    with pytest.raises(sa.exc.IntegrityError):
        async with db.transaction() as s:
            s.add(CobrowseParticipant(session_id="nope", user_id=12345, role=ParticipantRole.agent))


async def test_data_dir_and_database_file_are_private(tmp_path):
    async with Database.from_config(sqlite_config(tmp_path)):
        pass
    assert os.stat(tmp_path / "data").st_mode & 0o777 == 0o700
    assert os.stat(tmp_path / "data" / "cobrowse.db").st_mode & 0o777 == 0o600


async def test_an_existing_data_dir_is_left_alone(tmp_path):
    (tmp_path / "data").mkdir(mode=0o755)
    os.chmod(tmp_path / "data", 0o755)
    async with Database.from_config(sqlite_config(tmp_path)):
        pass
    assert os.stat(tmp_path / "data").st_mode & 0o777 == 0o755


def test_database_urls():
    assert Database.from_config(Config(server=ServerOptions(data_dir="rel/dir"))).url.database == os.path.join(
        os.getcwd(), "rel", "dir", "cobrowse.db"
    )
    db = Database.from_config(Config(server=ServerOptions(database_url="postgresql://bob:s3cret@db.internal/cb")))
    assert db.url.drivername == "postgresql+asyncpg"
    assert "s3cret" not in db.display_url and "s3cret" not in repr(db)
    assert not db.is_sqlite
    assert Database("sqlite:///x.db").url.drivername == "sqlite+aiosqlite"
    assert Database("sqlite+aiosqlite:///x.db").is_sqlite
    with pytest.raises(StorageError, match="invalid database URL"):
        Database("not a url")


async def test_unusable_locations_give_storage_errors(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(StorageError, match="cannot create the database"):
        await Database.from_config(Config(server=ServerOptions(data_dir=str(tmp_path / "file" / "sub")))).start()
    with pytest.raises(StorageError, match="cannot use database URL"):
        await Database("mysql+nosuchdriver://x/y").start()
    with pytest.raises(StorageError, match="not started"):
        Database("sqlite:///x.db").session()
    with pytest.raises(StorageError, match=r"cannot open the database postgresql\+asyncpg://x:\*\*\*@127.0.0.1:1/db"):
        await Database("postgresql://x:secret@127.0.0.1:1/db").start()  # nothing listens on port 1


async def test_a_database_from_a_newer_version_is_refused(db, tmp_path):
    async with db.transaction() as s:
        await s.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    await db.stop()
    with pytest.raises(StorageError, match="revision '9999'.*newer cobrowse"):
        await Database.from_config(sqlite_config(tmp_path)).start()


async def test_read_then_write_transactions_do_not_fail_with_locked(db):
    # Each task reads, yields to the others, then writes: with a deferred BEGIN two of
    # them would both hold read snapshots and one would get "database is locked".
    async def bump(i: int) -> None:
        async with db.session() as s:  # the default session, committed by hand
            count = await s.scalar(sa.select(sa.func.count()).select_from(User))
            await asyncio.sleep(0.01)
            s.add(User(username=f"u{i}-{count}", display_name="x", role=Role.agent, password_hash="x"))
            await s.commit()

    await asyncio.gather(*(bump(i) for i in range(8)))
    names = [u.username for u in await accounts.list_users(db)]
    assert sorted(int(n.split("-")[1]) for n in names) == list(range(8))  # serialised: counts 0..7


async def test_read_only_sessions_do_not_wait_for_writers(db):
    await accounts.create_user(db, "alice", "password1")
    async with db.transaction() as writer:  # holds the write lock
        writer.add(User(username="bob", display_name="b", role=Role.agent, password_hash="x"))
        await writer.flush()
        async with db.session(read_only=True) as reader:  # sees the last commit, at once
            names = await asyncio.wait_for(reader.scalars(sa.select(User.username)), 2)
            assert list(names) == ["alice"]


async def test_timestamps_are_aware_utc(db):
    user = await accounts.create_user(db, "tz", "password1")
    assert user.created_at.tzinfo is not None and user.created_at.utcoffset() == timedelta(0)
    loaded = await accounts.get_user(db, "tz")
    assert loaded.created_at == user.created_at and loaded.created_at.tzinfo is UTC
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        async with db.transaction() as s:
            s.add(User(username="naive", display_name="n", role=Role.agent, password_hash="x",
                       created_at=datetime(2024, 1, 1)))


# --- accounts -------------------------------------------------------------------


async def test_create_user(db):
    user = await accounts.create_user(db, "  Alice ", "correct horse", "supervisor", display_name=" Alice\n Martin ")
    assert user.id is not None
    assert (user.username, user.display_name, user.role, user.disabled) == ("alice", "Alice Martin", Role.supervisor,
                                                                            False)
    assert user.password_hash.startswith("$argon2id$v=19$")
    assert "correct horse" not in user.password_hash and "password_hash" not in repr(user)
    assert user.last_login_at is None
    bob = await accounts.create_user(db, "bob", "password1")
    assert (bob.role, bob.display_name) == (Role.agent, "bob")


def test_production_hasher_is_argon2id_rfc9106():
    hasher = PasswordHasher()  # what accounts uses unless a test swaps it
    assert hasher.type is Type.ID
    assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism) == (
        RFC_9106_LOW_MEMORY.time_cost, RFC_9106_LOW_MEMORY.memory_cost, RFC_9106_LOW_MEMORY.parallelism)


@pytest.mark.parametrize("name", ["a", "x" * 65, "bad name", "ümlaut", "a/b", "", "semi;colon", "a@b.c"])
async def test_invalid_usernames_are_refused(name):
    with pytest.raises(AccountError, match="invalid username"):
        accounts.normalize_username(name)
    with pytest.raises(AccountError, match="invalid username"):  # before touching the database
        await accounts.create_user(Database("sqlite:///never-opened.db"), name, "password1")


async def test_valid_usernames(db):
    for name in ("ab", "a.b_c-1", "x" * 64, "DEMO-Agent"):
        assert (await accounts.create_user(db, name, "password1")).username == name.lower()


async def test_create_user_errors(db):
    await accounts.create_user(db, "alice", "password1")
    with pytest.raises(AccountError, match="already exists"):
        await accounts.create_user(db, "ALICE", "password2")
    with pytest.raises(AccountError, match="at least 8"):
        await accounts.create_user(db, "carol", "short")
    with pytest.raises(AccountError, match="invalid role 'boss'"):
        await accounts.create_user(db, "carol", "password1", "boss")
    with pytest.raises(AccountError, match="control characters"):
        await accounts.create_user(db, "carol", "password1", display_name="evil\u202eeman")
    assert [u.username for u in await accounts.list_users(db)] == ["alice"]


async def test_authenticate(db, monkeypatch):
    await accounts.create_user(db, "alice", "password1")
    user = await accounts.authenticate(db, "Alice", "password1")
    assert user is not None and user.username == "alice"
    assert user.last_login_at is not None and user.last_login_at.tzinfo is not None
    assert (await accounts.get_user(db, "alice")).last_login_at == user.last_login_at

    assert await accounts.authenticate(db, "alice", "password2") is None
    assert await accounts.authenticate(db, "alice", "") is None

    dummy_checks = []
    real = accounts._verify_dummy_sync
    monkeypatch.setattr(accounts, "_verify_dummy_sync", lambda pw: (dummy_checks.append(1), real(pw)))
    assert await accounts.authenticate(db, "nobody", "password1") is None
    assert await accounts.authenticate(db, "not a name!", "password1") is None
    assert len(dummy_checks) == 2  # unknown users still cost one hash check

    await accounts.set_disabled(db, "alice")
    assert await accounts.authenticate(db, "alice", "password1") is None
    await accounts.set_disabled(db, "alice", False)
    assert await accounts.authenticate(db, "alice", "password1") is not None


async def test_authenticate_rehashes_outdated_hashes(db):
    await accounts.create_user(db, "alice", "password1")
    old_hash = (await accounts.get_user(db, "alice")).password_hash
    accounts.set_password_hasher(PasswordHasher(time_cost=2, memory_cost=16, parallelism=1))
    user = await accounts.authenticate(db, "alice", "password1")
    stored = (await accounts.get_user(db, "alice")).password_hash
    assert user.password_hash == stored != old_hash
    assert "$m=16,t=2,p=1$" in stored
    assert await accounts.authenticate(db, "alice", "password1") is not None


async def test_set_password_and_lookups(db):
    alice = await accounts.create_user(db, "alice", "password1", "admin")
    await accounts.create_user(db, "bob", "password1")
    await accounts.set_password(db, "ALICE", "new password")
    assert await accounts.authenticate(db, "alice", "password1") is None
    assert await accounts.authenticate(db, "alice", "new password") is not None
    with pytest.raises(AccountError, match="no user named 'carol'"):
        await accounts.set_password(db, "carol", "password1")
    with pytest.raises(AccountError, match="at least 8"):
        await accounts.set_password(db, "alice", "short")
    with pytest.raises(AccountError, match="no user named 'carol'"):
        await accounts.set_disabled(db, "carol")

    assert (await accounts.get_user(db, "Alice")).id == alice.id
    assert await accounts.get_user(db, "nobody") is None
    assert await accounts.get_user(db, "bad name") is None
    assert (await accounts.get_user_by_id(db, alice.id)).username == "alice"
    bob_id = (await accounts.get_user(db, "bob")).id
    found = await accounts.get_users_by_id(db, [bob_id, alice.id, 9999, alice.id] + list(range(10_000, 10_700)))
    assert {i: u.username for i, u in found.items()} == {alice.id: "alice", bob_id: "bob"}
    assert await accounts.get_users_by_id(db, []) == {}
    await accounts.set_disabled(db, "bob")
    assert [u.username for u in await accounts.list_users(db)] == ["alice", "bob"]
    assert [u.username for u in await accounts.list_users(db, include_disabled=False)] == ["alice"]


async def test_demo_accounts(db):
    name, password = await ensure_demo_agent(db)
    assert name == "demo-agent" and len(password) >= 16
    agent = await accounts.authenticate(db, name, password)
    assert agent.role is Role.agent and agent.display_name == "Demo Agent"

    await accounts.set_disabled(db, name)
    created = await ensure_demo_accounts(db)  # a new run: new passwords, enabled again
    assert [(a.username, a.role) for a in created] == [("demo-agent", Role.agent),
                                                       ("demo-supervisor", Role.supervisor)]
    assert created[0].password != password
    assert await accounts.authenticate(db, name, password) is None
    for account in created:
        user = await accounts.authenticate(db, account.username, account.password)
        assert user is not None and user.role is account.role
    assert len(await accounts.list_users(db)) == 2


# --- co-browse session records ----------------------------------------------------


async def test_session_lifecycle(db):
    alice = await accounts.create_user(db, "alice", "password1")
    sue = await accounts.create_user(db, "sue", "password1", "supervisor")

    record = await cobrowse_sessions.start_session(
        db, site_host="shop.example.com", visitor_id="v-123", page_url="https://shop.example.com/cart"
    )
    assert len(record.id) >= 22 and record.active and record.participants == []
    assert record.started_at.tzinfo is not None
    other = await cobrowse_sessions.start_session(db, site_host="shop.example.com", visitor_id="v-456")
    assert other.id != record.id

    joined = await cobrowse_sessions.add_participant(db, record.id, alice.id)
    assert joined.role is ParticipantRole.agent and joined.user.username == "alice"
    assert (await cobrowse_sessions.add_participant(db, record.id, alice.id)).id == joined.id  # already in
    await cobrowse_sessions.add_participant(db, record.id, sue.id, "supervisor")
    assert await cobrowse_sessions.participant_left(db, record.id, alice.id) is True
    assert await cobrowse_sessions.participant_left(db, record.id, alice.id) is False
    await cobrowse_sessions.add_participant(db, record.id, alice.id)  # re-joins: a new row

    loaded = await cobrowse_sessions.get_session(db, record.id)
    assert [(p.user.username, p.role.value, p.left_at is None) for p in loaded.participants] == [
        ("alice", "agent", False), ("sue", "supervisor", True), ("alice", "agent", True)]
    assert [s.id for s in await cobrowse_sessions.list_sessions(db, active=True)] == [other.id, record.id]

    ended = await cobrowse_sessions.end_session(db, record.id, "visitor_stopped")
    assert ended.end_reason is EndReason.visitor_stopped and not ended.active
    loaded = await cobrowse_sessions.get_session(db, record.id)
    assert loaded.ended_at == ended.ended_at and loaded.ended_at >= loaded.started_at
    assert loaded.page_url == "https://shop.example.com/cart" and loaded.visitor_id == "v-123"
    assert all(p.left_at is not None and p.left_at <= loaded.ended_at for p in loaded.participants)

    again = await cobrowse_sessions.end_session(db, record.id, EndReason.idle_timeout)  # first end wins
    assert (again.end_reason, again.ended_at) == (EndReason.visitor_stopped, ended.ended_at)
    assert [s.id for s in await cobrowse_sessions.list_sessions(db, active=False)] == [record.id]
    assert [s.id for s in await cobrowse_sessions.list_sessions(db, visitor_id="v-456")] == [other.id]


async def test_session_errors_and_open_sessions(db):
    alice = await accounts.create_user(db, "alice", "password1")
    bob = await accounts.create_user(db, "bob", "password1")
    await accounts.set_disabled(db, "bob")
    record = await cobrowse_sessions.start_session(db, site_host="a", visitor_id="v")

    with pytest.raises(CobrowseSessionError, match="already exists"):
        await cobrowse_sessions.start_session(db, site_host="a", visitor_id="v", session_id=record.id)
    assert await cobrowse_sessions.get_session(db, "unknown") is None
    assert await cobrowse_sessions.end_session(db, "unknown", "agent_ended") is None
    with pytest.raises(CobrowseSessionError, match="no co-browse session"):
        await cobrowse_sessions.add_participant(db, "unknown", alice.id)
    with pytest.raises(CobrowseSessionError, match="no user with id"):
        await cobrowse_sessions.add_participant(db, record.id, 999)
    with pytest.raises(CobrowseSessionError, match="disabled"):
        await cobrowse_sessions.add_participant(db, record.id, bob.id)
    with pytest.raises(CobrowseSessionError, match="participant role"):
        await cobrowse_sessions.add_participant(db, record.id, alice.id, "admin")
    with pytest.raises(CobrowseSessionError, match="invalid end reason"):
        await cobrowse_sessions.end_session(db, record.id, "bored")

    await cobrowse_sessions.add_participant(db, record.id, alice.id)
    second = await cobrowse_sessions.start_session(db, site_host="a", visitor_id="w")
    assert await cobrowse_sessions.end_open_sessions(db) == 2
    assert await cobrowse_sessions.end_open_sessions(db) == 0
    for sid in (record.id, second.id):
        loaded = await cobrowse_sessions.get_session(db, sid)
        assert loaded.end_reason is EndReason.server_shutdown
        assert all(p.left_at == loaded.ended_at for p in loaded.participants)
    with pytest.raises(CobrowseSessionError, match="has ended"):
        await cobrowse_sessions.add_participant(db, record.id, alice.id)

    # After a restart: a session the shutdown ended can go on; one that ended otherwise cannot.
    assert await cobrowse_sessions.end_reason(db, record.id) is EndReason.server_shutdown
    assert await cobrowse_sessions.reopen_after_shutdown(db, record.id) is True
    assert await cobrowse_sessions.end_reason(db, record.id) is None
    assert (await cobrowse_sessions.get_session(db, record.id)).ended_at is None
    await cobrowse_sessions.end_session(db, record.id, "visitor_stopped")
    assert await cobrowse_sessions.reopen_after_shutdown(db, record.id) is False
    assert await cobrowse_sessions.end_reason(db, record.id) is EndReason.visitor_stopped
    assert await cobrowse_sessions.end_reason(db, "unknown") is None


# --- PostgreSQL (optional: only where a server is installed) ----------------------


def _postgres_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return os.path.dirname(found[-1]) if found else None


@pytest.fixture(scope="module")
def postgres_url():
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres)")
    preexec = None
    owner = None
    if os.geteuid() == 0:  # postgres refuses to run as root: use the postgres account
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")

        def preexec():
            os.setgroups([])
            os.setgid(owner.pw_gid)
            os.setuid(owner.pw_uid)

    tmp = tempfile.mkdtemp(prefix="cobrowse-pg-")
    if owner is not None:
        os.chown(tmp, owner.pw_uid, owner.pw_gid)
    data, sock = os.path.join(tmp, "data"), tmp
    server = None
    try:
        subprocess.run([f"{bindir}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                        "--no-sync"], check=True, capture_output=True, preexec_fn=preexec, timeout=60)
        log = open(os.path.join(tmp, "server.log"), "wb")  # a pipe could fill up and block the server
        server = subprocess.Popen(
            [f"{bindir}/postgres", "-D", data, "-k", sock, "-c", "listen_addresses=", "-c", "fsync=off",
             "-p", "5432"],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec,
        )
        log.close()
        deadline = time.monotonic() + 30
        while subprocess.run([f"{bindir}/pg_isready", "-q", "-h", sock, "-p", "5432"]).returncode != 0:
            if server.poll() is not None or time.monotonic() > deadline:
                with open(os.path.join(tmp, "server.log"), errors="replace") as fh:
                    raise RuntimeError(f"postgres did not start: {fh.read()}")
            time.sleep(0.1)
        yield f"postgresql://postgres@/postgres?host={sock}"
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


async def test_postgresql(postgres_url):
    db, other = Database(postgres_url), Database(postgres_url)
    await asyncio.gather(db.start(), other.start())  # the advisory lock: one migrates, one waits
    await other.stop()
    try:
        assert {db.previous_revision, other.previous_revision} == {None, head_revision()}
        assert db.revision == head_revision()
        assert TABLES <= await table_names(db)
        assert await schema_differences(db) == []

        alice = await accounts.create_user(db, "Alice", "password1", "admin")
        with pytest.raises(AccountError, match="already exists"):
            await accounts.create_user(db, "alice", "password1")
        assert (await accounts.authenticate(db, "alice", "password1")).last_login_at.tzinfo is UTC
        assert await accounts.authenticate(db, "alice", "wrong-password") is None

        record = await cobrowse_sessions.start_session(db, site_host="a", visitor_id="v", page_url="https://a/")
        await cobrowse_sessions.add_participant(db, record.id, alice.id, "supervisor")
        ended = await cobrowse_sessions.end_session(db, record.id, "idle_timeout")
        loaded = await cobrowse_sessions.get_session(db, record.id)
        assert loaded.ended_at == ended.ended_at and loaded.ended_at.tzinfo is UTC
        assert loaded.participants[0].left_at == loaded.ended_at
        with pytest.raises(sa.exc.IntegrityError):
            async with db.transaction() as s:
                s.add(CobrowseParticipant(session_id="nope", user_id=alice.id, role=ParticipantRole.agent))
    finally:
        await db.stop()
    async with Database(postgres_url) as again:  # idempotent
        assert again.previous_revision == again.revision == head_revision()
    with pytest.raises(StorageError, match='cannot open the database .*"nonexistent" does not exist'):
        await Database(postgres_url.replace("/postgres?", "/nonexistent?")).start()

