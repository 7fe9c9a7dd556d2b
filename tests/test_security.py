"""Security regressions: each test is a reproduction of a hole found in review.

Proxy: request smuggling through a Connection header naming Content-Length,
bytes sent after an upgrade request reaching an upstream that refused it,
a refused hub handshake leaving the connection to our app, chunked bodies
past max_body_size, a bad chunk answered only at the read timeout, the
console's files on a site's origin, Host headers that are repeated or not
host names, forwarding headers from untrusted clients.
Hub: agents who lose their login keep no access; one visitor cannot flood
agents with queue updates or start sessions without end.
Keys: no short or half-written secret. Console: only wrong passwords count
towards the login limit.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from conftest import TIMEOUT, RawClient, build_request, echo_app, fetch, upstream_headers


# ---------------------------------------------------------------------------
# A raw upstream that answers every request head it parses and records them
# ---------------------------------------------------------------------------


def recording_upstream(seen: list[bytes]):
    """An HTTP/1.1 upstream that answers each request it reads (keep-alive) and
    records every request line, so a request the proxy never sent is visible."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            lines = head.split(b"\r\n")
            seen.append(lines[0])
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    return handler


async def read_all(client: RawClient, quiet: float = 0.5) -> bytes:
    """Everything the proxy sends until it closes or stays quiet for ``quiet`` s."""
    out = b""
    try:
        while True:
            data = await asyncio.wait_for(client.reader.read(65536), quiet)
            if not data:
                break
            out += data
    except (asyncio.TimeoutError, ConnectionError):
        pass
    return out


# ---------------------------------------------------------------------------
# Proxy: request smuggling and desync
# ---------------------------------------------------------------------------


async def test_connection_header_cannot_drop_content_length(start_raw, start_proxy):
    """`Connection: Content-Length` made the proxy drop the length but still relay
    the body: the upstream read the body as a second request (smuggling, and on a
    pooled connection its answer went to the next visitor)."""
    seen: list[bytes] = []
    port = await start_raw(recording_upstream(seen))
    service = await start_proxy(f"http://127.0.0.1:{port}")
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    client = await RawClient.connect(service.port)
    await client.send(b"POST /form HTTP/1.1\r\nHost: shop.test\r\nConnection: keep-alive, Content-Length\r\n"
                      b"Content-Length: %d\r\n\r\n%b" % (len(smuggled), smuggled))
    response = await client.read_response()
    assert response.status == 200
    assert await read_all(client) == b""  # one request, one answer
    await client.close()
    await asyncio.sleep(0.1)
    assert seen == [b"POST /form HTTP/1.1"]


async def test_connection_header_still_drops_other_named_headers(start_app, start_proxy):
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    client = await RawClient.connect(service.port)
    response = await client.request("POST", "/", [("Connection", "X-Secret-Hop, content-length"),
                                                  ("X-Secret-Hop", "1")], body=b"hello")
    await client.close()
    seen = upstream_headers(response)
    assert "x-secret-hop" not in seen
    assert seen["content-length"] == ["5"] and response.json()["length"] == 5


