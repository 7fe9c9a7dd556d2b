"""Pooled keep-alive connections to upstream servers.

One pool per process holds idle connections per upstream (TCP, TLS or a
unix socket for our own app). A request takes an idle connection when there
is one -- without a task or a future, which keeps the hot path short -- and
opens a new one otherwise, up to ``pool_size`` per upstream; beyond that it
waits its turn. Connections the upstream closed while idle are dropped as
soon as the close is seen.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
from dataclasses import dataclass, field

import httptools

log = logging.getLogger("cobrowse.proxy.upstream")

IDLE_TIMEOUT = 30.0  # seconds a pooled connection may sit unused


@dataclass(frozen=True, slots=True, eq=False)
class Target:
    """Where an exchange's request goes."""

    key: str  # pool key
    host: str
    port: int
    tls: bool
    unix_path: str | None = None
    host_header: bytes = b""  # Host header value for the upstream; b"": the visitor's (pass_host_header)
    base_path: bytes = b""  # prefix prepended to the request path
    internal: bool = False  # our own app: no injection, no URL mapping
    upstream: object = field(default=None)  # headers.Upstream for site targets
    tag_attributes: bytes = b""  # per-site attributes of our injected tag
    server_name: str = ""  # https: the name sent in SNI and checked against the certificate


class UpstreamProtocol(asyncio.Protocol):
    """One connection to an upstream; its bytes go to the exchange using it."""

    __slots__ = ("pool", "target", "transport", "exchange", "parser", "idle_since", "closed", "reusable")

    def __init__(self, pool: "UpstreamPool", target: Target) -> None:
        self.pool = pool
        self.target = target
        self.transport: asyncio.Transport | None = None
        self.exchange = None
        self.parser = None
        self.idle_since = 0.0
        self.closed = False
        self.reusable = True

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:
            # An idle keep-alive connection must stay silent; anything else is broken.
            self.close()
            return
        exchange.upstream_data(data)

    def eof_received(self):
        return False

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.pool.forget(self)
        exchange = self.exchange
        if exchange is not None:
            self.exchange = None
            exchange.upstream_lost(exc)

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.upstream_pause_writing()

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.upstream_resume_writing()

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.close()


def tls_context(ca_file: str = "", verify: bool = True) -> ssl.SSLContext:
    """The client context for https upstreams: the system's CAs, or only those
    in ``ca_file`` (an upstream with a private CA); no checks at all when
    ``verify`` is off (a self-signed upstream on a network one trusts)."""
    context = ssl.create_default_context(cafile=ca_file or None)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class UpstreamPool:
    def __init__(self, pool_size: int, connect_timeout: float, loop: asyncio.AbstractEventLoop | None = None,
                 ca_file: str = "", tls_verify: bool = True) -> None:
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._ca_file = ca_file
        self._tls_verify = tls_verify
        self._idle: dict[str, collections.deque[UpstreamProtocol]] = {}
        self._busy: dict[str, int] = collections.defaultdict(int)  # connections in use or opening
        self._waiters: dict[str, collections.deque[asyncio.Future]] = collections.defaultdict(collections.deque)
        self._ssl: ssl.SSLContext | None = None  # see prepare_tls
        self._loop = loop
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    def prepare_tls(self) -> None:
        """Load the CAs now, at start-up, when some upstream is https: it takes
        tens of milliseconds, which the first visitor should not wait for (and
        an http-only deployment never pays)."""
        if self._ssl is None:
            self._ssl = tls_context(self._ca_file, self._tls_verify)

    def take_idle(self, target: Target) -> UpstreamProtocol | None:
        """An idle connection to ``target``, if one is ready (synchronous fast path)."""
        idle = self._idle.get(target.key)
        while idle:
            conn = idle.pop()  # most recently used: least likely to have been closed by the upstream
            if not conn.closed:
                self._busy[target.key] += 1
                return conn
        return None

    async def acquire(self, target: Target, fresh: bool = False) -> tuple[UpstreamProtocol, bool]:
        """A connection to ``target`` and whether it is a new one; a new one
        whenever ``fresh`` is set. Raises OSError/TimeoutError."""
        while True:
            conn = None if fresh else self.take_idle(target)
            if conn is not None:
                return conn, False
            if self._busy[target.key] < self._pool_size:
                break
            waiter = asyncio.get_running_loop().create_future()
            self._waiters[target.key].append(waiter)
            try:
                await waiter
            finally:
                if not waiter.done():
                    waiter.cancel()
        self._busy[target.key] += 1
        try:
            return await self._open(target), True
        except BaseException:
            self._busy[target.key] -= 1
            self._wake(target.key)
            raise

    async def _open(self, target: Target) -> UpstreamProtocol:
        loop = asyncio.get_running_loop()
        self._loop = loop

        def factory() -> UpstreamProtocol:
            return UpstreamProtocol(self, target)

        if target.tls:
            self.prepare_tls()
        async with asyncio.timeout(self._connect_timeout):
            if target.unix_path is not None:
                _, conn = await loop.create_unix_connection(factory, target.unix_path)
            else:
                _, conn = await loop.create_connection(
                    factory, target.host, target.port,
                    ssl=self._ssl if target.tls else None,
                    server_hostname=(target.server_name or target.host) if target.tls else None,
                )
        return conn

    def release(self, conn: UpstreamProtocol, reusable: bool) -> None:
        """Give a connection back after its exchange; it is pooled only if still clean."""
        key = conn.target.key
        self._busy[key] -= 1
        conn.exchange = None
        conn.parser = None
        if reusable and conn.reusable and not conn.closed and not self._closed:
            conn.idle_since = (self._loop or asyncio.get_event_loop()).time()
            self._idle.setdefault(key, collections.deque()).append(conn)
            self._schedule_sweep()
        else:
            conn.close()
        self._wake(key)

    def forget(self, conn: UpstreamProtocol) -> None:
        idle = self._idle.get(conn.target.key)
        if idle and conn in idle:
            idle.remove(conn)

    def _wake(self, key: str) -> None:
        waiters = self._waiters.get(key)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _schedule_sweep(self) -> None:
        if self._sweeper is None and self._loop is not None:
            self._sweeper = self._loop.call_later(IDLE_TIMEOUT / 2, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        now = self._loop.time()
        for idle in self._idle.values():
            while idle and now - idle[0].idle_since > IDLE_TIMEOUT:
                idle.popleft().close()
        if any(self._idle.values()):
            self._schedule_sweep()

    def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for idle in self._idle.values():
            while idle:
                idle.popleft().close()


def new_response_parser(callbacks) -> httptools.HttpResponseParser:
    return httptools.HttpResponseParser(callbacks)
