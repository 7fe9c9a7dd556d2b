"""plan_page as a whole: which responses, which headers, which codings and charsets.

Insertion points are in test_injector_insertion.py and CSP in
test_injector_csp.py; here the body is mostly checked for "snippet removed
gives the page back" after decoding, encoding and transcoding.
"""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import brotli
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cobrowse.injector import Injector, InjectorSettings, RequestInfo, is_html, is_navigation, upstream_accept_encoding
from cobrowse.injector import codec
from cobrowse.injector.codec import PIECE, DecodeError, make_decoder, parse_codings

ORIGIN = "https://shop.example"
NONCE = "n0nce"
INJECTOR = Injector()
NO_RECOMPRESS = Injector(InjectorSettings(recompress=False))
SNIPPET = INJECTOR.snippet(NONCE)
NAVIGATION = RequestInfo("GET", sec_fetch_dest="document", accept="text/html", accept_encoding="gzip, deflate, br")
PAGE = (b"<!DOCTYPE html><html><head><meta charset=utf-8><title>Shop</title></head>"
        b"<body>" + b"<p>caf\xc3\xa9 item</p>" * 500 + b"</body></html>")
EXPECTED = PAGE.replace(b"<title>", SNIPPET + b"<title>", 1)
HTML = [("Content-Type", "text/html; charset=utf-8")]


def plan(headers=HTML, request=NAVIGATION, status=200, injector=INJECTOR):
    return injector.plan_page(request, status, list(headers), ORIGIN, nonce=NONCE)


def body_of(page, chunks) -> list[bytes]:
    pieces = [piece for chunk in chunks for piece in page.body.feed(chunk)]
    pieces.extend(page.body.finish())
    return pieces


def run(chunks, headers=HTML, request=NAVIGATION, injector=INJECTOR):
    page = plan(headers, request, injector=injector)
    assert page is not None
    return page, b"".join(body_of(page, chunks))


def header(page, name):
    values = [v for n, v in page.headers if n.lower() == name.lower()]
    assert len(values) <= 1
    return values[0] if values else None