async def test_bytes_after_an_upgrade_request_wait_for_the_upstreams_101(start_raw, start_proxy):
    """Data sent after an Upgrade request went to the upstream at once; one that
    refused the upgrade (and kept the connection) then ran it as a request of its
    own, with whatever Host and X-Forwarded-* the client wrote."""
    seen: list[bytes] = []
    port = await start_raw(recording_upstream(seen))
    service = await start_proxy(f"http://127.0.0.1:{port}")
    client = await RawClient.connect(service.port)
    await client.send(b"GET /chat HTTP/1.1\r\nHost: shop.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                      b"GET /admin HTTP/1.1\r\nHost: internal-admin\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n")
    out = await read_all(client)
    await client.close()
    await asyncio.sleep(0.1)
    assert out.count(b"HTTP/1.1 ") == 1 and b"Connection: close" in out
    assert seen == [b"GET /chat HTTP/1.1"]


async def test_bytes_sent_before_the_101_reach_the_upstream_after_it(start_raw, start_proxy):
    """The other side of the fix above: a tunnel gets what the client sent early,
    also on a pooled upstream connection (where those bytes used to be lost)."""
    got: asyncio.Queue = asyncio.Queue()

    async def upstream(reader, writer):
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if b"Upgrade: raw" not in head:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
                continue
            await asyncio.sleep(0.2)  # the client's early bytes are at the proxy by now
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: raw\r\n\r\n")
            await writer.drain()
            await got.put(await reader.readexactly(5))
            writer.write(b"bye")
            await writer.drain()
            return

    port = await start_raw(upstream)
    service = await start_proxy(f"http://127.0.0.1:{port}")
    for pooled in (False, True):
        if pooled:  # leaves an idle keep-alive connection in the pool for the upgrade to take
            client = await RawClient.connect(service.port)
            assert (await client.request("GET", "/plain")).status == 200
            await client.close()
        client = await RawClient.connect(service.port)
        await client.send(b"GET /tunnel HTTP/1.1\r\nHost: shop.test\r\nConnection: Upgrade\r\nUpgrade: raw\r\n\r\n"
                          b"early")
        assert (await client.read_head()).status == 101
        assert await asyncio.wait_for(got.get(), TIMEOUT) == b"early", pooled
        assert await asyncio.wait_for(client.reader.readexactly(3), TIMEOUT) == b"bye"
        await client.close()


async def test_a_refused_hub_handshake_does_not_leave_the_connection_to_our_app(start_app, start_proxy):
    """An upgrade request under the prefix handed the whole connection to our
    aiohttp app; when the app refused it (400), the connection stayed open there,
    and later requests on it skipped the proxy: client-written X-Forwarded-Host
    and X-Forwarded-For reached the hub, site paths were answered by our app."""
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    before = service._proxy.handoffs
    client = await RawClient.connect(service.port)
    await client.send(b"GET /__cobrowse/ws HTTP/1.1\r\nHost: shop.test\r\nConnection: Upgrade\r\n"
                      b"Upgrade: websocket\r\n\r\n")  # no key, no version: not a websocket handshake
    response = await client.read_response()
    assert response.status == 400
    await client.send(build_request("GET", "/site-page", {"X-Forwarded-Host": "spoofed.example"}))
    rest = await read_all(client)
    await client.close()
    assert b"spoofed.example" not in rest and b"/site-page" not in rest
    assert service._proxy.handoffs == before


async def test_a_real_hub_handshake_is_still_handed_off(start_app, start_proxy):
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    before = service._proxy.handoffs
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"http://127.0.0.1:{service.port}/__cobrowse/ws") as ws:
            await ws.send_json({"t": "hello", "v": 1, "visitor": "v", "tab": "t", "url": "http://shop.test/"})
            assert (await ws.receive_json(timeout=TIMEOUT))["t"] == "welcome"
    assert service._proxy.handoffs == before + 1


async def test_visitor_sockets_per_address_through_the_proxy(start_app, start_proxy):
    """The cap counts the address the proxy saw: a visitor's own X-Forwarded-For
    does not make it someone else (the proxy keeps only its own entry when it
    does not trust forwarded headers)."""
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    assert service.hub.max_visitor_sockets_per_address == 64  # the default
    service.hub.max_visitor_sockets_per_address = 2
    url = f"http://127.0.0.1:{service.port}/__cobrowse/ws"
    async with aiohttp.ClientSession() as http:
        open_ = [await http.ws_connect(url, headers={"X-Forwarded-For": f"198.51.100.{n}"}) for n in (1, 2)]
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(url, headers={"X-Forwarded-For": "198.51.100.3"})
        assert info.value.status == 429
        assert service.hub._visitor_sockets == {"127.0.0.1": 2}
        # The refused connection was the app's (handed off): it must close, not
        # take a second handshake that skips the proxy and names any address.
        client = await RawClient.connect(service.port)
        handshake = (b"GET /__cobrowse/ws HTTP/1.1\r\nHost: shop.test\r\nConnection: Upgrade\r\n"
                     b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n%b\r\n")
        await client.send(handshake % b"")
        assert (await client.read_head()).status == 429
        await client.send(handshake % b"X-Forwarded-For: 203.0.113.7\r\n")
        rest = await read_all(client)
        await client.close()
        assert b" 101 " not in rest
        assert service.hub._visitor_sockets == {"127.0.0.1": 2}
        for ws in open_:
            await ws.close()


async def test_max_body_size_holds_for_chunked_bodies(start_app, start_proxy):
    """Only a Content-Length over max_body_size was refused: the same body sent
    chunked went through whole, however large."""
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}", max_body_size=1000)
    chunk = b"%x\r\n%b\r\n" % (600, b"x" * 600)
    head = b"POST /upload HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\n"
    client = await RawClient.connect(service.port)
    await client.send(head + chunk + b"0\r\n\r\n")  # 600 bytes: fine
    response = await client.read_response()
    assert response.status == 200 and response.json()["length"] == 600
    await client.send(head + chunk + chunk)  # 1200 bytes, and more to come
    response = await client.read_response()
    assert response.status == 413
    assert await client.at_eof()
    await client.close()


