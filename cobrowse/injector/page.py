"""Plan the rewrite of one response: new headers now, body chunk by chunk.

This is the injector's whole public surface, with no I/O: a shell (the
aiohttp proxy, the mitmproxy addon) asks :func:`plan_page` once it has the
upstream's status and headers. ``None`` means "pass the response through
untouched". Otherwise it sends ``plan.headers`` and pushes every body chunk
through ``plan.body.feed()`` and finally ``plan.body.finish()``, writing each
piece they yield as it comes. A piece is bytes or a memoryview of a chunk
fed in (the part after the page's head, passed on without a copy).
"""

from __future__ import annotations

import codecs
import functools
import html
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .charset import BOM_SNIFF_LENGTH, charset_from_content_type, detect_wide_encoding
from .codec import DECODABLE, Decoder, Encoder, can_decode, make_decoder, make_encoder, parse_codings
from .csp import allowance_for, allows_inline_tag, rewrite_csp
from .decide import RequestInfo, is_html, is_navigation, response_has_injectable_body
from .insertion import InsertionScanner

Headers = list[tuple[str, str]]

# Headers that describe the upstream's exact bytes and are wrong once we insert ours.
_DROPPED = frozenset({"content-length", "content-md5", "digest", "repr-digest", "content-digest", "accept-ranges"})


@dataclass(frozen=True, slots=True)
class InjectorSettings:
    prefix: str = "/__cobrowse/"
    recompress: bool = True  # re-encode with the upstream's coding when the client accepts it
    max_hold: int = 64 * 1024  # most bytes held back while a head token is incomplete
    # The inline tag's script (static/src/stub.js, built), used where the page's CSP
    # lets it run; None: always the external tag.
    inline_tag: bytes | None = None


class Injector:
    """Settings plus the parts of our tag that never change."""

    def __init__(self, settings: InjectorSettings = InjectorSettings()) -> None:
        self.settings = settings
        src = html.escape(settings.prefix + "loader.js", quote=True)
        # async: never blocks the page's parser. XML-compatible, for XHTML pages.
        self._tag_start = f'<script src="{src}" async="" nonce="'.encode()
        # The inline tag adds that script itself once the page has loaded: an external
        # one is a request the page's load event waits for (static/src/stub.js).
        stub = settings.inline_tag
        if stub is not None and (b"<" in stub or b"&" in stub or b"]]>" in stub):
            raise ValueError("the inline tag's script must not contain '<' or '&'")
        self._inline_start = f'<script data-src="{src}" nonce="'.encode()
        self._inline_end = None if stub is None else b">" + stub + b"</script>"

    def snippet(self, nonce: str, attributes: bytes = b"") -> bytes:
        """Our tag; ``attributes`` (already escaped, with a leading space) carry per-site settings."""
        return self._tag_start + nonce.encode("ascii") + b'"' + attributes + b"></script>"

    def inline_snippet(self, nonce: str, attributes: bytes = b"") -> bytes | None:
        """Our inline tag (None without ``settings.inline_tag``), with the same attributes."""
        if self._inline_end is None:
            return None
        return self._inline_start + nonce.encode("ascii") + b'"' + attributes + self._inline_end

    def plan_page(self, request: RequestInfo, status: int, headers: Headers, origin: str,
                  nonce: str | None = None, attributes: bytes = b"") -> "PagePlan | None":
        """How to rewrite this response, or None to pass it through untouched.

        ``origin`` is the public ``scheme://host[:port]`` the visitor sees; it
        goes into CSP sources for our prefix.
        """
        if not response_has_injectable_body(status) or not is_navigation(request):
            return None
        content_type = content_encoding = None
        for name, value in headers:
            lname = name.lower()
            if lname == "content-type":
                content_type = value
            elif lname == "content-encoding":
                content_encoding = value
            elif lname == "content-disposition" and value.lower().lstrip().startswith("attachment"):
                return None  # a download, not a page
        if not is_html(content_type):
            return None
        codings = parse_codings(content_encoding)
        if codings and not can_decode(codings):
            return None  # an encoding we cannot read: leave the page alone rather than break it

        nonce = nonce or secrets.token_urlsafe(18)
        prefix = self.settings.prefix

        out_coding = None
        if codings and self.settings.recompress and len(codings) == 1 and _accepts(request.accept_encoding, codings[0]):
            out_coding = codings[0]

        inline = self.inline_snippet(nonce, attributes)
        new_headers: Headers = []
        for name, value in headers:
            lname = name.lower()
            if lname in _DROPPED:
                continue
            if lname == "content-encoding":
                continue
            if lname == "etag":
                # Same entity, different bytes: only a weak validator is still true.
                value = value if value.startswith("W/") else "W/" + value
            elif lname == "content-security-policy":
                if inline is not None and not allows_inline_tag(value):
                    inline = None  # host sources only: the external tag, with a path source
                value = rewrite_csp(value, allowance_for(origin, prefix, nonce))
            new_headers.append((name, value))
        if out_coding:
            new_headers.append(("Content-Encoding", out_coding))

        def build_body() -> PageRewriter:
            return PageRewriter(
                snippet=self.snippet(nonce, attributes),
                inline_snippet=inline,
                rewrite_meta_csp=lambda policy: rewrite_csp(policy, allowance_for(origin, prefix, nonce)),
                decoder=make_decoder(codings) if codings else None,
                encoder=make_encoder(out_coding) if out_coding else None,
                header_charset=charset_from_content_type(content_type or ""),
                max_hold=self.settings.max_hold,
            )

        return PagePlan(new_headers, nonce, build_body)


