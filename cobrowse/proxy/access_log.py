"""The proxy's access log: one line per request, for the site owner.

The format is nginx's and Apache's "combined" format with the time taken
appended, so the usual log tools read it:

    203.0.113.7 - - [24/Nov/2026:13:20:01 +0000] "GET /cart HTTP/1.1" 200 5120 "https://shop.example/" "Mozilla/5.0 ..." 0.012

- the address is the visitor's: the connection's peer, or behind a trusted
  TLS terminator the address it added to X-Forwarded-For;
- the time is when the request arrived, the last field how long it took, in
  seconds, until the response was complete (or broke off);
- the size is every byte written to the visitor for the response, head and
  framing included (nginx's ``$bytes_sent``);
- 499 means the visitor left before the response began (nginx's convention).

Lines are gathered in memory and written once a second by the proxy's sweep,
and at shutdown: one write a second instead of one per request, and nothing
blocks a request. A log file that logrotate moved away is noticed at the next
write and opened again under its name.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time

log = logging.getLogger("cobrowse.proxy")

# Quotes, backslashes and bytes outside printable ASCII are written as \xHH
# (as nginx does): a request line or a User-Agent cannot forge a log line.
_UNSAFE = re.compile(rb'[\x00-\x1f"\\\x7f-\xff]')


def _escape(value: bytes) -> str:
    if _UNSAFE.search(value) is not None:
        value = _UNSAFE.sub(lambda m: b"\\x%02X" % m.group()[0], value)
    return value.decode("ascii")


class RequestRecord:
    """What the log needs of a request, taken when it arrives."""

    __slots__ = ("address", "arrived", "line", "referer", "user_agent")

    def __init__(self, address: str, method: bytes, target: bytes, version: str,
                 referer: bytes | None, user_agent: bytes | None) -> None:
        self.address = address
        self.arrived = time.time()
        self.line = b"%b %b HTTP/%b" % (method, target, version.encode("ascii", "replace"))
        self.referer = referer
        self.user_agent = user_agent

    @classmethod
    def unreadable(cls, address: str) -> "RequestRecord":
        """A request refused before its request line could be read (400, 414, 431)."""
        record = cls(address, b"", b"", "", None, None)
        record.line = b"-"
        return record


class AccessLog:
    def __init__(self, target: str) -> None:
        """``target``: a file path, or "-" for standard error."""
        self._target = target
        self._pending: list[tuple[RequestRecord, int, int, float]] = []
        self._file = None
        self._identity: tuple[int, int] | None = None
        self._stamp_second = -1
        self._stamp = ""
        self._open()

    def _open(self) -> None:
        if self._target == "-":
            self._file = sys.stderr
            return
        self._file = open(self._target, "a", encoding="ascii", buffering=1 << 16)
        stat = os.fstat(self._file.fileno())
        self._identity = (stat.st_dev, stat.st_ino)

    def record(self, request: RequestRecord, status: int, sent: int) -> None:
        self._pending.append((request, status, sent, time.time()))

    def _time(self, when: float) -> str:
        second = int(when)
        if second != self._stamp_second:
            self._stamp_second = second
            self._stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(second))
        return self._stamp

    def flush(self) -> None:
        if not self._pending or self._file is None:
            return
        pending, self._pending = self._pending, []
        lines = []
        for request, status, sent, done in pending:
            lines.append(
                f'{request.address} - - [{self._time(request.arrived)}] "{_escape(request.line)}" {status} {sent} '
                f'"{_escape(request.referer) if request.referer else "-"}" '
                f'"{_escape(request.user_agent) if request.user_agent else "-"}" {done - request.arrived:.3f}\n')
        try:
            self._reopen_if_moved()
            self._file.write("".join(lines))
            self._file.flush()
        except OSError as exc:
            log.warning("cannot write the access log %s: %s (%d lines lost)", self._target, exc, len(lines))

    def _reopen_if_moved(self) -> None:
        if self._identity is None:
            return
        try:
            stat = os.stat(self._target)
            moved = (stat.st_dev, stat.st_ino) != self._identity
        except FileNotFoundError:
            moved = True
        if moved:
            self._file.close()
            self._open()

    def close(self) -> None:
        self.flush()
        if self._file is not None and self._file is not sys.stderr:
            self._file.close()
        self._file = None
