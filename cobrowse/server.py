"""Runs the service: the proxy listener, our app on an internal socket, and for
`cobrowse demo` the demo shop."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import shutil
import socket
import sys
import tempfile

from aiohttp import web

from .app import build_app
from .assets import inline_tag
from .config import Config, parse_listen
from .console.app import build_console_app, console_origin
from .injector import Injector, InjectorSettings
from .keys import load_or_create_secret
from .proxy import Proxy
from .proxy.handoff_log import handoff_access_logger
from .storage.db import Database
from .sync.broker import InMemoryBroker
from .sync.db_store import DatabaseSessionStore
from .sync.hub import Hub
from .sync.screenshare import settings_from_config

log = logging.getLogger("cobrowse")
# Alembic narrates every migration step at INFO; our own line says what matters.
logging.getLogger("alembic").setLevel(logging.WARNING)


def public_url(listen: str) -> str:
    host, port = parse_listen(listen)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def navigation_origins(config: Config, site_host: str) -> tuple[str, ...]:
    """Origins agents may send a visitor of ``site_host`` to, besides the site's own (the hub adds those)."""
    site = config.site_for_host(site_host)
    return site.navigation_origins if site is not None else ()


class ListenError(OSError):
    """A listening socket could not be bound: says which of ours and where,
    since ``serve`` binds several (the proxy, the console, the demo shop)."""

    def __init__(self, what: str, listen: str, cause: OSError) -> None:
        # A name that does not resolve (socket.gaierror) has a negative errno of its own.
        reason = os.strerror(cause.errno) if cause.errno and cause.errno > 0 else (cause.strerror or str(cause))
        super().__init__(cause.errno, reason)
        self.what = what
        self.listen = listen


async def _bind(what: str, listen: str, start):
    try:
        return await start()
    except OSError as exc:
        raise ListenError(what, listen, exc) from exc