async def test_a_malformed_chunked_body_gets_400_at_once(start_app, start_proxy):
    """A bad chunk after the head had gone upstream was answered only when the
    upstream gave up waiting for the rest: a 504 after read_timeout, with a pooled
    upstream connection held all that time."""
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}", read_timeout=30)
    client = await RawClient.connect(service.port)
    await client.send(b"POST /a HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"5\r\nhello\r\nZZ\r\n")
    response = await asyncio.wait_for(client.read_response(), 3)
    assert response.status == 400 and b"chunk" in response.body
    assert await client.at_eof()
    await client.close()


async def test_the_console_is_not_served_on_a_sites_origin(start_app, start_proxy):
    """/__cobrowse/static/ served every bundle file, the console's too: the agent
    console's login page ran on the site's origin (no console CSP, no
    frame-ancestors) and its form posted agents' passwords to the site's /api/login."""
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    for name in ("console.html", "console.js", "console.css"):
        response = await fetch(service.port, "GET", "/__cobrowse/static/" + name)
        assert response.status == 404, name
    assert (await fetch(service.port, "GET", "/__cobrowse/static/widget.js")).status == 200
    async with aiohttp.ClientSession() as http:  # the console itself still has them
        async with http.get(f"http://127.0.0.1:{service.console_port}/static/console.js") as response:
            assert response.status == 200


@pytest.mark.parametrize("host_lines", [
    [],  # HTTP/1.1 requires one (RFC 9112 3.2)
    [b"Host:"],  # ...that names a host
    [b"Host: shop.test", b"Host: other.test"],
    [b"Host: a 'unsafe-inline' b"],
    [b"Host: shop.test;script-src"],
    [b"Host: *"],
    [b"Host: shop.test\tx"],
])
async def test_repeated_or_malformed_host_is_refused(start_app, start_proxy, host_lines):
    """The Host becomes the public origin, which goes into the page's CSP (our
    script and websocket sources) and into mapped Location headers: a Host with
    spaces or quotes added sources of the client's choosing ('unsafe-inline',
    or `*` as a host), poisonable through any cache that does not key on Host."""
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    client = await RawClient.connect(service.port)
    await client.send(b"GET / HTTP/1.1\r\n" + b"".join(line + b"\r\n" for line in host_lines)
                      + b"Accept: text/html\r\n\r\n")
    response = await client.read_response()
    assert response.status == 400
    assert await client.at_eof()
    await client.close()


async def test_ordinary_hosts_still_work(start_app, start_proxy):
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    for host in ("shop.test", "shop.test:8080", "127.0.0.1:80", "[::1]:8080", "my_host.internal"):
        client = await RawClient.connect(service.port)
        response = await client.request("GET", "/", host=host)
        await client.close()
        assert response.status == 200, host
        assert upstream_headers(response)["x-forwarded-host"] == [host]
    client = await RawClient.connect(service.port)  # HTTP/1.0 without a Host
    await client.send(b"GET / HTTP/1.0\r\n\r\n")
    assert (await client.read_response()).status == 200
    await client.close()


async def test_a_malformed_forwarded_host_is_refused_when_trusted(start_app, start_proxy):
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}", trust_forwarded=True)
    client = await RawClient.connect(service.port)
    response = await client.request("GET", "/", {"X-Forwarded-Host": "a 'unsafe-inline'"})
    await client.close()
    assert response.status == 400


