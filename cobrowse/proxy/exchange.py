"""One request and its response, relayed between a visitor and an upstream.

An exchange is driven by callbacks, not a coroutine: the visitor's parser
hands it the request, the upstream connection hands it response bytes, and
it writes to the visitor as they come. That keeps the per-request cost to a
few Python calls, which is what lets one process approach nginx.

Framing toward the visitor is decided from the upstream's: a known length
passes through as Content-Length, anything we rewrite or do not know the
length of goes chunked (or close-delimited for HTTP/1.0 clients).
Backpressure runs both ways: a slow visitor pauses reading from the
upstream, a slow upstream pauses reading the visitor's request body.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import ssl
from typing import TYPE_CHECKING

import httptools

from ..injector import RequestInfo
from ..injector.codec import DecodeError
from .errors import error_page
from .headers import HOP_BY_HOP, connection_tokens
from . import splice as _splice
from .splice import MIN_LENGTH as _SPLICE_MIN, KernelRelay
from .upstream import Target, UpstreamProtocol

if TYPE_CHECKING:
    from .protocol import ClientProtocol

log = logging.getLogger("cobrowse.proxy")

_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
_PENDING_BODY_LIMIT = 256 * 1024  # request body buffered while connecting, before we pause the visitor

# Framing of the response toward the visitor.
_LENGTH, _CHUNKED, _UNTIL_CLOSE, _NONE = range(4)
# A response head waits for the first body chunk, to leave with it in one
# write, only when the whole body is no longer than this (one read's worth).
_COALESCE_LIMIT = 256 * 1024
_yield_cpu = getattr(os, "sched_yield", lambda: None)
# A body is looked at for the kernel relay once this much of it has passed
# (a response that ends sooner never pays for the look).
_SPLICE_CHECK = 128 * 1024
_CONTENT_LENGTH = re.compile(rb"\ncontent-length:[ \t]*(\d+)[ \t]*\r")
# The kernel relay's state.
_SPLICE_UNDECIDED, _SPLICE_NO, _SPLICE_ACTIVE = range(3)


class Exchange:
    __slots__ = (
        "client", "proxy", "target", "method", "head", "request_info", "navigation", "public_origin", "public_host",
        "upgrade", "request_chunked", "request_done", "pending_body", "pending_size", "conn", "parser",
        "reused", "response_started", "status", "reason", "up_headers", "up_length", "up_chunked",
        "framing", "plan", "out", "finished", "message_done", "tunnel", "last_activity",
        "client_paused_us", "connect_task", "client_keep_alive", "interim", "retried", "up_keep_alive",
        "up_connection",
        "awaiting_continue", "raw", "raw_head", "sent", "record", "body_seen", "splice_state", "kernel",
        "raw_response_head", "splice_length", "client_limits",
    )

    def __init__(self, client: "ClientProtocol", target: Target, method: bytes, head: bytes,
                 request_info: RequestInfo | None, public_origin: str, public_host: str,
                 upgrade: bool, request_chunked: bool, has_body: bool, client_keep_alive: bool,
                 awaiting_continue: bool = False, record=None) -> None:
        self.client = client
        self.proxy = client.proxy
        self.target = target
        self.method = method
        self.head = head  # the request head for the upstream, ready to send
        self.request_info = request_info  # set for navigations we may inject into
        self.navigation = request_info is not None
        self.public_origin = public_origin
        self.public_host = public_host
        self.upgrade = upgrade
        self.request_chunked = request_chunked
        self.request_done = not has_body
        self.pending_body: list[bytes] = []
        self.pending_size = 0
        self.conn: UpstreamProtocol | None = None
        self.parser = None
        self.reused = False
        self.response_started = False
        self.status = 0
        self.reason = b""
        self.up_headers: list[tuple[bytes, bytes]] = []
        self.up_length: int | None = None
        self.up_chunked = False
        self.framing = _NONE
        self.plan = None
        self.out: list[bytes] = []
        self.finished = False
        self.message_done = False
        self.tunnel = False
        self.last_activity = 0.0
        self.client_paused_us = False
        self.connect_task: asyncio.Task | None = None
        self.client_keep_alive = client_keep_alive
        self.interim = False
        self.retried = False
        self.up_keep_alive = False
        self.up_connection = False  # a Connection header names more than keep-alive
        self.awaiting_continue = awaiting_continue  # the visitor holds its body back until a 100 Continue
        # Raw relay: responses we never rewrite go to the visitor as the
        # upstream sent them (head lightly edited, body and its framing
        # verbatim), with llhttp only finding where each message ends. This
        # is most of a site's requests (assets, fetch/XHR), and it spares a
        # Python call per header and per body chunk.
        self.raw = (request_info is None and client.http11 and not upgrade and not awaiting_continue
                    and method != b"HEAD")
        self.raw_head: bytes | None = b""  # head bytes gathered so far; None once the head went out
        self.sent = 0  # bytes written to the visitor (for the access log)
        self.record = record  # the request, for the access log (None when there is none)
        self.body_seen = 0  # response body bytes received from the upstream
        # The kernel relay (splice.py) takes over the rest of a long identity body.
        self.splice_state = _SPLICE_UNDECIDED if self.proxy.splice and not target.internal and not target.tls \
            else _SPLICE_NO
        self.kernel: KernelRelay | None = None
        self.raw_response_head = b""  # the raw relay's final response head (for its Content-Length)
        self.splice_length = -1  # the body's length for the kernel relay, once looked up
        self.client_limits: tuple[int, int] | None = None  # the visitor's write-buffer limits, while changed

    # ----- starting -------------------------------------------------------

    def start(self) -> None:
        conn = self.proxy.pool.take_idle(self.target)
        if conn is not None:
            self._attach(conn, reused=True)
        else:
            self.connect_task = self.proxy.loop.create_task(self._connect())
        self.last_activity = self.proxy.clock
        self.proxy.active.add(self)

    async def _connect(self, fresh: bool = False) -> None:
        try:
            conn, new = await self.proxy.pool.acquire(self.target, fresh)
        except (TimeoutError, asyncio.TimeoutError):
            self._fail_before_response(504, f"connecting to the upstream timed out after {self.proxy.connect_timeout:g} s")
            return
        except ssl.SSLCertVerificationError as exc:
            # 18-21: self-signed, or an issuer not among the trusted CAs (OpenSSL's X509_V_ERR_*).
            hint = "; proxy.upstream_ca_file names a private CA to trust" if exc.verify_code in (18, 19, 20, 21) else ""
            log.warning("upstream %s: its TLS certificate could not be verified (%s)%s", self.target.key,
                        exc.verify_message or exc, hint)
            self._fail_before_response(502, "the upstream's TLS certificate could not be verified")
            return
        except OSError as exc:
            log.warning("cannot connect to upstream %s: %s", self.target.key, exc)
            self._fail_before_response(502, "the upstream refused the connection or could not be reached")
            return
        finally:
            self.connect_task = None
        if self.finished:  # the visitor left while we were connecting
            self.proxy.pool.release(conn, reusable=True)
            return
        self._attach(conn, reused=not new)

    def _attach(self, conn: UpstreamProtocol, reused: bool) -> None:
        self.conn = conn
        self.reused = reused
        conn.exchange = self
        conn.transport.write(self.head)  # first: the upstream starts work while we set up
        if self.client.writing_paused and not self.client_paused_us:
            # The visitor's buffer is still full of the answer before ours: the
            # transport will not say so again, only when it has drained.
            self.client_paused_us = True
            conn.transport.pause_reading()
        self.parser = httptools.HttpResponseParser(_RawCallbacks(self) if self.raw else self)
        if self.pending_body:
            conn.transport.writelines(self.pending_body)
            self.pending_body = []
            if self.pending_size > _PENDING_BODY_LIMIT:
                self.client.resume_reading("body")
            self.pending_size = 0
        if self.request_done and self.request_chunked:
            conn.transport.write(b"0\r\n\r\n")
        # What the visitor sent after an upgrade request waits for the upstream's
        # 101 (see _begin_tunnel): an upstream that refuses the upgrade would
        # read those bytes as a request of their own, one we never parsed.

    # ----- request body from the visitor ----------------------------------

    def request_body(self, data: bytes) -> None:
        self.last_activity = self.proxy.clock  # a slow upload is not a silent upstream
        if self.request_chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        if self.conn is not None:
            self.conn.transport.write(data)
        else:
            self.pending_body.append(data)
            self.pending_size += len(data)
            if self.pending_size > _PENDING_BODY_LIMIT and self.pending_size - len(data) <= _PENDING_BODY_LIMIT:
                self.client.pause_reading("body")

    def request_complete(self) -> None:
        self.request_done = True
        if self.request_chunked and self.conn is not None:
            self.conn.transport.write(b"0\r\n\r\n")

    # ----- response from the upstream --------------------------------------

    def upstream_data(self, data: bytes) -> None:
        self.last_activity = self.proxy.clock
        if self.tunnel:
            self.sent += len(data)
            self.client.transport.write(data)
            return
        if self.raw:
            self._raw_data(data)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._flush()
            self._begin_tunnel(data[upgrade.args[0]:])
            return
        except httptools.HttpParserCallbackError as exc:
            self._fail_during_response(f"could not relay the response: {exc.__context__!r}")
            return
        except httptools.HttpParserError as exc:
            self._fail_during_response(f"the upstream sent a malformed response: {exc}")
            return
        self._flush()
        if self.message_done:
            self._complete()
        elif self.body_seen >= _SPLICE_CHECK and self.splice_state == _SPLICE_UNDECIDED:
            self._try_splice()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.up_connection = False
        self.up_headers = []
        self.up_length = None
        self.up_chunked = False

    def on_status(self, reason: bytes) -> None:
        self.reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.up_headers.append((name, value))
        lname = name.lower()
        if lname == b"connection":
            # "keep-alive" names only a header that goes anyway: the mapping
            # need not collect the Connection tokens for that.
            if value.strip().lower() != b"keep-alive":
                self.up_connection = True
        elif lname == b"content-length":
            self.up_length = int(value) if value.strip().isdigit() else None
        elif lname == b"transfer-encoding":
            codings = value.lower()
            self.up_chunked = b"chunked" in codings
            if codings.replace(b"chunked", b"").replace(b"identity", b"").strip(b" \t,"):
                # A transfer coding (gzip...) nobody asked for: we drop TE from
                # requests. Re-framed for the visitor, its body would arrive
                # still coded with nothing to say so (and our tag inside it).
                raise _RelayError(f"the upstream used a transfer coding it was not offered: {value!r}")

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            # Interim responses (100 Continue, 103 Early Hints) go on to the visitor as they are.
            self.interim = True
            if status == 100:
                self.awaiting_continue = False
            if self.client.http11:
                self.out.append(b"HTTP/1.1 %d %b\r\n%b\r\n" % (status, self.reason, _join(self._mapped_headers())))
            return
        self.interim = False
        self.status = status
        self.response_started = True
        # Read now: llhttp forgets the connection's keep-alive state once the message completes.
        self.up_keep_alive = self.parser.should_keep_alive()
        headers = self._mapped_headers()
        no_body = self.method == b"HEAD" or status in (204, 304) or status == 101
        if self.navigation and not no_body:
            headers = self._plan_injection(status, headers)
        if status == 101:
            framing = _NONE
        elif no_body:
            framing = _NONE
            if self.up_length is not None and self.plan is None:
                headers.append((b"Content-Length", b"%d" % self.up_length))
        elif self.plan is None and self.up_length is not None:
            framing = _LENGTH
            headers.append((b"Content-Length", b"%d" % self.up_length))
        elif self.client.http11:
            framing = _CHUNKED
            headers.append((b"Transfer-Encoding", b"chunked"))
        else:
            framing = _UNTIL_CLOSE
            self.client_keep_alive = False
        self.framing = framing
        if self.awaiting_continue and not self.request_done:
            # A final answer instead of 100 Continue: the visitor will not send
            # its body, so its next bytes must not be read as that body.
            self.client_keep_alive = False
        if status == 101:
            headers.append((b"Connection", b"Upgrade"))
            for name, value in self.up_headers:
                if name.lower() == b"upgrade":
                    headers.append((name, value))
        elif not self.client_keep_alive or (self.upgrade and status != 101) or (
                self.proxy.draining and self._last_answer()):
            self.client_keep_alive = False
            headers.append((b"Connection", b"close"))
        elif not self.client.http11:
            headers.append((b"Connection", b"keep-alive"))
        self.out.append(b"HTTP/1.1 %d %b\r\n%b\r\n" % (status, self.reason, _join(headers)))
        if framing != _NONE and (self.up_length is None or self.up_length > _COALESCE_LIMIT):
            # A body longer than one read (or of unknown length) goes out in
            # many writes anyway: the head leaves now, not after the first body
            # chunk has been decoded and scanned for the insertion point...
            self._flush()
            # ...and its reader gets to run now. When that is a process on this
            # host (a TLS terminator, a local client), our write has just queued
            # it on our CPU, where it would wait while we relay the body, a
            # millisecond or more (docs/benchmarks.md). One system call per long page.
            _yield_cpu()
        if self.method == b"HEAD":
            # The parser cannot be told this answers a HEAD, so it would wait for
            # a body that never comes: the message ends here, and the
            # connection is not reused.
            self.conn.reusable = False
            self.message_done = True

    def on_body(self, body: bytes) -> None:
        if self.message_done:
            return
        self.body_seen += len(body)
        plan = self.plan
        if plan is not None:
            try:
                self._out_pieces(list(plan.body.feed(body)))
            except DecodeError as exc:
                raise _RelayError(str(exc)) from None
        else:
            self._out_body(body)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        if self.message_done:
            return
        if self.plan is not None:
            try:
                self._out_pieces(list(self.plan.body.finish()))
            except DecodeError as exc:
                raise _RelayError(str(exc)) from None
        if self.framing == _CHUNKED:
            self.out.append(b"0\r\n\r\n")
        self.message_done = True

    def _out_body(self, data: bytes) -> None:
        if self.framing == _CHUNKED:
            self.out.append(b"%x\r\n" % len(data))
            self.out.append(data)
            self.out.append(b"\r\n")
        else:
            self.out.append(data)

    def _out_pieces(self, pieces: list) -> None:
        """Rewritten body pieces (bytes or views), as one chunk when chunked."""
        if not pieces:
            return
        if len(pieces) == 1:
            self._out_body(pieces[0])
        elif self.framing == _CHUNKED:
            self.out.append(b"%x\r\n" % sum(map(len, pieces)))
            self.out.extend(pieces)
            self.out.append(b"\r\n")
        else:
            self.out.extend(pieces)

    def _mapped_headers(self) -> list[tuple[bytes, bytes]]:
        if self.target.internal:
            named = connection_tokens(self.up_headers) if self.up_connection else frozenset()
            return [(n, v) for n, v in self.up_headers
                    if n.lower() not in HOP_BY_HOP and n.lower() not in named and n.lower() != b"content-length"]
        mapper = self.proxy.header_mapper(self.target, self.public_origin, self.public_host)
        return mapper.map(self.up_headers, self.up_connection)

    def _plan_injection(self, status: int, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        # Cheap check on bytes first: most navigations answered with HTML are
        # worth decoding the headers for, the rest are not.
        for name, value in headers:
            if name.lower() == b"content-type":
                media = value.split(b";", 1)[0].strip().lower()
                if media not in (b"text/html", b"application/xhtml+xml"):
                    return headers
                break
        else:
            return headers
        str_headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers]
        plan = self.proxy.injector.plan_page(self.request_info, status, str_headers, self.public_origin,
                                             nonce=self.proxy.nonces(), attributes=self.target.tag_attributes)
        if plan is None:
            return headers
        self.plan = plan
        return [(n.encode("latin-1"), v.encode("latin-1")) for n, v in plan.headers]

    def _flush(self) -> None:
        out = self.out
        if out:
            # One write, one segment: small pieces are joined, large ones go out as a vector.
            if len(out) == 1:
                self.sent += len(out[0])
                self.client.transport.write(out[0])
            else:
                size = sum(map(len, out))
                self.sent += size
                if size <= 65536:
                    self.client.transport.write(b"".join(out))
                else:
                    self.client.transport.writelines(out)
            self.out = []

    def _complete(self) -> None:
        """The whole response went out: return the connection, let the visitor go on."""
        if self.finished:
            return
        self.finished = True
        if self.record is not None:
            self._log_access(self.status)
        self._deactivate()
        conn = self.conn
        if conn is not None:
            self.conn = None
            if self.client_paused_us:
                conn.transport.resume_reading()
            reusable = self.request_done and not self.upgrade and self.up_keep_alive
            self.proxy.pool.release(conn, reusable)
        self.client.exchange_finished(self, keep_alive=self.client_keep_alive)

    # ----- kernel relay -----------------------------------------------------

    def _body_length(self) -> int | None:
        """The upstream body's length, when it is given and the body goes on unchanged."""
        if self.raw:
            low = self.raw_response_head.lower()
            match = _CONTENT_LENGTH.search(low)
            if match is None or b"\ntransfer-encoding:" in low:
                return None
            return int(match.group(1))
        if self.up_chunked or self.up_length is None or self.framing == _NONE:
            return None
        return self.up_length

    def _try_splice(self) -> None:
        """Hand the rest of the body to a KernelRelay, if it is long and ours to pass on as it is."""
        if self.splice_length < 0:
            length = self._body_length()
            if length is None or self.tunnel or self.upgrade:
                self._no_splice()
                return
            self.splice_length = length
        if self.splice_length - self.body_seen < _SPLICE_MIN:
            self._no_splice()
            return
        plan = self.plan
        if plan is not None and not plan.body.passing_through:
            if not plan.body.may_pass_through:
                self._no_splice()
            return  # still looking for the insertion point: ask again with the next chunk
        client, conn = self.client.transport, self.conn
        if not self.request_done or conn is None or _splice.active >= _splice.MAX_RELAYS:
            return  # (all relays busy: ask again with the next chunk)
        if self.client_paused_us or client.get_write_buffer_size() or self.out:
            # What we wrote must leave first. A visitor slower than the upstream
            # rarely empties the buffer between two chunks: from now on the
            # pause it causes lasts until the buffer is empty, and
            # client_resume_writing asks again then.
            if self.client_limits is None:
                self.client_limits = client.get_write_buffer_limits()
                client.set_write_buffer_limits(high=self.client_limits[1], low=0)
            return
        self._restore_client_limits()
        source, sink = conn.transport.get_extra_info("socket"), client.get_extra_info("socket")
        if source is None or sink is None or client.get_extra_info("sslcontext") is not None:
            # (A visitor's connection over TLS carries records, not the body's bytes:
            # `serve` has no TLS listener today, but a listener may come.)
            self._no_splice()
            return
        remaining = self.splice_length - self.body_seen
        prefix = b"%x\r\n" % remaining if self.framing == _CHUNKED and not self.raw else b""
        conn.transport.pause_reading()
        try:
            relay = KernelRelay(self.proxy.loop, source.fileno(), sink.fileno(), remaining, prefix,
                                self._spliced, self._splice_progress)
        except OSError as exc:  # out of descriptors, say: Python carries on
            log.warning("could not start a kernel relay: %s", exc)
            conn.transport.resume_reading()
            self._no_splice()
            return
        self.splice_state = _SPLICE_ACTIVE
        self.kernel = relay
        if not relay.start():
            self.kernel = None
            self._no_splice()
            conn.transport.resume_reading()

    def _no_splice(self) -> None:
        self.splice_state = _SPLICE_NO
        self._restore_client_limits()

    def _restore_client_limits(self) -> None:
        limits, self.client_limits = self.client_limits, None
        if limits is not None and not self.client.closed:
            self.client.transport.set_write_buffer_limits(high=limits[1], low=limits[0])

    def _splice_progress(self) -> None:
        self.last_activity = self.proxy.clock

    def _spliced(self, error: str | None, side: str | None) -> None:
        relay, self.kernel = self.kernel, None
        if relay is not None:
            self.sent += relay.sent
        if self.finished:
            return
        if error is None:
            if self.conn is not None:
                if relay.extra:
                    log.warning("upstream %s sent more than the Content-Length it gave: its connection "
                                "is not reused", self.target.key)
                    self.conn.reusable = False
                self.conn.transport.resume_reading()  # back to the pool, where it must see a close
            if self.framing == _CHUNKED and not self.raw:
                self.out.append(b"\r\n")
                if self.plan is not None:
                    self._out_pieces(list(self.plan.body.finish()))
                self.out.append(b"0\r\n\r\n")
            self.message_done = True
            self.proxy.spliced += 1
            self._flush()
            self._complete()
        elif side == "visitor":
            self.client_lost()
            self.client.abort()
        else:
            self._fail_during_response(error)

    # ----- raw relay --------------------------------------------------------

    def _raw_data(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail_during_response(f"the upstream sent a malformed response: {exc}")
            return
        if self.raw_head is None:
            if self.framing == _CHUNKED:
                size = b"%x\r\n" % len(data)
                self.sent += len(size) + len(data) + 2
                self.client.transport.writelines((size, data, b"\r\n"))
            else:
                self.sent += len(data)
                self.client.transport.write(data)
            self.body_seen += len(data)
        else:
            buffered = self.raw_head + data if self.raw_head else data
            while True:
                end = buffered.find(b"\r\n\r\n")
                if end < 0:
                    if len(buffered) > _MAX_RAW_HEAD:
                        self._fail_during_response("the upstream's response head is too large")
                        return
                    self.raw_head = buffered
                    break
                head, buffered = buffered[:end + 4], buffered[end + 4:]
                interim = head[9:10] == b"1" and head[9:12] != b"101"
                self.out.append(self._raw_response_head(head, interim))
                if not interim:
                    self.raw_head = None
                    self.raw_response_head = head
                    if buffered:
                        self.body_seen = len(buffered)
                        self._out_body(buffered)
                    break
            self._flush()
        if self.message_done:
            self._complete()
        elif self.body_seen >= _SPLICE_CHECK and self.splice_state == _SPLICE_UNDECIDED:
            self._try_splice()

    def _raw_response_head(self, head: bytes, interim: bool) -> bytes:
        """The upstream's head as the visitor gets it: hop-by-hop lines out, framing kept."""
        low = head.lower()
        if _NEEDS_MAPPING.search(low) is not None:
            return self._raw_mapped_head(head, interim)
        for marker in (b"\nconnection:", b"\nkeep-alive:"):
            start = low.find(marker)
            while start >= 0:
                stop = low.find(b"\r\n", start + 1)
                if marker == b"\nconnection:" and not _only_keep_alive_tokens(low[start + 12:stop]):
                    return self._raw_mapped_head(head, interim)
                head, low = head[:start + 1] + head[stop + 2:], low[:start + 1] + low[stop + 2:]
                start = low.find(marker)
        if not interim:
            head = head[:-2] + self._raw_framing(low) + b"\r\n"
        return head

    def _raw_framing(self, low: bytes) -> bytes:
        """Header lines the visitor needs beyond the upstream's own framing.

        The upstream's Content-Length or chunked framing passes through as it
        is; a body the upstream ends by closing goes to the visitor chunked,
        so the visitor's connection stays open.
        """
        extra = b""
        if self.status not in (204, 304) and b"\ncontent-length:" not in low \
                and b"\ntransfer-encoding:" not in low:
            self.framing = _CHUNKED
            extra = b"Transfer-Encoding: chunked\r\n"
        if not self.client_keep_alive or (self.proxy.draining and self._last_answer()):
            self.client_keep_alive = False
            extra += b"Connection: close\r\n"
        return extra

    def _last_answer(self) -> bool:
        """While the proxy stops: whether this is the last answer queued on its
        connection. It says Connection: close, and the connection closes after
        it (requests pipelined later are for the client to send again)."""
        return len(self.client.queue) <= 1

    def _raw_mapped_head(self, head: bytes, interim: bool) -> bytes:
        # The rare head that names the upstream (Location, Set-Cookie...) or
        # declares extra hop-by-hop headers: parse it and map it properly.
        lines = head[:-4].split(b"\r\n")
        status_line, pairs = lines[0], []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            pairs.append((name.strip(), value.strip()))
        self.up_headers = pairs
        self.up_connection = any(n.lower() == b"connection" for n, _ in pairs)
        framing = [(n, v) for n, v in pairs if n.lower() in (b"content-length", b"transfer-encoding")]
        headers = self._mapped_headers() + framing
        extra = self._raw_framing(head.lower()) if not interim else b""
        return status_line + b"\r\n" + _join(headers) + extra + b"\r\n"

    # ----- websockets and other upgrades ----------------------------------

    def _begin_tunnel(self, upstream_rest: bytes) -> None:
        if self.status != 101:
            self._fail_during_response("the upstream switched protocols without being asked")
            return
        self.tunnel = True
        self._deactivate()  # a tunnel may be quiet for as long as it likes
        if upstream_rest:
            self.sent += len(upstream_rest)
            self.client.transport.write(upstream_rest)
        self.client.begin_tunnel(self)
        if self.conn is not None and self.client.has_early_tunnel_data():
            self.conn.transport.write(self.client.take_early_tunnel_data())

    def tunnel_to_upstream(self, data: bytes) -> None:
        if self.conn is not None:
            self.conn.transport.write(data)

    # ----- flow control ----------------------------------------------------

    def client_pause_writing(self) -> None:
        if self.conn is not None and not self.client_paused_us:
            self.client_paused_us = True
            self.conn.transport.pause_reading()

    def client_resume_writing(self) -> None:
        if self.conn is not None and self.client_paused_us:
            self.client_paused_us = False
            self.last_activity = self.proxy.clock
            if self.client_limits is not None and self.splice_state == _SPLICE_UNDECIDED:
                # The buffer is empty now (see _try_splice). Not from inside the
                # transport's callback: a relay failing at once would abort the
                # transport in the middle of its own write handling.
                self.proxy.loop.call_soon(self._splice_after_drain)
                return
            self.conn.transport.resume_reading()

    def _splice_after_drain(self) -> None:
        if self.finished or self.conn is None or self.client_paused_us:
            return
        self._try_splice()
        if self.splice_state != _SPLICE_ACTIVE and not self.finished and self.conn is not None:
            self.conn.transport.resume_reading()

    def upstream_pause_writing(self) -> None:
        self.client.pause_reading("upstream")

    def upstream_resume_writing(self) -> None:
        self.client.resume_reading("upstream")

    # ----- timeouts and faults ---------------------------------------------

    def check_timeout(self, now: float) -> None:
        """Called by the proxy's sweep about once a second."""
        if self.finished or self.tunnel or self.client_paused_us or (self.kernel is not None
                                                                     and self.kernel.waiting_on_sink):
            return  # a slow visitor is not the upstream's fault
        if now - self.last_activity < self.proxy.read_timeout_lagged:
            return
        if self.response_started:
            self._fail_during_response(f"the upstream stalled for {self.proxy.read_timeout:g} s mid-response")
        else:
            self._fail_before_response(504, f"the upstream did not answer within {self.proxy.read_timeout:g} s")

    def upstream_lost(self, exc: BaseException | None) -> None:
        if self.finished:
            return
        self._drop_conn()  # its place in the pool is free again
        if self.kernel is not None:
            return  # the relay reads its own copy of the socket: it ends the body, or says it was cut
        if self.tunnel:
            self.finished = True
            if self.record is not None:
                self._log_access(101)
            self.client.end_tunnel()
            return
        if self.raw:
            close_delimited = self.raw_head is None and self.framing == _CHUNKED
        else:
            close_delimited = self.up_length is None and not self.up_chunked
        if self.response_started and close_delimited:
            # A body delimited by the upstream closing (whatever our framing
            # toward the visitor): this close is its end.
            if self.raw:
                self.sent += 5
                self.client.transport.write(b"0\r\n\r\n")
                self._complete()
                return
            try:
                self.on_message_complete()
            except _RelayError as error:
                self._fail_during_response(str(error))
                return
            self._flush()
            self._complete()
            return
        if not self.response_started and self.reused and not self.retried and self.method in _IDEMPOTENT \
                and self.request_done and self.pending_size == 0:
            # A pooled connection the upstream had just closed: try once more,
            # on a new connection (the other pooled ones may be just as stale).
            self.retried = True
            self.connect_task = self.proxy.loop.create_task(self._connect(fresh=True))
            return
        if self.response_started:
            self._fail_during_response(f"the upstream closed the connection mid-response ({exc!r})")
        else:
            self._fail_before_response(502, "the upstream closed the connection without answering")

    def _log_access(self, status: int) -> None:
        record, self.record = self.record, None
        self.proxy.access_log.record(record, status, self.sent)

    def _fail_before_response(self, status: int, detail: str) -> None:
        if self.finished:
            return
        log.warning("%s %s -> %d: %s", self.method.decode("latin-1"), self.target.key, status, detail)
        self.finished = True
        self._deactivate()
        self._drop_conn()
        keep_alive = self.client_keep_alive and self.request_done and not (
            self.proxy.draining and self._last_answer())
        page = error_page(status, detail, html=self.navigation, keep_alive=keep_alive)
        self.sent += len(page)
        if self.record is not None:
            self._log_access(status)
        self.client.transport.write(page)
        self.client.exchange_finished(self, keep_alive=keep_alive)

    def _fail_during_response(self, detail: str) -> None:
        if self.finished:
            return
        self._stop_kernel()  # first: what it sent goes into the access log
        log.warning("%s %s broke off mid-response: %s", self.method.decode("latin-1"), self.target.key, detail)
        self.finished = True
        self._deactivate()
        self._drop_conn()
        if not self.response_started:
            page = error_page(502, detail, html=self.navigation, keep_alive=False)
            self.sent += len(page)
            if self.record is not None:
                self._log_access(502)
            self.client.transport.write(page)
            self.client.exchange_finished(self, keep_alive=False)
            return
        if self.record is not None:
            self._log_access(self.status)  # what the visitor was told, before the cut
        # The head is out: cutting the connection is the only honest signal left.
        self.out = []
        self.client.abort()

    def client_lost(self) -> None:
        """The visitor went away; stop working for them."""
        if self.finished:
            return
        self._stop_kernel()  # first: what it sent goes into the access log
        if not self.tunnel:  # closing a tunnel is how it ends, not a fault
            log.info("the visitor left before the answer to %s %s was complete%s", self.method.decode("latin-1"),
                     self.target.key, " (mid-response)" if self.response_started else "")
        if self.record is not None:
            self._log_access(self.status if self.response_started else 499)
        self.finished = True
        self._deactivate()
        if self.connect_task is not None:
            self.connect_task.cancel()
        self._drop_conn()

    def _drop_conn(self) -> None:
        conn = self.conn
        if conn is not None:
            self.conn = None
            conn.exchange = None
            self.proxy.pool.release(conn, reusable=False)

    def _stop_kernel(self) -> None:
        """End a kernel relay this exchange gives up on, counting what it sent."""
        relay, self.kernel = self.kernel, None
        if relay is not None:
            self.sent += relay.sent
            relay.stop()

    def _deactivate(self) -> None:
        self.proxy.active.discard(self)
        if self.kernel is not None:
            self._stop_kernel()
        if self.client_limits is not None:
            self._restore_client_limits()
        # The parser holds our callbacks, and so us: a cycle only the garbage
        # collector would free, with the page plan and everything else we
        # hold. Broken here, an exchange goes the moment it is done, and the
        # collector is not set off by hundreds of dead exchanges a second.
        self.parser = None


class _RawCallbacks:
    """Parser callbacks of a raw relay: only where the head and the message end.

    Without on_header/on_body, llhttp frames the message without calling
    into Python for each header or body chunk.
    """

    __slots__ = ("exchange",)

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange

    def on_headers_complete(self) -> None:
        exchange = self.exchange
        status = exchange.parser.get_status_code()
        if 100 <= status < 200:
            exchange.interim = True
            return
        exchange.interim = False
        exchange.status = status
        exchange.response_started = True
        exchange.up_keep_alive = exchange.parser.should_keep_alive()

    def on_message_complete(self) -> None:
        exchange = self.exchange
        if exchange.interim:
            exchange.interim = False
            return
        exchange.message_done = True


_MAX_RAW_HEAD = 64 * 1024
# Response headers that name the upstream or declare more hop-by-hop headers.
# (One regex search: a generator over the names cost a sixth of an asset's relay.)
_NEEDS_MAPPING = re.compile(rb"\n(?:location:|content-location:|set-cookie:|refresh:|proxy-|trailer:|upgrade:|te:)")


def _only_keep_alive_tokens(value: bytes) -> bool:
    value = value.strip()
    if value == b"keep-alive" or value == b"close":  # what servers send
        return True
    return all(t.strip() in (b"keep-alive", b"close", b"") for t in value.split(b","))


class _RelayError(Exception):
    """Raised inside parser callbacks; surfaces as HttpParserCallbackError."""


def _join(headers: list[tuple[bytes, bytes]]) -> bytes:
    """Header lines, each ending in CRLF (joined in C: no Python call per header)."""
    return b"\r\n".join(map(b": ".join, headers)) + b"\r\n" if headers else b""
