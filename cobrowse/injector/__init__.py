"""The injector: a pure, streaming, I/O-free library.

It decides which responses get our script, rewrites their headers (CSP,
length, encoding, validators) and streams their bodies through a scanner
that inserts one ``<script>`` tag without re-serialising the page. The
aiohttp proxy and the mitmproxy addon are thin shells around it.
"""

from .csp import CspAllowance, allowance_for, rewrite_csp
from .decide import RequestInfo, is_html, is_navigation
from .insertion import InsertionScanner
from .page import Injector, InjectorSettings, PagePlan, PageRewriter, tag_attributes, upstream_accept_encoding

__all__ = [
    "CspAllowance",
    "Injector",
    "InjectorSettings",
    "InsertionScanner",
    "PagePlan",
    "PageRewriter",
    "RequestInfo",
    "allowance_for",
    "is_html",
    "is_navigation",
    "rewrite_csp",
    "tag_attributes",
    "upstream_accept_encoding",
]
