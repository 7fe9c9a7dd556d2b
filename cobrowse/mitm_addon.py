"""mitmproxy addon: inject the co-browse script, for people who already run mitmproxy.

    mitmdump --mode reverse:https://shop.example.com -s cobrowse/mitm_addon.py

A thin shell over :mod:`cobrowse.injector`, the same code the cobrowse proxy
uses: the request hook narrows Accept-Encoding on navigations to what the
injector can decode, the response-headers hook asks the injector for a plan
and, if there is one, swaps the headers and streams the body through the
plan's rewriter. Our own endpoints (``/__cobrowse/...``) must still be
served by a cobrowse service; point ``cobrowse_service`` at it.

The file works from a checkout without installing cobrowse into mitmproxy's
environment: it puts its own parent directory on ``sys.path`` (the injector
needs nothing beyond the standard library, plus Brotli when pages are br-encoded).
"""

from __future__ import annotations

import os
import sys

try:
    from cobrowse.injector import Injector, InjectorSettings, RequestInfo, is_navigation, upstream_accept_encoding
except ImportError:  # running from a checkout inside mitmproxy's own environment
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from cobrowse.injector import Injector, InjectorSettings, RequestInfo, is_navigation, upstream_accept_encoding

from mitmproxy import ctx, http
from mitmproxy.net.http.url import hostport
from mitmproxy.proxy.mode_specs import ReverseMode

_REQUEST_INFO = "cobrowse_request_info"
_PUBLIC_HOST = "cobrowse_public_host"


def _inline_tag() -> bytes | None:
    """The built inline tag's script beside this file (static_dist/stub.js), if the bundle is built."""
    try:
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "static_dist", "stub.js"), "rb") as f:
            return f.read().strip()
    except OSError:
        return None


class CobrowseInjector:
    def __init__(self) -> None:
        self.injector = Injector(InjectorSettings(inline_tag=_inline_tag()))
        # Reverse mode rewrites Host to the upstream's before any hook sees the
        # request, but our CSP sources must name the host the visitor asked for.
        # So the addon turns keep_host_header on and itself puts the upstream's
        # Host (and TLS name) back, as mitmproxy would have, unless the user
        # asked to keep the visitor's Host.
        self.restore_upstream_host = False
        self._forcing_keep_host = False

    def load(self, loader) -> None:
        loader.add_option("cobrowse_prefix", str, "/__cobrowse/",
                          "Path prefix of the cobrowse endpoints the injected script loads from.")
        loader.add_option("cobrowse_recompress", bool, True,
                          "Re-encode injected pages with the upstream's Content-Encoding when the client accepts it.")
        loader.add_option("cobrowse_service", str, "",
                          "URL of a cobrowse service (e.g. http://127.0.0.1:8080) that answers requests under "
                          "the prefix; empty leaves them to the upstream.")

    def configure(self, updated) -> None:
        if "cobrowse_prefix" in updated or "cobrowse_recompress" in updated:
            prefix = ctx.options.cobrowse_prefix
            if not (prefix.startswith("/") and prefix.endswith("/")):
                raise ValueError("cobrowse_prefix must start and end with '/'")
            self.injector = Injector(InjectorSettings(prefix=prefix, recompress=ctx.options.cobrowse_recompress,
                                                      inline_tag=_inline_tag()))

        if "keep_host_header" in updated and not self._forcing_keep_host:
            self.restore_upstream_host = not ctx.options.keep_host_header
            if self.restore_upstream_host:
                self._forcing_keep_host = True
                try:
                    ctx.options.update(keep_host_header=True)
                finally:
                    self._forcing_keep_host = False

    def server_connect(self, data) -> None:
        # What reverse mode does when it rewrites Host: the upstream's own name in SNI.
        if self.restore_upstream_host and data.server.sni is None and data.server.address \
                and isinstance(data.client.proxy_mode, ReverseMode):
            data.server.sni = data.server.address[0]

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        request = flow.request
        # The host the visitor asked for: what our script's CSP sources must name.
        flow.metadata[_PUBLIC_HOST] = request.host_header or request.pretty_host
        # The upstream's Host goes back here, not in `request`: a streamed request
        # body (stream_large_bodies) has its head sent upstream right after this hook.
        if self.restore_upstream_host and isinstance(flow.client_conn.proxy_mode, ReverseMode) \
                and not self._for_service(request):
            request.host_header = hostport(request.scheme, request.host, request.port)

    @staticmethod
    def _for_service(request: http.Request) -> bool:
        return bool(ctx.options.cobrowse_service) and request.path.startswith(ctx.options.cobrowse_prefix)

    def request(self, flow: http.HTTPFlow) -> None:
        request = flow.request
        if self._for_service(request):
            from urllib.parse import urlsplit

            target = urlsplit(ctx.options.cobrowse_service)
            request.scheme = target.scheme or "http"
            request.host = target.hostname or "127.0.0.1"
            request.port = target.port or (443 if request.scheme == "https" else 80)
            return  # with the visitor's Host, as `cobrowse serve` passes it to our app
        info = RequestInfo.from_headers(request.method, request.headers.get)
        if is_navigation(info):
            flow.metadata[_REQUEST_INFO] = info
            request.headers["Accept-Encoding"] = upstream_accept_encoding(info.accept_encoding)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        info = flow.metadata.get(_REQUEST_INFO)
        response = flow.response
        if info is None or response is None:
            return
        scheme = "https" if flow.client_conn.tls_established else "http"
        origin = f"{scheme}://{flow.metadata.get(_PUBLIC_HOST) or flow.request.pretty_host}"
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.fields]
        plan = self.injector.plan_page(info, response.status_code, headers, origin)
        if plan is None:
            return
        # The upstream's own framing goes: the rewritten body is framed anew below
        # (a second "chunked" would be a second layer of chunking, RFC 9112 6.1).
        new_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in plan.headers
                       if k.lower() != "transfer-encoding"]
        if response.http_version == "HTTP/1.1":
            # Without a length, mitmproxy would end the body by closing the connection.
            new_headers.append((b"Transfer-Encoding", b"chunked"))
        response.headers = http.Headers(new_headers)
        rewriter = plan.body

        def stream(chunk: bytes) -> list[bytes]:
            # Never hand mitmproxy an empty chunk mid-stream: on chunked HTTP/1
            # that would end the response early (mitmproxy #1428).
            pieces = rewriter.feed(chunk) if chunk else rewriter.finish()
            return [bytes(piece) for piece in pieces if piece]  # mitmproxy wants bytes, not views

        response.stream = stream


addons = [CobrowseInjector()]
