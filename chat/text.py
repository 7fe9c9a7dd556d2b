"""Chat text: cleaning plain text, sanitized formatting as a node tree, links.

Chat text is plain text everywhere: the widget and the console show it with
``textContent``, transcripts escape it. Three tools live here:

* :func:`clean_text` / :func:`clean_line`: what the hub stores for a message,
  a name or a form field. Control characters (which terminals, mail clients and
  log viewers may act on) and the bidi overrides and isolates that can make
  ``gpj.exe`` read as ``exe.jpg`` are removed; newlines are normalised to ``\\n``.
* :func:`rich_tree`: the one place markup is accepted, the formatting a site
  owner configures for system messages (the welcome message). It is sanitized
  with nh3 against a small allow-list, then turned into a JSON node tree that
  the browser builds with ``createElement``/``textContent``: the widget runs on
  pages with strict CSP and Trusted Types, where it must never parse HTML.
  :func:`tree_text` and :func:`tree_html` render a tree (the stored one, which
  is re-validated, never trusted) for TXT and HTML transcripts and mail.
* :func:`linkify_spans`: the links of a plain text, for the HTML transcript.

Link rules (the widget and the console mirror them in JavaScript, so keep the
two in step):

1. A link starts with ``http://``, ``https://``, ``www.`` or ``mailto:``
   (case-insensitive), not glued to what precedes it: the character before is
   not one of ``A-Z a-z 0-9 @ . + / : _ -``.
2. It runs to the first whitespace or one of ``< > " `` ` or a control character.
3. Trailing ``. , : ; ! ? ' * …`` and closing quotes ``’ ” »`` are left out,
   repeatedly, and so is a closing ``)``, ``]`` or ``}`` that has no opening
   partner inside the link (``(see http://x.org/a)`` links ``http://x.org/a``,
   ``http://x.org/wiki/A_(b)`` keeps its parenthesis).
4. What remains must have a host: a letter or digit right after ``://`` or
   ``www.``; a ``mailto:`` needs ``local@domain.tld``. Otherwise it is text.
5. The target is the text itself, except ``www.`` links, which get ``https://``
   in front (:func:`link_href`).
"""

from __future__ import annotations

import re
import unicodedata
from html import escape
from html.parser import HTMLParser
from typing import Any, Literal

import nh3

__all__ = [
    "RICH_TAGS",
    "LINK_REL",
    "LINK_SCHEMES",
    "remove_unsafe_chars",
    "clean_text",
    "clean_line",
    "rich_tree",
    "rich_text",
    "tree_text",
    "tree_html",
    "linkify_spans",
    "link_href",
]

# ----- plain text --------------------------------------------------------------------

# Line separators other than \n: CR (alone or before LF), NEL (a C1 control) and
# the Unicode line and paragraph separators, all of which break lines somewhere.
_NEWLINES = re.compile("\r\n|[\r\x85\u2028\u2029]")

_UNSAFE_CHARS: dict[int, None] = {
    **{c: None for c in range(0x00, 0x20) if c not in (0x09, 0x0A)},  # C0 except tab and newline
    0x7F: None,  # DEL
    **{c: None for c in range(0x80, 0xA0)},  # C1
    **{c: None for c in range(0x202A, 0x202F)},  # LRE RLE PDF LRO RLO: embeddings and overrides
    **{c: None for c in range(0x2066, 0x206A)},  # LRI RLI FSI PDI: isolates
    # Lone surrogates arrive from JSON ("\ud800") and make every later UTF-8 encode
    # (database, mail, HTTP) fail; a valid pair never shows up here as two code points.
    **{c: None for c in range(0xD800, 0xE000)},
}


def remove_unsafe_chars(text: str) -> str:
    """``text`` without control characters (tab and newline kept), bidi overrides
    and isolates, and lone surrogates. Nothing else changes: no trimming, no cap."""
    return text.translate(_UNSAFE_CHARS)


