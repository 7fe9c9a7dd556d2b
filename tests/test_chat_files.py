"""chat.files: streamed uploads on disk, with limits, type checks and safe names."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path

import pytest

from chat.files import (
    MAX_NAME_LENGTH,
    OCTET_STREAM,
    FileRejected,
    FileStore,
    sanitize_name,
    served_type,
    type_for_extension,
)

ALLOWED = ["pdf", ".PNG", "jpg", "txt", "dat", "docx", "image/webp"]


async def stream(*chunks: bytes):
    for chunk in chunks:
        await asyncio.sleep(0)
        yield chunk


def stored_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "files", max_size=1000, allowed_types=ALLOWED)


async def test_save_streams_to_a_random_key(store: FileStore):
    chunks = [b"%PDF-1.7\n", b"x" * 400, b"y" * 300]
    saved = await store.save(stream(*chunks), name="Invoice 2024.pdf", content_type="application/pdf")
    body = b"".join(chunks)
    assert saved.size == len(body)
    assert saved.sha256 == hashlib.sha256(body).hexdigest()
    assert saved.content_type == "application/pdf"
    assert saved.name == "Invoice 2024.pdf"
    path = store.path(saved.storage_key)
    assert path.read_bytes() == body
    assert path.parent.parent == store.directory and path.parent.name == saved.storage_key[:2]
    assert "Invoice" not in str(path)
    assert stored_files(store.directory) == [path]  # no partial file left behind
    assert (os.stat(path).st_mode & 0o777) == 0o600


async def test_large_bodies_are_buffered_and_hashed_correctly(tmp_path: Path):
    store = FileStore(tmp_path, max_size=5_000_000, allowed_types=["txt"])
    chunks = [bytes([i % 251]) * 65_536 for i in range(40)]  # 2.5 MiB in network-sized pieces
    saved = await store.save(stream(*chunks), name="big.txt", content_type="text/plain")
    assert saved.size == 40 * 65_536
    assert saved.sha256 == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert store.path(saved.storage_key).stat().st_size == saved.size


async def test_keys_are_unique(store: FileStore):
    keys = {(await store.save(stream(b"same"), name="a.txt", content_type="text/plain")).storage_key
            for _ in range(20)}
    assert len(keys) == 20


async def test_too_large_stops_reading_and_leaves_nothing(store: FileStore):
    consumed = 0

    async def endless():
        nonlocal consumed
        while True:
            consumed += 1
            yield b"z" * 300

    with pytest.raises(FileRejected) as caught:
        await store.save(endless(), name="big.pdf", content_type="application/pdf")
    assert caught.value.code == "too_large"
    assert consumed == 4  # 1200 bytes > 1000: the fourth chunk is where it stopped
    assert stored_files(store.directory) == []


async def test_exactly_max_size_is_accepted(store: FileStore):
    saved = await store.save(stream(b"a" * 600, b"b" * 400), name="edge.txt", content_type="text/plain")
    assert saved.size == 1000


async def test_empty_body_is_rejected(store: FileStore):
    with pytest.raises(FileRejected) as caught:
        await store.save(stream(b"", b""), name="empty.pdf", content_type="application/pdf")
    assert caught.value.code == "empty"
    assert stored_files(store.directory) == []


@pytest.mark.parametrize("name", ["script.js", "page.html", "page.HTM", "drawing.svg", "run.exe", "noextension",
                                  ".pdf", "archive.pdf.zip"])
async def test_types_off_the_allow_list_are_rejected_before_reading(store: FileStore, name: str):
    read = False

    async def body():
        nonlocal read
        read = True
        yield b"data"

    with pytest.raises(FileRejected) as caught:
        await store.save(body(), name=name, content_type="application/pdf")
    assert caught.value.code == "bad_type"
    assert not read
    assert not store.directory.exists() or stored_files(store.directory) == []


@pytest.mark.parametrize("name", ["", "   ", ".", "..", "../", "a/b/", "\x00\x01", "\u202e", "C:\\"])
async def test_unusable_names_are_rejected(store: FileStore, name: str):
    with pytest.raises(FileRejected) as caught:
        await store.save(stream(b"data"), name=name, content_type="text/plain")
    assert caught.value.code == "bad_name"


async def test_the_declared_type_is_not_trusted(store: FileStore):
    saved = await store.save(stream(b"<script>alert(1)</script>"), name="photo.png", content_type="text/html")
    assert saved.content_type == "image/png"
    # An extension no table knows: a passive declared type is used, an active one is not.
    saved = await store.save(stream(b"log line"), name="server.dat", content_type="text/plain; charset=utf-8")
    assert saved.content_type == "text/plain"
    saved = await store.save(stream(b"<html>"), name="server.dat", content_type="text/html")
    assert saved.content_type == OCTET_STREAM


async def test_active_types_are_stored_as_octet_stream_even_when_allowed(tmp_path: Path):
    store = FileStore(tmp_path, max_size=100, allowed_types=["html", "svg", "xhtml", "js", "xml"])
    for name in ["a.html", "b.svg", "c.xhtml", "d.js", "e.xml"]:
        saved = await store.save(stream(b"<x/>"), name=name, content_type="text/html")
        assert saved.content_type == OCTET_STREAM, name


async def test_type_patterns_and_wildcard(tmp_path: Path):
    store = FileStore(tmp_path, max_size=100, allowed_types=["image/*", "application/pdf"])
    assert (await store.save(stream(b"x"), name="a.jpeg", content_type="")).content_type == "image/jpeg"
    assert (await store.save(stream(b"x"), name="a.pdf", content_type="")).content_type == "application/pdf"
    with pytest.raises(FileRejected):  # image/svg+xml is not a passive image: image/* does not admit it
        await store.save(stream(b"<svg/>"), name="a.svg", content_type="image/svg+xml")
    with pytest.raises(FileRejected):
        await store.save(stream(b"x"), name="a.txt", content_type="text/plain")
    anything = FileStore(tmp_path, max_size=100, allowed_types=["*"])
    assert (await anything.save(stream(b"x"), name="a.weird", content_type="")).content_type == OCTET_STREAM
    assert anything.file_types == []
    assert store.file_types == ["application/pdf", "image/*"]


def test_file_types_lists_extensions_for_accept(store: FileStore):
    assert store.file_types == [".dat", ".docx", ".jpg", ".pdf", ".png", ".txt", "image/webp"]


def test_bad_allow_list_entries_are_refused(tmp_path: Path):
    with pytest.raises(ValueError):
        FileStore(tmp_path, max_size=1, allowed_types=["p d f"])
    with pytest.raises(ValueError):
        FileStore(tmp_path, max_size=1, allowed_types=["image/"])
    with pytest.raises(ValueError):
        FileStore(tmp_path, max_size=0, allowed_types=["pdf"])


async def test_a_failing_body_leaves_nothing(store: FileStore):
    async def broken():
        yield b"part"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.save(broken(), name="a.pdf", content_type="application/pdf")
    assert stored_files(store.directory) == []


async def test_cancellation_leaves_nothing(store: FileStore):
    started = asyncio.Event()

    async def slow():
        yield b"first"
        started.set()
        await asyncio.sleep(10)
        yield b"never"

    task = asyncio.create_task(store.save(slow(), name="a.pdf", content_type="application/pdf"))
    await asyncio.wait_for(started.wait(), 5)
    assert [p.suffix for p in stored_files(store.directory)] == [".part"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stored_files(store.directory) == []


async def test_the_loop_keeps_running_while_saving(tmp_path: Path):
    store = FileStore(tmp_path, max_size=20_000_000, allowed_types=["txt"])
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    try:
        await store.save(stream(*[b"q" * 1_000_000] * 8), name="a.txt", content_type="text/plain")
    finally:
        ticking.cancel()
    assert ticks > 8  # the loop ran other work while the disk was written


@pytest.mark.parametrize("key", ["", "../../etc/passwd", "0" * 31, "0" * 33, "G" * 32, "A" * 32,
                                 "00/" + "0" * 29, "..", "0" * 30 + "\x00a", None, 123])
def test_path_refuses_anything_but_a_storage_key(store: FileStore, key):
    with pytest.raises(ValueError):
        store.path(key)


async def test_delete(store: FileStore):
    saved = await store.save(stream(b"bye"), name="a.txt", content_type="text/plain")
    assert await store.delete(saved.storage_key) is True
    assert not store.path(saved.storage_key).exists()
    assert await store.delete(saved.storage_key) is False
    with pytest.raises(ValueError):
        await store.delete("../x")


async def test_remove_stale_partials(store: FileStore):
    store.partial_directory.mkdir(parents=True)
    old = store.partial_directory / ("a" * 32 + ".part")
    fresh = store.partial_directory / ("b" * 32 + ".part")
    other = store.partial_directory / "keep.me"
    for path in (old, fresh, other):
        path.write_bytes(b"x")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    os.utime(other, (an_hour_ago, an_hour_ago))
    assert await store.remove_stale_partials(older_than=600) == 1
    assert not old.exists() and fresh.exists() and other.exists()
    assert await FileStore(store.directory / "none", max_size=1, allowed_types=[]).remove_stale_partials() == 0


# ----- names and types ------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "clean"), [
    ("report.pdf", "report.pdf"),
    ("../../etc/passwd.txt", "passwd.txt"),
    ("C:\\Users\\bob\\Desktop\\photo.jpg", "photo.jpg"),
    ("/abs/path/to/file.png", "file.png"),
    ("we\x00ird\x1b[31m.txt", "weird[31m.txt"),
    ("invoice\u202egpj.exe", "invoicegpj.exe"),
    ("  spaced \t\n name .txt  ", "spaced name .txt"),
    ("trailing dots...", "trailing dots"),
    ("caf\u0065\u0301.txt", "café.txt"),
    ("<script>alert(1)</script>.txt", "script>.txt"),  # the "/" splits it: only the last part stays
])
def test_sanitize_name(raw, clean):
    assert sanitize_name(raw) == clean


def test_sanitize_name_caps_length_keeping_the_extension():
    name = sanitize_name("x" * 500 + ".pdf")
    assert len(name) == MAX_NAME_LENGTH and name.endswith(".pdf")
    name = sanitize_name("y" * 500)
    assert name == "y" * MAX_NAME_LENGTH


def test_type_for_extension_is_host_independent():
    assert type_for_extension("pdf") == "application/pdf"
    assert type_for_extension(".PNG") == "image/png"
    assert type_for_extension("docx").startswith("application/vnd.openxmlformats-officedocument.")
    assert type_for_extension("nonsense-ext") is None
    assert type_for_extension("") is None


@pytest.mark.parametrize(("declared", "served"), [
    ("image/png", "image/png"),
    ("IMAGE/JPEG; q=1", "image/jpeg"),
    ("application/pdf", "application/pdf"),
    ("text/plain; charset=utf-8", "text/plain"),
    ("text/html", OCTET_STREAM),
    ("application/xhtml+xml", OCTET_STREAM),
    ("image/svg+xml", OCTET_STREAM),
    ("text/xml", OCTET_STREAM),
    ("application/javascript", OCTET_STREAM),
    ("text/javascript", OCTET_STREAM),
    ("application/ecmascript", OCTET_STREAM),
    ("text/css", OCTET_STREAM),
    ("application/x-shockwave-flash", OCTET_STREAM),
    ("application/octet-stream", OCTET_STREAM),
    ("image/*", OCTET_STREAM),
    ("nonsense", OCTET_STREAM),
    ("", OCTET_STREAM),
    (None, OCTET_STREAM),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",
     "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
])
def test_served_type(declared, served):
    assert served_type(declared) == served


def test_file_rejected_carries_code_and_message():
    error = FileRejected("bad_type", ".exe files are not accepted here")
    assert error.code == "bad_type" and error.message == str(error)
