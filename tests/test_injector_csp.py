"""Content-Security-Policy: our script runs under the site's policy, which is never weakened.

Header values go through ``rewrite_csp``; meta-delivered policies through the
insertion scanner; both are checked here, alone and through ``plan_page``.
"""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cobrowse.injector import Injector, RequestInfo, allowance_for, rewrite_csp
from cobrowse.injector.csp import TRUSTED_TYPES_POLICY

ORIGIN = "https://shop.example"
NONCE = "abcDEF123_-x"
ALLOWANCE = allowance_for(ORIGIN, "/__cobrowse/", NONCE)
OURS_NONCE = f"'nonce-{NONCE}'"
OURS_PATH = "https://shop.example/__cobrowse/"
OURS_CONNECT = ["https://shop.example/__cobrowse/", "wss://shop.example/__cobrowse/"]

INJECTOR = Injector()
SNIPPET = INJECTOR.snippet(NONCE)
NAVIGATION = RequestInfo("GET", sec_fetch_dest="document")


def directives(policy: str) -> dict[str, list[str]]:
    """First occurrence of each directive, name -> sources (as a browser reads it)."""
    parsed: dict[str, list[str]] = {}
    for raw in policy.split(";"):
        parts = raw.split()
        if parts and parts[0].lower() not in parsed:
            parsed[parts[0].lower()] = parts[1:]
    return parsed


def rewrite(policy: str) -> dict[str, list[str]]:
    out = rewrite_csp(policy, ALLOWANCE)
    assert "," not in out
    return directives(out)


def plan(headers, body: bytes = b"", origin: str = ORIGIN):
    page = INJECTOR.plan_page(NAVIGATION, 200, [("Content-Type", "text/html"), *headers], origin, nonce=NONCE)
    assert page is not None
    return page


def run_page(body: bytes, chunks: list[bytes] | None = None) -> bytes:
    page = plan([])
    out = [piece for chunk in (chunks if chunks is not None else [body]) for piece in page.body.feed(chunk)]
    out.extend(page.body.finish())
    return b"".join(out)


# Allowance -----------------------------------------------------------------

def test_allowance_for_https_origin():
    assert ALLOWANCE.script_source == OURS_PATH
    assert list(ALLOWANCE.connect_sources) == OURS_CONNECT
    assert ALLOWANCE.nonce == NONCE


def test_allowance_for_http_origin_with_port():
    allowance = allowance_for("http://localhost:8080", "/__cb/", "n")
    assert allowance.script_source == "http://localhost:8080/__cb/"
    assert allowance.connect_sources == ("http://localhost:8080/__cb/", "ws://localhost:8080/__cb/")


# Which script source we add -------------------------------------------------

@pytest.mark.parametrize("sources", [
    "'self' 'nonce-r4nd0m'",
    "'self' 'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",
    "'sha384-abc'",
    "'SHA512-abc'",
    "'strict-dynamic' 'nonce-r4nd0m' 'unsafe-inline' https:",
    "'strict-dynamic' 'sha256-abc'",
    "'strict-dynamic' https: 'unsafe-inline'",  # host sources mean nothing under 'strict-dynamic'
    "'STRICT-DYNAMIC'",
    "'unsafe-inline' 'nonce-r4nd0m'",
])
def test_nonce_added_where_policy_trusts_by_token(sources):
    out = rewrite(f"script-src {sources}")
    assert out["script-src"] == sources.split() + [OURS_NONCE]


@pytest.mark.parametrize("sources", ["'self'", "'self' 'unsafe-inline'", "https://cdn.example 'unsafe-eval'", "*", "https:"])
def test_path_source_added_where_policy_trusts_by_location(sources):
    out = rewrite(f"script-src {sources}")
    # A nonce here would switch off the site's own 'unsafe-inline' scripts.
    assert out["script-src"] == sources.split() + [OURS_PATH]
    assert not any(s.startswith("'nonce-") for s in out["script-src"])


def test_none_is_replaced_by_our_source_only():
    out = rewrite("script-src 'none'; connect-src 'NONE'")
    assert out["script-src"] == [OURS_PATH]
    assert out["connect-src"] == OURS_CONNECT


def test_script_src_elem_takes_precedence():
    out = rewrite("default-src 'self'; script-src 'nonce-r4nd0m'; script-src-elem 'self'")
    assert out["script-src-elem"] == ["'self'", OURS_PATH]
    assert out["script-src"] == ["'nonce-r4nd0m'"]
    assert out["default-src"] == ["'self'"]


