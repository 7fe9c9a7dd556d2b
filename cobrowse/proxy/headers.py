"""Request and response header rules of the reverse proxy (pure functions).

Hop-by-hop headers describe one connection and never cross the proxy; the
X-Forwarded-* headers tell the upstream who really asked; Location, Refresh
and Set-Cookie name the upstream's host, which the visitor never sees, so
they are mapped back to the public origin.

Headers are ``(name, value)`` byte pairs as the parser delivers them: most
pass through without ever being decoded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

ByteHeaders = list[tuple[bytes, bytes]]

# What urlsplit drops from a URL before reading it (WHATWG: tabs and newlines
# anywhere, C0 controls and spaces at the ends).
_URL_NOISE = re.compile(r"[\t\r\n]|^[\x00-\x20]|[\x00-\x20]$")

# Refresh: a delay, then ";" or "," or whitespace, then an optional "url=", then the URL.
_REFRESH = re.compile(r"(\s*[0-9.]+\s*)([;,]?\s*)((?i:url)\s*=\s*)?(.*)", re.S)

# RFC 9110 section 7.6.1, plus the legacy ones proxies still see.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"proxy-connection",
    b"te", b"trailer", b"transfer-encoding", b"upgrade",
})

# Our own cookies (console sessions) are scoped to the reserved prefix and so
# never sent with site requests; cookies with this name prefix are stripped all the same.
OWN_COOKIE_PREFIX = "__cobrowse"
_OWN_COOKIE_PREFIX_BYTES = OWN_COOKIE_PREFIX.encode()


@dataclass(frozen=True, slots=True)
class Upstream:
    """A parsed upstream base URL: ``scheme://host[:port][/base]``."""

    url: str
    scheme: str
    host: str  # hostname only
    port: int
    netloc: str  # host[:port] as it goes into the Host header
    origin: str  # scheme://netloc
    base_path: str  # "" or "/base" (no trailing slash)

    @classmethod
    def parse(cls, url: str) -> "Upstream":
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(url, parts.scheme, parts.hostname or "", port, parts.netloc, f"{parts.scheme}://{parts.netloc}",
                   parts.path.rstrip("/"))