def split_at(data: bytes, cuts) -> list[bytes]:
    cuts = sorted(set(c for c in cuts if 0 < c < len(data)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def decode(data: bytes, coding: str | None) -> bytes:
    if coding is None:
        return data
    if coding in ("gzip", "x-gzip"):
        return gzip.decompress(data)
    if coding == "deflate":
        return zlib.decompress(data)  # we send zlib-wrapped deflate, as RFC 9110 says
    if coding == "br":
        return brotli.decompress(data)
    raise AssertionError(coding)


ENCODERS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
}


# Decisions -------------------------------------------------------------------

@pytest.mark.parametrize("request_info, expected", [
    (RequestInfo("GET", sec_fetch_dest="document"), True),
    (RequestInfo("GET", sec_fetch_dest="iframe"), True),
    (RequestInfo("GET", sec_fetch_dest="frame"), True),
    (RequestInfo("POST", sec_fetch_dest="document"), True),
    (RequestInfo("GET", sec_fetch_dest="Document"), True),
    (RequestInfo("GET", sec_fetch_dest="empty", accept="text/html"), False),  # fetch('/page') asking for HTML
    (RequestInfo("GET", sec_fetch_dest="script", accept="*/*"), False),
    (RequestInfo("GET", sec_fetch_dest="image"), False),
    (RequestInfo("GET", sec_fetch_dest="embed"), False),
    (RequestInfo("GET", sec_fetch_dest="document", x_requested_with="XMLHttpRequest"), False),
    (RequestInfo("GET", accept="text/html", x_requested_with="XMLHttpRequest"), False),
    (RequestInfo("HEAD", sec_fetch_dest="document"), False),
    (RequestInfo("HEAD", accept="text/html"), False),
    (RequestInfo("GET", accept="text/html,application/xhtml+xml,*/*;q=0.8"), True),
    (RequestInfo("GET", accept="TEXT/HTML"), True),
    (RequestInfo("GET", accept="*/*"), False),
    (RequestInfo("GET", accept="application/json"), False),
    (RequestInfo("GET"), False),
])
def test_is_navigation(request_info, expected):
    assert is_navigation(request_info) is expected
    page = INJECTOR.plan_page(request_info, 200, HTML, ORIGIN)
    assert (page is not None) is expected


def test_request_info_from_headers():
    headers = {"Sec-Fetch-Dest": "document", "Accept": "text/html", "Accept-Encoding": "br", "X-Requested-With": None}
    info = RequestInfo.from_headers("GET", headers.get)
    assert info == RequestInfo("GET", "document", "text/html", "br", None)


@pytest.mark.parametrize("content_type, expected", [
    ("text/html", True),
    ("text/html; charset=utf-8", True),
    ("TEXT/HTML;charset=UTF-8", True),
    (" text/html ", True),
    ("application/xhtml+xml", True),
    ("text/plain", False),
    ("application/json", False),
    ("text/html-sandboxed", False),
    ("image/svg+xml", False),
    ("application/xml", False),
    ("", False),
    (None, False),
])
def test_is_html(content_type, expected):
    assert is_html(content_type) is expected
    headers = [("Content-Type", content_type)] if content_type is not None else []
    assert (plan(headers) is not None) is expected


@pytest.mark.parametrize("status", [100, 101, 103, 204, 205, 206, 304])
def test_statuses_without_a_whole_body_pass_through(status):
    assert plan(status=status) is None


@pytest.mark.parametrize("status", [200, 201, 203, 301, 302, 400, 403, 404, 410, 500, 503])
def test_statuses_with_a_page_are_injected(status):
    assert plan(status=status) is not None


@pytest.mark.parametrize("disposition, injected", [
    ("attachment", False),
    ('attachment; filename="page.html"', False),
    ("Attachment; filename=page.html", False),
    (" attachment", False),
    ("inline", True),
    ('inline; filename="page.html"', True),
])
def test_content_disposition(disposition, injected):
    page = plan(HTML + [("Content-Disposition", disposition)])
    assert (page is not None) is injected


@pytest.mark.parametrize("coding", ["zstd", "compress", "gzip, zstd", "zstd, gzip", "exi", "dcb"])
def test_unknown_content_encoding_passes_through(coding):
    assert plan(HTML + [("Content-Encoding", coding)]) is None


# Headers ---------------------------------------------------------------------

def test_headers_describing_the_upstream_bytes_are_dropped():
    page = plan(HTML + [
        ("Content-Length", "1234"), ("content-length", "1234"), ("Accept-Ranges", "bytes"), ("Digest", "sha-256=x"),
        ("Content-MD5", "x"), ("Repr-Digest", "sha-256=:x:"), ("Content-Digest", "sha-256=:x:"),
        ("Cache-Control", "no-cache"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Vary", "Accept-Encoding"),
    ])
    assert page.headers == HTML + [("Cache-Control", "no-cache"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
                                   ("Vary", "Accept-Encoding")]


@pytest.mark.parametrize("etag, expected", [
    ('"abc"', 'W/"abc"'),
    ('W/"abc"', 'W/"abc"'),
    ('""', 'W/""'),
])
def test_etag_weakened(etag, expected):
    page = plan(HTML + [("ETag", etag)])
    assert header(page, "etag") == expected


def test_identity_response_gets_no_content_encoding():
    assert header(plan(HTML), "content-encoding") is None
    assert header(plan(HTML + [("Content-Encoding", "identity")]), "content-encoding") is None


def test_upstream_accept_encoding():
    assert upstream_accept_encoding("gzip, deflate, br, zstd") == "gzip, br, deflate"
    assert upstream_accept_encoding("zstd") == "identity"
    assert upstream_accept_encoding(None) == "identity"
    assert upstream_accept_encoding("") == "identity"
    assert upstream_accept_encoding("*") == "gzip, br, deflate"
    assert upstream_accept_encoding("gzip;q=0, br") == "br"
    assert upstream_accept_encoding("br;q=0.5, gzip;q=1.0") == "gzip, br"


def test_nonce_is_fresh_per_response_and_in_the_tag():
    first = INJECTOR.plan_page(NAVIGATION, 200, HTML, ORIGIN)
    second = INJECTOR.plan_page(NAVIGATION, 200, HTML, ORIGIN)
    assert first.nonce != second.nonce
    out = b"".join(first.body.finish())
    assert out == INJECTOR.snippet(first.nonce)


def test_snippet_shape_and_prefix_escaping():
    assert SNIPPET == b'<script src="/__cobrowse/loader.js" async="" nonce="n0nce"></script>'
    odd = Injector(InjectorSettings(prefix='/x"y&z/'))
    assert odd.snippet("n") == b'<script src="/x&quot;y&amp;z/loader.js" async="" nonce="n"></script>'


# The inline tag, where the page's CSP lets it run -------------------------------

STUB = b"(function(){addEventListener('load',function(){})})();"
INLINE = Injector(InjectorSettings(inline_tag=STUB))
PLAIN_PAGE = b"<!doctype html><html><head><title>Shop</title></head><body>hi</body></html>"


def tag_in(headers, page=PLAIN_PAGE, mask=b"") -> bytes:
    plan = INLINE.plan_page(NAVIGATION, 200, [("Content-Type", "text/html")] + headers, ORIGIN, nonce=NONCE,
                            attributes=mask)
    out = b"".join(plan.body.feed(page)) + b"".join(plan.body.finish())
    start = out.index(b"<script")
    return out[start:out.index(b"</script>", start) + len(b"</script>")]


def test_the_inline_tag_shape():
    assert INLINE.inline_snippet(NONCE, b' data-mask-selectors="[]"') == (
        b'<script data-src="/__cobrowse/loader.js" nonce="n0nce" data-mask-selectors="[]">' + STUB + b"</script>")
    assert INJECTOR.inline_snippet(NONCE) is None  # without the built stub: always the external tag


@pytest.mark.parametrize("policy", [
    None,
    "script-src 'nonce-site' 'self'",
    "script-src 'sha256-abc='",
    "script-src 'strict-dynamic' 'nonce-site' https:",
    "script-src 'self' 'unsafe-inline'",
    "img-src 'self'",  # no script restriction at all
    "script-src 'nonce-a', script-src 'sha256-b='",  # two policies, both fine
])
def test_inline_where_the_csp_lets_it_run(policy):
    headers = [] if policy is None else [("Content-Security-Policy", policy)]
    assert tag_in(headers).startswith(b'<script data-src="/__cobrowse/loader.js" nonce="n0nce">'), policy


@pytest.mark.parametrize("policy", [
    "script-src 'self' https://cdn.example",
    "default-src 'self'",
    "script-src-elem 'self'; script-src 'unsafe-inline'",  # <script> elements go by script-src-elem
    "script-src 'nonce-a', script-src 'self'",  # one of two policies is host-only
])
def test_external_where_the_csp_has_host_sources_only(policy):
    """An inline script could run there only with a hash, and the issue's rule is a path source."""
    assert tag_in([("Content-Security-Policy", policy)]).startswith(
        b'<script src="/__cobrowse/loader.js" async="" nonce="n0nce">')


def test_report_only_policies_do_not_decide():
    assert tag_in([("Content-Security-Policy-Report-Only", "script-src 'self'")]).startswith(b"<script data-src=")


@pytest.mark.parametrize("meta, inline", [
    (b"<meta http-equiv=Content-Security-Policy content=\"script-src 'self'\">", False),  # before our tag: governs it
    (b"<meta http-equiv=Content-Security-Policy content=\"script-src 'nonce-x'\">", True),
    (b"<meta charset=utf-8>", True),
])
def test_a_meta_csp_before_our_tag_decides_too(meta, inline):
    page = b"<!doctype html><html><head>" + meta + b"<title>Shop</title></head><body>hi</body></html>"
    assert tag_in([], page).startswith(b"<script data-src=" if inline else b'<script src=')


def test_a_meta_csp_after_our_tag_does_not_change_it():
    """Our inline tag has run by then; the policy gets our sources for the loader it adds."""
    page = (b"<!doctype html><html><head><title>Shop</title>"
            b"<meta http-equiv=Content-Security-Policy content=\"script-src 'self'\"></head><body>hi</body></html>")
    assert tag_in([], page).startswith(b"<script data-src=")


def test_the_mask_selectors_go_on_the_inline_tag():
    tag = tag_in([], mask=b' data-mask-selectors="[&quot;.iban&quot;]"')
    assert b'data-mask-selectors="[&quot;.iban&quot;]">' in tag


def test_a_stub_with_markup_characters_is_refused():
    with pytest.raises(ValueError):
        Injector(InjectorSettings(inline_tag=b"if(a<b)go()"))


# Codecs ----------------------------------------------------------------------

@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "deflate", "br"])
@pytest.mark.parametrize("accept_encoding, recompress, resent", [
    ("gzip, deflate, br, x-gzip", True, True),
    ("*", True, True),
    ("gzip, deflate, br, x-gzip", False, False),
    ("identity", True, False),
    (None, True, False),
    ("gzip;q=0, deflate;q=0, br;q=0, x-gzip;q=0", True, False),
])
def test_coding_round_trip(coding, accept_encoding, recompress, resent):
    request = RequestInfo("GET", sec_fetch_dest="document", accept_encoding=accept_encoding)
    injector = INJECTOR if recompress else NO_RECOMPRESS
    encoded = ENCODERS[coding](PAGE)
    page, out = run([encoded[:100], encoded[100:]], HTML + [("Content-Encoding", coding), ("Content-Length", "9")],
                    request, injector)
    assert header(page, "content-encoding") == (coding if resent else None)
    assert header(page, "content-length") is None
    assert decode(out, coding if resent else None) == EXPECTED


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_recompression_writes_nothing_while_the_scanner_holds_a_token(coding):
    # A long head tag fed a few bytes at a time: while the scanner holds it back,
    # the encoder must not be fed nothing (zlib would still write an empty block).
    small = b"<html><head><meta name=description content='" + b"x" * 200 + b"'><title>t</title></head><body>x"
    encoded = ENCODERS[coding](small)
    request = RequestInfo("GET", sec_fetch_dest="document", accept_encoding=coding)
    page = plan(HTML + [("Content-Encoding", coding)], request)
    pieces = list(body_of(page, [encoded[i:i + 7] for i in range(0, len(encoded), 7)]))
    assert decode(b"".join(pieces), coding) == small.replace(b"<title>", SNIPPET + b"<title>")
    assert b"\x00\x00\x00\xff\xff" not in pieces  # zlib's empty sync-flush block, written alone


def test_raw_deflate_is_decoded():
    page, out = run([raw_deflate(PAGE)], HTML + [("Content-Encoding", "deflate")], injector=NO_RECOMPRESS)
    assert out == EXPECTED


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "raw deflate"])
def test_codings_fed_one_byte_at_a_time(coding):
    small = b"<html><head><title>t</title></head><body>hello</body></html>"
    encoded = raw_deflate(small) if coding == "raw deflate" else ENCODERS[coding](small)
    name = "deflate" if coding == "raw deflate" else coding
    _, out = run([encoded[i:i + 1] for i in range(len(encoded))], HTML + [("Content-Encoding", name)],
                 injector=NO_RECOMPRESS)
    assert out == small.replace(b"<title>", SNIPPET + b"<title>")