async def test_untrusted_clients_cannot_send_any_forwarding_header(start_app, start_proxy):
    """X-Forwarded-For/-Proto/-Host were replaced, but X-Forwarded-Ssl, -Port,
    -Prefix and X-Real-IP went through: frameworks read them as the proxy's word."""
    port = await start_app(echo_app())
    service = await start_proxy(f"http://127.0.0.1:{port}")
    client = await RawClient.connect(service.port)
    response = await client.request("GET", "/", {"X-Forwarded-Ssl": "on", "X-Forwarded-Port": "443",
                                                 "X-Forwarded-Prefix": "/admin", "X-Real-IP": "10.0.0.1",
                                                 "X-Forwarded-Server": "trusted"})
    await client.close()
    seen = upstream_headers(response)
    for name in ("x-forwarded-ssl", "x-forwarded-port", "x-forwarded-prefix", "x-real-ip", "x-forwarded-server"):
        assert name not in seen, name
    assert seen["x-forwarded-for"] == ["127.0.0.1"]

    trusted = await start_proxy(f"http://127.0.0.1:{port}", trust_forwarded=True)
    client = await RawClient.connect(trusted.port)
    response = await client.request("GET", "/", {"X-Forwarded-Port": "443", "X-Real-IP": "10.0.0.1"})
    await client.close()
    seen = upstream_headers(response)
    assert seen["x-forwarded-port"] == ["443"] and seen["x-real-ip"] == ["10.0.0.1"]


# ---------------------------------------------------------------------------
# Hub: agents, and what one visitor can make every agent receive
# ---------------------------------------------------------------------------

from test_sync_hub import ANNA, Env, make_env  # noqa: E402,F401  (the hub over real websockets)

from cobrowse.sync import hub as hub_module  # noqa: E402


async def test_an_agent_whose_login_ends_stops_receiving(make_env, monkeypatch):
    """Logins were checked again only on `join`: a disabled agent (or one whose
    password changed or cookie expired) kept receiving the session they were in,
    and the queue, for as long as the socket lived."""
    monkeypatch.setattr(hub_module, "AUTH_RECHECK", 0.05)
    env: Env = await make_env()
    visitor, shared = await env.sharing()
    agent, _ = await env.joined(shared["session"])
    await agent.send({"t": "watch"})
    await agent.until("tab_rr")
    env.logged_in[ANNA.user_id] = None  # `cobrowse user disable anna`
    assert (await agent.until("error"))["code"] == "unauthorized"
    assert await agent.closed() == 1008
    assert await visitor.until("viewers", viewers=[])


async def test_an_agent_whose_login_holds_stays(make_env, monkeypatch):
    monkeypatch.setattr(hub_module, "AUTH_RECHECK", 0.02)
    env: Env = await make_env()
    _, shared = await env.sharing()
    agent, _ = await env.joined(shared["session"])
    await asyncio.sleep(0.2)
    assert [f["t"] for f in await agent.sync() if f["t"] == "error"] == []


async def test_a_visitor_cannot_flood_agents_with_queue_updates(make_env):
    """Every `nav` (and every share or stop) sent the whole queue to every
    watching agent at once: one unauthenticated visitor at 100 frames/s made
    100 queue frames/s per agent, each as long as the queue (cut off at 64 MiB)."""
    env: Env = await make_env()
    agent = await env.agent()
    await agent.send({"t": "watch"})
    assert (await agent.recv())["t"] == "queue"
    visitor, _ = await env.sharing()
    for i in range(200):
        await visitor.send({"t": "nav", "url": f"https://shop.test/p{i}", "title": "x" * 2000})
    await visitor.sync()
    await asyncio.sleep(2 * hub_module.QUEUE_INTERVAL)
    queues = [f for f in await agent.sync() if f["t"] == "queue"]
    assert 1 <= len(queues) <= 6, len(queues)
    assert queues[-1]["sessions"][0]["url"] == "https://shop.test/p199"  # the latest state still arrives