def connection_tokens(headers: ByteHeaders) -> frozenset[bytes]:
    """Header names a Connection header declares hop-by-hop."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return frozenset(tokens)


def forwarded_client(forwarded: str | None, fallback: str, trusted: bool) -> str:
    """The visitor's address, for a request our proxy passed on: it put the
    address it saw last in X-Forwarded-For. Behind a trusted TLS terminator
    that is the terminator, and the visitor is the address the terminator
    added before it. ``fallback`` when there is no header at all."""
    if not forwarded:
        return fallback
    hops = forwarded.split(",")
    return (hops[-2] if trusted and len(hops) > 1 else hops[-1]).strip()


def strip_own_cookies(cookie_header: bytes) -> bytes:
    kept = [c for c in cookie_header.split(b";") if not c.strip().startswith(_OWN_COOKIE_PREFIX_BYTES)]
    return b";".join(kept).strip()


class ResponseHeaderMapper:
    """Maps an upstream's absolute URLs and cookies to what the visitor should see."""

    __slots__ = ("upstream", "public_origin", "public_host", "public_is_https")

    def __init__(self, upstream: Upstream, public_origin: str, public_host: str) -> None:
        self.upstream = upstream
        self.public_origin = public_origin
        self.public_host = public_host if public_host.startswith("[") else public_host.rsplit(":", 1)[0]
        self.public_is_https = public_origin.startswith("https://")

    def map_url(self, url: str) -> str:
        """An absolute URL on the upstream becomes the same URL on the public origin."""
        up = self.upstream
        if url.startswith("/") and not url.startswith("//"):
            return self._strip_base(url) if up.base_path else url
        start = url.find("//")
        if start < 0 or (start > 0 and url[:start].lower() not in ("http:", "https:")):
            return url  # relative, or another scheme (mailto:, a custom app scheme)
        if _URL_NOISE.search(url) is not None:
            return url  # urlsplit would read it with those characters removed: not what we would cut below
        try:
            parts = urlsplit(url if start else up.scheme + ":" + url)
            port = parts.port
        except ValueError:
            return url  # not a URL we can read: leave it as the upstream wrote it
        if not self._on_upstream(parts.scheme.lower(), parts.hostname or "", port):
            return url
        authority_end = start + 2 + len(parts.netloc)
        if url[start + 2:authority_end] != parts.netloc:
            return url
        rest = url[authority_end:]
        return self.public_origin + self._strip_base(rest or "/")

    def _on_upstream(self, scheme: str, host: str, port: int | None) -> bool:
        """Whether a URL's origin is the upstream's: names compared as the browser
        would (case, default ports), and the same site's other scheme on a
        default port counts too (an app behind its own TLS terminator that
        thinks it is plain http, or one that sends everyone to https)."""
        up = self.upstream
        if host != up.host.lower():
            return False
        default = {"http": 80, "https": 443}
        if port is None:
            if scheme == up.scheme:
                return up.port == default[scheme]
            return up.port == default[up.scheme]
        return port == up.port

    def _strip_base(self, path: str) -> str:
        base = self.upstream.base_path
        if base and (path == base or path.startswith(base + "/") or path.startswith(base + "?")):
            return path[len(base):] or "/"
        return path

    def map_refresh(self, value: str) -> str:
        """The URL in a Refresh header, read as browsers do (HTML's "shared
        declarative refresh steps": "5; url=U", "5, U", "5;U", quotes), mapped;
        the rest of the value is kept as written."""
        match = _REFRESH.fullmatch(value)
        if match is None:
            return value
        delay, separator, key, target = match.groups()
        if not target or not (separator or delay[-1:].isspace()):
            return value  # no URL (a plain reload), or not one browsers would follow
        quote = target[0] if target[0] in ("'", '"') else ""
        url = target[1:] if quote else target
        if quote and quote in url:
            url = url[:url.index(quote)]  # browsers stop at the closing quote
        url = url.strip()
        return f"{delay}{separator}{key or ''}{quote}{self.map_url(url)}{quote}"

    def map_set_cookie(self, value: str) -> str:
        """Domain, Path and Secure of an upstream cookie, as the visitor's browser needs them."""
        parts = value.split(";")
        kept = [parts[0]]
        for attr in parts[1:]:
            key, _, val = attr.strip().partition("=")
            lkey = key.lower()
            if lkey == "domain":
                domain = val.strip().lstrip(".").lower()
                up = self.upstream.host.lower()
                public = self.public_host.lower()
                if domain and (up == domain or up.endswith("." + domain)) \
                        and not (public == domain or public.endswith("." + domain)):
                    continue  # host-only on the public host: the upstream's domain means nothing there
                # (A domain that covers the public host too, ".example.com" for
                # single sign-on across subdomains, is kept.)
            elif lkey == "path" and self.upstream.base_path:
                attr = " Path=" + self._strip_base(val.strip())
            elif lkey == "secure" and not self.public_is_https:
                continue  # the visitor talks plain HTTP to us: a Secure cookie would never come back
            elif lkey == "samesite" and val.strip().lower() == "none" and not self.public_is_https:
                attr = " SameSite=Lax"  # None requires Secure, which this scheme cannot have
            kept.append(attr)
        return ";".join(kept)

    def map(self, headers: ByteHeaders, has_connection: bool = True) -> ByteHeaders:
        """Response headers for the visitor: hop-by-hop ones dropped, URLs and cookies mapped."""
        named = connection_tokens(headers) if has_connection else frozenset()
        out: ByteHeaders = []
        for name, value in headers:
            lname = name.lower()
            if lname in HOP_BY_HOP or lname in named or lname == b"content-length":
                continue  # framing is decided anew for the visitor's connection
            if lname == b"location" or lname == b"content-location":
                value = self.map_url(value.decode("latin-1")).encode("latin-1")
            elif lname == b"set-cookie":
                value = self.map_set_cookie(value.decode("latin-1")).encode("latin-1")
            elif lname == b"refresh":
                value = self.map_refresh(value.decode("latin-1")).encode("latin-1")
            out.append((name, value))
        return out