class Service:
    """The running parts, startable and stoppable as a whole (tests use this directly)."""

    def __init__(self, config: Config, *, demo_shop_listen: str | None = None) -> None:
        self.config = config
        self.demo_shop_listen = demo_shop_listen
        self._runners: list[web.AppRunner] = []
        self._console_runner: web.AppRunner | None = None
        self._proxy: Proxy | None = None
        self._server: asyncio.AbstractServer | None = None
        self._socket_dir: str | None = None
        self.port: int | None = None  # the proxy's bound port (useful with port 0)
        self.shop_port: int | None = None
        self.console_port: int | None = None
        self.db: Database | None = None
        self.hub: Hub | None = None
        self.chat = None  # cobrowse.chat_runtime.ChatRuntime, when chat is on
        self._store: DatabaseSessionStore | None = None
        self.demo_accounts: list = []
        self._abandoned: asyncio.Future | None = None

    async def start(self) -> None:
        config = self.config
        access_log = log if config.server.log_level == "debug" else None
        try:
            if self.demo_shop_listen:
                from .demo import create_shop_app

                runner = web.AppRunner(create_shop_app(), access_log=access_log)
                self._runners.append(runner)
                await runner.setup()
                host, port = parse_listen(self.demo_shop_listen)
                site = web.TCPSite(runner, host, port, reuse_address=True)
                await _bind("the demo shop", self.demo_shop_listen, site.start)
                self.shop_port = site._server.sockets[0].getsockname()[1]

            self.db = Database.from_config(config)
            await self.db.start()  # applies migrations
            if self.demo_shop_listen:
                from .storage.accounts import ensure_demo_accounts

                self.demo_accounts = await ensure_demo_accounts(self.db)
            secret = load_or_create_secret(config.server.data_dir)
            self._store = DatabaseSessionStore(self.db)
            self._store.start()
            self.hub = Hub(InMemoryBroker(), secret, store=self._store, idle_timeout=config.sessions.idle_timeout,
                           max_visitor_sockets_per_address=config.sessions.max_visitor_sockets_per_address,
                           trust_forwarded=config.server.trust_forwarded,
                           navigation_origins=lambda host: navigation_origins(config, host),
                           screenshare=settings_from_config(config.screenshare))
            self._abandoned = asyncio.ensure_future(self._end_abandoned_sessions())
            from .chat_runtime import build_chat

            self.chat = build_chat(config, self.db, self.hub, secret)
            if self.chat is not None:
                await self.chat.files.remove_stale_partials()  # half-written uploads of a crashed run

            # Our app listens on a unix socket in a private directory: only the proxy reaches it.
            self._socket_dir = tempfile.mkdtemp(prefix="cobrowse-")
            internal_socket = os.path.join(self._socket_dir, "app.sock")
            app_log_options = {}
            if config.server.access_log:
                # The hub's websockets, handed over by the proxy, go into its access log from here.
                app_log_options = {"access_log": log, "access_log_class": handoff_access_logger(
                    lambda: self._proxy.access_log if self._proxy is not None else None,
                    config.server.trust_forwarded, debug=access_log is not None)}
            app_runner = web.AppRunner(build_app(config, self.hub, self.chat), handler_cancellation=True,
                                       **({"access_log": access_log} | app_log_options))
            self._runners.append(app_runner)
            await app_runner.setup()
            await web.UnixSite(app_runner, internal_socket).start()

            console_origins = {console_origin(config)}
            runner = web.AppRunner(build_console_app(config, self.hub, self.db, secret, console_origins,
                                                     chat=self.chat),
                                   access_log=access_log, handler_cancellation=True)
            self._runners.append(runner)
            self._console_runner = runner
            await runner.setup()
            host, port = parse_listen(config.console.listen)
            console_site = web.TCPSite(runner, host or None, port, reuse_address=True)
            await _bind("the agent console", config.console.listen, console_site.start)
            self.console_port = console_site._server.sockets[0].getsockname()[1]
            if not config.console.public_url:
                console_origins.add(public_url(f"{host or '127.0.0.1'}:{self.console_port}"))

            injector = Injector(InjectorSettings(prefix=config.server.prefix, recompress=config.proxy.recompress,
                                                 inline_tag=inline_tag()))
            self._proxy = Proxy(config, injector, internal_socket, internal_server=app_runner.server)
            host, port = parse_listen(config.server.listen)
            loop = asyncio.get_running_loop()
            self._server = await _bind("the proxy", config.server.listen, lambda: loop.create_server(
                self._proxy, host or None, port, reuse_address=True, backlog=1024))
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException:
            await self.stop()
            raise

    async def _end_abandoned_sessions(self) -> None:
        """Sessions left open by the previous run end if nobody resumed them in time.

        A restart does not end sessions (visitors resume them with their
        tokens); those that nobody resumes within the idle timeout are over.
        """
        from .storage import cobrowse_sessions

        await asyncio.sleep(self.config.sessions.idle_timeout)
        for record in await cobrowse_sessions.list_sessions(self.db, active=True, limit=10_000):
            if self.hub is not None and record.id not in self.hub.sessions:
                await cobrowse_sessions.end_session(self.db, record.id, "idle_timeout")

    async def stop(self) -> None:
        """Stop gracefully: no new connections, and the requests in progress
        get ``server.shutdown_timeout`` to finish (one deadline for the proxy
        and the console together), then everything closes.

        Cancelled while it waits (a second SIGTERM or Ctrl-C), it cuts what
        is left and still closes everything, then re-raises.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.server.shutdown_timeout
        interrupted = False

        def remaining() -> float:
            return 0.0 if interrupted else max(0.0, deadline - loop.time())

        async def step(awaitable) -> None:
            nonlocal interrupted
            try:
                await awaitable
            except asyncio.CancelledError:
                interrupted = True  # the steps left run without waiting

        if self._abandoned is not None:
            self._abandoned.cancel()
            self._abandoned = None
        # No new connections: a load balancer's next request goes to another node.
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._console_runner is not None:
            for site in list(self._console_runner.sites):
                await step(site.stop())
        if self._proxy is not None:
            self._proxy.begin_drain()
        if self.hub is not None:
            # Agent and visitor sockets would otherwise hold up the listeners'
            # shutdown; the browsers resume their sessions on whichever node
            # answers next.
            await step(self.hub.stop())
        if self._proxy is not None:
            # Our app (the internal socket) and the demo shop stay up meanwhile:
            # requests in progress may be waiting on them.
            await step(self._proxy.drain(remaining()))  # (cancelled, it cuts what is left)
            self._proxy.close()
            self._proxy = None
        for runner in reversed(self._runners):
            # Each waits for its handlers until the deadline (the console's
            # have been running all along), and cancels what is left.
            for _ in range(2):  # once more, without waiting, if interrupted
                # aiohttp reads it in cleanup(); it takes 0 to mean "no limit".
                runner._shutdown_timeout = max(remaining(), 0.05)
                before = interrupted
                await step(runner.cleanup())
                if interrupted == before:
                    break
        self._runners.clear()
        self._console_runner = None
        if self._store is not None:
            await step(self._store.stop())
            self._store = None
        if self.db is not None:
            await step(self.db.stop())
            self.db = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
        if interrupted:
            raise asyncio.CancelledError


async def run(config: Config, *, demo_shop_listen: str | None = None) -> None:
    """Serve until cancelled."""
    service = Service(config, demo_shop_listen=demo_shop_listen)
    await service.start()
    # What start-up made (modules, routes, the migrated schema) lives as long as the
    # process: moved out of the collector's sight, full collections walk only what
    # visitors and agents bring, and pause the event loop for less.
    gc.freeze()
    # Collect the young generation every 20,000 allocations instead of 700, and the
    # old one rarely: a hub allocates a few objects per relayed frame that die young,
    # and each full collection of a busy hub's ~70,000 objects stalled every
    # connection for 80-170 ms (the p99 in docs/benchmarks.md). Measured with
    # bench/hub.py at 500 pairs: p99 86 ms -> 11 ms.
    gc.set_threshold(20_000, 50, 100)
    try:
        host, _ = parse_listen(config.server.listen)
        base = public_url(f"{host or '127.0.0.1'}:{service.port}")
        if demo_shop_listen:
            shop_host, _ = parse_listen(demo_shop_listen)
            print(f"Demo shop through cobrowse:  {base}/", file=sys.stderr)
            print(f"Demo shop directly:          {public_url(f'{shop_host}:{service.shop_port}')}/",
                  file=sys.stderr)
        else:
            for site in config.sites:
                print(f"Proxying {site.host} -> {site.upstream}", file=sys.stderr)
            if not config.proxy.upstream_tls_verify and any(site.upstream.startswith("https:")
                                                             for site in config.sites):
                log.warning("proxy.upstream_tls_verify is off: https upstreams' certificates are not checked")
            print(f"Listening on {base}/", file=sys.stderr)
        console = config.console.public_url or public_url(
            f"{parse_listen(config.console.listen)[0] or '127.0.0.1'}:{service.console_port}")
        print(f"Agent console:               {console}/", file=sys.stderr)
        for account in service.demo_accounts:
            print(f"  log in as {account.username!r} with password {account.password!r} ({getattr(account.role, 'value', account.role)})",
                  file=sys.stderr)
        print(f"Health check:                {base}{config.server.prefix}health", file=sys.stderr)
        sys.stderr.flush()
        await asyncio.Event().wait()
    finally:
        await service.stop()