def clean_text(text: str, limit: int) -> str:
    """Plain chat text as stored and shown: newlines normalised to ``\\n``, unsafe
    characters removed (:func:`remove_unsafe_chars`), NFC, trimmed, at most
    ``limit`` characters (code points)."""
    if limit < 0:
        raise ValueError("limit must not be negative")
    text = _NEWLINES.sub("\n", text)
    # NFC so that the same visible text has one form (and one length) whatever the
    # keyboard or platform composed it from.
    text = unicodedata.normalize("NFC", remove_unsafe_chars(text)).strip()
    return text[:limit].rstrip()


def clean_line(text: str, limit: int) -> str:
    """A one-line value (a name, a form field, a subject): like :func:`clean_text`,
    with every run of whitespace, newlines included, made one space."""
    return clean_text(" ".join(clean_text(text, len(text)).split()), limit)


# ----- formatted system messages -----------------------------------------------------

RICH_TAGS = frozenset({"b", "strong", "i", "em", "u", "br", "p", "ul", "ol", "li", "a", "code"})
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"
_LINK_TARGET = "_blank"
_VOID_TAGS = frozenset({"br"})
_BLOCK_TAGS = frozenset({"p", "ul", "ol", "li"})
# Elements whose content is not text a reader should see: dropped with the element
# (the allow-list alone would keep, e.g., a script's source as visible text).
_DROP_WITH_CONTENT = frozenset({
    "script", "style", "template", "noscript", "iframe", "object", "embed", "svg", "math",
    "title", "textarea", "select", "head",
})
# Browsers build the tree recursively; a pathological nesting must not blow their stack.
MAX_TREE_DEPTH = 32

Node = str | dict[str, Any]


def _sanitize(html: str) -> str:
    return nh3.clean(
        html,
        tags=set(RICH_TAGS),
        clean_content_tags=set(_DROP_WITH_CONTENT),
        attributes={"a": {"href"}},
        url_schemes=set(LINK_SCHEMES),
        url_relative="deny",  # a relative link would resolve against whatever page shows it
        link_rel=LINK_REL,
        set_tag_attribute_values={"a": {"target": _LINK_TARGET}},
        strip_comments=True,
    )


def _safe_href(href: object) -> str | None:
    """``href`` when it is an absolute http, https or mailto URL, else None.

    Checked again on every tree even though nh3 already filtered it: a stored tree
    is data from the database, and the browser assigns ``href`` as it is.
    """
    if not isinstance(href, str):
        return None
    href = remove_unsafe_chars(href).strip()
    if any(c.isspace() for c in href) or len(href) > 2048:
        return None
    scheme, colon, rest = href.partition(":")
    if not colon or scheme.lower() not in LINK_SCHEMES:
        return None
    if scheme.lower() == "mailto":
        return href if "@" in rest else None
    return href if rest.startswith("//") and len(rest) > 2 else None


def _element(tag: str, children: list[Node], href: str | None = None) -> dict[str, Any]:
    attrs = {"href": href, "rel": LINK_REL, "target": _LINK_TARGET} if href is not None else {}
    return {"tag": tag, "attrs": attrs, "children": children}