def test_multi_member_gzip():
    encoded = gzip.compress(PAGE[:50]) + gzip.compress(PAGE[50:3000]) + gzip.compress(PAGE[3000:])
    for chunks in ([encoded], split_at(encoded, range(0, len(encoded), 7))):
        page, out = run(chunks, HTML + [("Content-Encoding", "gzip")])
        assert gzip.decompress(out) == EXPECTED


@pytest.mark.parametrize("content_encoding, layers", [
    ("gzip, br", [gzip.compress, brotli.compress]),
    ("br, gzip", [brotli.compress, gzip.compress]),
    ("deflate, gzip", [zlib.compress, gzip.compress]),
    ("gzip,gzip", [gzip.compress, gzip.compress]),
    ("identity, gzip", [gzip.compress]),
])
def test_chained_codings(content_encoding, layers):
    encoded = PAGE
    for layer in layers:  # listed in the order they were applied
        encoded = layer(encoded)
    for chunks in ([encoded], split_at(encoded, range(0, len(encoded), 13))):
        page, out = run(chunks, HTML + [("Content-Encoding", content_encoding)])
        assert decode(out, header(page, "content-encoding")) == EXPECTED


def test_parse_codings():
    assert parse_codings("gzip, br") == ["gzip", "br"]
    assert parse_codings(" GZIP ,identity,, BR") == ["gzip", "br"]
    assert parse_codings("identity") == []
    assert parse_codings(None) == []


