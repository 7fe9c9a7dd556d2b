"""Files sent in a chat, on disk.

A file is stored under a random storage key (32 hex digits, sharded by its
first two into 256 subdirectories), never under the name the visitor gave: the
name is only displayed, and it is sanitized (:func:`sanitize_name`). The body
streams into ``<directory>/tmp/<key>.part`` while its size is counted and its
SHA-256 computed, so an upload over the limit stops at the limit (the partial
file is deleted); a complete one is fsynced and renamed into place, so a file
at its final path is always whole.

Types: the allow-list (``allowed_types``) holds extensions (``pdf``, ``.png``),
content types (``application/pdf``), patterns (``image/*``) or ``*`` (any
extension). An upload is accepted by its name's extension. The stored content
type comes from that extension (a fixed table, the same on every host), never
from the uploader; and only types a browser will not run are kept
(:func:`served_type`): HTML, SVG, XML and anything script-like are stored as
``application/octet-stream``. Downloads are served as attachments with
``X-Content-Type-Options: nosniff`` on top of that.

All disk work runs in worker threads: the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import mimetypes
import os
import re
import secrets
import time
import unicodedata
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from .text import remove_unsafe_chars

__all__ = [
    "FileRejected",
    "SavedFile",
    "FileStore",
    "MAX_NAME_LENGTH",
    "OCTET_STREAM",
    "sanitize_name",
    "type_for_extension",
    "served_type",
]

MAX_NAME_LENGTH = 200
OCTET_STREAM = "application/octet-stream"
_STORAGE_KEY = re.compile(r"[0-9a-f]{32}")
_PARTIAL_SUFFIX = ".part"
_WRITE_SIZE = 256 * 1024  # gather small network chunks: one thread hop per 256 KiB, not per chunk
_EXTENSION = re.compile(r"[a-z0-9][a-z0-9_+-]{0,15}")
_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/(?:\*|[a-z0-9][a-z0-9!#$&^_.+-]*)")

RejectCode = Literal["too_large", "bad_type", "bad_name", "empty"]


class FileRejected(Exception):
    """An upload refused; ``code`` is one of too_large, bad_type, bad_name, empty
    (what the HTTP layer answers), ``message`` says why in words."""

    def __init__(self, code: RejectCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"FileRejected({self.code!r}, {self.message!r})"


@dataclass(frozen=True, slots=True)
class SavedFile:
    storage_key: str  # where it is: FileStore.path(storage_key)
    size: int  # bytes
    sha256: str  # hex digest of the content
    content_type: str  # the type to serve it with (see served_type)
    name: str  # the sanitized display name


# ----- names and types -----------------------------------------------------------------


def sanitize_name(name: str) -> str:
    """A display name fit to show and to put in a download's headers: the last
    path component only (``/`` and ``\\`` both count, browsers on Windows have
    sent full paths), no control or bidi characters, whitespace made single
    spaces, no trailing dots or spaces, at most :data:`MAX_NAME_LENGTH`
    characters (the extension kept). Raises ``FileRejected("bad_name")`` when
    nothing usable is left."""
    name = remove_unsafe_chars(name).replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", " ".join(name.split())).rstrip(" .")
    if not name or name in (".", ".."):
        raise FileRejected("bad_name", "the file needs a name")
    if len(name) > MAX_NAME_LENGTH:
        stem, dot, extension = name.rpartition(".")
        if dot and stem and len(extension) <= 16:
            name = stem[:MAX_NAME_LENGTH - len(extension) - 1].rstrip(" .") + "." + extension
        else:
            name = name[:MAX_NAME_LENGTH].rstrip(" .")
    return name


def _extension(name: str) -> str:
    """The lowercased extension of a sanitized name ('' for none; a dotfile has none)."""
    stem, dot, extension = name.rpartition(".")
    return extension.lower() if dot and stem else ""


# Only Python's built-in table: mimetypes' module functions also read the host's
# /etc/mime.types and friends, which differ from machine to machine.
_BUILTIN_TYPES = mimetypes.MimeTypes()
_EXTRA_TYPES = {
    "log": "text/plain",
    "md": "text/markdown",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "odp": "application/vnd.oasis.opendocument.presentation",
    "gz": "application/gzip",
    "tgz": "application/gzip",
    "7z": "application/x-7z-compressed",
    "rar": "application/vnd.rar",
    "msg": "application/vnd.ms-outlook",
    "heif": "image/heif",
    "webm": "video/webm",
    "m4a": "audio/mp4",
    "ogg": "audio/ogg",
    "xhtml": "application/xhtml+xml",
    "shtml": "text/html",
}


def type_for_extension(extension: str) -> str | None:
    """The content type an extension (``pdf`` or ``.pdf``) stands for, or None."""
    extension = extension.lower().lstrip(".")
    if not extension:
        return None
    if extension in _EXTRA_TYPES:
        return _EXTRA_TYPES[extension]
    strict, lenient = _BUILTIN_TYPES.types_map[True], _BUILTIN_TYPES.types_map[False]
    return strict.get("." + extension) or lenient.get("." + extension)


# Types a browser could render as a document or run, whatever else they claim.
_ACTIVE_MARKERS = ("html", "svg", "script", "/xml", "+xml", "xsl", "x-sh", "x-python", "flash",
                   "x-msdownload", "hta", "cache-manifest")
_PASSIVE_TYPES = frozenset({
    "text/plain", "text/csv", "text/markdown",
    "application/pdf", "application/rtf", "application/json",
    "application/zip", "application/gzip", "application/x-tar", "application/x-7z-compressed", "application/vnd.rar",
    "application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint", "application/vnd.ms-outlook",
    "message/rfc822",
})
_PASSIVE_PREFIXES = ("image/", "audio/", "video/", "application/vnd.openxmlformats-officedocument.",
                     "application/vnd.oasis.opendocument.")


def served_type(content_type: str | None) -> str:
    """The type to serve content of ``content_type`` with: the type itself when it
    is known to be passive (images, audio, video, PDF, plain text, office
    documents, archives), else ``application/octet-stream``. Parameters are dropped."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    if not _CONTENT_TYPE.fullmatch(base) or base.endswith("/*"):
        return OCTET_STREAM
    if any(marker in base for marker in _ACTIVE_MARKERS):
        return OCTET_STREAM
    if base in _PASSIVE_TYPES or base.startswith(_PASSIVE_PREFIXES):
        return base
    return OCTET_STREAM


def _type_matches(pattern: str, content_type: str) -> bool:
    if pattern.endswith("/*"):
        return content_type.startswith(pattern[:-1])
    return content_type == pattern


# ----- disk work (runs in worker threads) ------------------------------------------------

_T = TypeVar("_T")


async def _in_thread(func: Callable[..., _T], *args: object) -> _T:
    """``func(*args)`` in a worker thread. If the caller is cancelled meanwhile, the
    thread still runs to its end before the cancellation goes on: cleanup code must
    not close a file that a thread is still writing."""
    task = asyncio.ensure_future(asyncio.to_thread(func, *args))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({task})
        raise


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable. Not possible everywhere (Windows cannot
    open a directory): best effort, the file's own data is fsynced regardless."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _PartialFile:
    """An upload being written; every method does blocking I/O (call it in a thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None  # None once closed: a closed descriptor number may be reused
        self.hasher = hashlib.sha256()
        self.moved_to: Path | None = None

    def open(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # O_EXCL: a fresh file of our own; 0o600: uploads are nobody else's business.
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)

    def write(self, data: bytes | bytearray) -> None:
        assert self.fd is not None
        self.hasher.update(data)  # hashlib releases the GIL on large buffers
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def complete(self, rest: bytearray, final: Path) -> None:
        """Write the rest, make it durable and move it to ``final`` in one rename."""
        self.write(rest)
        assert self.fd is not None
        os.fsync(self.fd)
        fd, self.fd = self.fd, None
        os.close(fd)
        final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.replace(self.path, final)
        self.moved_to = final
        _fsync_directory(final.parent)

    def discard(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            with contextlib.suppress(OSError):
                os.close(fd)
        self.path.unlink(missing_ok=True)
        if self.moved_to is not None:  # complete, but save() failed after all (cancelled meanwhile)
            self.moved_to.unlink(missing_ok=True)


# ----- the store --------------------------------------------------------------------------


class FileStore:
    """Chat files under one directory (see the module docstring)."""

    def __init__(self, directory: Path, *, max_size: int, allowed_types: Iterable[str]) -> None:
        if max_size <= 0:
            raise ValueError("max_size must be positive")
        self.directory = Path(directory)
        self.max_size = max_size
        self.any_extension = False
        self.extensions: set[str] = set()
        self.type_patterns: set[str] = set()
        for entry in allowed_types:
            entry = entry.strip().lower()
            if entry == "*":
                self.any_extension = True
            elif "/" in entry:
                if not _CONTENT_TYPE.fullmatch(entry):
                    raise ValueError(f"not a content type or pattern: {entry!r}")
                self.type_patterns.add(entry)
            else:
                extension = entry.lstrip(".")
                if not _EXTENSION.fullmatch(extension):
                    raise ValueError(f"not a file extension: {entry!r}")
                self.extensions.add(extension)

    @property
    def partial_directory(self) -> Path:
        return self.directory / "tmp"

    @property
    def file_types(self) -> list[str]:
        """The allow-list as a file input's ``accept`` wants it (``.pdf``, ``image/*``);
        empty when any extension is allowed."""
        if self.any_extension:
            return []
        return sorted("." + e for e in self.extensions) + sorted(self.type_patterns)

    def check(self, name: str, content_type: str = "") -> tuple[str, str]:
        """``(display name, stored content type)`` for an upload, or ``FileRejected``
        (bad_name, bad_type). Needs nothing of the body: call it before reading one.

        The declared ``content_type`` counts only when the extension says nothing
        (``.log`` is in no table) and it is a passive type the allow-list admits.
        """
        name = sanitize_name(name)
        extension = _extension(name)
        if not extension:
            raise FileRejected("bad_type", "files without an extension are not accepted")
        known = type_for_extension(extension)
        stored = served_type(known) if known else OCTET_STREAM
        declared = served_type(content_type)
        if known is None and declared != OCTET_STREAM:
            stored = declared
        allowed = (self.any_extension or extension in self.extensions
                   or (stored != OCTET_STREAM and any(_type_matches(p, stored) for p in self.type_patterns)))
        if not allowed:
            raise FileRejected("bad_type", f".{extension} files are not accepted here")
        return name, stored

    def path(self, storage_key: str) -> Path:
        """Where the file with ``storage_key`` is. Raises ValueError for anything that
        is not a storage key (so no path ever leaves the directory)."""
        if not isinstance(storage_key, str) or not _STORAGE_KEY.fullmatch(storage_key):
            raise ValueError("not a storage key")
        return self.directory / storage_key[:2] / storage_key

    async def save(self, chunks: AsyncIterator[bytes], *, name: str, content_type: str) -> SavedFile:
        """Store an upload streamed as ``chunks``; see the module docstring.

        Raises ``FileRejected``: bad_name or bad_type before reading anything,
        too_large as soon as the body passes ``max_size`` (nothing more is read),
        empty for a body of no bytes. Nothing is left on disk when it fails.
        """
        name, stored_type = self.check(name, content_type)
        storage_key = secrets.token_hex(16)
        final = self.path(storage_key)
        partial = _PartialFile(self.partial_directory / (storage_key + _PARTIAL_SUFFIX))
        size = 0
        pending = bytearray()
        try:
            await _in_thread(partial.open)
            async for chunk in chunks:
                size += len(chunk)
                if size > self.max_size:
                    raise FileRejected("too_large", f"files may be at most {self.max_size} bytes")
                pending += chunk
                if len(pending) >= _WRITE_SIZE:
                    data, pending = pending, bytearray()
                    await _in_thread(partial.write, data)
            if size == 0:
                raise FileRejected("empty", "the file is empty")
            await _in_thread(partial.complete, pending, final)
        except BaseException:
            await _in_thread(partial.discard)
            raise
        return SavedFile(storage_key=storage_key, size=size, sha256=partial.hasher.hexdigest(),
                         content_type=stored_type, name=name)

    async def delete(self, storage_key: str) -> bool:
        """Remove a stored file; False when there was none."""
        path = self.path(storage_key)

        def unlink() -> bool:
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            return True

        return await _in_thread(unlink)

    async def remove_stale_partials(self, older_than: float = 24 * 3600) -> int:
        """Delete partial uploads left by a crash (older than ``older_than`` seconds);
        returns how many. Uploads in progress are younger and stay."""
        directory = self.partial_directory

        def sweep() -> int:
            cutoff = time.time() - older_than
            removed = 0
            try:
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                return 0
            for entry in entries:
                if not entry.name.endswith(_PARTIAL_SUFFIX):
                    continue
                try:
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    continue
            return removed

        return await _in_thread(sweep)