async def test_one_visitor_connection_cannot_start_sessions_without_end(make_env):
    """share/stop in a loop made a session (a queue update for every agent, rows
    in the store, a remembered ended id) per frame pair."""
    env: Env = await make_env()
    visitor, _ = await env.visitor()
    started = 0
    for _ in range(hub_module.SHARE_BURST + 3):
        await visitor.send({"t": "share"})
        await visitor.send({"t": "stop"})
    for frame in await visitor.sync():
        started += frame["t"] == "shared"
        if frame["t"] == "error":
            assert frame["code"] == "rate_limited" and frame["re"] == "share"
    assert started == hub_module.SHARE_BURST


# ---------------------------------------------------------------------------
# The secret key
# ---------------------------------------------------------------------------


def test_a_short_or_empty_secret_is_refused(tmp_path, monkeypatch):
    """An empty secret.key (another process still writing it, a full disk) or a
    short COBROWSE_SECRET_KEY was used as the HMAC key: anyone could sign
    resume tokens with an empty key."""
    from cobrowse.config import ConfigError
    from cobrowse.keys import ENV_VAR, load_or_create_secret

    monkeypatch.delenv(ENV_VAR, raising=False)
    (tmp_path / "secret.key").write_bytes(b"")
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        load_or_create_secret(tmp_path)
    monkeypatch.setenv(ENV_VAR, "c2hvcnQ")  # b"short"
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        load_or_create_secret(tmp_path)
    monkeypatch.setenv(ENV_VAR, "not base64 !")
    with pytest.raises(ConfigError, match="not base64"):
        load_or_create_secret(tmp_path)


def test_processes_starting_together_share_one_whole_secret(tmp_path, monkeypatch):
    """The file was created (O_EXCL) and then written: a second process could
    read it empty in between, and the loser of the race crashed (FileExistsError)."""
    import multiprocessing

    from cobrowse.keys import ENV_VAR, load_or_create_secret

    monkeypatch.delenv(ENV_VAR, raising=False)
    data = tmp_path / "data"
    with multiprocessing.get_context("fork").Pool(8) as pool:
        keys = pool.map(load_or_create_secret, [str(data)] * 32)
    assert len(set(keys)) == 1 and len(keys[0]) == 32
    assert load_or_create_secret(data) == keys[0]
    assert (data / "secret.key").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in data.iterdir()) == ["secret.key"]


# ---------------------------------------------------------------------------
# The console's login
# ---------------------------------------------------------------------------


async def test_only_wrong_passwords_count_towards_the_login_limit(start_app, start_proxy):
    """Every login attempt counted, right or wrong, per address: an office (or a
    TLS terminator) with more than ten agents logging in within ten minutes was
    locked out. Wrong guesses still are limited, also when sent in parallel."""
    import argon2

    from cobrowse.storage import accounts

    previous = accounts.set_password_hasher(argon2.PasswordHasher.from_parameters(argon2.profiles.CHEAPEST))
    try:
        service = await start_proxy(f"http://127.0.0.1:{await start_app(echo_app())}")
        console = f"http://127.0.0.1:{service.console_port}"
        for i in range(12):
            await accounts.create_user(service.db, f"limit-{i}", "correct horse battery")
        async with aiohttp.ClientSession() as http:
            async def login(username: str, password: str) -> int:
                async with http.post(f"{console}/api/login", json={"username": username, "password": password},
                                     headers={"Origin": console}) as response:
                    return response.status

            assert [await login(f"limit-{i}", "correct horse battery") for i in range(12)] == [200] * 12
            wrong = await asyncio.gather(*(login("limit-0", f"guess-{i}") for i in range(15)))
            assert sorted(wrong) == [401] * 10 + [429] * 5
            assert await login("limit-1", "correct horse battery") == 429  # the address is spent now

            async with http.post(f"{console}/api/login", json={"username": "limit-2", "password": "x" * 8},
                                 headers={"Origin": "http://evil.example"}) as response:
                assert response.status == 403
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(f"{console}/ws", headers={"Origin": "http://evil.example"})
            assert refused.value.status == 403
    finally:
        accounts.set_password_hasher(previous)


