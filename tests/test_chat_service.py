"""chat.service.ChatService on a real SQLite database: idempotency, ordering under
concurrency, atomic accept, routing, canned replies, offline messages, files,
transcript recipients, and the 0002 -> 0003 migration with data present."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from chat.service import ChatError, ChatService, check_chat_token, wire_message
from cobrowse.config import ChatField, Department
from cobrowse.storage import Base, Database, User, head_revision
from cobrowse.storage.db import alembic_config
from cobrowse.storage.models import UserDepartment
from cobrowse.sync import protocol as p

SECRET = b"0123456789abcdef0123456789abcdef"
SITE = "shop.example.com"
DEPARTMENTS = {
    "sales": Department(id="sales", name="Sales", transcripts_to=("sales-log@example.com", "Boss@Example.com")),
    "support": Department(id="support", name="Support"),
}
FIELDS = (
    ChatField(name="order", label="Order number", required=True),
    ChatField(name="topic", label="Topic", type="select", options=("Billing", "Delivery")),
    ChatField(name="details", label="Details", type="textarea"),
)


@dataclass(frozen=True)
class Agent:
    user_id: int
    name: str
    role: str = "agent"


class Clock:
    """One second later at every call: orderings by time are deterministic."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def db_dir(tmp_path):
    """Where a test's database lives: in memory (tmpfs) when the machine has /dev/shm.
    The database is the same real SQLite file with the same settings, but an fsync
    costs nothing there, so the hundreds of commits below take no disk time."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="cobrowse-chat-test-") as directory:
            yield Path(directory)
    else:
        yield tmp_path


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory) -> Path:
    """An empty database at the newest revision, made once: migrating takes longer than a test."""
    path = tmp_path_factory.mktemp("chat-template") / "chat.db"

    async def migrate() -> None:
        async with Database(f"sqlite:///{path}"):
            pass  # closing the last connection checkpoints the WAL into the file

    asyncio.run(migrate())
    return path


@pytest.fixture
async def db(db_dir, migrated_database):
    shutil.copyfile(migrated_database, db_dir / "chat.db")
    database = Database(f"sqlite:///{db_dir / 'chat.db'}")
    await database.start()
    assert database.previous_revision == head_revision()  # a copy of the template, not migrated again
    yield database
    await database.stop()


@pytest.fixture
def service(db) -> ChatService:
    return ChatService(db, secret=SECRET, clock=Clock(), departments=DEPARTMENTS, prechat_fields=FIELDS)


async def add_user(db: Database, username: str, role: str = "agent", *, departments=(), email=None,
                   transcripts=False, disabled=False) -> Agent:
    """A user row directly (no password hashing: these tests never log in)."""
    async with db.transaction() as s:
        user = User(username=username, display_name=username.title(), role=role, password_hash="x",
                    email=email, transcripts=transcripts, disabled=disabled)
        s.add(user)
        await s.flush()
        s.add_all(UserDepartment(user_id=user.id, department=d) for d in departments)
    return Agent(user.id, user.display_name, role)


_keys = itertools.count(1)


def key() -> str:
    return f"key-{next(_keys):06d}"


async def start(service: ChatService, visitor: str = "visitor-1", **options):
    options.setdefault("fields", {"order": "A-1"})
    return await service.start(site=SITE, visitor_id=visitor, key=options.pop("key", None) or key(), **options)


def error_code(exc_info) -> str:
    return exc_info.value.code


# --- starting, tokens --------------------------------------------------------------


async def test_start_is_idempotent_on_visitor_and_key(service):
    first = await service.start(site="Shop.Example.com", visitor_id="v1", key="start-key-1", name="  Ann \n Lee ",
                                email="ann@example.com", department="sales",
                                fields={"order": "A-17", "topic": "Billing", "details": "line 1\nline 2"},
                                url="https://shop.example.com/cart", title="Cart")
    assert (first.status, first.site_host, first.visitor_name, first.department) == ("waiting", SITE, "Ann Lee", "sales")
    assert first.fields == {"order": "A-17", "topic": "Billing", "details": "line 1\nline 2"}
    assert first.last_seq == 0 and first.agent_id is None
    again = await service.start(site=SITE, visitor_id="v1", key="start-key-1", name="Someone else",
                                fields={"order": "B-2"})
    assert again == first
    other_visitor = await service.start(site=SITE, visitor_id="v2", key="start-key-1", fields={"order": "1"})
    assert other_visitor.id != first.id
    assert (await service.get(first.id)) == first
    assert (await service.open_for_visitor("v1")).id == first.id


async def test_concurrent_starts_with_one_key_make_one_conversation(service):
    results = await asyncio.gather(*(service.start(site=SITE, visitor_id="v1", key="same-key-42",
                                                   fields={"order": "1"}) for _ in range(10)))
    assert len({c.id for c in results}) == 1


@pytest.mark.parametrize("options, code", [
    ({"email": "not an address"}, "bad_request"),
    ({"email": "ann@localhost"}, "bad_request"),  # a visitor's address needs a domain with a dot
    ({"department": "marketing"}, "bad_request"),  # departments are configured: must be one of them
    ({"fields": {"order": "1", "shoe_size": "42"}}, "bad_request"),  # not a configured field
    ({"fields": {"topic": "Billing"}}, "bad_request"),  # the required order number is missing
    ({"fields": {"order": "1", "topic": "Returns"}}, "bad_request"),  # not one of the options
    ({"fields": {"order": "x" * (p.MAX_FIELD + 1)}}, "too_large"),
    ({"name": "n" * (p.MAX_FIELD + 1)}, "too_large"),
    ({"key": "short"}, "bad_request"),
    ({"key": "has spaces in it"}, "bad_request"),
])
async def test_start_validates(service, options, code):
    with pytest.raises(ChatError) as info:
        await start(service, **options)
    assert error_code(info) == code


async def test_start_without_configured_departments_or_fields(db):
    plain = ChatService(db, secret=SECRET)
    conversation = await plain.start(site=SITE, visitor_id="v", key="key-plain-1", department="anything")
    assert conversation.department == "anything" and conversation.fields == {}
    with pytest.raises(ChatError):
        await plain.start(site=SITE, visitor_id="v", key="key-plain-2", fields={"order": "1"})


async def test_page_url_and_title_are_cut_not_refused(service):
    conversation = await start(service, url="https://x/" + "a" * 5000, title="T\x00itle")
    assert len(conversation.url) == p.MAX_TEXT and conversation.title == "Title"


async def test_tokens(service):
    token = service.token("conv-id", "visitor-1")
    conversation, mac = token.split(".")
    assert conversation == "conv-id" and len(mac) == 24
    assert service.check_token(token, "visitor-1") == "conv-id"
    assert service.check_token(token, "visitor-2") is None
    assert service.check_token(token[:-1] + ("A" if token[-1] != "A" else "B"), "visitor-1") is None
    assert service.check_token("conv-id", "visitor-1") is None
    assert service.check_token(".", "visitor-1") is None
    assert check_chat_token(b"another secret", token, "visitor-1") is None


# --- messages ----------------------------------------------------------------------


async def test_post_is_idempotent_on_client_id(service):
    conversation = await start(service, name="Ann")
    message, stored = await service.post(conversation.id, client_id="msg-0001", sender="visitor", text="Hello")
    assert stored and (message.seq, message.text, message.sender_name, message.kind) == (1, "Hello", "Ann", "text")
    retry, stored = await service.post(conversation.id, client_id="msg-0001", sender="visitor", text="Hello!!")
    assert not stored and retry == message
    second, stored = await service.post(conversation.id, client_id="msg-0002", sender="visitor", text="Anyone?")
    assert stored and second.seq == 2

    other = await start(service, visitor="visitor-2")
    with pytest.raises(ChatError) as info:  # an id is unique everywhere, not per conversation
        await service.post(other.id, client_id="msg-0001", sender="visitor", text="Hello")
    assert error_code(info) == "bad_request"
    assert (await service.get(conversation.id)).last_seq == 2


async def test_concurrent_posts_get_seqs_without_gaps_or_repeats(service):
    conversation = await start(service)
    results = await asyncio.gather(*(
        service.post(conversation.id, client_id=f"concurrent-{i:04d}", sender="visitor", text=f"message {i}")
        for i in range(200)
    ))
    assert all(stored for _, stored in results)
    assert sorted(m.seq for m, _ in results) == list(range(1, 201))
    history, more = await service.history(conversation.id, 0, notes=False)
    assert [m.seq for m in history] == list(range(1, 201)) and not more
    assert (await service.get(conversation.id)).last_seq == 200


async def test_concurrent_retries_of_one_message_store_it_once(service):
    conversation = await start(service)
    results = await asyncio.gather(*(
        service.post(conversation.id, client_id="the-same-id", sender="visitor", text="hi") for _ in range(10)
    ))
    assert [stored for _, stored in results].count(True) == 1
    assert {m.seq for m, _ in results} == {1}


async def test_post_cleans_and_checks_text(service):
    conversation = await start(service)
    message, _ = await service.post(conversation.id, client_id="clean-0001", sender="visitor",
                                    text="a\x00b\r\nc\td\x1b[31m\x7f")
    assert message.text == "ab\nc\td[31m"
    for text, code in (("", "bad_request"), (" \n\t", "bad_request"), ("\x00\x01", "bad_request"),
                       ("x" * (p.MAX_CHAT_TEXT + 1), "too_large")):
        with pytest.raises(ChatError) as info:
            await service.post(conversation.id, client_id="clean-0002", sender="visitor", text=text)
        assert error_code(info) == code, text
    assert len((await service.post(conversation.id, client_id="clean-0003", sender="visitor",
                                   text="y" * p.MAX_CHAT_TEXT))[0].text) == p.MAX_CHAT_TEXT


@pytest.mark.parametrize("client_id", ["short", "x" * 65, "with space1", "ünïcödé-id", None])
async def test_post_needs_a_valid_client_id(service, client_id):
    conversation = await start(service)
    with pytest.raises(ChatError) as info:
        await service.post(conversation.id, client_id=client_id, sender="visitor", text="hi")
    assert error_code(info) == "bad_request"


async def test_who_may_send_what(service, db):
    agent = await add_user(db, "alice")
    conversation = await start(service)
    for sender, kind in (("visitor", "note"), ("visitor", "system"), ("visitor", "command"),
                         ("agent", "system"), ("system", "text"), ("system", "note"), ("nobody", "text"),
                         ("visitor", "shout")):
        with pytest.raises(ChatError) as info:
            await service.post(conversation.id, client_id="kind-test-1", sender=sender, kind=kind, text="x",
                               agent_id=agent.user_id)
        assert error_code(info) == "bad_request", (sender, kind)
    with pytest.raises(ChatError):  # an agent's message says which agent
        await service.post(conversation.id, client_id="kind-test-2", sender="agent", text="x")
    with pytest.raises(ChatError):  # formatting only in system messages
        await service.post(conversation.id, client_id="kind-test-3", sender="agent", text="x",
                           agent_id=agent.user_id, rich={"b": "x"})
    welcome, stored = await service.post(conversation.id, sender="system", kind="system", text="Welcome!",
                                         rich=[{"tag": "b", "children": ["Welcome!"]}])
    assert stored and len(welcome.client_id) >= 8 and welcome.rich == [{"tag": "b", "children": ["Welcome!"]}]


async def test_notes_are_left_out_of_the_visitors_history(service, db):
    agent = await add_user(db, "alice")
    conversation = await start(service)
    await service.accept(conversation.id, agent)
    await service.post(conversation.id, client_id="hist-0001", sender="visitor", text="Hi")
    await service.post(conversation.id, client_id="hist-0002", sender="agent", kind="note", text="VIP customer",
                       agent_id=agent.user_id, name=agent.name)
    await service.post(conversation.id, client_id="hist-0003", sender="agent", text="Hello!", agent_id=agent.user_id,
                       name=agent.name)
    visitor_view, _ = await service.history(conversation.id, 0, notes=False)
    agent_view, _ = await service.history(conversation.id, 0, notes=True)
    assert [(m.seq, m.kind) for m in visitor_view] == [(1, "text"), (3, "text")]
    assert [(m.seq, m.kind) for m in agent_view] == [(1, "text"), (2, "note"), (3, "text")]
    assert [m.seq for m in (await service.history(conversation.id, 1, notes=False))[0]] == [3]
    page, more = await service.history(conversation.id, 0, notes=True, limit=2)
    assert [m.seq for m in page] == [1, 2] and more
    page, more = await service.history(conversation.id, 2, notes=True, limit=2)
    assert [m.seq for m in page] == [3] and not more


async def test_an_ended_conversation_refuses_messages(service):
    conversation = await start(service)
    acked, _ = await service.post(conversation.id, client_id="end-0001", sender="visitor", text="bye")
    ended = await service.end(conversation.id, "visitor")
    assert ended.status == "ended" and ended.ended_by == "visitor" and ended.ended_at is not None
    assert await service.end(conversation.id, "agent") is None  # only the first end counts
    assert (await service.get(conversation.id)).ended_by == "visitor"
    with pytest.raises(ChatError) as info:
        await service.post(conversation.id, client_id="end-0002", sender="visitor", text="hello?")
    assert error_code(info) == "ended"
    # A retry of a message stored before the end is still answered with its seq.
    assert await service.post(conversation.id, client_id="end-0001", sender="visitor", text="bye") == (acked, False)
    assert await service.open_for_visitor("visitor-1") is None
    with pytest.raises(ChatError) as info:
        await service.end("no-such-conversation", "agent")
    assert error_code(info) == "not_found"
    with pytest.raises(ChatError):
        await service.end(conversation.id, "bored")


async def test_wire_format(service, db):
    agent = await add_user(db, "alice")
    conversation = await start(service)
    message, _ = await service.post(conversation.id, client_id="wire-0001", sender="agent", text="Hi",
                                    agent_id=agent.user_id, name="Alice")
    frame = service.wire(message)
    assert isinstance(frame, p.ChatMessage)
    assert (frame.seq, frame.id, frame.sender, frame.kind, frame.text, frame.name, frame.agent) == (
        1, "wire-0001", "agent", "text", "Hi", "Alice", agent.user_id)
    assert frame.at == message.at.timestamp()
    system, _ = await service.post(conversation.id, sender="system", kind="system", text="Hello",
                                   rich={"p": ["Hello"]})
    decoded = msgspec.json.decode(msgspec.json.encode(p.ChatMessageFrame(conversation=conversation.id,
                                                                         m=wire_message(system))))
    assert decoded["m"]["rich"] == {"p": ["Hello"]} and decoded["m"]["sender"] == "system"


# --- accepting, routing, transfers ------------------------------------------------------


async def test_accept_is_atomic(service, db):
    agents = [await add_user(db, f"agent{i}") for i in range(10)]
    conversation = await start(service)
    results = await asyncio.gather(*(service.accept(conversation.id, a) for a in agents), return_exceptions=True)
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1 and len(losers) == 9
    assert all(isinstance(e, ChatError) and e.code == "taken" for e in losers)
    won = winners[0]
    assert won.status == "active" and won.accepted_at is not None
    holder = next(a for a in agents if a.user_id == won.agent_id)
    assert [x.id for x in await service.participants(conversation.id)] == [holder.user_id]
    assert (await service.accept(conversation.id, holder)).agent_id == holder.user_id  # a retry: fine
    assert await service.waiting() == []


async def test_department_rule(service, db):
    seller = await add_user(db, "seller", departments=["sales"])
    generalist = await add_user(db, "generalist")
    supervisor = await add_user(db, "boss", "supervisor", departments=["support"])
    sales = await start(service, department="sales")
    support = await start(service, visitor="v2", department="support")
    anything = await start(service, visitor="v3")
    waiting = await service.waiting()
    assert [c.id for c in waiting] == [sales.id, support.id, anything.id]  # oldest first

    assert [c.id for c in await service.offers_for(seller, waiting)] == [sales.id, anything.id]
    assert len(await service.offers_for(generalist, waiting)) == 3
    assert len(await service.offers_for(supervisor, waiting)) == 3
    assert await service.agent_departments(seller.user_id) == ["sales"]

    with pytest.raises(ChatError) as info:
        await service.accept(support.id, seller)
    assert error_code(info) == "forbidden"
    assert (await service.accept(sales.id, seller)).agent_id == seller.user_id
    assert (await service.accept(support.id, supervisor)).agent_id == supervisor.user_id
    assert (await service.accept(anything.id, seller)).agent_id == seller.user_id
    assert await service.waiting(site=SITE) == [] and await service.waiting(site="other.example.com") == []


async def test_accepting_an_ended_or_missing_conversation(service, db):
    agent = await add_user(db, "alice")
    conversation = await start(service)
    await service.end(conversation.id, "visitor")
    with pytest.raises(ChatError) as info:
        await service.accept(conversation.id, agent)
    assert error_code(info) == "ended"
    with pytest.raises(ChatError) as info:
        await service.accept("nope", agent)
    assert error_code(info) == "not_found"


async def test_transfer(service, db):
    alice = await add_user(db, "alice")
    bob = await add_user(db, "bob", departments=["support"])
    carol = await add_user(db, "carol")
    gone = await add_user(db, "gone", disabled=True)
    conversation = await start(service, department="sales")
    await service.accept(conversation.id, alice)

    with pytest.raises(ChatError) as info:  # only the holder (or a supervisor) transfers
        await service.transfer(conversation.id, carol, to_user_id=carol.user_id)
    assert error_code(info) == "forbidden"
    for options in ({}, {"to_user_id": bob.user_id, "department": "support"}, {"department": "nowhere"}):
        with pytest.raises(ChatError) as info:
            await service.transfer(conversation.id, alice, **options)
        assert error_code(info) == "bad_request"
    with pytest.raises(ChatError) as info:
        await service.transfer(conversation.id, alice, to_user_id=gone.user_id)
    assert error_code(info) == "not_found"

    to_bob = await service.transfer(conversation.id, alice, to_user_id=bob.user_id)
    assert (to_bob.status, to_bob.agent_id, to_bob.department) == ("active", bob.user_id, "sales")
    assert [x.id for x in await service.participants(conversation.id)] == [bob.user_id]
    assert not await service.can_open(to_bob, alice)  # handed on: it is Bob's (and supervisors') now

    queued = await service.transfer(conversation.id, bob, department="support")
    assert (queued.status, queued.agent_id, queued.department) == ("waiting", None, "support")
    assert await service.participants(conversation.id) == []
    assert [c.id for c in await service.offers_for(bob, await service.waiting())] == [conversation.id]
    again = await service.accept(conversation.id, bob)
    assert again.accepted_at == to_bob.accepted_at  # the first acceptance is kept

    await service.end(conversation.id, "agent")
    with pytest.raises(ChatError) as info:
        await service.transfer(conversation.id, bob, department="")
    assert error_code(info) == "ended"


async def test_who_may_open_and_recent(service, db):
    alice = await add_user(db, "alice")
    bob = await add_user(db, "bob")
    admin = await add_user(db, "root", "admin")
    mine = await start(service)
    other = await start(service, visitor="v2")
    await service.accept(mine.id, alice)
    mine = await service.get(mine.id)
    assert await service.can_open(mine, alice) and await service.can_open(mine.id, admin)
    assert not await service.can_open(mine, bob) and not await service.can_open("missing", bob)
    assert await service.add_participant(mine.id, bob) is True
    assert await service.add_participant(mine.id, bob) is False  # already in
    assert await service.can_open(mine, bob)
    assert {x.id for x in await service.participants(mine.id)} == {alice.user_id, bob.user_id}
    assert await service.leave(mine.id, bob.user_id) is True
    assert [x.id for x in await service.participants(mine.id)] == [alice.user_id]
    assert not await service.can_open(mine, bob)  # left: no longer follows it

    assert [c.id for c in await service.recent(alice)] == [mine.id]
    assert [c.id for c in await service.recent(admin)] == [other.id, mine.id]  # newest first
    assert [c.id for c in await service.recent(admin, state="waiting")] == [other.id]
    assert await service.recent(alice, state="ended") == []
    with pytest.raises(ChatError):
        await service.recent(alice, state="lost")


# --- seen, survey, sessions -------------------------------------------------------


async def test_seen_only_grows_and_stays_within_the_messages(service):
    conversation = await start(service)
    for i in range(5):
        await service.post(conversation.id, client_id=f"seen-{i:04d}", sender="visitor", text="x")
    assert await service.seen(conversation.id, "agent", 3, 2) == (3, 2)
    assert await service.seen(conversation.id, "agent", 1, 1) == (3, 2)  # never lower
    assert await service.seen(conversation.id, "agent", 0, 4) == (4, 4)  # read implies delivered
    assert await service.seen(conversation.id, "agent", 99, 99) == (5, 5)  # not past the last seq
    assert await service.seen(conversation.id, "visitor", 2, 0) == (2, 0)  # each side on its own
    stored = await service.get(conversation.id)
    assert (stored.agent_delivered, stored.agent_read, stored.visitor_delivered, stored.visitor_read) == (5, 5, 2, 0)
    results = await asyncio.gather(*(service.seen(conversation.id, "visitor", n, n) for n in (1, 5, 3, 4, 2)))
    assert results[-1] == (5, 5) or max(results) == (5, 5)
    assert (await service.get(conversation.id)).visitor_read == 5
    for side, delivered, read in (("robot", 1, 1), ("agent", -1, 0), ("agent", 1, True)):
        with pytest.raises(ChatError):
            await service.seen(conversation.id, side, delivered, read)
    with pytest.raises(ChatError) as info:
        await service.seen("missing", "agent", 1, 1)
    assert error_code(info) == "not_found"


async def test_survey(service, db):
    agent = await add_user(db, "alice")
    conversation = await start(service)
    with pytest.raises(ChatError):  # nobody answered: nothing to rate
        await service.survey(conversation.id, 5, "")
    await service.accept(conversation.id, agent)
    await service.end(conversation.id, "visitor")
    for rating in (0, 6, True, "5"):
        with pytest.raises(ChatError):
            await service.survey(conversation.id, rating, "")
    with pytest.raises(ChatError) as info:
        await service.survey(conversation.id, 4, "x" * 2001)
    assert error_code(info) == "too_large"
    assert await service.survey(conversation.id, 4, " Quick and kind\x00 ") is True
    assert await service.survey(conversation.id, 1, "changed my mind") is False  # the first answer stays
    stored = await service.get(conversation.id)
    assert (stored.survey_rating, stored.survey_comment) == (4, "Quick and kind") and stored.survey_at


async def test_linked_cobrowse_sessions(service):
    conversation = await start(service)
    assert await service.link_session(conversation.id, "session-b") is True
    assert await service.link_session(conversation.id, "session-a") is True
    assert await service.link_session(conversation.id, "session-b") is False
    assert await service.sessions_of(conversation.id) == ["session-b", "session-a"]  # in linking order
    assert await service.conversation_of_session("session-a") == conversation.id
    assert await service.conversation_of_session("session-z") is None
    with pytest.raises(ChatError) as info:
        await service.link_session("missing", "session-c")
    assert error_code(info) == "not_found"


# --- files -------------------------------------------------------------------------


async def test_record_file_is_idempotent(service, db):
    agent = await add_user(db, "alice")
    conversation = await start(service, name="Ann")
    digest = hashlib.sha256(b"data").hexdigest()
    message, stored = await service.record_file(
        conversation.id, uploader="visitor", user_id=None, name="C:\\Users\\ann\\receipt.pdf", size=4,
        content_type="application/pdf", storage_key="k1", sha256=digest, client_id="file-0001")
    assert stored and (message.kind, message.sender, message.sender_name, message.text) == (
        "file", "visitor", "Ann", "receipt.pdf")
    assert message.file.name == "receipt.pdf" and message.file.uploader == "visitor" and message.file.size == 4
    retry, stored = await service.record_file(
        conversation.id, uploader="visitor", user_id=None, name="receipt.pdf", size=4,
        content_type="application/pdf", storage_key="k2", sha256=digest, client_id="file-0001")
    assert not stored and retry == message  # the caller deletes the bytes it stored under k2
    assert await service.file(message.file.id) == message.file
    assert await service.file("missing") is None

    from_agent, _ = await service.record_file(
        conversation.id, uploader="agent", user_id=agent.user_id, name="x" * 300 + ".png", size=0,
        content_type="image/png", storage_key="k3", sha256=digest.upper(), client_id="file-0002", agent_name="Alice")
    assert (from_agent.sender, from_agent.agent_id, from_agent.sender_name) == ("agent", agent.user_id, "Alice")
    assert len(from_agent.file.name) == 255 and from_agent.file.name.endswith(".png")
    history, _ = await service.history(conversation.id, 0, notes=False)
    assert [m.file.id for m in history] == [message.file.id, from_agent.file.id]
    frame = wire_message(history[0])
    assert frame.file == p.ChatFile(id=message.file.id, name="receipt.pdf", size=4, type="application/pdf")

    # A file message by id (e.g. re-sent by the hub) must belong to the conversation.
    other = await start(service, visitor="v2")
    with pytest.raises(ChatError) as info:
        await service.post(other.id, client_id="file-0003", sender="visitor", kind="file", text="x",
                           file_id=message.file.id)
    assert error_code(info) == "not_found"
    for bad in ({"sha256": "nothex"}, {"name": "../"}, {"size": -1}, {"uploader": "agent"}):
        arguments = dict(uploader="visitor", user_id=None, name="a.txt", size=1, content_type="text/plain",
                         storage_key="k4", sha256=digest, client_id="file-0004") | bad
        with pytest.raises(ChatError):
            await service.record_file(conversation.id, **arguments)
    await service.end(conversation.id, "agent")
    with pytest.raises(ChatError) as info:
        await service.record_file(conversation.id, uploader="visitor", user_id=None, name="a.txt", size=1,
                                  content_type="text/plain", storage_key="k5", sha256=digest, client_id="file-0005")
    assert error_code(info) == "ended"


# --- canned replies ----------------------------------------------------------------


async def test_canned_precedence(service, db):
    boss = await add_user(db, "boss", "supervisor")
    seller = await add_user(db, "seller", departments=["sales"])
    helper = await add_user(db, "helper", departments=["support"])
    await service.create_canned(boss, scope="site", name="hi", body="Hello from the company")
    await service.create_canned(boss, scope="site", name="bye", body="Goodbye")
    await service.create_canned(boss, scope="site", name="bye", body="Goodbye from the shop", site=SITE)
    await service.create_canned(boss, scope="department", department="sales", name="hi", body="Hello from Sales")
    await service.create_canned(boss, scope="department", department="support", name="ticket", body="Ticket?")
    await service.create_canned(seller, scope="agent", name="HI", body="Hi, Seller here")

    def bodies(canned):
        return {c.name: c.body for c in canned}

    assert bodies(await service.canned_for(seller, SITE)) == {
        "bye": "Goodbye from the shop", "hi": "Hi, Seller here"}
    assert bodies(await service.canned_for(seller)) == {"bye": "Goodbye", "hi": "Hi, Seller here"}
    assert bodies(await service.canned_for(helper, SITE)) == {
        "bye": "Goodbye from the shop", "hi": "Hello from the company", "ticket": "Ticket?"}
    # Who takes every department's chats (a supervisor, an agent without departments) has
    # every department's replies, the ones a supervisor saved included.
    assert bodies(await service.canned_for(boss, "other.example.com")) == {
        "bye": "Goodbye", "hi": "Hello from Sales", "ticket": "Ticket?"}
    anyone = await add_user(db, "anyone")
    assert bodies(await service.canned_for(anyone, SITE)) == {
        "bye": "Goodbye from the shop", "hi": "Hello from Sales", "ticket": "Ticket?"}
    assert [c.name for c in await service.canned_for(seller, SITE)] == ["bye", "hi"]
    # Managing: a supervisor sees every shared reply, but nobody's own.
    assert len(await service.canned_list(boss)) == 5
    assert {(c.scope, c.name) for c in await service.canned_list(seller)} == {
        ("site", "hi"), ("site", "bye"), ("department", "hi"), ("agent", "hi")}


async def test_canned_permissions_and_validation(service, db):
    boss = await add_user(db, "boss", "admin")
    alice = await add_user(db, "alice")
    bob = await add_user(db, "bob")
    own = await service.create_canned(alice, scope="agent", name="sig", body="-- Alice")
    assert (own.scope, own.user_id, own.created_by) == ("agent", alice.user_id, alice.user_id)
    for scope, extra in (("site", {}), ("department", {"department": "sales"})):
        with pytest.raises(ChatError) as info:
            await service.create_canned(alice, scope=scope, name="x", body="y", **extra)
        assert error_code(info) == "forbidden"
    shared = await service.create_canned(boss, scope="site", name="hours", body="9 to 5")
    with pytest.raises(ChatError) as info:
        await service.update_canned(alice, shared.id, body="always")
    assert error_code(info) == "forbidden"
    with pytest.raises(ChatError) as info:
        await service.delete_canned(alice, shared.id)
    assert error_code(info) == "forbidden"
    for someone in (bob, boss):  # someone else's own replies are invisible, even to admins
        with pytest.raises(ChatError) as info:
            await service.update_canned(someone, own.id, body="hacked")
        assert error_code(info) == "not_found"

    with pytest.raises(ChatError):  # names are unique per owner
        await service.create_canned(alice, scope="agent", name="sig", body="again")
    assert (await service.create_canned(bob, scope="agent", name="sig", body="-- Bob")).name == "sig"
    await service.create_canned(alice, scope="agent", name="sig2", body="x")
    with pytest.raises(ChatError):
        await service.update_canned(alice, own.id, name="sig2")

    updated = await service.update_canned(alice, own.id, name="/Signature", body="-- Alice M.")
    assert (updated.name, updated.body) == ("signature", "-- Alice M.") and updated.updated_at > own.updated_at
    await service.delete_canned(alice, own.id)
    with pytest.raises(ChatError) as info:
        await service.delete_canned(alice, own.id)
    assert error_code(info) == "not_found"
    await service.delete_canned(boss, shared.id)

    for options, code in (({"name": "has space"}, "bad_request"), ({"name": "x" * 33}, "bad_request"),
                          ({"body": "  "}, "bad_request"), ({"body": "b" * 4001}, "too_large"),
                          ({"scope": "world"}, "bad_request"), ({"department": "sales"}, "bad_request"),
                          ({"scope": "department"}, "bad_request"),
                          ({"scope": "department", "department": "nowhere"}, "bad_request")):
        arguments = {"scope": "agent", "name": "ok", "body": "fine"} | options
        with pytest.raises(ChatError) as info:
            await service.create_canned(boss, **arguments)
        assert error_code(info) == code, options


# --- offline messages ----------------------------------------------------------------


async def test_offline_messages(service, db):
    agent = await add_user(db, "alice")
    arguments = dict(site=SITE, key="offline-0001", name="Ann", email="ann@example.com", department="support",
                     text="Call me back", fields={"order": "A-1"}, url="https://shop.example.com/")
    message, created = await service.leave_message(**arguments)
    assert created and (message.text, message.department, message.fields) == ("Call me back", "support", {"order": "A-1"})
    again, created = await service.leave_message(**(arguments | {"text": "Retry with other text"}))
    assert not created and again == message
    results = await asyncio.gather(*(service.leave_message(**(arguments | {"key": "offline-0002"}))
                                     for _ in range(5)))
    assert [created for _, created in results].count(True) == 1
    # Required pre-chat fields are not required here: the form may differ.
    await service.leave_message(site=SITE, key="offline-0003", text="No fields")
    for bad, code in (({"text": ""}, "bad_request"), ({"email": "nope"}, "bad_request"),
                      ({"fields": {"x": "1"}}, "bad_request"), ({"text": "t" * 4001}, "too_large")):
        with pytest.raises(ChatError) as info:
            await service.leave_message(**(arguments | {"key": "offline-0004"} | bad))
        assert error_code(info) == code

    assert [m.key for m in await service.offline()] == ["offline-0003", "offline-0002", "offline-0001"]
    assert await service.mark_offline_emailed(message.id) is True
    assert await service.mark_offline_emailed(message.id) is False
    resolved = await service.resolve_offline(message.id, agent)
    assert resolved.resolved_by == agent.user_id and resolved.emailed_at is not None
    assert (await service.resolve_offline(message.id, agent)).resolved_at == resolved.resolved_at
    assert [m.key for m in await service.offline("open")] == ["offline-0003", "offline-0002"]
    assert [m.key for m in await service.offline("resolved")] == ["offline-0001"]
    assert len(await service.offline("all")) == 3
    with pytest.raises(ChatError):
        await service.offline("closed")
    with pytest.raises(ChatError) as info:
        await service.resolve_offline(12345, agent)
    assert error_code(info) == "not_found"


# --- transcript recipients ----------------------------------------------------------


async def test_transcript_recipients(service, db):
    alice = await add_user(db, "alice", email="Alice@Example.com", transcripts=True)
    bob = await add_user(db, "bob", email="bob@example.com", transcripts=False)  # did not opt in
    carol = await add_user(db, "carol", email="carol@example.com", transcripts=True)
    await add_user(db, "dave", email="dave@example.com", transcripts=True)  # never took part
    conversation = await start(service, department="sales", email="boss@example.com")
    await service.accept(conversation.id, alice)
    await service.add_participant(conversation.id, bob)
    await service.transfer(conversation.id, alice, to_user_id=carol.user_id)

    recipients = await service.transcript_recipients(
        conversation.id, site_transcripts_to=["log@example.com", "alice@example.com"], email_visitor=True)
    assert recipients == [
        ("log@example.com", "agent"),
        ("alice@example.com", "agent"),  # the site's spelling came first; Alice@Example.com is the same
        ("sales-log@example.com", "agent"),
        ("Boss@Example.com", "agent"),  # the department's copy wins over the visitor's (boss@example.com)
        ("carol@example.com", "agent"),
    ]
    without_visitor = await service.transcript_recipients(conversation.id, site_transcripts_to=[],
                                                          email_visitor=False)
    assert [a for a, _ in without_visitor] == ["sales-log@example.com", "Boss@Example.com", "Alice@Example.com",
                                               "carol@example.com"]

    assert await service.mark_mailed(conversation.id, "ALICE@example.com", "agent") is True
    assert await service.mark_mailed(conversation.id, "alice@example.com", "agent") is False
    claims = await asyncio.gather(*(service.mark_mailed(conversation.id, "log@example.com", "agent")
                                    for _ in range(5)))
    assert claims.count(True) == 1
    left = await service.transcript_recipients(
        conversation.id, site_transcripts_to=["log@example.com", "alice@example.com"], email_visitor=True)
    assert [a for a, _ in left] == ["sales-log@example.com", "Boss@Example.com", "carol@example.com"]
    assert await service.unmark_mailed(conversation.id, "log@example.com") is True  # sending failed
    assert await service.mark_mailed(conversation.id, "log@example.com", "agent") is True

    visitor_only = await start(service, visitor="v9", email="ann@example.com")
    assert await service.transcript_recipients(visitor_only.id, site_transcripts_to=[], email_visitor=True) == [
        ("ann@example.com", "visitor")]
    with pytest.raises(ChatError) as info:
        await service.mark_mailed("missing", "x@example.com", "agent")
    assert error_code(info) == "not_found"


# --- the migration -----------------------------------------------------------------


def test_upgrade_from_0002_keeps_the_data(tmp_path):
    path = tmp_path / "old.db"
    command.upgrade(alembic_config(f"sqlite+aiosqlite:///{path}"), "0002")
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO users (username, display_name, role, password_hash, disabled, created_at) "
                     "VALUES ('alice', 'Alice', 'agent', 'hash', 0, '2026-01-01 00:00:00')")
        conn.execute("INSERT INTO cobrowse_sessions (id, site_host, visitor_id, page_url, started_at) "
                     "VALUES ('s1', 'shop', 'v1', 'https://shop/', '2026-01-01 00:00:00')")
    conn.close()

    async def upgrade_and_use() -> None:
        async with Database(f"sqlite:///{path}") as db:
            assert (db.previous_revision, db.revision) == ("0002", head_revision())
            async with db.engine.connect() as conn:
                differences = await conn.run_sync(lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata))
            assert differences == []
            async with db.session(read_only=True) as s:
                alice = await s.scalar(sa.select(User).where(User.username == "alice"))
                assert (alice.email, alice.transcripts) == (None, False)
            service = ChatService(db, secret=SECRET)
            conversation = await service.start(site="shop", visitor_id="v1", key="after-upgrade")
            assert await service.link_session(conversation.id, "s1")
            agent = Agent(alice.id, "Alice")
            assert (await service.accept(conversation.id, agent)).agent_id == alice.id

    asyncio.run(upgrade_and_use())


async def test_idle_conversations(db):
    clock = Clock()
    service = ChatService(db, secret=SECRET, clock=clock)
    quiet = await service.start(site=SITE, visitor_id="v1", key="idle-key-1")
    chatty = await service.start(site=SITE, visitor_id="v2", key="idle-key-2")
    ended = await service.start(site=SITE, visitor_id="v3", key="idle-key-3")
    await service.end(ended.id, "visitor")
    clock.now += 600
    await service.post(chatty.id, client_id="idle-msg-1", sender="visitor", text="still here")
    clock.now += 600
    assert [c.id for c in await service.idle_conversations(900)] == [quiet.id]
    assert [c.id for c in await service.idle_conversations(300)] == [quiet.id, chatty.id]
    assert await service.idle_conversations(3600) == []
