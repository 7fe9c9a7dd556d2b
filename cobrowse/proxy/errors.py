"""Pages the proxy answers with when it cannot give the visitor the site."""

from __future__ import annotations

import html
from http import HTTPStatus

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{status} {title}</title>
<style>
body{{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f5f6f8;color:#1d2330}}
main{{max-width:34rem;margin:12vh auto;padding:2rem 2.25rem;background:#fff;border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.08)}}
h1{{font-size:1.35rem;margin:0 0 .5rem}} p{{margin:.5rem 0;color:#4a5263}} code{{color:#8a93a6;font-size:.85rem}}
</style></head>
<body><main><h1>{title}</h1><p>{explanation}</p><p><code>{status} &middot; {detail}</code></p></main></body></html>
"""

_MESSAGES = {
    400: ("Bad request", "The request could not be understood."),
    413: ("Request too large", "The request's body is larger than this server accepts."),
    414: ("Address too long", "The requested address is longer than this server accepts."),
    421: ("Unknown site", "This address is not configured on this server."),
    431: ("Request headers too large", "The request's headers are larger than this server accepts."),
    502: ("The site is not reachable",
          "The server behind this address did not answer properly. Please try again in a moment."),
    504: ("The site took too long to answer",
          "The server behind this address did not answer in time. Please try again in a moment."),
}


def error_page(status: int, detail: str, *, html: bool, keep_alive: bool = False) -> bytes:
    """A whole HTTP/1.1 error response: an HTML page for browsers, plain text otherwise, never cached."""
    title, explanation = _MESSAGES.get(status, ("Error", "Something went wrong."))
    if html:
        body = _TEMPLATE.format(status=status, title=_escape(title), explanation=_escape(explanation),
                                detail=_escape(detail)).encode()
        content_type = b"text/html; charset=utf-8"
    else:
        body = f"{status} {title}: {detail}\n".encode()
        content_type = b"text/plain; charset=utf-8"
    head = (b"HTTP/1.1 %d %b\r\nContent-Type: %b\r\nContent-Length: %d\r\nCache-Control: no-store\r\n%b\r\n"
            % (status, HTTPStatus(status).phrase.encode(), content_type, len(body),
               b"" if keep_alive else b"Connection: close\r\n"))
    return head + body


def _escape(text: str) -> str:
    return html.escape(text, quote=True)
