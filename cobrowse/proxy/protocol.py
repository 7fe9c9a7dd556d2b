"""The visitor-facing side of the proxy: one protocol object per connection.

llhttp (through httptools) parses requests; each parsed request head becomes
an :class:`~cobrowse.proxy.exchange.Exchange`, answered strictly in order
(pipelined requests wait their turn). Requests under the reserved prefix go
to our own aiohttp app over an internal socket, everything else to the
site's upstream, and a request that asks to switch protocols (a websocket)
becomes a byte tunnel once the other side agrees.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import logging
import re
from collections.abc import Callable

import httptools

from ..config import Config, Site
from ..injector import Injector, RequestInfo, is_navigation, tag_attributes, upstream_accept_encoding
from . import splice
from .access_log import AccessLog, RequestRecord
from .errors import error_page
from .exchange import Exchange
from .nonces import NonceSource
from .headers import HOP_BY_HOP, ResponseHeaderMapper, Upstream, connection_tokens, strip_own_cookies
from .upstream import Target, UpstreamPool

log = logging.getLogger("cobrowse.proxy")

SWEEP_INTERVAL = 1.0  # seconds between timeout checks
_NO_TOKENS: frozenset[bytes] = frozenset()
# The body we relay is framed by these: a Connection header naming them must not
# drop them (the upstream would read the body as the next request: smuggling).
_FRAMING = frozenset({b"content-length"})
KEEPALIVE_TIMEOUT = 75.0  # idle seconds before an idle visitor connection (or a slow request head) is closed
MAX_HEADERS = 200
MAX_PIPELINED = 8
_EARLY_TUNNEL_LIMIT = 64 * 1024
# Request methods llhttp does not know (RFC 9110 9.1: a method is any token,
# case-sensitive) are passed on under a stand-in llhttp knows; the name is
# looked for in the first bytes of a message, up to this length.
_MAX_METHOD = 64
_METHOD_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_STAND_IN_METHOD = b"POST"  # frames its body by Content-Length or chunked, as any other method's
_LLHTTP_KNOWS: dict[bytes, bool] = {}


class Proxy:
    """What every connection shares: configuration, the injector and the upstream pool."""

    def __init__(self, config: Config, injector: Injector, internal_socket: str,
                 internal_server: Callable[[], asyncio.Protocol] | None = None) -> None:
        self.config = config
        self.injector = injector
        self.loop = asyncio.get_running_loop()
        options = config.proxy
        self.read_timeout = options.read_timeout
        # Activity is stamped with the sweep's clock, which lags by up to one
        # interval: allowing for that, nothing times out before read_timeout.
        self.read_timeout_lagged = options.read_timeout + SWEEP_INTERVAL
        self.connect_timeout = options.connect_timeout
        self.max_header_size = options.max_header_size
        self.max_body_size = options.max_body_size
        self.inject = options.inject
        self.websockets = options.websocket
        self.splice = options.splice and splice.AVAILABLE
        self.trust_forwarded = config.server.trust_forwarded
        self.prefix = config.server.prefix.encode()
        self.prefix_bare = self.prefix.rstrip(b"/")
        # Websockets under our prefix (the hub) are handed to our app in this
        # process instead of being tunnelled through its socket: one hop less
        # for every co-browse frame.
        self.internal_server = internal_server
        self.handoffs = 0  # connections handed to our app (for monitoring and tests)
        self.spliced = 0  # bodies whose rest the kernel relayed (for monitoring and tests)
        self.pool = UpstreamPool(options.pool_size, options.connect_timeout, ca_file=options.upstream_ca_file,
                                 tls_verify=options.upstream_tls_verify)
        self.access_log = AccessLog(config.server.access_log) if config.server.access_log else None
        self.nonces = NonceSource()
        # Timeouts are checked by one sweep a second instead of a timer per
        # request: cheaper on the hot path, and a second of slack is fine.
        self.clock = self.loop.time()
        self.active: set = set()  # exchanges waiting on an upstream
        self.connections: set[ClientProtocol] = set()
        self.draining = False  # shutting down: answer what has arrived, take nothing new
        self._drained: asyncio.Future | None = None  # done when the last connection has closed
        self._sweeper = self.loop.call_later(SWEEP_INTERVAL, self._sweep)
        self.internal = Target(key="internal", host="", port=0, tls=False, unix_path=internal_socket, internal=True)
        self._targets: dict[Site, Target] = {}
        self._by_host: dict[str, Target | None] = {}
        self._mappers: dict[tuple[str, str], ResponseHeaderMapper] = {}
        for site in config.sites:
            up = Upstream.parse(site.upstream)
            # A connection is pooled per origin and TLS name: one made for
            # another name's certificate must not serve this site.
            key = up.origin + (f" (TLS name {site.tls_server_name})" if site.tls_server_name else "")
            self._targets[site] = Target(key=key, host=up.host, port=up.port, tls=up.scheme == "https",
                                         host_header=b"" if site.pass_host_header else up.netloc.encode(),
                                         base_path=up.base_path.encode(), upstream=up,
                                         tag_attributes=tag_attributes(site.mask_selectors),
                                         server_name=site.tls_server_name or up.host)
        if any(target.tls for target in self._targets.values()):
            self.pool.prepare_tls()

    def target_for(self, path: bytes, host: str) -> Target | None:
        if path.startswith(self.prefix) or path == self.prefix_bare or path.startswith(self.prefix_bare + b"?"):
            return self.internal
        try:
            return self._by_host[host]
        except KeyError:
            pass
        site = self.config.site_for_host(host)
        target = self._targets[site] if site is not None else None
        if len(self._by_host) < 1024:  # bounded: Host headers come from anyone
            self._by_host[host] = target
        return target

    def header_mapper(self, target: Target, public_origin: str, public_host: str) -> ResponseHeaderMapper:
        key = (target.key, public_origin)
        mapper = self._mappers.get(key)
        if mapper is None:
            mapper = ResponseHeaderMapper(target.upstream, public_origin, public_host)
            if len(self._mappers) < 1024:
                self._mappers[key] = mapper
        return mapper

    def __call__(self) -> "ClientProtocol":
        return ClientProtocol(self)

    def _sweep(self) -> None:
        now = self.clock = self.loop.time()
        for exchange in list(self.active):
            exchange.check_timeout(now)
        for connection in list(self.connections):
            connection.check_idle(now)
        if self.access_log is not None:
            self.access_log.flush()
        self._sweeper = self.loop.call_later(SWEEP_INTERVAL, self._sweep)

    async def drain(self, timeout: float) -> int:
        """Let the requests in progress finish, for at most ``timeout`` seconds,
        then cut what is left; returns how many connections were cut.

        The listening socket is closed first (by the caller), so nothing new
        arrives but what visitors send on connections they have open: idle
        ones close now, busy ones once their answers are out (each answer
        that has not begun says ``Connection: close``), and tunnelled
        websockets now (browsers reconnect; they would otherwise hold every
        restart for the whole timeout). A rolling restart behind a load
        balancer then loses no response.
        """
        self.begin_drain()
        if self.connections and timeout > 0:
            busy = sum(1 for connection in self.connections if not connection.transport.is_closing())
            if busy:
                log.info("stopping: waiting up to %.3g s for %d connection(s) to finish their answers", timeout, busy)
            self._drained = self.loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._drained), timeout)
            except (TimeoutError, asyncio.TimeoutError):
                pass
            except asyncio.CancelledError:
                # Asked to stop again (a second SIGTERM or Ctrl-C): cut now.
                self._cut()
                raise
            finally:
                self._drained = None
        return self._cut()

    def begin_drain(self) -> None:
        """Take nothing new from here on (see drain); websocket handshakes for
        the hub are no longer handed to our app, which is stopping too."""
        if not self.draining:
            self.draining = True
            for connection in list(self.connections):
                connection.drain()

    def _cut(self) -> int:
        left = list(self.connections)
        if left:
            log.warning("stopping: cut %d connection(s) with answers still in progress", len(left))
        for connection in left:
            connection.abort()
        return len(left)

    def forget(self, connection: "ClientProtocol") -> None:
        self.connections.discard(connection)
        if self._drained is not None and not self.connections and not self._drained.done():
            self._drained.set_result(None)

    def close(self) -> None:
        self._sweeper.cancel()
        self.pool.close()
        for connection in list(self.connections):
            connection.transport.close()
        if self.access_log is not None:
            self.access_log.close()


class _Reject(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class ClientProtocol(asyncio.Protocol):
    __slots__ = ("proxy", "transport", "parser", "queue", "current", "url_parts", "headers", "head_size",
                 "paused", "http11", "tunnel_exchange", "early", "peer", "idle_since", "closed", "handoff", "eof",
                 "body_size", "writing_paused", "in_message", "method_hold", "extension_method")

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: collections.deque = collections.deque()
        self.current = None  # the exchange whose request body is arriving
        self.url_parts: list[bytes] | tuple = []
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_size = 0
        self.paused: set[str] = set()
        self.http11 = True
        self.tunnel_exchange: Exchange | None = None
        self.early: bytearray | None = None
        self.handoff: bytes | None = None  # request head to replay to our app after an upgrade
        self.eof = False  # the client will send nothing more
        self.peer = ""
        self.idle_since: float | None = proxy.clock  # None while a request is in progress
        self.closed = False
        self.body_size = 0  # bytes of the current request's body so far
        self.writing_paused = False  # our transport's buffer is over its high-water mark
        self.in_message = False  # llhttp is inside a request (from its first byte to its end)
        self.method_hold: bytes | None = None  # a request's first bytes, held until its method is whole
        self.extension_method: bytes | None = None  # the current request's method, when llhttp sees a stand-in

    # ----- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else "unix"
        self.proxy.connections.add(self)
        if self.proxy.draining:
            self.drain()

    def data_received(self, data: bytes) -> None:
        if self.tunnel_exchange is not None:
            self.tunnel_exchange.tunnel_to_upstream(data)
            return
        if self.early is not None:  # after an upgrade request, before the upstream's answer
            self.early += data
            if len(self.early) > _EARLY_TUNNEL_LIMIT:
                self.pause_reading("early")
            return
        if self.method_hold is not None or not (self.in_message or data.startswith(b"GET ")):
            data = self._stand_in_for_method(data)
            if data is None:
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            if self.handoff is not None:
                self._hand_off(self.handoff + data[upgrade.args[0]:])
                return
            self.early = bytearray(data[upgrade.args[0]:])
        except httptools.HttpParserCallbackError as exc:
            reason = exc.__context__
            if isinstance(reason, _Reject):
                self._reject(reason.status, reason.detail)
            else:
                log.exception("error while handling a request from %s", self.peer, exc_info=reason)
                self._reject(400, "the request could not be handled")
        except httptools.HttpParserError as exc:
            self._reject(400, f"malformed request: {exc}")

    def _stand_in_for_method(self, data: bytes) -> bytes | None:
        """A request begins in ``data``: if its method is a token llhttp does
        not know, the bytes for llhttp with a stand-in in its place (the real
        name goes upstream); None while the method is still incomplete.

        Only a request that begins a read is looked at. One pipelined behind
        another in the same read reaches llhttp as it is, which refuses an
        unknown method with 400: llhttp does not say where in a read a message
        ended. Browsers do not pipeline, and other clients rarely do.
        """
        if self.method_hold is not None:
            data, self.method_hold = self.method_hold + data, None
        line = data.lstrip(b"\r\n")  # llhttp skips empty lines before a request line
        space = line.find(b" ", 0, _MAX_METHOD + 1)
        if space < 0:
            if len(data) <= _MAX_METHOD and (not line or _METHOD_TOKEN.fullmatch(line)):
                self.method_hold = data  # (the keep-alive timeout bounds the wait)
                return None
            return data  # not a method: llhttp will say what is wrong
        method = line[:space]
        if not _METHOD_TOKEN.fullmatch(method) or _llhttp_knows(method):
            return data
        self.extension_method = method
        return _STAND_IN_METHOD + line[space:]

    def eof_received(self):
        # A half-closed client still gets its answers; then the connection closes.
        self.eof = True
        return bool(self.queue)

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.proxy.forget(self)
        self.parser = None  # it holds us (its callbacks): no cycle left for the collector
        for exchange in self.queue:
            exchange.client_lost()
        self.queue.clear()
        if self.tunnel_exchange is not None:
            tunnel, self.tunnel_exchange = self.tunnel_exchange, None
            tunnel.client_lost()

    def pause_writing(self) -> None:
        self.writing_paused = True
        if self.tunnel_exchange is not None:
            self.tunnel_exchange.client_pause_writing()
        elif self.queue:
            self.queue[0].client_pause_writing()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.tunnel_exchange is not None:
            self.tunnel_exchange.client_resume_writing()
        elif self.queue:
            self.queue[0].client_resume_writing()

    # ----- httptools callbacks ----------------------------------------------

    def on_message_begin(self) -> None:
        self.in_message = True
        self.url_parts = []
        self.headers = []
        self.head_size = 0
        self.body_size = 0

    def on_url(self, url: bytes) -> None:
        self.url_parts.append(url)
        self.head_size += len(url)
        if self.head_size > self.proxy.max_header_size:
            raise _Reject(414, "the request target is too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self.head_size += len(name) + len(value) + 4
        if self.head_size > self.proxy.max_header_size or len(self.headers) > MAX_HEADERS:
            raise _Reject(431, "the request headers are too large")

    def on_headers_complete(self) -> None:
        self.idle_since = None
        self.http11 = self.parser.get_http_version() != "1.0"
        exchange = self._exchange_for_request()
        self.url_parts = ()  # taken: an error before the next request line must not name this one
        # (a constant, not a new list: on_message_begin makes the next one)
        if (isinstance(exchange, Exchange) and exchange.upgrade and exchange.target.internal
                and self.proxy.internal_server is not None and not self.queue and not self.proxy.draining
                and self._hub_handshake(exchange)):
            self.handoff = exchange.head  # taken over in data_received, once llhttp stops at the upgrade
            return
        self.current = exchange
        self.queue.append(exchange)
        if len(self.queue) == 1:
            exchange.start()

    def on_body(self, body: bytes) -> None:
        current = self.current
        if current is not None and not current.finished:
            limit = self.proxy.max_body_size
            if limit and isinstance(current, Exchange) and current.request_chunked:
                # A Content-Length over the limit is refused up front; a chunked body
                # is counted as it comes.
                self.body_size += len(body)
                if self.body_size > limit:
                    log.info("a chunked request body from %s went over max_body_size", self.peer)
                    self._cut_short(current, 413, "request body too large")
                    return
            current.request_body(body)

    def _cut_short(self, exchange: Exchange, status: int, detail: str) -> None:
        """The request whose body is arriving will never be complete: answer now and close."""
        self.current = None
        self.pause_reading("rejected")
        if self.queue and self.queue[0] is exchange and not exchange.response_started:
            exchange._fail_before_response(status, detail)  # answers, then closes
        else:
            exchange.client_lost()  # pipelined behind others, or answered already: just cut it off
            self.abort()

    def on_message_complete(self) -> None:
        self.in_message = False
        current, self.current = self.current, None
        if current is not None and not current.finished:
            current.request_complete()
            # Exchanges are answered one at a time; a client pipelining more
            # than a few requests waits in the socket until we catch up.
            if len(self.queue) >= MAX_PIPELINED:
                self.pause_reading("exchange")

    def _hub_handshake(self, exchange: Exchange) -> bool:
        """Whether this is a well-formed websocket handshake for the hub, the only
        upgrade our app accepts. A handed-off connection is the app's for good: one
        it refused would stay open there, and later requests on it would reach the
        app without passing the proxy (unchecked X-Forwarded-* headers, site paths
        answered by us). Anything else takes the internal socket like any request.
        """
        if exchange.method != b"GET":
            return False
        target = exchange.head.split(b" ", 2)[1]
        if target.split(b"?", 1)[0] != self.proxy.prefix + b"ws":
            return False
        seen: dict[bytes, bytes] = {}
        for name, value in self.headers:
            lname = name.lower()
            if lname in (b"upgrade", b"sec-websocket-key", b"sec-websocket-version"):
                if lname in seen:
                    return False
                seen[lname] = value.strip()
        try:
            key = base64.b64decode(seen.get(b"sec-websocket-key", b""), validate=True)
        except ValueError:
            return False
        return (seen.get(b"upgrade", b"").lower() == b"websocket" and len(key) == 16
                and seen.get(b"sec-websocket-version") == b"13")

    # ----- building the exchange ----------------------------------------------

    def _exchange_for_request(self):
        proxy = self.proxy
        parser = self.parser
        method = parser.get_method()
        if self.extension_method is not None:
            method, self.extension_method = self.extension_method, None
        url = b"".join(self.url_parts) if len(self.url_parts) != 1 else self.url_parts[0]
        keep_alive = parser.should_keep_alive()

        host = b""
        hosts = 0
        content_length = None
        chunked = upgrade_value = None
        forwarded_proto = forwarded_host = None
        sec_fetch_dest = accept = accept_encoding = requested_with = expect = None
        connection_seen = False
        record = self._request_record(method, url, parser) if proxy.access_log is not None else None
        for name, value in self.headers:
            lname = name.lower()
            if lname == b"host":
                host = value
                hosts += 1
            elif lname == b"connection":
                connection_seen = True
            elif lname == b"content-length":
                content_length = value
            elif lname == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lname == b"upgrade":
                upgrade_value = value
            elif lname == b"sec-fetch-dest":
                sec_fetch_dest = value
            elif lname == b"accept":
                accept = value
            elif lname == b"accept-encoding":
                accept_encoding = value
            elif lname == b"x-requested-with":
                requested_with = value
            elif lname == b"expect":
                expect = value
            elif lname == b"x-forwarded-proto":
                forwarded_proto = value
            elif lname == b"x-forwarded-host":
                forwarded_host = value

        if not host and self.http11 and url[:1] == b"/":
            # RFC 9112 3.2: an HTTP/1.1 request without Host (or with an empty
            # one) is refused. Our CSP sources and mapped URLs would name no host.
            return _FixedResponse(self, error_page(400, "missing Host header", html=False), record=record)
        if url[:1] != b"/":
            if url.startswith((b"http://", b"https://")):  # absolute-form
                parsed = httptools.parse_url(url)
                host = parsed.host + (b":%d" % parsed.port if parsed.port else b"")
                url = (parsed.path or b"/") + (b"?" + parsed.query if parsed.query else b"")
            elif method == b"OPTIONS" and url == b"*":
                url = b"*"
            else:
                return _FixedResponse(self, error_page(400, "unsupported request target", html=False), record=record)

        if hosts > 1 or not _HOST.fullmatch(host):
            # RFC 9112 3.2: one Host, a valid one. It also becomes our public origin,
            # which goes into CSP sources and mapped URLs: no spaces, quotes or ";".
            return _FixedResponse(self, error_page(400, "invalid or repeated Host header", html=False), record=record)
        host_str = host.decode("latin-1")
        target = proxy.target_for(url, host_str)
        is_upgrade = upgrade_value is not None and parser.should_upgrade()
        has_body = bool(chunked) or (content_length is not None and content_length.strip() not in (b"0", b""))
        accepts_html = accept is not None and b"text/html" in accept
        if target is None:
            return _FixedResponse(self, error_page(421, f"no site is configured for host {host_str!r}",
                                                   html=accepts_html, keep_alive=keep_alive and not has_body),
                                  keep_alive=keep_alive and not has_body, record=record)
        if proxy.max_body_size and content_length is not None and content_length.strip().isdigit() \
                and int(content_length) > proxy.max_body_size:
            return _FixedResponse(self, error_page(413, "request body too large", html=accepts_html), record=record)
        if is_upgrade and not target.internal and not proxy.websockets:
            return _FixedResponse(self, error_page(400, "websocket proxying is disabled", html=False), record=record)

        if proxy.trust_forwarded:
            scheme = (forwarded_proto or b"").split(b",")[0].strip().decode("latin-1").lower()
            scheme = scheme if scheme in ("http", "https") else "http"
            public_host = (forwarded_host or b"").split(b",")[0].strip().decode("latin-1") or host_str
            if not _HOST.fullmatch(public_host.encode("latin-1")):
                return _FixedResponse(self, error_page(400, "invalid X-Forwarded-Host header", html=False),
                                      record=record)
        else:
            scheme, public_host = "http", host_str
        public_origin = f"{scheme}://{public_host}"

        request_info = None
        navigate = False
        if not target.internal and proxy.inject and _may_be_navigation(sec_fetch_dest, accept):
            info = RequestInfo(method.decode("latin-1"), _str(sec_fetch_dest), _str(accept),
                               _str(accept_encoding), _str(requested_with))
            if is_navigation(info):
                request_info = info
                navigate = True

        head = self._upstream_head(target, method, url, host, scheme, public_host, bool(chunked), connection_seen,
                                   upgrade_value if is_upgrade else None,
                                   upstream_accept_encoding(_str(accept_encoding)) if navigate else None)
        return Exchange(self, target, method, head, request_info, public_origin, public_host,
                        upgrade=is_upgrade, request_chunked=bool(chunked), has_body=has_body,
                        client_keep_alive=keep_alive,
                        awaiting_continue=has_body and expect is not None and b"100-continue" in expect.lower(),
                        record=record)

    def _request_record(self, method: bytes, url: bytes, parser) -> RequestRecord:
        """The request as the access log shows it: the visitor's address (the
        one a trusted terminator added last to X-Forwarded-For), the request
        line as it came, Referer and User-Agent."""
        address, referer, agent = self.peer.encode("latin-1"), None, None
        forwarded = []
        for name, value in self.headers:
            lname = name.lower()
            if lname == b"referer":
                referer = value
            elif lname == b"user-agent":
                agent = value
            elif lname == b"x-forwarded-for":
                forwarded.append(value)
        if forwarded and self.proxy.trust_forwarded:
            address = b",".join(forwarded).split(b",")[-1].strip() or address
        return RequestRecord(address, method, url, parser.get_http_version(), referer, agent)

    def _upstream_head(self, target: Target, method: bytes, url: bytes, host: bytes, scheme: str,
                       public_host: str, chunked: bool, connection_seen: bool, upgrade: bytes | None,
                       accept_encoding: str | None) -> bytes:
        proxy = self.proxy
        internal = target.internal
        named = connection_tokens(self.headers) - _FRAMING if connection_seen else _NO_TOKENS
        lines = [b"%b %b%b HTTP/1.1\r\nHost: %b\r\n" % (method, target.base_path, url,
                                                          host if internal else target.host_header
                                                          or public_host.encode("latin-1")
                                                          or target.upstream.netloc.encode())]
        prior_forwarded_for = None
        for name, value in self.headers:
            lname = name.lower()
            if lname in HOP_BY_HOP or lname in named or lname == b"host":
                continue
            if lname == b"x-forwarded-for":
                prior_forwarded_for = value
                continue
            if lname in (b"x-forwarded-proto", b"x-forwarded-host"):
                continue  # sent below as we determined them (from these only when trusted)
            if (lname.startswith(b"x-forwarded-") or lname == b"x-real-ip") and not proxy.trust_forwarded:
                continue  # X-Forwarded-Port/-Ssl/-Prefix...: only a trusted terminator may say these
            if lname == b"forwarded":
                if proxy.trust_forwarded and not internal:
                    lines.append(b"%b: %b\r\n" % (name, value))
                continue
            if accept_encoding is not None and lname == b"accept-encoding":
                continue
            if lname == b"cookie" and not internal and b"__cobrowse" in value:
                value = strip_own_cookies(value)
                if not value:
                    continue
            lines.append(b"%b: %b\r\n" % (name, value))
        if accept_encoding is not None:
            lines.append(b"Accept-Encoding: %b\r\n" % accept_encoding.encode())
        if chunked:
            lines.append(b"Transfer-Encoding: chunked\r\n")
        peer = self.peer.encode()
        if prior_forwarded_for and proxy.trust_forwarded:
            lines.append(b"X-Forwarded-For: %b, %b\r\n" % (prior_forwarded_for, peer))
        else:
            lines.append(b"X-Forwarded-For: %b\r\n" % peer)
        lines.append(b"X-Forwarded-Proto: %b\r\nX-Forwarded-Host: %b\r\n"
                     % (scheme.encode(), public_host.encode("latin-1")))
        if upgrade is not None:
            lines.append(b"Connection: Upgrade\r\nUpgrade: %b\r\n" % upgrade)
        lines.append(b"\r\n")
        return b"".join(lines)

    # ----- called by exchanges -------------------------------------------------

    def exchange_finished(self, exchange, keep_alive: bool) -> None:
        if self.queue and self.queue[0] is exchange:
            self.queue.popleft()
        if self.closed:
            return
        if not keep_alive or (self.eof and not self.queue) or (self.proxy.draining and not self.queue):
            self.transport.close()  # after what was written has gone out
            return
        if self.queue:
            self.queue[0].start()
        else:
            self.idle_since = self.proxy.clock
        self.resume_reading("exchange")

    def begin_tunnel(self, exchange: Exchange) -> None:
        self.tunnel_exchange = exchange
        if self.queue and self.queue[0] is exchange:
            self.queue.popleft()
        self.paused.clear()
        self.transport.resume_reading()
        if self.proxy.draining:  # upgraded as the proxy stops: closed like the tunnels before it
            self.transport.close()

    def drain(self) -> None:
        """The proxy is stopping: finish the answers to requests that have
        arrived, then close; close now if there are none."""
        if self.closed:
            return
        if self.tunnel_exchange is not None or (self.idle_since is not None and not self.queue):
            # (idle_since also covers a request head still arriving: not accepted
            # yet, so the client may send it again elsewhere.)
            self.transport.close()
            return
        # Otherwise the last answer to begin says Connection: close (see
        # Exchange._last_answer), and the connection closes after it.

    def _hand_off(self, data: bytes) -> None:
        """This connection now belongs to our aiohttp app, starting with ``data``."""
        self.closed = True  # for us: the new protocol owns the transport from here on
        self.proxy.forget(self)
        self.parser = None
        self.proxy.handoffs += 1
        handler = self.proxy.internal_server()
        transport = self.transport
        transport.set_protocol(handler)
        handler.connection_made(transport)
        handler.data_received(data)
        if self.paused:
            transport.resume_reading()

    def has_early_tunnel_data(self) -> bool:
        return bool(self.early)

    def take_early_tunnel_data(self) -> bytes:
        data = bytes(self.early or b"")
        self.early = bytearray() if self.early is not None else None
        self.resume_reading("early")
        return data

    def end_tunnel(self) -> None:
        self.tunnel_exchange = None
        if not self.closed:
            self.transport.close()

    def pause_reading(self, reason: str) -> None:
        if not self.paused and not self.closed:
            self.transport.pause_reading()
        self.paused.add(reason)

    def resume_reading(self, reason: str) -> None:
        if reason in self.paused:
            self.paused.discard(reason)
            if not self.paused and not self.closed:
                self.transport.resume_reading()

    def abort(self) -> None:
        if not self.closed:
            self.transport.abort()

    # ----- faults ----------------------------------------------------------------

    def _reject(self, status: int, detail: str) -> None:
        log.info("rejected a request from %s with %d: %s", self.peer, status, detail)
        current = self.current
        if isinstance(current, Exchange) and not current.finished and not current.request_done:
            # Malformed mid-body (a bad chunk): its upstream would wait for the rest
            # until the read timeout, holding a pooled connection.
            self._cut_short(current, status, detail)
            return
        record = self._refused_record() if self.proxy.access_log is not None else None
        if self.queue:
            # Answer in order: whatever is in flight finishes first, then the rejection, then close.
            self.queue.append(_FixedResponse(self, error_page(status, detail, html=False), record=record))
            self.pause_reading("rejected")
            return
        page = error_page(status, detail, html=False)
        if record is not None:
            self.proxy.access_log.record(record, status, len(page))
        self.transport.write(page)
        self.transport.close()

    def _refused_record(self) -> RequestRecord:
        """The access log's record of a request refused while its head was read."""
        method = url = version = None
        if self.parser is not None and self.url_parts:
            try:
                method, version = self.parser.get_method(), self.parser.get_http_version()
            except httptools.HttpParserError:
                pass
            url = b"".join(self.url_parts)
            if version == "0.0":  # the request line's end was not reached
                version = None
        return RequestRecord.refused(self.peer.encode("latin-1"), method, url, version)

    def check_idle(self, now: float) -> None:
        """Close a connection idle between requests (or stuck in a request head) for too long."""
        if self.idle_since is not None and now - self.idle_since > KEEPALIVE_TIMEOUT and not self.closed:
            self.transport.close()


