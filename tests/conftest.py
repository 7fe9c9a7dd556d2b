"""Shared fixtures for the proxy's integration tests: a running Service in
front of real upstream servers on free loopback ports, and a raw HTTP/1.1
client for tests that must see exact bytes."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from cobrowse.config import Config, ProxyOptions, ServerOptions, Site
from cobrowse.server import Service

TIMEOUT = 10.0  # generous bound on anything that should be quick; a hang fails instead of blocking the run


def _uvloop_loop() -> asyncio.AbstractEventLoop:
    import uvloop

    return uvloop.new_event_loop()


# Event loops a test module may ask for by name in ``LOOP_FACTORIES`` (every
# async test runs once per name); without it, asyncio's own loop only.
_LOOP_FACTORIES = {"asyncio": asyncio.new_event_loop, "uvloop": _uvloop_loop}


def pytest_asyncio_loop_factories(config, item):
    names = getattr(item.module, "LOOP_FACTORIES", ("asyncio",))
    return {name: _LOOP_FACTORIES[name] for name in names}


# ---------------------------------------------------------------------------
# A raw HTTP/1.1 client
# ---------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]  # names lowercased, in order
    body: bytes = b""
    head: bytes = b""  # the raw status line and headers
    interim: list["Response"] = field(default_factory=list)  # 1xx responses before this one

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for n, v in self.headers if n == name), None)

    def all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for n, v in self.headers if n == name]

    def json(self):
        return json.loads(self.body)


class RawClient:
    """One client connection speaking HTTP/1.1 by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> "RawClient":
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_head(self) -> Response:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        lines = head[:-4].decode("latin-1").split("\r\n")
        _, status, *reason = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        return Response(int(status), reason[0] if reason else "", headers, head=head)

    async def read_body(self, response: Response, method: str = "GET") -> bytes:
        if method == "HEAD" or response.status in (204, 304) or response.status < 200:
            return b""
        if "chunked" in (response.header("transfer-encoding") or "").lower():
            parts = []
            while True:
                size_line = await asyncio.wait_for(self.reader.readuntil(b"\r\n"), TIMEOUT)
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    await asyncio.wait_for(self.reader.readuntil(b"\r\n"), TIMEOUT)  # no trailers from us
                    return b"".join(parts)
                parts.append(await asyncio.wait_for(self.reader.readexactly(size + 2), TIMEOUT))
                parts[-1] = parts[-1][:-2]
        length = response.header("content-length")
        if length is not None:
            return await asyncio.wait_for(self.reader.readexactly(int(length)), TIMEOUT)
        return await asyncio.wait_for(self.reader.read(), TIMEOUT)  # close-delimited

    async def read_response(self, method: str = "GET") -> Response:
        interim = []
        while True:
            response = await self.read_head()
            if 100 <= response.status < 200 and response.status != 101:
                interim.append(response)
                continue
            break
        response.interim = interim
        response.body = await self.read_body(response, method)
        return response

    async def request(self, method: str = "GET", path: str = "/", headers: dict | list | None = None,
                      body: bytes = b"", host: str = "shop.test") -> Response:
        await self.send(build_request(method, path, headers, body, host))
        return await self.read_response(method)

    async def at_eof(self, timeout: float = TIMEOUT) -> bool:
        """Whether the server closes the connection (anything still unread is discarded)."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), timeout):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        return True

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


def build_request(method: str = "GET", path: str = "/", headers: dict | list | None = None, body: bytes = b"",
                  host: str | None = "shop.test") -> bytes:
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {n.lower() for n, _ in items}
    lines = [f"{method} {path} HTTP/1.1"]
    if host is not None and "host" not in names:
        lines.append(f"Host: {host}")
    if body and "content-length" not in names and "transfer-encoding" not in names:
        items.append(("Content-Length", str(len(body))))
    lines += [f"{n}: {v}" for n, v in items]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def fetch(port: int, method: str = "GET", path: str = "/", headers: dict | list | None = None,
                body: bytes = b"", host: str = "shop.test") -> Response:
    """One request on a fresh connection."""
    client = await RawClient.connect(port)
    try:
        return await client.request(method, path, headers, body, host)
    finally:
        await client.close()


# ---------------------------------------------------------------------------
# Upstream servers
# ---------------------------------------------------------------------------


async def echo(request: web.Request) -> web.Response:
    """Describes the request it got: what the proxy sent upstream."""
    body = await request.read()
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return web.json_response({
        "method": request.method,
        "path": request.path_qs,
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers],
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "peer_port": peer[1] if peer else None,
    })


def echo_app() -> web.Application:
    app = web.Application(client_max_size=1 << 30)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


def upstream_headers(response: Response) -> dict[str, list[str]]:
    """The headers an echo upstream saw, by lowercased name."""
    seen: dict[str, list[str]] = {}
    for name, value in response.json()["headers"]:
        seen.setdefault(name.lower(), []).append(value)
    return seen


@pytest.fixture
async def start_app():
    """Starts an aiohttp app on a free port (TLS with ``ssl_context``); returns the port."""
    runners = []

    async def start(app: web.Application, *, ssl_context=None, **runner_options) -> int:
        runner = web.AppRunner(app, access_log=None, **runner_options)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        return site._server.sockets[0].getsockname()[1]

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
async def start_raw():
    """Starts a raw asyncio server (for upstreams that misbehave); returns the port."""
    servers = []
    writers: set[asyncio.StreamWriter] = set()
    tasks: set[asyncio.Task] = set()

    async def start(handler) -> int:
        async def tracked(reader, writer):
            writers.add(writer)
            tasks.add(asyncio.current_task())
            try:
                await handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
                pass
            finally:
                writers.discard(writer)
                writer.close()

        server = await asyncio.start_server(tracked, "127.0.0.1", 0)
        servers.append(server)
        return server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()
    for writer in list(writers):
        writer.transport.abort()
    for task in list(tasks):
        task.cancel()
    await asyncio.sleep(0)


# ---------------------------------------------------------------------------
# The service under test
# ---------------------------------------------------------------------------


def make_config(upstream: str | None = None, *, data_dir: str, sites=None, trust_forwarded: bool = False,
                access_log: str = "", shutdown_timeout: float = 0.0, **proxy_options) -> Config:
    """A config listening on free loopback ports only, keeping its data in ``data_dir``.

    Stopping cuts whatever is in progress at once (``shutdown_timeout`` 0), so a
    test that leaves a request hanging does not wait at its end; the tests of
    the graceful drain set it.
    """
    if sites is None:
        sites = (Site(host="*", upstream=upstream),)
    extra = {}
    if "console" in {f.name for f in dataclasses.fields(Config)}:
        from cobrowse.config import ConsoleOptions

        extra["console"] = ConsoleOptions(listen="127.0.0.1:0")
    return Config(server=ServerOptions(listen="127.0.0.1:0", trust_forwarded=trust_forwarded, data_dir=data_dir,
                                       access_log=access_log, shutdown_timeout=shutdown_timeout),
                  proxy=ProxyOptions(**proxy_options), sites=tuple(sites), **extra)


@pytest.fixture(scope="session")
def service_data_dir(tmp_path_factory) -> str:
    # One for all: the database is created and migrated once, not for every test.
    return str(tmp_path_factory.mktemp("service-data"))


@pytest.fixture
async def start_proxy(service_data_dir):
    """Starts a Service in this process; returns it (``.port`` is the proxy's)."""
    services = []

    async def start(upstream: str | None = None, **options) -> Service:
        service = Service(make_config(upstream, data_dir=service_data_dir, **options))
        await service.start()
        services.append(service)
        return service

    yield start
    for service in reversed(services):
        await service.stop()