def test_script_src_takes_precedence_over_default_src():
    out = rewrite("default-src 'none'; script-src 'self' 'nonce-r4nd0m'")
    assert out["script-src"] == ["'self'", "'nonce-r4nd0m'", OURS_NONCE]
    assert out["default-src"] == ["'none'"]


def test_default_src_only_gets_a_script_src_copy():
    policy = "default-src 'self' https://cdn.example; img-src *"
    text = rewrite_csp(policy, ALLOWANCE)
    out = directives(text)
    assert out["default-src"] == ["'self'", "https://cdn.example"]  # unchanged: images, fonts, frames as before
    assert out["script-src"] == ["'self'", "https://cdn.example", OURS_PATH]
    assert out["connect-src"] == ["'self'", "https://cdn.example", *OURS_CONNECT]
    assert out["img-src"] == ["*"]
    assert text.startswith("default-src 'self' https://cdn.example; img-src *; ")


def test_default_src_with_nonce_copy_uses_nonce_and_connect_copy_drops_tokens():
    out = rewrite("default-src 'self' 'nonce-r4nd0m' 'strict-dynamic' 'sha256-abc'")
    assert out["script-src"] == ["'self'", "'nonce-r4nd0m'", "'strict-dynamic'", "'sha256-abc'", OURS_NONCE]
    assert out["connect-src"] == ["'self'", *OURS_CONNECT]
    assert out["default-src"] == ["'self'", "'nonce-r4nd0m'", "'strict-dynamic'", "'sha256-abc'"]


def test_default_src_none():
    out = rewrite("default-src 'none'")
    assert out["default-src"] == ["'none'"]
    assert out["script-src"] == [OURS_PATH]
    assert out["connect-src"] == OURS_CONNECT


def test_connect_src_gets_our_endpoints():
    out = rewrite("script-src 'self'; connect-src 'self' https://api.example")
    assert out["connect-src"] == ["'self'", "https://api.example", *OURS_CONNECT]


def test_connect_src_not_duplicated():
    out = rewrite(f"connect-src {' '.join(OURS_CONNECT)}")
    assert out["connect-src"] == OURS_CONNECT


def test_connect_src_takes_precedence_over_default_src():
    out = rewrite("default-src 'self'; connect-src https://api.example")
    assert out["connect-src"] == ["https://api.example", *OURS_CONNECT]
    assert out["default-src"] == ["'self'"]


def test_websocket_scheme_follows_origin():
    out = directives(rewrite_csp("connect-src 'self'", allowance_for("http://127.0.0.1:8000", "/__cobrowse/", "n")))
    assert out["connect-src"] == ["'self'", "http://127.0.0.1:8000/__cobrowse/", "ws://127.0.0.1:8000/__cobrowse/"]


@pytest.mark.parametrize("policy", [
    "frame-ancestors 'none'",
    "img-src 'self'; style-src 'unsafe-inline'",
    "upgrade-insecure-requests",
    "report-uri /csp; block-all-mixed-content",
    "require-trusted-types-for 'script'",
])
def test_policy_without_script_or_connect_restrictions_is_unchanged(policy):
    assert rewrite_csp(policy, ALLOWANCE) == policy


def test_untouched_directives_keep_their_text():
    policy = "img-src  data:   https:;style-src 'self' 'unsafe-inline';script-src 'self'"
    out = rewrite_csp(policy, ALLOWANCE)
    assert out.split("; ")[:2] == ["img-src  data:   https:", "style-src 'self' 'unsafe-inline'"]


def test_value_less_directive_and_trailing_semicolon():
    out = rewrite_csp("upgrade-insecure-requests; script-src 'self';", ALLOWANCE)
    assert out == f"upgrade-insecure-requests; script-src 'self' {OURS_PATH}"


def test_doubled_semicolons_and_whitespace():
    out = rewrite("  ;; script-src\t'self' ;  ; ")
    assert out == {"script-src": ["'self'", OURS_PATH]}


def test_directive_names_are_case_insensitive():
    out = rewrite("Script-Src 'self'; DEFAULT-SRC 'none'")
    assert out["script-src"] == ["'self'", OURS_PATH]
    assert "script-src-elem" not in out


def test_only_first_of_duplicate_directives_is_amended():
    text = rewrite_csp("script-src 'self'; script-src 'nonce-r4nd0m'", ALLOWANCE)
    assert text == f"script-src 'self' {OURS_PATH}; script-src 'nonce-r4nd0m'"