@pytest.mark.parametrize("accept_encoding, coding, resent", [
    ("gzip", "gzip", True),
    ("GZIP", "gzip", True),
    ("gzip;q=0", "gzip", False),
    ("gzip; q=0.000", "gzip", False),
    ("gzip;q=0.001", "gzip", True),
    ("br;q=0.5, gzip", "br", True),
    ("deflate, gzip", "br", False),
    ("*;q=0", "gzip", False),
    ("*;q=0, gzip", "gzip", True),
    ("gzip, *;q=0", "gzip", True),
    ("gzip;q=0, *", "gzip", False),
    ("*, gzip;q=0", "gzip", False),  # an explicit entry beats the wildcard, wherever it stands
    ("*, br;q=0", "gzip", True),
])
def test_accept_encoding_decides_recompression(accept_encoding, coding, resent):
    request = RequestInfo("GET", sec_fetch_dest="document", accept_encoding=accept_encoding)
    page, out = run([ENCODERS[coding](PAGE)], HTML + [("Content-Encoding", coding)], request)
    assert header(page, "content-encoding") == (coding if resent else None)
    assert decode(out, coding if resent else None) == EXPECTED


def test_chained_codings_sent_as_identity():
    encoded = brotli.compress(gzip.compress(PAGE))
    page, out = run([encoded], HTML + [("Content-Encoding", "gzip, br")])
    assert header(page, "content-encoding") is None
    assert out == EXPECTED


