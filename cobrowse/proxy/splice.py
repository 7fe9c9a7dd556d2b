"""The rest of a long body, relayed inside the kernel with splice(2).

Once a response's head (and, on a page, our tag) has gone out, what is left
of a long identity body is the upstream's bytes, unchanged. Read into Python
and written out again, every byte is copied twice and passes through the
CPU's caches; a 50 MB download keeps a core busy for tens of milliseconds,
and the visitor's own process (a TLS terminator, a local client) waits for
that core. splice(2) moves the socket's pages through a pipe to the other
socket without copying them into user space: HAProxy does the same, and on
the benchmark's 50 MiB page it is what set the proxies apart
(docs/benchmarks.md).

The relay runs on the event loop, not in a thread: it registers duplicates
of the two sockets' descriptors with the loop (the transports own the
originals, and a duplicate can never be closed and reused under us), and
moves as much as the pipe holds at each readiness callback. The exchange
pauses its transports' reading before it starts one, and nothing else
writes to the visitor until it ends.

Linux only; elsewhere ``AVAILABLE`` is false and bodies go through Python.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import struct
import termios
from typing import Callable

AVAILABLE = hasattr(os, "splice")

# Bodies shorter than this are not worth a pipe and two descriptors.
MIN_LENGTH = 1 << 20
# What one readiness callback can move. Pipe memory counts against a per-user
# limit (fs.pipe-user-pages-soft, 64 MiB by default) shared with every other
# process of that user; past it, every new pipe of theirs gets 8 KiB. Hence a
# modest pipe and a cap on relays at once: 64 x 256 KiB is a quarter of it.
_PIPE_SIZE = 256 * 1024
MAX_RELAYS = 64
# A pipe the kernel would not enlarge (the user is over that limit): the
# relay would cost more system calls than the copy through Python it saves.
_MIN_PIPE = 64 * 1024
active = 0  # relays running in this process
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)
_MORE = getattr(os, "SPLICE_F_MORE", 4)
# The socket cannot be spliced from (TLS in the kernel aside, a socket type
# without splice_read): nothing has moved, so the exchange goes on in Python.
_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})


class KernelRelay:
    """Moves ``length`` bytes from ``source`` to ``sink`` (socket descriptors),
    after writing ``prefix`` to ``sink``.

    ``on_done(error, side)`` is called once, on the loop: ``error`` is None
    when every byte went out; otherwise ``side`` says whose fault it was
    ("upstream" for the source, "visitor" for the sink). ``on_progress()`` is
    called whenever bytes came from the source.
    """

    __slots__ = ("_loop", "_source", "_sink", "_pipe_in", "_pipe_out", "_capacity", "remaining", "_in_pipe",
                 "_prefix", "sent", "_on_done", "_on_progress", "_reading", "_writing", "done",
                 "waiting_on_sink", "_pipe_full", "_counted", "extra")

    def __init__(self, loop: asyncio.AbstractEventLoop, source: int, sink: int, length: int, prefix: bytes,
                 on_done: Callable[[str | None, str | None], None], on_progress: Callable[[], None]) -> None:
        self._loop = loop
        self._source = self._sink = self._pipe_in = self._pipe_out = -1
        self.remaining = length  # bytes still to take from the source
        self._in_pipe = 0
        self._prefix = prefix
        self.sent = 0  # bytes written to the sink, prefix included
        self._on_done = on_done
        self._on_progress = on_progress
        self._reading = self._writing = False
        self.done = False
        self.waiting_on_sink = False  # the visitor is not taking bytes: not the upstream's stall
        # A pipe holds a number of pages, and each piece of a socket's data
        # spliced in takes one however small it is: it can be full long
        # before _in_pipe says so. Set when a splice in would block.
        self._pipe_full = False
        self._counted = False
        self.extra = False  # the upstream sent more than the body (see _finish)
        self._source = os.dup(source)
        try:
            self._sink = os.dup(sink)
            self._pipe_out, self._pipe_in = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                fcntl.fcntl(self._pipe_in, _F_SETPIPE_SZ, _PIPE_SIZE)
            except OSError:
                pass  # a lower fs.pipe-max-size: the default pipe (64 KiB) works, in more steps
            self._capacity = fcntl.fcntl(self._pipe_in, _F_GETPIPE_SZ)
        except OSError:
            self._close_fds()
            raise

    def start(self) -> bool:
        """Begin; False (and nothing moved or written) if the source cannot be
        spliced, the pipe is too small to be worth it, or too many relays run."""
        global active
        if self._capacity < _MIN_PIPE or active >= MAX_RELAYS:
            self._close_fds()
            self.done = True
            return False
        active += 1
        self._counted = True
        try:
            self._fill(first=True)
        except OSError:  # only what _UNSUPPORTED lists: nothing has moved
            self._close_fds()
            self.done = True
            return False
        return True

    def stop(self) -> None:
        """Give up (the exchange failed or the visitor left): on_done is not called."""
        if not self.done:
            self.done = True
            self._unwatch()
        self._close_fds()  # (idempotent: also after a _finish that did not get that far)

    # ----- readiness callbacks ---------------------------------------------

    def _source_ready(self) -> None:
        if not self.done:
            self._fill()

    def _sink_ready(self) -> None:
        self._pump()

    # ----- the work --------------------------------------------------------

    def _fill(self, first: bool = False) -> None:
        """Take what the source has, as far as the pipe has room; then write
        out what is ready. On the first call, a source that cannot be spliced
        raises (nothing moved)."""
        room = self._capacity - self._in_pipe
        if room > 0 and self.remaining > 0:
            try:
                moved = os.splice(self._source, self._pipe_in, min(self.remaining, room), flags=_FLAGS)
            except BlockingIOError:
                if self._in_pipe:
                    # The socket is readable, so the pipe is what is full (of
                    # small pieces): wait for the visitor to take some, or this
                    # callback would fire again at once, for as long as they wait.
                    self._pipe_full = True
            except OSError as exc:
                if first and exc.errno in _UNSUPPORTED:
                    raise
                self._finish(f"reading the upstream: {exc.strerror}", "upstream")
                return
            else:
                if moved == 0:
                    self._finish("the upstream closed the connection mid-body", "upstream")
                    return
                self.remaining -= moved
                self._in_pipe += moved
                self._on_progress()
        self._pump()

    def _pump(self) -> None:
        """Write what is ready (the prefix, then the pipe); watch what we wait on."""
        if self.done:
            return
        before = self.sent
        try:
            while self._prefix:
                written = os.write(self._sink, self._prefix)
                self.sent += written
                self._prefix = self._prefix[written:]
            while self._in_pipe:
                more = _MORE if self.remaining else 0
                written = os.splice(self._pipe_out, self._sink, self._in_pipe, flags=_FLAGS | more)
                self.sent += written
                self._in_pipe -= written
        except BlockingIOError:
            pass
        except OSError as exc:
            self._finish(f"writing to the visitor: {exc.strerror}", "visitor")
            return
        if self.sent != before:
            self._pipe_full = False
            if self.waiting_on_sink:
                # The visitor was holding things up, not the upstream: its
                # time allowed starts again now (as client_resume_writing does).
                self._on_progress()
        if not self._in_pipe and not self._prefix and not self.remaining:
            self._finish(None, None)
            return
        blocked = bool(self._in_pipe or self._prefix)
        self.waiting_on_sink = blocked
        self._watch_sink(blocked)
        self._watch_source(self.remaining > 0 and self._in_pipe < self._capacity and not self._pipe_full)

    def _finish(self, error: str | None, side: str | None) -> None:
        if self.done:
            return
        self.done = True
        try:
            self._unwatch()
            if error is None:
                # Bytes past the body's end would be read as the next answer on
                # this connection: the exchange then does not pool it. (FIONREAD:
                # what the socket holds, without a socket object, which could
                # wait on a process-wide default timeout.)
                try:
                    waiting = fcntl.ioctl(self._source, termios.FIONREAD, b"\0\0\0\0")
                    self.extra = struct.unpack("i", waiting)[0] > 0
                except OSError:
                    self.extra = True
        finally:
            self._close_fds()
        self._on_done(error, side)

    def _watch_source(self, on: bool) -> None:
        if on != self._reading:
            self._reading = on
            if on:
                self._loop.add_reader(self._source, self._source_ready)
            else:
                self._loop.remove_reader(self._source)

    def _watch_sink(self, on: bool) -> None:
        if on != self._writing:
            self._writing = on
            if on:
                self._loop.add_writer(self._sink, self._sink_ready)
            else:
                self._loop.remove_writer(self._sink)

    def _unwatch(self) -> None:
        self._watch_source(False)
        self._watch_sink(False)

    def _close_fds(self) -> None:
        global active
        if self._counted:
            self._counted = False
            active -= 1
        for fd in (self._source, self._sink, self._pipe_in, self._pipe_out):
            if fd >= 0:
                os.close(fd)
        self._source = self._sink = self._pipe_in = self._pipe_out = -1