def test_comma_separated_policies_are_amended_independently():
    text = rewrite_csp("script-src 'nonce-r4nd0m', default-src 'self'", ALLOWANCE)
    first, second = text.split(", ")
    assert directives(first) == {"script-src": ["'nonce-r4nd0m'", OURS_NONCE]}
    assert directives(second)["script-src"] == ["'self'", OURS_PATH]
    assert directives(second)["default-src"] == ["'self'"]


@pytest.mark.parametrize("value, expected", [
    ("trusted-types app", ["app", TRUSTED_TYPES_POLICY]),
    ("trusted-types app 'allow-duplicates'", ["app", "'allow-duplicates'", TRUSTED_TYPES_POLICY]),
    ("trusted-types", [TRUSTED_TYPES_POLICY]),
    ("trusted-types 'none'", [TRUSTED_TYPES_POLICY]),
    ("trusted-types *", ["*"]),
    (f"trusted-types {TRUSTED_TYPES_POLICY} app", [TRUSTED_TYPES_POLICY, "app"]),
])
def test_trusted_types_gets_our_policy_name(value, expected):
    out = rewrite(value + "; require-trusted-types-for 'script'")
    assert out["trusted-types"] == expected
    assert out["require-trusted-types-for"] == ["'script'"]


SOURCE = st.sampled_from([
    "'self'", "'none'", "'unsafe-inline'", "'unsafe-eval'", "'strict-dynamic'", "'nonce-r4nd0m'", "'sha256-abc'",
    "https:", "data:", "*", "https://cdn.example", "'report-sample'", "'wasm-unsafe-eval'",
])
DIRECTIVE = st.tuples(
    st.sampled_from(["default-src", "script-src", "script-src-elem", "connect-src", "img-src", "style-src",
                     "trusted-types", "upgrade-insecure-requests", "frame-ancestors"]),
    st.lists(SOURCE, max_size=4),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(DIRECTIVE, max_size=6))
def test_property_never_weakens_a_policy(parsed):
    policy = "; ".join(" ".join([name, *sources]) for name, sources in parsed)
    before = directives(policy)
    after = rewrite(policy)
    ours = {OURS_NONCE, OURS_PATH, *OURS_CONNECT, TRUSTED_TYPES_POLICY}
    for name, sources in before.items():
        if after[name] == sources:
            continue
        # Every source the site listed is still there, in order ('none' beside
        # ours means nothing and goes), and all we add is our own.
        kept = [s for s in sources if s != "'none'"]
        assert after[name][:len(kept)] == kept, name
        assert set(after[name][len(kept):]) <= ours, name
    for name in after.keys() - before.keys():
        # A directive we add copies default-src, so nothing else gets looser.
        assert name in ("script-src", "connect-src") and "default-src" in before
        copied = [s for s in before["default-src"] if s != "'none'"]
        assert set(after[name]) - ours <= set(copied)
    # The directive that governs <script> elements lets ours in.
    governing = next((d for d in ("script-src-elem", "script-src", "default-src") if d in after), None)
    if governing is not None:
        assert OURS_NONCE in after[governing] or OURS_PATH in after[governing]


# Headers through plan_page ---------------------------------------------------

def test_every_csp_header_rewritten_independently():
    page = plan([
        ("Content-Security-Policy", "script-src 'nonce-r4nd0m'"),
        ("content-security-policy", "default-src 'self'"),
        ("X-Other", "script-src 'self'"),
    ])
    values = [v for n, v in page.headers if n.lower() == "content-security-policy"]
    assert len(values) == 2
    assert directives(values[0])["script-src"] == ["'nonce-r4nd0m'", OURS_NONCE]
    assert directives(values[1])["script-src"] == ["'self'", OURS_PATH]
    assert directives(values[1])["default-src"] == ["'self'"]
    assert ("X-Other", "script-src 'self'") in page.headers


def test_comma_separated_header_value():
    page = plan([("Content-Security-Policy", "script-src 'self', connect-src 'none'")])
    [value] = [v for n, v in page.headers if n == "Content-Security-Policy"]
    first, second = value.split(", ")
    assert directives(first)["script-src"] == ["'self'", OURS_PATH]
    assert directives(second)["connect-src"] == OURS_CONNECT


def test_report_only_header_untouched():
    original = "script-src 'self'; report-uri /csp"
    page = plan([("Content-Security-Policy-Report-Only", original)])
    assert ("Content-Security-Policy-Report-Only", original) in page.headers