class _TreeBuilder(HTMLParser):
    """Turns nh3's output (well-formed, allow-listed) into nodes, checking every
    element and attribute again so that the tree is safe on its own."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root: list[Node] = []
        # (tag, children) of each open element; tag None: an element left out (its
        # children go to the enclosing one), so end tags still pair up.
        self.stack: list[tuple[str | None, list[Node]]] = []

    def _children(self) -> list[Node]:
        for tag, children in reversed(self.stack):
            if tag is not None:
                return children
        return self.root

    def _depth(self) -> int:
        return sum(1 for tag, _ in self.stack if tag is not None)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in RICH_TAGS:
            if tag not in _VOID_TAGS:
                self.stack.append((None, []))
            return
        href = None
        if tag == "a":
            href = _safe_href(dict(attrs).get("href"))
        if tag in _VOID_TAGS:
            self._children().append(_element(tag, []))
            return
        if (tag == "a" and href is None) or self._depth() >= MAX_TREE_DEPTH:
            self.stack.append((None, []))  # unwrapped: its text stays, the element goes
            return
        node = _element(tag, [], href)
        self._children().append(node)
        self.stack.append((tag, node["children"]))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID_TAGS:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID_TAGS:
            return
        # Close the innermost open element; nh3's output nests properly, so this is
        # the matching one (an unwrapped element's placeholder counts as one too).
        if self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        data = remove_unsafe_chars(data)  # character references decode to anything ("&#x202e;")
        if not data:
            return
        children = self._children()
        if children and isinstance(children[-1], str):
            children[-1] += data
        else:
            children.append(data)


def rich_tree(html: str) -> list[Node]:
    """Sanitized formatting as a node tree for the browser.

    Text nodes are strings; elements are ``{"tag", "attrs", "children"}`` with
    ``tag`` one of :data:`RICH_TAGS`. Only links have attributes: ``href``
    (absolute http, https or mailto; a link without one is unwrapped to its
    text), ``rel`` = :data:`LINK_REL` and ``target`` = ``_blank``.
    """
    builder = _TreeBuilder()
    builder.feed(_sanitize(remove_unsafe_chars(html)))
    builder.close()
    return builder.root


def _valid_children(node: object) -> list[Any]:
    children = node.get("children") if isinstance(node, dict) else None
    return children if isinstance(children, list) else []


class _PlainText:
    """Plain-text layout of a tree: paragraphs separated by a blank line, list
    items on their own lines (``- `` or ``1. ``, indented when nested), links as
    ``label (address)``, whitespace collapsed as a browser would."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.lists: list[list[int]] = []  # per open list: [next number] (0: bulleted)

    def _at_line_start(self) -> bool:
        text = "".join(self.parts[-2:])
        return not text or text.endswith("\n")

    def _break(self, lines: int) -> None:
        """End the current line and leave ``lines - 1`` blank lines (none at the very start)."""
        if not self.parts:
            return
        text = "".join(self.parts).rstrip(" ")
        trailing = len(text) - len(text.rstrip("\n"))
        self.parts = [text + "\n" * max(0, lines - trailing)]

    def text(self, data: str) -> None:
        data = re.sub(r"\s+", " ", data)  # as a browser shows it
        if self._at_line_start():
            data = data.lstrip(" ")
        elif data.startswith(" ") and "".join(self.parts[-1:]).endswith(" "):
            data = data[1:]
        if data:
            self.parts.append(data)

    def nodes(self, nodes: object, depth: int = 0) -> None:
        if not isinstance(nodes, list) or depth > MAX_TREE_DEPTH:
            return
        for node in nodes:
            if isinstance(node, str):
                self.text(remove_unsafe_chars(node))
            elif isinstance(node, dict):
                self.element(node, depth)

    def element(self, node: dict[str, Any], depth: int) -> None:
        tag = node.get("tag")
        children = _valid_children(node)
        if tag == "br":
            self.parts[-1:] = ["".join(self.parts[-1:]).rstrip(" ")]
            self.parts.append("\n")
        elif tag == "p":
            self._break(2)
            self.nodes(children, depth + 1)
            self._break(2)
        elif tag in ("ul", "ol"):
            self._break(2 if not self.lists else 1)
            self.lists.append([1 if tag == "ol" else 0])
            self.nodes(children, depth + 1)
            self.lists.pop()
            self._break(2 if not self.lists else 1)
        elif tag == "li":
            self._break(1)
            counter = self.lists[-1] if self.lists else [0]
            marker = f"{counter[0]}. " if counter[0] else "- "
            if counter[0]:
                counter[0] += 1
            self.parts.append("  " * max(0, len(self.lists) - 1) + marker)
            self.nodes(children, depth + 1)
            self._break(1)
        elif tag == "a":
            start = len("".join(self.parts))
            self.nodes(children, depth + 1)
            label = "".join(self.parts)[start:].strip()
            href = _safe_href(node.get("attrs", {}).get("href") if isinstance(node.get("attrs"), dict) else None)
            if href and href not in (label, f"mailto:{label}", f"http://{label}", f"https://{label}"):
                self.text(f" ({href})" if label else href)
        else:  # inline formatting, and anything unknown: its text only
            self.nodes(children, depth + 1)

    def result(self) -> str:
        lines = [line.rstrip() for line in "".join(self.parts).split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def tree_text(nodes: object) -> str:
    """A node tree (from :func:`rich_tree`, or as stored) as plain text. Anything
    in it that is not a valid node is skipped, never an error."""
    layout = _PlainText()
    layout.nodes(nodes)
    return layout.result()


def rich_text(html: str) -> str:
    """Formatted text as plain text (TXT transcripts, mail): ``tree_text(rich_tree(html))``."""
    return tree_text(rich_tree(html))


def tree_html(nodes: object, *, _depth: int = 0) -> str:
    """A node tree as safe HTML (the HTML transcript and mail).

    Built from the tree, not from any stored markup: only :data:`RICH_TAGS`, only a
    checked ``href`` on links (else the link becomes its text), every text escaped.
    """
    if not isinstance(nodes, list) or _depth > MAX_TREE_DEPTH:
        return ""
    out: list[str] = []
    for node in nodes:
        if isinstance(node, str):
            out.append(escape(remove_unsafe_chars(node), quote=False))
            continue
        if not isinstance(node, dict):
            continue
        tag = node.get("tag")
        inner = tree_html(_valid_children(node), _depth=_depth + 1)
        if tag not in RICH_TAGS:
            out.append(inner)
        elif tag in _VOID_TAGS:
            out.append(f"<{tag}>")
        elif tag == "a":
            attrs = node.get("attrs")
            href = _safe_href(attrs.get("href") if isinstance(attrs, dict) else None)
            if href is None:
                out.append(inner)
            else:
                out.append(f'<a href="{escape(href)}" rel="{LINK_REL}" target="{_LINK_TARGET}">{inner}</a>')
        else:
            out.append(f"<{tag}>{inner}</{tag}>")
    return "".join(out)


# ----- links in plain text -----------------------------------------------------------

SpanKind = Literal["text", "url"]

_LINK_CANDIDATE = re.compile(
    r"(?<![A-Za-z0-9@.+/:_-])"  # not glued to a word, an address or a path before it
    r"(?:https?://|www\.|mailto:)"
    r"[^\s<>\"`\x00-\x1f\x7f]+",
    re.IGNORECASE,
)
_TRAILING_PUNCTUATION = frozenset(".,:;!?'*\u2026\u2019\u201d\u00bb")
_CLOSERS = {")": "(", "]": "[", "}": "{"}
_MAILTO = re.compile(r"mailto:[^@\s/?]+@[^\W_][\w-]*(?:\.[\w-]+)*\.[^\W\d_]{2,}(?:\?.*)?", re.IGNORECASE)


def _trim_link(candidate: str) -> str:
    while candidate:
        last = candidate[-1]
        if last in _TRAILING_PUNCTUATION:
            candidate = candidate[:-1]
        elif last in _CLOSERS and candidate.count(last) > candidate.count(_CLOSERS[last]):
            candidate = candidate[:-1]
        else:
            break
    return candidate


def _is_link(candidate: str) -> bool:
    lower = candidate.lower()
    if lower.startswith("mailto:"):
        return _MAILTO.fullmatch(candidate) is not None
    for prefix in ("http://", "https://", "www."):
        if lower.startswith(prefix):
            rest = candidate[len(prefix):]
            return bool(rest) and rest[0].isalnum()
    return False  # trimming ate into the prefix ("www." at the end of a sentence)


def linkify_spans(text: str) -> list[tuple[SpanKind, str]]:
    """``text`` cut into ``("text", ...)`` and ``("url", ...)`` spans, in order
    (joined, they give back ``text``). The rules are in the module docstring."""
    spans: list[tuple[SpanKind, str]] = []
    plain_from = 0
    for match in _LINK_CANDIDATE.finditer(text):
        link = _trim_link(match.group())
        if not _is_link(link):
            continue
        if match.start() > plain_from:
            spans.append(("text", text[plain_from:match.start()]))
        spans.append(("url", link))
        plain_from = match.start() + len(link)
    if plain_from < len(text):
        spans.append(("text", text[plain_from:]))
    return spans


def link_href(url: str) -> str:
    """Where a ``url`` span of :func:`linkify_spans` points: ``www.`` links get ``https://``."""
    return "https://" + url if url[:4].lower() == "www." else url