@pytest.mark.parametrize("coding, garbage", [
    ("gzip", b"this is not gzip at all, just text"),
    ("gzip", gzip.compress(PAGE)[:10] + b"\xff" * 50),
    ("deflate", b"\xff\xff\xff\xff\xff\xff"),
    ("br", b"\xff\xff\xff\xff this is not brotli either"),
    ("gzip, br", b"\xff\xff\xff\xff definitely not"),
])
def test_invalid_body_raises_decode_error(coding, garbage):
    page = plan(HTML + [("Content-Encoding", coding)])
    with pytest.raises(DecodeError):
        body_of(page, [garbage])


def test_invalid_gzip_raises_from_the_decoder():
    decoder = make_decoder(["gzip"])
    with pytest.raises(DecodeError):
        list(decoder.feed(b"\x1f\x8b\x08\x00garbage-garbage-garbage"))


def test_gzip_member_followed_by_garbage_raises():
    page = plan(HTML + [("Content-Encoding", "gzip")])
    with pytest.raises(DecodeError):
        body_of(page, [gzip.compress(PAGE) + b"GARBAGE!" * 4])


BOMB_SIZE = 50 * 1024 * 1024


@pytest.fixture(scope="module")
def bombs():
    zeros = bytes(BOMB_SIZE)
    gzipped = gzip.compress(zeros, 6)
    return {
        "gzip": gzipped,
        "deflate": zlib.compress(zeros, 6),
        "br": brotli.compress(zeros, quality=5),
        "gzip, br": brotli.compress(gzipped, quality=5),
    }


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "gzip, br"])
def test_decompression_bomb_is_emitted_in_bounded_pieces(bombs, coding):
    decoder = make_decoder(parse_codings(coding))
    total = pieces = 0
    for piece in [*decoder.feed(bombs[coding]), *decoder.finish()]:
        assert 0 < len(piece) <= PIECE
        assert not piece.strip(b"\0")
        total += len(piece)
        pieces += 1
    assert total == BOMB_SIZE
    assert pieces >= BOMB_SIZE // PIECE


