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
- 499 means the visitor left before the response began (nginx's convention);
- the hub's websockets, which the proxy hands to our app, are written by
  handoff_log.py when they close.

Each line is formatted when its request ends, held in memory, and written
once a second by the proxy's sweep (or when 2,048 are held, and at shutdown):
one write a second instead of one per request. A log file that logrotate
moved away is noticed at the next write and opened again under its name.
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
# The address field has no quotes around it: a space would split it too.
_UNSAFE_ADDRESS = re.compile(rb'[\x00-\x20"\\\x7f-\xff]')


def _escape(value: bytes, unsafe: re.Pattern[bytes] = _UNSAFE) -> str:
    if unsafe.search(value) is not None:
        value = unsafe.sub(lambda m: b"\\x%02X" % m.group()[0], value)
    return value.decode("ascii")


class RequestRecord:
    """What the log needs of a request, taken when it arrives."""

    __slots__ = ("address", "arrived", "line", "referer", "user_agent")

    def __init__(self, address: bytes, method: bytes, target: bytes, version: str,
                 referer: bytes | None, user_agent: bytes | None) -> None:
        self.address = address  # as received: an X-Forwarded-For entry is whatever the terminator passed on
        self.arrived = time.time()
        self.line = b"%b %b HTTP/%b" % (method, target, version.encode("ascii", "replace"))
        self.referer = referer
        self.user_agent = user_agent

    @classmethod
    def refused(cls, address: bytes, method: bytes | None, target: bytes | None, version: str | None) -> "RequestRecord":
        """A request refused while its head was read (400, 414, 431): its
        request line as far as it is known, "-" when it is not."""
        record = cls(address, method or b"", target or b"", version or "", None, None)
        if not (method and target and version):
            record.line = b"-"
        return record


# Lines held before a write even if the second is not over: bounds the memory
# and the size of one write under heavy load.
_MAX_PENDING = 2048


class AccessLog:
    def __init__(self, target: str) -> None:
        """``target``: a file path, or "-" for standard error."""
        self._target = target
        self._pending: list[str] = []
        self._file = None
        self._identity: tuple[int, int] | None = None
        self._closed = False
        self._stamp_second = -1
        self._stamp = ""
        self._open()

    def _open(self) -> None:
        if self._target == "-":
            self._file = sys.stderr
            return
        self._file = open(self._target, "a", encoding="ascii", errors="backslashreplace", buffering=1 << 16)
        stat = os.fstat(self._file.fileno())
        self._identity = (stat.st_dev, stat.st_ino)

    def record(self, request: RequestRecord, status: int, sent: int) -> None:
        # Formatted now, a few µs per request, rather than all of a second's
        # lines in one go in the sweep, which would stall the loop under load.
        now = time.time()
        self._pending.append(
            f'{_escape(request.address, _UNSAFE_ADDRESS) or "-"} - - [{self._time(request.arrived)}] '
            f'"{_escape(request.line)}" {status} {sent} '
            f'"{_escape(request.referer) if request.referer else "-"}" '
            f'"{_escape(request.user_agent) if request.user_agent else "-"}" {now - request.arrived:.3f}\n')
        if len(self._pending) >= _MAX_PENDING or self._closed:
            self.flush()  # (after close: exchanges the shutdown cut off end later)

    def _time(self, when: float) -> str:
        second = int(when)
        if second != self._stamp_second:
            self._stamp_second = second
            self._stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(second))
        return self._stamp

    def flush(self) -> None:
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        try:
            if self._file is None:  # closed: one write on its own
                self._open()
                self._write(lines)
                self._release()
            else:
                self._reopen_if_moved()
                self._write(lines)
        except (OSError, ValueError) as exc:
            log.warning("cannot write the access log %s: %s (%d lines lost)", self._target, exc, len(lines))

    def _write(self, lines: list[str]) -> None:
        self._file.write("".join(lines))
        self._file.flush()

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

    def _release(self) -> None:
        if self._file is not None and self._file is not sys.stderr:
            self._file.close()
        self._file = None

    def close(self) -> None:
        """Write what is held. Requests ending later (the shutdown cuts them
        off a loop turn after) are still written, each on its own."""
        self.flush()
        self._release()
        self._closed = True
