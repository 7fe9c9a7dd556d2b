"""The response header rules, as pure functions: which URLs name the upstream,
how a Refresh header is read, which cookie domains survive."""

from __future__ import annotations

import pytest

from cobrowse.proxy.headers import ResponseHeaderMapper, Upstream


def mapper(upstream: str, public_origin: str = "http://shop.test") -> ResponseHeaderMapper:
    return ResponseHeaderMapper(Upstream.parse(upstream), public_origin, public_origin.split("//", 1)[1])


@pytest.mark.parametrize("url,expected", [
    ("http://origin.example.com/x?y#z", "https://shop.example.com/x?y#z"),
    ("HTTP://ORIGIN.Example.com/x", "https://shop.example.com/x"),  # scheme and host: any case
    ("http://origin.example.com:80/x", "https://shop.example.com/x"),  # the default port, written out
    ("https://origin.example.com/x", "https://shop.example.com/x"),  # the same site's https
    ("//origin.example.com/p", "https://shop.example.com/p"),
    ("http://origin.example.com", "https://shop.example.com/"),
    # Not the upstream: left as they are.
    ("http://origin.example.com:8080/x", "http://origin.example.com:8080/x"),
    ("https://origin.example.com:8443/x", "https://origin.example.com:8443/x"),
    ("http://origin.example.com.evil.test/x", "http://origin.example.com.evil.test/x"),
    ("http://other.example.com/x", "http://other.example.com/x"),
    ("mailto:help@origin.example.com", "mailto:help@origin.example.com"),
    ("myapp://origin.example.com/x", "myapp://origin.example.com/x"),
    ("/relative", "/relative"),
    ("http://origin.example.com:99999/", "http://origin.example.com:99999/"),  # unreadable port
    # Characters urlsplit drops before reading: cut at the wrong place, part of
    # the upstream's authority would end up in the public URL.
    ("http://\t\t\t\t\t\torigin.example.com/a", "http://\t\t\t\t\t\torigin.example.com/a"),
    ("http://orig\tin.example.com/a", "http://orig\tin.example.com/a"),
    (" http://origin.example.com/a", " http://origin.example.com/a"),
])
def test_urls_on_the_upstream_map_to_the_public_origin(url, expected):
    assert mapper("http://origin.example.com", "https://shop.example.com").map_url(url) == expected


def test_an_upstream_on_its_own_port_maps_either_scheme_on_that_port():
    m = mapper("http://127.0.0.1:42001")
    assert m.map_url("https://127.0.0.1:42001/x") == "http://shop.test/x"
    assert m.map_url("http://127.0.0.1/x") == "http://127.0.0.1/x"  # port 80: another server
    assert m.map_url("https://127.0.0.1/x") == "https://127.0.0.1/x"


@pytest.mark.parametrize("value,expected", [
    ("5; url=http://up.test/next", "5; url=http://shop.test/next"),
    ("0, url=http://up.test/x", "0, url=http://shop.test/x"),  # "," separates too
    ("0; http://up.test/x", "0; http://shop.test/x"),  # "url=" may be left out
    ("0,http://up.test/x", "0,http://shop.test/x"),
    ("3 http://up.test/x", "3 http://shop.test/x"),  # whitespace alone separates
    ("5;URL='http://up.test/q'", "5;URL='http://shop.test/q'"),
    ('1; url = "http://up.test/q"', '1; url = "http://shop.test/q"'),
    ("5", "5"),  # a reload: no URL
    ("5; url=", "5; url="),
    ("5url=http://up.test/a", "5url=http://up.test/a"),  # not followed by browsers: left alone
    ("0; url=http://elsewhere.test/", "0; url=http://elsewhere.test/"),
])
def test_refresh_is_read_as_browsers_read_it(value, expected):
    assert mapper("http://up.test").map_refresh(value) == expected


@pytest.mark.parametrize("cookie,expected", [
    # The upstream's own name means nothing to the visitor's browser: host-only.
    ("a=1; Domain=app.internal; Path=/", "a=1; Path=/"),
    ("a=1; Domain=.internal", "a=1"),
    # A domain that covers the public host as well is the site's intent (single
    # sign-on across subdomains): kept.
    ("sso=1; Domain=.example.com; Path=/", "sso=1; Domain=.example.com; Path=/"),
    ("a=1; Domain=shop.example.com", "a=1; Domain=shop.example.com"),
    # Neither: the browser ignores the cookie, as it would without us.
    ("a=1; Domain=unrelated.test", "a=1; Domain=unrelated.test"),
])
def test_cookie_domains(cookie, expected):
    assert mapper("https://app.internal", "https://shop.example.com").map_set_cookie(cookie) == expected


def test_a_shared_parent_domain_is_kept_when_the_public_and_upstream_hosts_are_the_same():
    m = mapper("https://shop.example.com", "https://shop.example.com")
    assert m.map_set_cookie("sso=1; Domain=.example.com; Path=/; Secure") == "sso=1; Domain=.example.com; Path=/; Secure"


@pytest.mark.parametrize("forwarded,trusted,expected", [
    (None, False, "fallback"),
    ("10.0.0.9", False, "10.0.0.9"),  # what our proxy saw
    ("203.0.113.7, 10.0.0.9", False, "10.0.0.9"),  # a visitor's own entry is not believed
    ("203.0.113.7, 10.0.0.9", True, "203.0.113.7"),  # the trusted terminator's entry
    ("1.1.1.1, 203.0.113.7, 10.0.0.9", True, "203.0.113.7"),
])
def test_the_visitors_address_behind_our_proxy(forwarded, trusted, expected):
    from cobrowse.proxy.headers import forwarded_client

    assert forwarded_client(forwarded, "fallback", trusted) == expected