def test_decompression_bomb_through_plan_page_streams(bombs):
    page = plan(HTML + [("Content-Encoding", "gzip")], RequestInfo("GET", sec_fetch_dest="document"))
    total = 0
    sizes = []
    for piece in [*page.body.feed(bombs["gzip"]), *page.body.finish()]:
        sizes.append(len(piece))
        total += len(piece)
    assert total == BOMB_SIZE + len(SNIPPET)
    assert max(sizes) <= PIECE + len(SNIPPET)


def _peak_while(run_body) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        run_body()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_page_after_its_head_is_passed_on_without_a_copy():
    chunk = b"<!DOCTYPE html><html><head><title>t</title></head><body>" + b"<p>text</p>" * 5000
    page = plan(HTML)
    pieces = list(page.body.feed(chunk))
    assert b"".join(pieces) == chunk.replace(b"<title>", SNIPPET + b"<title>", 1)
    assert isinstance(pieces[-1], memoryview) and pieces[-1].obj is chunk
    assert len(pieces[-1]) > len(chunk) - 100
    # Later chunks go through as they are.
    later = b"<p>more</p>" * 100
    assert [piece for piece in page.body.feed(later)] == [later] and list(page.body.feed(later))[0] is later


def test_identity_50mb_page_keeps_memory_bounded():
    chunk = b"<p>" + b"x" * (64 * 1024 - 7) + b"</p>\n"
    head = b"<!DOCTYPE html><html><head><meta charset=utf-8><title>big</title></head><body>"
    count = BOMB_SIZE // len(chunk)
    seen = {"bytes": 0, "snippets": 0}

    def body():
        page = plan(HTML + [("Content-Length", str(len(head) + count * len(chunk)))])
        for piece in page.body.feed(head):
            seen["snippets"] += bytes(piece).count(SNIPPET)  # pieces are bytes or views
            seen["bytes"] += len(piece)
        for _ in range(count):
            for piece in page.body.feed(chunk):
                seen["bytes"] += len(piece)
        for piece in page.body.finish():
            seen["bytes"] += len(piece)

    peak = _peak_while(body)
    assert seen == {"bytes": len(head) + count * len(chunk) + len(SNIPPET), "snippets": 1}
    assert peak < 1024 * 1024, peak  # a few chunks at most, never the page


def test_compressed_50mb_page_keeps_memory_bounded(bombs):
    # Decode, insert and re-encode a 50 MB page that arrives in one small chunk.
    seen = {"bytes": 0}

    def body():
        page = plan(HTML + [("Content-Encoding", "br")])
        decoder = make_decoder(["br"])
        for piece in [*page.body.feed(bombs["br"]), *page.body.finish()]:
            for decoded in decoder.feed(piece):
                seen["bytes"] += len(decoded)

    peak = _peak_while(body)
    assert seen["bytes"] == BOMB_SIZE + len(SNIPPET)
    assert peak < 8 * PIECE, peak


def test_data_after_a_deflate_stream_is_not_kept():
    junk = b"\0" * (64 * 1024)
    seen = {"out": b""}

    def body():
        page = plan(HTML + [("Content-Encoding", "deflate")], injector=NO_RECOMPRESS)
        out = list(page.body.feed(zlib.compress(PAGE)))
        for _ in range(160):  # 10 MB of trailing bytes
            out.extend(page.body.feed(junk))
        out.extend(page.body.finish())
        seen["out"] = b"".join(out)

    peak = _peak_while(body)
    assert seen["out"] == EXPECTED
    assert peak < 1024 * 1024, peak