class PagePlan:
    """How one response is rewritten: its new headers, then its body.

    ``headers`` are final as soon as the plan exists. The body's rewriter
    (decoder, encoder, scanner) is built on the first use of ``body``, so a
    shell can send the head before paying for that: zlib and brotli objects
    are not cheap to make.
    """

    __slots__ = ("headers", "nonce", "_body", "_build_body")

    def __init__(self, headers: Headers, nonce: str, build_body: "Callable[[], PageRewriter]") -> None:
        self.headers = headers
        self.nonce = nonce
        self._body: PageRewriter | None = None
        self._build_body = build_body

    @property
    def body(self) -> "PageRewriter":
        body = self._body
        if body is None:
            body = self._body = self._build_body()
        return body


class PageRewriter:
    """decode (Content-Encoding) -> [UTF-16 transcoding] -> insert -> encode."""

    __slots__ = ("_scanner", "_decoder", "_encoder", "_header_charset", "_sniff", "_wide")

    def __init__(self, snippet: bytes, rewrite_meta_csp, decoder: Decoder | None, encoder: Encoder | None,
                 header_charset: str | None, max_hold: int, inline_snippet: bytes | None = None) -> None:
        self._scanner = InsertionScanner(snippet, rewrite_meta_csp, max_hold, inline_snippet=inline_snippet,
                                         allows_inline=allows_inline_tag)
        self._decoder = decoder
        self._encoder = encoder
        self._header_charset = header_charset
        self._sniff: bytes | None = b""  # decoded bytes held until the BOM can be read; None once decided
        self._wide: _WideTextScanner | None = None

    @property
    def inserted(self) -> bool:
        return self._scanner.inserted

    @property
    def passing_through(self) -> bool:
        """Every further byte goes out as it comes: nothing to decode, scan or encode, nothing held."""
        return (self._decoder is None and self._encoder is None and self._sniff is None and self._wide is None
                and self._scanner.passing_through)

    @property
    def may_pass_through(self) -> bool:
        """False when this page is rewritten to its end (decoded, re-encoded or transcoded)."""
        return self._decoder is None and self._encoder is None and self._wide is None

    def feed(self, chunk: bytes) -> Iterator[bytes | memoryview]:
        """The rewritten bytes so far, in pieces (a piece may be a view of ``chunk``)."""
        if self._decoder is None and self._encoder is None and self._sniff is None and self._wide is None:
            # The common case: identity page, already past the BOM check.
            for out in self._scanner.feed_pieces(chunk):
                if out:
                    yield out
            return
        pieces = self._decoder.feed(chunk) if self._decoder is not None else (chunk,)
        for piece in pieces:
            yield from self._out(self._text(piece, final=False))

    def finish(self) -> Iterator[bytes | memoryview]:
        if self._decoder is not None:
            for piece in self._decoder.finish():
                yield from self._out(self._text(piece, final=False))
        out = self._text(b"", final=True)
        if self._encoder is not None:
            text = b"".join(out)
            out = [(self._encoder.feed(text) if text else b"") + self._encoder.finish()]
        for piece in out:
            if piece:
                yield piece

    def _out(self, pieces: list[bytes | memoryview]) -> Iterator[bytes | memoryview]:
        if self._encoder is not None:
            text = b"".join(pieces)
            if text:  # (an encoder fed nothing may still write an empty block)
                encoded = self._encoder.feed(text)
                if encoded:
                    yield encoded
            return
        for piece in pieces:
            if piece:
                yield piece

    def _text(self, data: bytes, final: bool) -> list[bytes | memoryview]:
        prefix = b""
        if self._sniff is not None:
            self._sniff += data
            if len(self._sniff) < BOM_SNIFF_LENGTH and not final:
                return []
            data, self._sniff = self._sniff, None
            codec, bom_length = detect_wide_encoding(data, self._header_charset)
            if bom_length:
                prefix, data = data[:bom_length], data[bom_length:]  # the BOM stays where it is
            if codec is not None:
                self._wide = _WideTextScanner(self._scanner, codec)
        if self._wide is not None:
            out: list[bytes | memoryview] = [self._wide.feed(data)] if data else []
            if final:
                out.append(self._wide.finish())
        else:
            out = self._scanner.feed_pieces(data) if data else []
            if final:
                out.append(self._scanner.finish())
        if prefix:
            out.insert(0, prefix)
        return out