class _FixedResponse:
    """A response we make ourselves (errors), queued like an exchange."""

    __slots__ = ("client", "payload", "keep_alive", "finished", "record")

    def __init__(self, client: ClientProtocol, payload: bytes, keep_alive: bool = False,
                 record: RequestRecord | None = None) -> None:
        self.client = client
        self.payload = payload
        self.keep_alive = keep_alive
        self.finished = False
        self.record = record

    def start(self) -> None:
        self.finished = True
        client = self.client
        if self.keep_alive and client.proxy.draining and len(client.queue) <= 1:
            # The proxy is stopping and this is the connection's last answer.
            self.keep_alive = False
            self.payload = self.payload.replace(b"\r\n", b"\r\nConnection: close\r\n", 1)
        if self.record is not None:
            client.proxy.access_log.record(self.record, int(self.payload[9:12]), len(self.payload))
        client.transport.write(self.payload)
        client.exchange_finished(self, keep_alive=self.keep_alive)

    def request_body(self, data: bytes) -> None:
        pass

    def request_complete(self) -> None:
        pass

    def client_lost(self) -> None:
        if not self.finished and self.record is not None:
            self.client.proxy.access_log.record(self.record, 499, 0)
        self.finished = True

    def client_pause_writing(self) -> None:
        pass

    def client_resume_writing(self) -> None:
        pass