# Charsets --------------------------------------------------------------------

UTF8_BOM = b"\xef\xbb\xbf"
TEXT_PAGE = "<!DOCTYPE html><html><head><meta charset=\"utf-16\"><title>Ünïcödé 😀</title></head><body>日本語</body></html>"
TEXT_EXPECTED = TEXT_PAGE.replace("<title>", SNIPPET.decode() + "<title>")


def test_utf8_bom_stays_first():
    page_bytes = UTF8_BOM + PAGE
    for chunks in ([page_bytes], [page_bytes[:1], page_bytes[1:2], page_bytes[2:]]):
        _, out = run(chunks)
        assert out == UTF8_BOM + EXPECTED


def test_utf8_bom_before_plain_text():
    _, out = run([UTF8_BOM + b"hello"])
    assert out == UTF8_BOM + SNIPPET + b"hello"


@pytest.mark.parametrize("bom, codec, content_type", [
    (b"\xff\xfe", "utf-16-le", "text/html"),
    (b"\xfe\xff", "utf-16-be", "text/html"),
    (b"\xff\xfe", "utf-16-le", "text/html; charset=utf-16be"),  # the BOM wins over the header
    (b"\xfe\xff", "utf-16-be", "text/html; charset=utf-8"),
    (b"", "utf-16-le", "text/html; charset=utf-16"),
    (b"", "utf-16-le", 'text/html; charset="UTF-16LE"'),
    (b"", "utf-16-be", "text/html; charset=utf-16be"),
])
def test_utf16_pages_get_a_utf16_snippet(bom, codec, content_type):
    source = bom + TEXT_PAGE.encode(codec)
    expected = bom + TEXT_EXPECTED.encode(codec)
    for chunks in ([source], [source[i:i + 1] for i in range(len(source))], split_at(source, range(1, len(source), 7))):
        _, out = run(chunks, [("Content-Type", content_type)])
        assert out == expected


def test_utf8_bom_wins_over_utf16_header():
    _, out = run([UTF8_BOM + PAGE], [("Content-Type", "text/html; charset=utf-16")])
    assert out == UTF8_BOM + EXPECTED


def test_utf16_page_gzipped():
    source = b"\xff\xfe" + TEXT_PAGE.encode("utf-16-le")
    page, out = run([gzip.compress(source)], HTML + [("Content-Encoding", "gzip")])
    assert gzip.decompress(out) == b"\xff\xfe" + TEXT_EXPECTED.encode("utf-16-le")


def test_utf16_odd_trailing_byte_is_kept():
    source = b"\xff\xfe" + "<p>x</p>".encode("utf-16-le") + b"\x0a"
    _, out = run([source])
    assert out.replace(SNIPPET.decode().encode("utf-16-le"), b"") == source


def test_utf16_lone_surrogates_are_kept():
    # A high surrogate with no low one after it, and a low one at the very end.
    source = b"\xff\xfe" + "<p>a".encode("utf-16-le") + b"\x00\xd8" + "b</p>".encode("utf-16-le") + b"\x00\xdc"
    for tail in (b"", b"\x00\xd8", b"\x00\xd8\x01"):  # and a high one, or half a code unit, at the very end
        for chunks in ([source + tail], [(source + tail)[i:i + 1] for i in range(len(source + tail))]):
            _, out = run(chunks)
            assert out.replace(SNIPPET.decode().encode("utf-16-le"), b"") == source + tail


def test_utf16_meta_csp_amended():
    text = "<head><meta http-equiv=Content-Security-Policy content=\"script-src 'self'\"><title>t</title>"
    _, out = run([b"\xff\xfe" + text.encode("utf-16-le")])
    decoded = out[2:].decode("utf-16-le")
    assert "script-src &#x27;self&#x27; https://shop.example/__cobrowse/" in decoded
    assert decoded.endswith(SNIPPET.decode() + "<title>t</title>")