async def test_logging_out_voids_the_cookie_on_the_server(start_app, start_proxy):
    """A copy of a logged-out cookie (a shared machine, a stolen header) opens nothing:
    logout ends the login on the server, not only in the browser."""
    import argon2

    from cobrowse.storage import accounts

    previous = accounts.set_password_hasher(argon2.PasswordHasher.from_parameters(argon2.profiles.CHEAPEST))
    try:
        service = await start_proxy(f"http://127.0.0.1:{await start_app(echo_app())}")
        console = f"http://127.0.0.1:{service.console_port}"
        await accounts.create_user(service.db, "leaving", "correct horse battery")
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{console}/api/login", json={"username": "leaving",
                                                                "password": "correct horse battery"},
                                 headers={"Origin": console}) as response:
                assert response.status == 200
                cookie = f"__cobrowse_console={response.cookies['__cobrowse_console'].value}"

        async def me(cookie: str) -> int:
            async with aiohttp.ClientSession() as fresh:  # no cookie jar: only what is sent here
                async with fresh.get(f"{console}/api/me", headers={"Cookie": cookie}) as response:
                    return response.status

        assert await me(cookie) == 200
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{console}/api/logout", headers={"Cookie": cookie, "Origin": console}) as r:
                assert r.status == 200
        assert await me(cookie) == 401, "the copy kept after logout is void"
        async with aiohttp.ClientSession() as http:  # logging in again works at once
            async with http.post(f"{console}/api/login", json={"username": "leaving",
                                                                "password": "correct horse battery"},
                                 headers={"Origin": console}) as response:
                again = f"__cobrowse_console={response.cookies['__cobrowse_console'].value}"
        assert await me(again) == 200
    finally:
        accounts.set_password_hasher(previous)


async def test_connected_agents_logins_are_checked_together(start_app, start_proxy, monkeypatch):
    """Each agent socket checked its login on its own every minute: a database
    round trip of ~1 ms of the hub's time each, so 500 open consoles stalled
    every socket of the hub eight times a second. One query now checks every
    connected agent, and still closes the one whose account was disabled."""
    import argon2

    from cobrowse.storage import accounts

    monkeypatch.setattr(hub_module, "AUTH_RECHECK", 0.1)
    previous = accounts.set_password_hasher(argon2.PasswordHasher.from_parameters(argon2.profiles.CHEAPEST))
    try:
        service = await start_proxy(f"http://127.0.0.1:{await start_app(echo_app())}")
        console = f"http://127.0.0.1:{service.console_port}"
        names = ["kept-1", "kept-2", "disabled-1"]
        ids = {}
        for name in names:
            ids[name] = (await accounts.create_user(service.db, name, "correct horse battery")).id
        one_by_one, together = [], []
        by_id, by_ids = accounts.get_user_by_id, accounts.get_users_by_id

        async def counted_by_id(db, user_id):
            one_by_one.append(user_id)
            return await by_id(db, user_id)

        async def counted_by_ids(db, user_ids):
            user_ids = list(user_ids)
            together.append(sorted(user_ids))
            return await by_ids(db, user_ids)

        async with aiohttp.ClientSession() as http:
            sockets = {}
            for name in names:
                async with http.post(f"{console}/api/login", json={"username": name,
                                                                    "password": "correct horse battery"},
                                     headers={"Origin": console}) as response:
                    assert response.status == 200
                    cookie = f"__cobrowse_console={response.cookies['__cobrowse_console'].value}"
                ws = await http.ws_connect(f"{console}/ws", headers={"Origin": console, "Cookie": cookie})
                await ws.send_json({"t": "agent_hello", "v": 1})
                assert (await ws.receive_json(timeout=5))["t"] == "welcome"
                sockets[name] = ws
            monkeypatch.setattr(accounts, "get_user_by_id", counted_by_id)
            monkeypatch.setattr(accounts, "get_users_by_id", counted_by_ids)
            await accounts.set_disabled(service.db, "disabled-1")
            leaving = sockets["disabled-1"]
            error = await leaving.receive_json(timeout=5)
            assert error["t"] == "error" and error["code"] == "unauthorized"
            while (await leaving.receive(timeout=5)).type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                pass
            assert leaving.close_code == 1008
            assert together and together[0] == sorted(ids.values()), together
            assert one_by_one == []
            for name in ("kept-1", "kept-2"):  # their logins hold: still served
                await sockets[name].send_json({"t": "ping", "n": 7})
                assert await sockets[name].receive_json(timeout=5) == {"t": "pong", "n": 7}
                await sockets[name].close()
    finally:
        accounts.set_password_hasher(previous)