# A host name (or IPv4 address) or a bracketed IPv6 address, with an optional port.
def _llhttp_knows(method: bytes) -> bool:
    """Whether llhttp parses requests with this method (its table differs
    between versions: asked once per name, remembered for a bounded number)."""
    known = _LLHTTP_KNOWS.get(method)
    if known is None:
        probe = httptools.HttpRequestParser(_NoCallbacks())
        try:
            probe.feed_data(method + b" / HTTP/1.1\r\nHost: x\r\n\r\n")
            known = True
        except httptools.HttpParserUpgrade:
            known = True  # CONNECT
        except httptools.HttpParserError:
            known = False  # unknown, or known only to RTSP ("DESCRIBE", "SETUP"...)
        if len(_LLHTTP_KNOWS) < 256:  # bounded: method names come from anyone
            _LLHTTP_KNOWS[method] = known
    return known


class _NoCallbacks:
    pass


_HOST = re.compile(rb"(?:[A-Za-z0-9._~-]*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def _may_be_navigation(sec_fetch_dest: bytes | None, accept: bytes | None) -> bool:
    """A cheap test on bytes that rules out most subresource requests; is_navigation decides."""
    if sec_fetch_dest is not None:
        return sec_fetch_dest.lower() in (b"document", b"iframe", b"frame")
    return accept is not None and b"text/html" in accept.lower()


def _str(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None
