"""chat.text: plain-text cleaning, sanitized formatting as a node tree, links."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat.text import (
    LINK_REL,
    MAX_TREE_DEPTH,
    RICH_TAGS,
    clean_line,
    clean_text,
    link_href,
    linkify_spans,
    remove_unsafe_chars,
    rich_text,
    rich_tree,
    tree_html,
    tree_text,
)

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

# Markup a hostile site owner's config, or a compromised database, could hold.
XSS_CORPUS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "<b onmouseover=alert(1)>hover</b>",
    "<p style=\"background:url(javascript:alert(1))\">styled</p>",
    "<a href=\"javascript:alert(1)\">js</a>",
    "<a href=\"JaVaScRiPt:alert(1)\">mixed case</a>",
    "<a href=\"java&#x09;script:alert(1)\">tab entity</a>",
    "<a href=\"&#106;avascript:alert(1)\">entity j</a>",
    "<a href=\" javascript:alert(1)\">leading space</a>",
    "<a href=\"vbscript:msgbox(1)\">vb</a>",
    "<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">data</a>",
    "<a href=\"//evil.example/\">protocol-relative</a>",
    "<a href=\"/relative\">relative</a>",
    "<a href=\"https://ok.example/\" onclick=\"alert(1)\" target=\"_self\" rel=\"opener\">ok</a>",
    "</textarea><script>alert(1)</script>",
    "<svg onload=alert(1)><script>alert(2)</script></svg>",
    "<svg><a xlink:href=\"javascript:alert(1)\"><text>svg link</text></a></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<iframe src=\"javascript:alert(1)\"></iframe>",
    "<object data=\"data:text/html,<script>alert(1)</script>\"></object>",
    "<form action=\"javascript:alert(1)\"><button>go</button></form>",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
    "<base href=\"javascript:alert(1)//\">",
    "<!--<script>alert(1)</script>-->",
    "<p>\u202eexe.jpg</p><p>&#x202e;gpj.exe</p>",
    "<template><script>alert(1)</script></template>",
    "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\"></noscript>",
    "<a href=\"https://ok.example/\"><a href=\"javascript:alert(1)\">nested</a></a>",
    "<ul><li><code onclick=alert(1)>&lt;script&gt;</code></li></ul>",
]


def walk(nodes):
    """Every element of a tree, depth first."""
    for node in nodes:
        if isinstance(node, dict):
            yield node
            yield from walk(node["children"])


def assert_safe_tree(nodes) -> None:
    json.dumps(nodes)  # plain JSON all the way down
    for node in nodes:
        assert isinstance(node, (str, dict))
    for element in walk(nodes):
        assert set(element) == {"tag", "attrs", "children"}
        assert element["tag"] in RICH_TAGS
        if element["tag"] == "a":
            assert set(element["attrs"]) == {"href", "rel", "target"}
            assert element["attrs"]["href"].split(":", 1)[0].lower() in ("http", "https", "mailto")
            assert element["attrs"]["rel"] == LINK_REL
            assert element["attrs"]["target"] == "_blank"
        else:
            assert element["attrs"] == {}
        for child in element["children"]:
            assert isinstance(child, (str, dict))
    assert not any(c in BIDI for c in json.dumps(nodes, ensure_ascii=False))


# ----- clean_text --------------------------------------------------------------------


def test_clean_text_normalises_newlines_and_trims():
    assert clean_text("  one\r\ntwo\rthree\u2028four\u2029five\x85six \n\t ", 100) == "one\ntwo\nthree\nfour\nfive\nsix"


def test_clean_text_strips_controls_but_keeps_tab_and_newline():
    text = "a\x00b\x01c\x1bd\x7fe\x80f\x9fg\th\ni"
    assert clean_text(text, 100) == "abcdefg\th\ni"


def test_clean_text_strips_bidi_overrides_and_isolates():
    assert clean_text("invoice\u202egpj.exe", 100) == "invoicegpj.exe"
    assert clean_text("".join(f"x{c}" for c in BIDI), 100) == "x" * len(BIDI)
    # Marks (LRM, RLM) and joiners are ordinary text: emoji sequences need ZWJ.
    assert clean_text("a\u200eb\u200fc 👩\u200d💻", 100) == "a\u200eb\u200fc 👩\u200d💻"


def test_clean_text_caps_length_after_trimming():
    assert clean_text("   " + "x" * 50, 10) == "x" * 10
    assert clean_text("abc def", 4) == "abc"  # no trailing space left by the cut
    assert clean_text("anything", 0) == ""
    with pytest.raises(ValueError):
        clean_text("x", -1)


def test_clean_text_composes_and_drops_lone_surrogates():
    assert clean_text("e\u0301", 10) == "\u00e9"
    assert clean_text("a\ud800b", 10) == "ab"
    clean_text("\udfff" * 3, 10).encode("utf-8")  # encodable


def test_clean_line_collapses_whitespace():
    assert clean_line("  Bob\r\n\n  Smith\t\u2028Jr ", 100) == "Bob Smith Jr"
    assert clean_line("Bob\u202e Smith", 5) == "Bob S"


@settings(max_examples=300, deadline=None)
@given(st.text(), st.integers(min_value=0, max_value=60))
def test_clean_text_properties(text, limit):
    cleaned = clean_text(text, limit)
    assert len(cleaned) <= limit
    assert cleaned == cleaned.strip()
    assert remove_unsafe_chars(cleaned) == cleaned
    assert "\r" not in cleaned
    assert clean_text(cleaned, limit) == cleaned  # idempotent
    cleaned.encode("utf-8")


# ----- rich_tree ---------------------------------------------------------------------


def test_rich_tree_keeps_allowed_formatting():
    tree = rich_tree('<p>Hi <b>there</b>, <em>welcome</em>!<br>See <a href="https://help.example/faq">the FAQ</a>'
                     ' or <a href="mailto:help@example.com">mail us</a>.</p>'
                     "<ul><li>one</li><li><strong>two</strong></li></ul>"
                     "<ol><li><u>a</u> <i>b</i> <code>c</code></li></ol>")
    assert tree[0] == {
        "tag": "p", "attrs": {}, "children": [
            "Hi ", {"tag": "b", "attrs": {}, "children": ["there"]}, ", ",
            {"tag": "em", "attrs": {}, "children": ["welcome"]}, "!",
            {"tag": "br", "attrs": {}, "children": []}, "See ",
            {"tag": "a", "attrs": {"href": "https://help.example/faq", "rel": LINK_REL, "target": "_blank"},
             "children": ["the FAQ"]},
            " or ",
            {"tag": "a", "attrs": {"href": "mailto:help@example.com", "rel": LINK_REL, "target": "_blank"},
             "children": ["mail us"]},
            ".",
        ],
    }
    assert [e["tag"] for e in walk(tree[1:])] == ["ul", "li", "li", "strong", "ol", "li", "u", "i", "code"]
    assert_safe_tree(tree)


def test_rich_tree_text_is_text():
    # Escaped markup stays text: the browser sets it with textContent.
    assert rich_tree("1 &lt; 2 &amp;&amp; <b>&lt;script&gt;</b>") == [
        "1 < 2 && ", {"tag": "b", "attrs": {}, "children": ["<script>"]}]


@pytest.mark.parametrize("html", XSS_CORPUS)
def test_rich_tree_xss_corpus(html):
    tree = rich_tree(html)
    assert_safe_tree(tree)
    flat = json.dumps(tree)
    assert "alert(2)" not in flat  # script bodies are dropped, not kept as text
    for element in walk(tree):
        assert "javascript" not in json.dumps(element["attrs"]).lower()


def test_rich_tree_unwraps_links_without_a_safe_href():
    assert rich_tree('<a href="javascript:alert(1)">click</a> <a href="/x">rel</a>') == ["click rel"]


def test_rich_tree_limits_depth():
    html = "<b>" * 100 + "deep" + "</b>" * 100
    tree = rich_tree(html)
    depth, nodes = 0, tree
    while nodes and isinstance(nodes[0], dict):
        depth += 1
        nodes = nodes[0]["children"]
    assert depth == MAX_TREE_DEPTH
    assert nodes == ["deep"]


def test_rich_text_renders_plain_text():
    html = ("<p>Welcome to <b>Example</b>!<br>Visit <a href='https://example.com/help'>our help</a> "
            "or <a href='https://example.com'>https://example.com</a>.</p>"
            "<ul><li>Orders</li><li>Returns<ol><li>first</li><li>second</li></ol></li></ul>"
            "<p>Thanks   \n  for   waiting</p>")
    assert rich_text(html) == (
        "Welcome to Example!\n"
        "Visit our help (https://example.com/help) or https://example.com.\n"
        "\n"
        "- Orders\n"
        "- Returns\n"
        "  1. first\n"
        "  2. second\n"
        "\n"
        "Thanks for waiting"
    )


def test_tree_html_round_trip():
    html = '<p>a <b>b</b><br><a href="https://x.example/?a=1&amp;b=2">l</a></p><ul><li>i</li></ul>'
    tree = rich_tree(html)
    assert rich_tree(tree_html(tree)) == tree
    assert 'href="https://x.example/?a=1&amp;b=2"' in tree_html(tree)


def test_tree_renderers_do_not_trust_a_stored_tree():
    hostile = [
        {"tag": "script", "attrs": {}, "children": ["alert(1)"]},
        {"tag": "b", "attrs": {"onclick": "alert(1)", "style": "x"}, "children": ["<img src=x onerror=alert(1)>"]},
        {"tag": "a", "attrs": {"href": "javascript:alert(1)"}, "children": ["js"]},
        {"tag": "a", "attrs": {"href": "https://ok.example/\" onclick=\"alert(1)"}, "children": ["quote"]},
        {"tag": "img", "attrs": {"src": "x"}, "children": []},
        42, None, ["nested list"], {"no": "tag"},
    ]
    out = tree_html(hostile)
    assert "<script" not in out and "onclick" not in out and "<img" not in out and "javascript:" not in out
    assert "&lt;img src=x onerror=alert(1)&gt;" in out
    assert tree_text(hostile) == "alert(1)<img src=x onerror=alert(1)>jsquote"
    assert tree_text("not a list") == "" and tree_html({"tag": "b"}) == ""


# ----- links -------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "urls"), [
    ("see https://example.com/a?b=c#d now", ["https://example.com/a?b=c#d"]),
    ("HTTP://EXAMPLE.COM", ["HTTP://EXAMPLE.COM"]),
    ("go to www.example.com.", ["www.example.com"]),
    ("(see http://x.org/a), ok", ["http://x.org/a"]),
    ("https://en.wikipedia.org/wiki/Foo_(bar) rocks", ["https://en.wikipedia.org/wiki/Foo_(bar)"]),
    ("[https://x.org/a]", ["https://x.org/a"]),
    ("is it http://x.org/?!", ["http://x.org/"]),
    ("'http://x.org/a'", ["http://x.org/a"]),
    ("“https://x.org/q”", ["https://x.org/q"]),
    ("<https://x.org/a>", ["https://x.org/a"]),
    ('"https://x.org/a"', ["https://x.org/a"]),
    ("mail mailto:help@example.com, please", ["mailto:help@example.com"]),
    ("mailto:help@example.com?subject=Hi", ["mailto:help@example.com?subject=Hi"]),
    ("https://xn--bcher-kva.example/ and https://bücher.example/ö", ["https://xn--bcher-kva.example/",
                                                                   "https://bücher.example/ö"]),
    ("two: http://a.example,http://b.example", ["http://a.example,http://b.example"]),
    ("javascript:alert(1) data:text/html,x vbscript:x ftp://x.org file:///etc/passwd", []),
    ("xhttp://x.org nothttps://x.org", []),
    ("foo.www.example.com me@www.example.com /www.example.com", []),
    ("https:// http://", []),
    ("www. www", []),
    ("mailto: mailto:nobody mailto:a@b", []),
    ("", []),
])
def test_linkify_spans(text, urls):
    spans = linkify_spans(text)
    assert "".join(s for _, s in spans) == text
    assert [s for kind, s in spans if kind == "url"] == urls
    assert all(kind in ("text", "url") for kind, _ in spans)
    # Adjacent spans alternate: no empty or doubled text spans.
    assert all(s for _, s in spans)


def test_link_href():
    assert link_href("www.example.com/x") == "https://www.example.com/x"
    assert link_href("WWW.example.com") == "https://WWW.example.com"
    assert link_href("http://example.com") == "http://example.com"
    assert link_href("mailto:a@b.example") == "mailto:a@b.example"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("ab.:/()w@ -'\"<>?!mailtohps") + ["www.", "http://", "mailto:", ".com"]))
       .map("".join))
def test_linkify_spans_properties(text):
    spans = linkify_spans(text)
    assert "".join(s for _, s in spans) == text
    for kind, span in spans:
        if kind == "url":
            assert link_href(span).split(":", 1)[0].lower() in ("http", "https", "mailto")
            assert not any(c.isspace() for c in span)
