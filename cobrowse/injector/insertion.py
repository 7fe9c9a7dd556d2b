"""Find where our tag goes in a streamed HTML page, and put it there.

The page is never parsed into a tree and re-serialised: bytes pass through as
the site wrote them, apart from our tag (and the ``content`` value of a
``<meta http-equiv=Content-Security-Policy>``, which must allow our script).

Where the tag goes: after the leading run of the document that does not
load anything -- doctype, comments, ``<html>``, ``<head>`` and ``<meta>``
tags -- and before the first other token. So a ``<meta charset>`` stays in
the first 1024 bytes, our script is resolved before any ``<base href>``, and
it runs before the site's own scripts can break it. A page with no ``<head>``
gets it before its first content; a page with nothing at all gets it at the
end (pywb's fallback).

A small HTML-aware tokenizer walks the document's head, so ``</head>`` inside
a comment or a script string is not mistaken for the real one. After our tag
it keeps walking to the end of the head, only to catch a meta CSP that comes
later; from then on every chunk passes straight through untouched. Runs of
tokens that decide nothing are skipped with one regex call each, which made
a typical head cost ~15 us instead of ~55 us per page (the tokenizer is the
reference the tests hold those runs to).

Bytes are held back only while a token is incomplete at a chunk boundary
(nginx's ``sub_filter`` holds ``len(needle) - 1`` bytes the same way); the
hold is capped at ``max_hold`` so a pathological page cannot pin memory.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

_WHITESPACE = b" \t\n\r\f"
_WHITESPACE_RUN = re.compile(rb"[ \t\n\r\f]+")
# A tag's attributes as browsers tokenize them (WHATWG HTML 13.2.5.32-42):
# spaces and "/" between attributes; a name, which may start with "=" and may
# hold quotes; then, if "=" follows the name, a value: quoted, or unquoted up
# to a space or ">". A quote opens a value only right after "=" (in
# "content=Joe's>" it is just a character, in '<a ="x>' part of a name). Once
# "=" follows a name a value must follow, so an unclosed quote leaves the tag
# incomplete until a later chunk closes it. End tags carry attributes the
# same way. Every quantifier is possessive, as the tokenizer never backtracks:
# a tag with no ">" costs one pass over it, not one per byte.
_ATTRS = (rb"(?:[\t\n\r\f /]*+(?:=[^\t\n\r\f />=]*+|[^\t\n\r\f />=]++)"  # spaces, a name
          rb"(?:[\t\n\r\f ]*+=[\t\n\r\f ]*+(?:\"[^\"]*+\"|'[^']*+'|(?![\"'])[^\t\n\r\f >]*+)"  # = value
          rb"|(?![\t\n\r\f ]*+=)))*+[\t\n\r\f /]*+")
_TAG_NAME = rb"[a-zA-Z][^\t\n\r\f />]*+"
_START_TAG = re.compile(rb"<(" + _TAG_NAME + rb")(" + _ATTRS + rb")>")
_END_TAG = re.compile(rb"</(" + _TAG_NAME + rb")" + _ATTRS + rb">")
# One attribute of a tag matched above, in the same grammar: its name, and
# its value double-quoted, single-quoted or unquoted (group 2, 3 or 4).
_ATTRIBUTE = re.compile(
    rb"[\t\n\r\f /]*+(=?[^\t\n\r\f />=]*+)(?:[\t\n\r\f ]*+=[\t\n\r\f ]*+"
    rb"(?:\"([^\"]*+)\"|'([^']*+)'|([^\t\n\r\f >]*+)))?"
)
_COMMENT_END = re.compile(rb"--!?>")  # "--!>" closes a comment too (a parse error browsers accept)

# Tags that may open a document without loading or running anything.
_LEADING_TAGS = frozenset({b"html", b"head", b"meta"})
# Elements that belong in <head>; any other start tag implies <body>.
_HEAD_TAGS = frozenset({b"meta", b"link", b"base", b"title", b"style", b"script", b"noscript", b"template"})
# Elements whose content is raw text: a "<meta" in there is not a tag.
_RAW_TEXT = frozenset({b"script", b"style", b"title", b"noscript", b"textarea", b"xmp"})
# "</scripts>" does not end a script: the name must be followed by one of these.
_RAW_TEXT_END = {name: re.compile(b"</" + name + rb"[\t\n\r\f />]", re.IGNORECASE) for name in _RAW_TEXT}
# While looking for a closing sequence, hold back all of it but its last byte.
_CLOSE_HOLD = {_COMMENT_END: len(b"--!"), **{p: len(b"</") + len(name) for name, p in _RAW_TEXT_END.items()}}

# Runs of tokens that decide nothing, each skipped in a single call into the
# regex engine instead of token by token: before our tag, the leading run
# (spaces, comments, doctypes, <html>, <head>, <meta>); after it, the rest of
# the head, which matters only for a meta CSP in it (head elements, raw-text
# ones up to and including their end tag, head end tags). The patterns match
# exactly the tokens ``_token_at`` finds (the same attribute grammar, the same
# closing sequences), so a run stops on a token boundary; the tokenizer takes
# over there for the one token that decides something (our tag's place,
# <body>, text) or is incomplete. A run that mentions a CSP is walked token by
# token too: its metas need reading. Tests compare both ways on generated pages.
_NAME_END = rb"(?=[\t\n\r\f />])"
# Unrolled (no lazy ".*?", which costs a backtracking step per byte).
_SKIP_COMMENTS = (rb"[ \t\n\r\f]++|<!--(?:-?>|[^-]*+(?:-(?!-!?>)[^-]*+)*+--!?>)|<!(?!--)[^>]*+>|<\?[^>]*+>"
                  rb"|</(?![a-zA-Z])[^>]*+>")


def _start_tags(names) -> bytes:
    return rb"<(?:" + b"|".join(sorted(names)) + rb")" + _NAME_END + _ATTRS + rb">"


def _raw_text_element(name: bytes) -> bytes:
    close = rb"</" + name + _NAME_END
    return (rb"<" + name + _NAME_END + _ATTRS + rb">[^<]*+(?:<(?!/" + name + _NAME_END + rb")[^<]*+)*+"
            + close + _ATTRS + rb">")


_LEADING_RUN = re.compile(rb"(?:" + _SKIP_COMMENTS + rb"|" + _start_tags(_LEADING_TAGS) + rb")*+", re.IGNORECASE)
_HEAD_RUN = re.compile(
    rb"(?:" + _SKIP_COMMENTS
    + rb"|" + _start_tags(_HEAD_TAGS - _RAW_TEXT)
    + b"".join(rb"|" + _raw_text_element(name) for name in sorted(_HEAD_TAGS & _RAW_TEXT))
    + rb"|</(?:head|" + b"|".join(sorted(_HEAD_TAGS)) + rb")" + _NAME_END + _ATTRS + rb">"
    + rb")*+",
    re.IGNORECASE,
)

_LEADING, _HEAD, _PASS = 0, 1, 2
# Held bytes longer than this are an unfinished tag, doctype or bogus comment
# (shorter ones may still become "<!--"), which only a ">" can end.
_WAITS_FOR_GT = 16


def attribute_values(attrs: bytes) -> dict[bytes, tuple[bytes, int, int]]:
    """The attributes of a matched tag (its group 2) by lowercased name, the
    first of a repeated name winning as in browsers: (value as written, where
    the value starts and stops in ``attrs``); a name without a value has (b"", -1, -1)."""
    values: dict[bytes, tuple[bytes, int, int]] = {}
    for match in _ATTRIBUTE.finditer(attrs):
        name = match.group(1).lower()
        if not name:
            continue
        for group in (2, 3, 4):
            if match.group(group) is not None:
                values.setdefault(name, (match.group(group), match.start(group), match.end(group)))
                break
        else:
            values.setdefault(name, (b"", -1, -1))
    return values

MetaCspRewriter = Callable[[str], str]


class InsertionScanner:
    """Streams a page through, inserting ``snippet`` at the first safe place.

    Works on any ASCII-compatible encoding; UTF-16 pages are transcoded around
    it by :mod:`cobrowse.injector.page`.
    """

    # Skip runs of tokens that decide nothing with one regex call each (see
    # _HEAD_RUN); off, every token is walked one by one: the tests' reference.
    skip_runs = True

    __slots__ = ("_snippet", "_inline_snippet", "_allows_inline", "_rewrite_meta_csp", "_max_hold", "_buf", "_phase",
                 "_raw_end", "_in_comment", "inserted")

    def __init__(self, snippet: bytes, rewrite_meta_csp: MetaCspRewriter | None = None, max_hold: int = 64 * 1024,
                 inline_snippet: bytes | None = None, allows_inline: Callable[[str], bool] | None = None):
        """``inline_snippet``: the tag to use instead of ``snippet`` unless a meta CSP
        before the insertion point forbids it (``allows_inline`` says, per policy)."""
        self._snippet = snippet
        self._inline_snippet = inline_snippet
        self._allows_inline = allows_inline
        self._rewrite_meta_csp = rewrite_meta_csp
        self._max_hold = max_hold
        self._buf = b""
        self._phase = _LEADING
        self._raw_end: re.Pattern[bytes] | None = None
        self._in_comment = False
        self.inserted = False

    @property
    def passing_through(self) -> bool:
        return self._phase == _PASS

    def feed(self, data: bytes) -> bytes:
        return b"".join(self.feed_pieces(data))

    def feed_pieces(self, data: bytes) -> list[bytes | memoryview]:
        """What ``feed`` returns, in pieces to write one after the other: the
        rest of the chunk that holds the end of the head comes as a view of
        that chunk, not a copy (tens of KB on a typical page)."""
        if self._phase == _PASS:
            return [data]
        held = self._buf
        if not held:
            self._buf = data
            return self._scan(final=False)
        self._buf = held + data
        if (len(held) > _WAITS_FOR_GT and b">" not in data and len(self._buf) <= self._max_hold
                and self._raw_end is None and not self._in_comment):
            # What is held is a tag (or a doctype) that ends at a ">" yet to
            # come: a chunk without one cannot end it. Scanning it again for
            # every such chunk would cost its length each time.
            return []
        return self._scan(final=False)

    def finish(self) -> bytes:
        out = b""
        if self._phase != _PASS:
            # Anything still held is the tail of a comment or raw text the page never closed.
            out = b"".join(self._scan(final=True)) + self._buf
            self._buf = b""
        if not self.inserted:
            self.inserted = True
            out += self._our_tag()
        return out

    # The tokenizer. ``pos`` always sits on a token boundary; everything
    # before it has been decided and goes out.
    def _scan(self, final: bool) -> list[bytes | memoryview]:
        buf = self._buf
        end = len(buf)
        pos = 0
        out: list[bytes] = []
        slow_until = 0
        while pos < end and self._phase != _PASS:
            if self._raw_end is not None or self._in_comment:
                pattern = self._raw_end if self._raw_end is not None else _COMMENT_END
                match = pattern.search(buf, pos)
                if match is None:
                    # Keep only what could be the start of the closing sequence.
                    keep = max(pos, end - _CLOSE_HOLD[pattern])
                    out.append(buf[pos:keep])
                    pos = keep
                    break
                if self._in_comment:
                    out.append(buf[pos:match.end()])
                    pos = match.end()
                    self._in_comment = False
                else:
                    out.append(buf[pos:match.start()])  # the end tag is tokenized below
                    pos = match.start()
                    self._raw_end = None
                continue

            if pos >= slow_until and self.skip_runs:
                stop = (_HEAD_RUN if self._phase == _HEAD else _LEADING_RUN).match(buf, pos).end()
                if stop > pos:
                    run = buf[pos:stop]
                    if b"content-security-policy" in run.lower():
                        slow_until = stop  # token by token: a meta in there may need rewriting
                    else:
                        out.append(run)
                        pos = stop
                        if pos == end:
                            break

            byte = buf[pos]
            if byte in _WHITESPACE:
                match = _WHITESPACE_RUN.match(buf, pos)
                out.append(buf[pos:match.end()])
                pos = match.end()
                continue
            if byte != 0x3C:  # "<": text content begins; the head is over
                self._content_starts(out)
                break

            token_end, kind, name, attrs = self._token_at(buf, pos, end)
            if token_end < 0:  # incomplete token
                if final or end - pos > self._max_hold:
                    self._content_starts(out)
                    break
                break
            if kind == "comment-open":
                out.append(buf[pos:token_end])
                pos = token_end
                self._in_comment = True
                continue
            if kind in ("comment", "doctype"):
                out.append(buf[pos:token_end])
                pos = token_end
                continue
            if kind == "text":
                self._content_starts(out)
                break

            if self._phase == _LEADING and not (kind == "start" and name in _LEADING_TAGS):
                out.append(self._our_tag())
                self.inserted = True
                self._phase = _HEAD
                if pos >= slow_until and self.skip_runs:
                    continue  # this token may start a run of the head

            if kind == "start" and name == b"meta":
                out.append(self._meta(buf[pos:token_end], attrs))
                pos = token_end
                continue
            if self._phase == _LEADING:
                out.append(buf[pos:token_end])
                pos = token_end
                continue
            # Within the head, after our tag.
            if kind == "start" and name in _HEAD_TAGS:
                out.append(buf[pos:token_end])
                pos = token_end
                if name in _RAW_TEXT:
                    self._raw_end = _RAW_TEXT_END[name]
                continue
            if kind == "end" and (name in _HEAD_TAGS or name == b"head"):
                # Head elements between </head> and <body> still go into the head, a meta CSP included.
                out.append(buf[pos:token_end])
                pos = token_end
                continue
            self._phase = _PASS  # <body> or any body element

        if self._phase == _PASS:
            self._buf = b""
            rest = memoryview(buf)[pos:] if pos else buf
            return [b"".join(out), rest] if out else [rest]
        self._buf = buf[pos:]
        return [b"".join(out)]

    def _our_tag(self) -> bytes:
        return self._inline_snippet if self._inline_snippet is not None else self._snippet

    def _content_starts(self, out: list[bytes]) -> None:
        if not self.inserted:
            out.append(self._our_tag())
            self.inserted = True
        self._phase = _PASS

    @staticmethod
    def _token_at(buf: bytes, pos: int, end: int) -> tuple[int, str, bytes, bytes]:
        """(token end, kind, lowercased tag name, attribute bytes); end -1 if incomplete."""
        if end - pos < 4 and not b">" in buf[pos:end]:
            return -1, "", b"", b""
        nxt = buf[pos + 1]
        if buf.startswith(b"<!--", pos):
            # "<!-->" and "<!--->" are complete (empty) comments in HTML.
            if buf.startswith(b">", pos + 4) or buf.startswith(b"->", pos + 4):
                return buf.index(b">", pos + 4) + 1, "comment", b"", b""
            close = _COMMENT_END.search(buf, pos + 4)
            if close is not None:
                return close.end(), "comment", b"", b""
            if buf[pos + 4:end] in (b"", b"-"):
                return -1, "", b"", b""  # could still become "<!-->" or "<!--->"
            return pos + 4, "comment-open", b"", b""
        if nxt in b"!?":  # doctype, <?xml ...?>, bogus comments
            close = buf.find(b">", pos)
            return (close + 1 if close >= 0 else -1), "doctype", b"", b""
        if nxt == 0x2F:  # "/"
            match = _END_TAG.match(buf, pos)
            if match:
                return match.end(), "end", match.group(1).lower(), b""
            close = buf.find(b">", pos)
            third = buf[pos + 2] if pos + 2 < end else 0x41
            if (0x41 <= third <= 0x5A) or (0x61 <= third <= 0x7A) or close < 0:
                return -1, "", b"", b""  # an end tag whose ">" (or a quote's end) has not arrived yet
            # "</>" is dropped, "</ x>" or "</3>" is a bogus comment: neither ends the head.
            return close + 1, "doctype", b"", b""
        if (0x41 <= nxt <= 0x5A) or (0x61 <= nxt <= 0x7A):
            match = _START_TAG.match(buf, pos)
            if match:
                return match.end(), "start", match.group(1).lower(), match.group(2)
            return -1, "", b"", b""  # a quote or ">" has not arrived yet
        return pos, "text", b"", b""  # "<" followed by anything else is text

    def _meta(self, tag: bytes, attrs: bytes) -> bytes:
        """The meta tag as written, or with its CSP ``content`` amended."""
        if self._rewrite_meta_csp is None or b"content-security-policy" not in attrs.lower():
            return tag
        values = attribute_values(attrs)
        equiv = values.get(b"http-equiv")
        content = values.get(b"content")
        if equiv is None or content is None or equiv[0].strip().lower() != b"content-security-policy":
            return tag
        raw, start, stop = content
        if start < 0:
            return tag  # "content" with no value: an empty policy, which restricts nothing
        offset = len(tag) - len(attrs) - 1  # where attrs start inside tag
        start, stop = start + offset, stop + offset
        policy = html.unescape(raw.decode("latin-1"))
        if not self.inserted and self._inline_snippet is not None and (
                self._allows_inline is None or not self._allows_inline(policy)):
            self._inline_snippet = None  # this policy governs our tag, which comes after it
        new_value = html.escape(self._rewrite_meta_csp(policy), quote=True).encode("latin-1", "replace")
        quoted = tag[start - 1:start] in (b'"', b"'")
        if not quoted:
            new_value = b'"' + new_value + b'"'
        return tag[:start] + new_value + tag[stop:]