@pytest.mark.parametrize("charset, text", [
    ("windows-1252", "<html><head><meta charset=windows-1252><title>Caf\xe9 \u20ac</title>"),
    ("shift_jis", "<html><head><meta charset=shift_jis><title>日本語のページ</title>"),
    ("euc-kr", "<html><head><meta charset=euc-kr><title>한국어</title>"),
])
def test_ascii_compatible_charsets_pass_byte_for_byte(charset, text):
    source = text.encode(charset)
    _, out = run([source[i:i + 1] for i in range(len(source))], [("Content-Type", f"text/html; charset={charset}")])
    assert out == source.replace(b"<title>", SNIPPET + b"<title>")


def test_meta_charset_stays_before_our_tag():
    source = b"<html><head><meta name=viewport content=x><meta charset=utf-8><link rel=icon href=i.png>"
    _, out = run([source])
    assert out.index(b"<meta charset=utf-8>") < out.index(SNIPPET)


# Empty and tiny bodies ---------------------------------------------------------

def test_empty_body_gets_the_snippet():
    page, out = run([])
    assert out == SNIPPET
    assert page.body.inserted


def test_empty_body_with_recompression():
    page, out = run([gzip.compress(b"")], HTML + [("Content-Encoding", "gzip")])
    assert header(page, "content-encoding") == "gzip"
    assert gzip.decompress(out) == SNIPPET


@pytest.mark.parametrize("body", [b"x", b"<", b"\xef", b"\xef\xbb", b"\xfe", b"\xef\xbb\xbf"])
def test_tiny_bodies(body):
    _, out = run([body])
    assert out.replace(SNIPPET, b"", 1) == body
    assert out.count(SNIPPET) == 1


@pytest.mark.parametrize("bom, codec", [(b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")])
def test_utf16_bom_alone(bom, codec):
    _, out = run([bom])
    assert out == bom + SNIPPET.decode().encode(codec)


def test_empty_chunks_are_harmless():
    _, out = run([b"", PAGE[:10], b"", b"", PAGE[10:], b""])
    assert out == EXPECTED


# Property: codings split at random points ------------------------------------

FRAGMENTS = [b"<!DOCTYPE html>", b"<html>", b"<head>", b"<meta charset=utf-8>", b"<!-- </head> -->", b"<title>t</title>",
             b"<script>'</head>'</script>", b"<body>", b"text ", b"\n", b"<", b"caf\xc3\xa9"]
documents = st.lists(st.sampled_from(FRAGMENTS), max_size=30).map(b"".join)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents, coding=st.sampled_from(["gzip", "deflate", "raw deflate", "br", "gzip, br", "multi gzip"]),
       recompress=st.booleans(), data=st.data())
def test_property_encoded_bodies_split_anywhere(doc, coding, recompress, data):
    if coding == "raw deflate":
        encoded, name = raw_deflate(doc), "deflate"
    elif coding == "gzip, br":
        encoded, name = brotli.compress(gzip.compress(doc)), coding
    elif coding == "multi gzip":
        cut = len(doc) // 2
        encoded, name = gzip.compress(doc[:cut]) + gzip.compress(doc[cut:]), "gzip"
    else:
        encoded, name = ENCODERS[coding](doc), coding
    if data.draw(st.booleans()) and len(encoded) < 300:
        chunks = [encoded[i:i + 1] for i in range(len(encoded))]
    else:
        chunks = split_at(encoded, data.draw(st.lists(st.integers(0, len(encoded)), max_size=10)))
    injector = INJECTOR if recompress else NO_RECOMPRESS
    page, out = run(chunks, HTML + [("Content-Encoding", name)], injector=injector)
    decoded = decode(out, header(page, "content-encoding"))
    _, identity = run([doc])
    assert decoded == identity
    assert decoded.count(SNIPPET) == 1
    assert decoded.replace(SNIPPET, b"", 1) == doc


def test_codec_module_knows_its_codings():
    assert {"gzip", "x-gzip", "deflate", "br"} <= codec.DECODABLE
    assert codec.can_decode(["gzip", "br"]) and not codec.can_decode(["gzip", "zstd"])