def test_header_nonce_matches_snippet_nonce():
    page = INJECTOR.plan_page(NAVIGATION, 200, [("Content-Type", "text/html"),
                                                ("Content-Security-Policy", "script-src 'strict-dynamic' 'nonce-x'")], ORIGIN)
    [value] = [v for n, v in page.headers if n == "Content-Security-Policy"]
    out = b"".join(page.body.finish())
    assert f"'nonce-{page.nonce}'" in directives(value)["script-src"]
    assert f'nonce="{page.nonce}"'.encode() in out
    assert re.fullmatch(r"[A-Za-z0-9_-]{16,}", page.nonce)  # valid base64url nonce-source


def test_header_rewritten_with_the_public_origin():
    page = plan([("Content-Security-Policy", "script-src 'self'")], origin="http://localhost:8080")
    [value] = [v for n, v in page.headers if n == "Content-Security-Policy"]
    assert directives(value)["script-src"] == ["'self'", "http://localhost:8080/__cobrowse/"]


# Meta-delivered policies -----------------------------------------------------

META_REWRITTEN = html.escape(rewrite_csp("script-src 'self'", ALLOWANCE), quote=True)


def meta_content(out: bytes) -> list[str]:
    """The content values of every meta CSP in ``out``, unescaped."""
    found = []
    for tag in re.findall(rb"<meta[^>]*content-security-policy[^>]*>", out, re.IGNORECASE):
        match = re.search(rb"""content\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", tag, re.IGNORECASE)
        found.append(html.unescape(next(g for g in match.groups() if g is not None).decode()))
    return found


@pytest.mark.parametrize("tag", [
    b'<meta http-equiv="Content-Security-Policy" content="script-src \'self\'">',
    b"<meta http-equiv='Content-Security-Policy' content='script-src &#39;self&#39;'>",
    b'<meta http-equiv="content-security-policy" content="script-src &apos;self&apos;">',
    b'<META HTTP-EQUIV="CONTENT-SECURITY-POLICY" CONTENT="script-src &#x27;self&#x27;">',
    b"<meta content=\"script-src 'self'\" http-equiv=Content-Security-Policy>",
    b"<meta\n  http-equiv = \"Content-Security-Policy\"\n  content = \"script-src 'self'\"\n/>",
])
def test_meta_csp_in_leading_run_is_amended(tag):
    out = run_page(b"<!DOCTYPE html><html><head>" + tag + b"<title>t</title>")
    assert meta_content(out) == [f"script-src 'self' {OURS_PATH}"]
    # Our tag goes after the meta, and the rest is untouched.
    assert out.index(SNIPPET) > out.lower().index(b"content-security-policy")
    assert out.lower().startswith(b"<!doctype html><html><head><meta")
    assert out.endswith(SNIPPET + b"<title>t</title>")


def test_meta_csp_only_content_value_changes():
    source = b"<head><meta charset=utf-8><meta  data-a=1 http-equiv='Content-Security-Policy' content='default-src &#39;self&#39;' ><title>t</title>"
    out = run_page(source)
    [value] = meta_content(out)
    new = rewrite_csp("default-src 'self'", ALLOWANCE)
    assert value == new
    # Put the old value back and remove our tag: the page is as the site wrote it.
    escaped_new = html.escape(new, quote=True).encode()
    assert out.replace(SNIPPET, b"").replace(escaped_new, b"default-src &#39;self&#39;") == source


def test_meta_csp_unquoted_content_gets_quotes():
    out = run_page(b"<head><meta http-equiv=Content-Security-Policy content=default-src><title>t</title>")
    assert b'content="default-src; script-src ' in out
    assert meta_content(out) == [rewrite_csp("default-src", ALLOWANCE)]


def test_meta_csp_with_quote_characters_in_other_attributes():
    source = b"<head><meta name=\"x'y\" http-equiv=\"Content-Security-Policy\" content=\"script-src 'nonce-r4nd0m'\"><title>"
    out = run_page(source)
    assert meta_content(out) == [f"script-src 'nonce-r4nd0m' {OURS_NONCE}"]
    assert b"name=\"x'y\"" in out


def test_meta_csp_later_in_head_is_amended():
    out = run_page(b"<html><head><title>t</title><link rel=stylesheet href=a.css>"
                   b"<meta http-equiv=\"Content-Security-Policy\" content=\"script-src 'self'\"></head><body>")
    assert out.index(SNIPPET) < out.index(b"<title>") + 1
    assert meta_content(out) == [f"script-src 'self' {OURS_PATH}"]


def test_meta_csp_after_huge_inline_script_is_amended():
    script = b"<script>" + b"var a = 1;" * 20_000 + b"</script>"
    source = b"<html><head>" + script + b"<meta http-equiv=Content-Security-Policy content=\"script-src 'self'\"></head>"
    chunks = [source[i:i + 16 * 1024] for i in range(0, len(source), 16 * 1024)]
    out = run_page(source, chunks)
    assert meta_content(out) == [f"script-src 'self' {OURS_PATH}"]


def test_meta_csp_after_head_end_but_before_body_is_amended():
    # The parser moves a <meta> between </head> and <body> into the head, where it is enforced.
    out = run_page(b"<html><head><title>t</title></head>\n"
                   b"<meta http-equiv=Content-Security-Policy content=\"script-src 'self'\"><body>")
    assert meta_content(out) == [f"script-src 'self' {OURS_PATH}"]


def test_meta_csp_after_script_with_lookalike_end_tag_is_amended():
    # "</scripts>" inside a script does not end it, so the head has not ended either.
    out = run_page(b"<head><script>var t = '</scripts>';</script>"
                   b"<meta http-equiv=Content-Security-Policy content=\"script-src 'self'\">")
    assert meta_content(out) == [f"script-src 'self' {OURS_PATH}"]


CSP_LOOKALIKE = b"<meta http-equiv=Content-Security-Policy content=\"script-src 'self'\">"


@pytest.mark.parametrize("source", [
    b"<html><head><title>t</title></head><body>" + CSP_LOOKALIKE,
    b"<html><head>" + b"<p>text</p>" + CSP_LOOKALIKE,
    b"<!-- " + CSP_LOOKALIKE + b" --><html><head><title>t</title>",
    b"<html><head><title>t</title><!-- " + CSP_LOOKALIKE + b" -->",
    b"<html><head><script>var s = '" + CSP_LOOKALIKE + b"';</script>",
    b"<html><head><script>var s = '</head><body>';</script><style>/* " + CSP_LOOKALIKE + b" */</style>",
    b"<html><head><title>" + CSP_LOOKALIKE + b"</title>",
    b"<html><head><noscript>" + CSP_LOOKALIKE + b"</noscript>",
    b"<html><head><meta http-equiv=Content-Security-Policy-Report-Only content=\"script-src 'self'\"><title>",
    b"<html><head><meta name=Content-Security-Policy content=\"script-src 'self'\"><title>",
    b"<html><head><meta data-note='http-equiv=Content-Security-Policy' content=\"script-src 'self'\"><title>",
])
def test_lookalike_meta_csp_untouched(source):
    for chunks in ([source], [source[i:i + 1] for i in range(len(source))]):
        out = run_page(source, chunks)
        assert out.count(SNIPPET) == 1
        assert out.replace(SNIPPET, b"") == source


def test_meta_csp_after_uppercase_script_is_amended():
    out = run_page(b"<HEAD><SCRIPT>var s = '<meta http-equiv=x>';</SCRIPT ><STYLE>p{}</Style>"
                   b"<META HTTP-EQUIV=Content-Security-Policy CONTENT=\"script-src 'self'\">")
    assert meta_content(out) == [f"script-src 'self' {OURS_PATH}"]


def test_meta_csp_in_head_after_script_with_head_end_string_is_amended():
    out = run_page(b"<html><head><script>var s = '</head><body>';</script>" + CSP_LOOKALIKE + b"</head>")
    assert meta_content(out) == [f"script-src 'self' {OURS_PATH}"]


def test_two_meta_csps_both_amended():
    out = run_page(b"<head><meta http-equiv=Content-Security-Policy content=\"script-src 'self'\">"
                   b"<title>t</title><meta http-equiv=Content-Security-Policy content=\"connect-src 'none'\">")
    assert meta_content(out) == [f"script-src 'self' {OURS_PATH}", " ".join(["connect-src", *OURS_CONNECT])]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_property_meta_csp_split_anywhere(data):
    source = (b"<!DOCTYPE html><html><head><meta charset=utf-8>"
              b"<meta http-equiv='Content-Security-Policy' content='default-src &#39;self&#39;; script-src &#39;nonce-abc&#39;'>"
              b"<title>x</title><meta http-equiv=Content-Security-Policy content=\"connect-src 'self'\"></head><body>")
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(source) - 1), max_size=8))))
    chunks = [source[a:b] for a, b in zip([0, *cuts], [*cuts, len(source)])]
    if data.draw(st.booleans()):
        chunks = [source[i:i + 1] for i in range(len(source))]
    assert run_page(source, chunks) == run_page(source)
    assert meta_content(run_page(source, chunks)) == [
        rewrite_csp("default-src 'self'; script-src 'nonce-abc'", ALLOWANCE),
        " ".join(["connect-src", "'self'", *OURS_CONNECT]),
    ]