class _WideTextScanner:
    """Runs the byte scanner over a UTF-16 page by transcoding through UTF-8.

    UTF-16 pages are rare enough that correctness beats speed here; the
    surrogatepass round trip keeps even unpaired surrogates intact.
    """

    def __init__(self, scanner: InsertionScanner, codec: str) -> None:
        self._scanner = scanner
        self._decode_in = codecs.getincrementaldecoder(codec)("surrogatepass")
        self._decode_out = codecs.getincrementaldecoder("utf-8")("surrogatepass")
        self._codec = codec

    def feed(self, data: bytes) -> bytes:
        text = self._decode_in.decode(data)
        scanned = self._scanner.feed(text.encode("utf-8", "surrogatepass"))
        return self._decode_out.decode(scanned).encode(self._codec, "surrogatepass")

    def finish(self) -> bytes:
        pending, _ = self._decode_in.getstate()
        self._decode_in.reset()
        # An odd last byte is no UTF-16 code unit; it goes out as it came, last.
        odd = pending[-1:] if len(pending) % 2 else b""
        text = self._decode_in.decode(pending[:len(pending) - len(odd)], final=True)
        scanned = self._scanner.feed(text.encode("utf-8", "surrogatepass")) + self._scanner.finish()
        return self._decode_out.decode(scanned, final=True).encode(self._codec, "surrogatepass") + odd


def _accepts(accept_encoding: str | None, coding: str) -> bool:
    if not accept_encoding:
        return False
    wildcard = False
    for item in accept_encoding.split(","):
        name, _, params = item.partition(";")
        name = name.strip().lower()
        if name == coding:
            return _acceptable(params)  # the coding's own entry beats "*", wherever it stands
        if name == "*":
            wildcard = _acceptable(params)
    return wildcard


def _acceptable(params: str) -> bool:
    q = params.strip().lower()
    return not (q.startswith("q=") and _qvalue(q[2:]) == 0)


def _qvalue(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 1.0


# Browsers send a handful of distinct Accept-Encoding values, one per navigation.
@functools.lru_cache(maxsize=128)
def upstream_accept_encoding(client_accept_encoding: str | None) -> str:
    """What to ask the upstream for on a navigation: only what we can decode.

    Anything else (zstd, say) would reach us undecodable and the page would go
    out without our script.
    """
    if not client_accept_encoding:
        return "identity"
    wanted = [c for c in ("gzip", "br", "deflate") if c in DECODABLE and _accepts(client_accept_encoding, c)]
    return ", ".join(wanted) if wanted else "identity"



def tag_attributes(mask_selectors: tuple[str, ...] | list[str]) -> bytes:
    """Per-site attributes of our tag: the site owner's mask selectors, as JSON.

    The visitor's browser masks what they match before anything is recorded.
    """
    if not mask_selectors:
        return b""
    value = json.dumps(list(mask_selectors), separators=(",", ":"))
    return b' data-mask-selectors="' + html.escape(value, quote=True).encode("utf-8") + b'"'
