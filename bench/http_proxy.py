#!/usr/bin/env python3
"""Reverse-proxy benchmark: the same pages served directly and through each proxy, side by side.

One run serves a ~90 KiB HTML page and a 2 KiB CSS file

* directly (the upstream: nginx serving static files, or aiohttp without nginx),
* through ``cobrowse serve``,
* through ``mitmdump --mode reverse:... -s cobrowse/mitm_addon.py``,
* through nginx: ``sub_filter`` injection for the page, plain ``proxy_pass`` for both,
* through HAProxy (where installed), a plain proxy that relays bodies with splice(2),

at one process each, loads each with wrk (-t1 -c32) and reports requests/s,
p50/p99 latency, server CPU per request and the ratios against the goals. A
50 MiB page then measures time to first byte, total time and the proxy's RSS
growth. Before measuring, every target is checked: the page must come back
with our script tag (and otherwise unchanged), the asset byte-identical.

It reports, it does not assert: the numbers depend on the machine and on
whatever else runs on it. Compare ratios from one run, not numbers across runs.

    .venv/bin/python bench/http_proxy.py                  # everything, ~100 seconds
    .venv/bin/python bench/http_proxy.py --only html --repeat 3 --duration 5

The report (Markdown) goes to stdout, progress to stderr, and the data to
bench/results/http_proxy-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import re
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import (  # noqa: E402
    WRK_LUA, ProcessGroup, RssSampler, children_of, competing_processes, cpu_seconds, free_port, http_get,
    machine_facts, median,
    run_wrk, terminate_on_signals, wait_for_http,
)

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PREFIX = "/__cobrowse/"
SCRIPT_SRC = PREFIX + "loader.js"
# What nginx sub_filter inserts: the same tag as ours, minus the per-response nonce.
SUB_FILTER_TAG = f'<script src="{SCRIPT_SRC}" async=""></script>'
# Any injected tag, whatever its attributes (ours carries a nonce).
# Our tag: external (nginx's sub_filter, and ours under host-only CSPs) or inline (ours: it adds the
# loader after the page's load; about 1 KB, which the HTML figures include).
TAG_RE = re.compile(rb'<script\b[^>]*\b(?:data-)?src="' + re.escape(SCRIPT_SRC.encode()) + rb'"[^>]*>[^<]*</script>')

PAGE_PATH, ASSET_PATH, BIG_PATH = "/page.html", "/style.css", "/big.html"
PAGE_SIZE = 90 * 1024
ASSET_SIZE = 2 * 1024
MiB = 1024 * 1024

NAV_HEADERS = ["Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
               "Sec-Fetch-Dest: document"]
ASSET_HEADERS = ["Accept: text/css,*/*;q=0.1", "Sec-Fetch-Dest: style"]

GOALS = {
    "html_vs_mitmdump": 10.0,   # cobrowse req/s >= 10x mitmdump's on the HTML page
    "html_vs_sub_filter": 1.0,  # ... and >= nginx sub_filter's
    "asset_vs_proxy_pass": 0.5,  # on the asset, >= 0.5x nginx proxy_pass
    "big_ttfb_vs_direct": 2.0,  # 50 MiB page: TTFB within 2x of direct
    "big_rss_growth_mib": 64.0,  # ... and RSS growth under 64 MiB
}


# ---------------------------------------------------------------------------
# test content: deterministic, realistic markup (not one repeated character)

_WORDS = (
    "the a of and to in for with on by from your our this that new best free fast more all "
    "shop cart checkout order delivery return size colour price offer sale stock review rating "
    "customer account password wishlist gift card payment secure shipping express store product "
    "jacket shirt trousers shoes boots scarf bag wallet watch lamp chair table sofa kettle "
    "cotton wool linen leather recycled organic handmade classic modern slim relaxed waterproof "
    "light dark blue green red black white grey navy beige café crème naïve über "
    "available today tomorrow week month season collection limited edition bundle save percent "
    "details care instructions materials dimensions weight warranty guarantee support contact help"
).split()


def _words(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(lo, hi)))


def _sentence(rng: random.Random) -> str:
    s = _words(rng, 6, 18)
    return s[0].upper() + s[1:] + rng.choice([".", ".", ".", "!", "?"])


def _section(rng: random.Random, i: int) -> str:
    kind = rng.choice(["article", "products", "products", "table", "list", "form", "quote"])
    if kind == "article":
        paras = "\n".join(
            f'<p>{" ".join(_sentence(rng) for _ in range(rng.randint(2, 5)))} '
            f'<a href="/blog/{rng.randint(1, 999)}">{_words(rng, 1, 3)}</a></p>'
            for _ in range(rng.randint(2, 4)))
        return (f'<article id="post-{i}" class="post">\n<h2>{_sentence(rng)}</h2>\n'
                f'<p class="meta">Posted <time datetime="2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}">'
                f'{rng.randint(1, 28)} March</time> by <span class="author">{_words(rng, 1, 2)}</span></p>\n'
                f'{paras}\n</article>\n')
    if kind == "products":
        cards = "\n".join(
            f'<li class="card" data-sku="SKU-{rng.randint(10000, 99999)}">'
            f'<a href="/p/{rng.randint(1, 5000)}"><img src="/img/{rng.randint(1, 900)}.webp" '
            f'alt="{_words(rng, 2, 5)}" width="320" height="240" loading="lazy"></a>'
            f'<h3>{_words(rng, 2, 4).title()}</h3><p class="price">€{rng.randint(5, 400)}.{rng.randint(0, 99):02d}</p>'
            f'<button type="button" class="add" data-qty="1">Add to cart</button></li>'
            for _ in range(rng.randint(3, 6)))
        return f'<section class="grid" aria-label="{_words(rng, 1, 3)}">\n<ul>\n{cards}\n</ul>\n</section>\n'
    if kind == "table":
        rows = "\n".join(
            f"<tr><td>{_words(rng, 1, 2)}</td><td>{rng.randint(1, 99)}</td>"
            f"<td>{rng.random() * 100:.2f}</td><td>{_words(rng, 1, 3)}</td></tr>"
            for _ in range(rng.randint(3, 8)))
        return ('<table class="specs">\n<thead><tr><th>Item</th><th>Qty</th><th>Price</th><th>Note</th></tr>'
                f'</thead>\n<tbody>\n{rows}\n</tbody>\n</table>\n')
    if kind == "list":
        items = "\n".join(f'<li><a href="/c/{rng.randint(1, 300)}">{_words(rng, 1, 4)}</a></li>'
                          for _ in range(rng.randint(4, 10)))
        return f'<nav class="links"><h4>{_words(rng, 1, 3)}</h4><ul>\n{items}\n</ul></nav>\n'
    if kind == "form":
        return (f'<form class="newsletter" method="post" action="/subscribe?s={i}">'
                f'<label for="email-{i}">{_sentence(rng)}</label>'
                f'<input id="email-{i}" type="email" name="email" placeholder="you@example.com" required>'
                f'<input type="hidden" name="csrf" value="{rng.getrandbits(128):032x}">'
                '<button type="submit">Subscribe</button></form>\n')
    return f'<blockquote><p>{_sentence(rng)} {_sentence(rng)}</p><cite>{_words(rng, 1, 2)}</cite></blockquote>\n'


def _page_head(title: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<meta name="description" content="Benchmark page for the cobrowse reverse proxy">
<link rel="stylesheet" href="{ASSET_PATH}">
<link rel="preload" href="/fonts/inter.woff2" as="font" type="font/woff2" crossorigin>
<link rel="icon" href="/favicon.ico">
<script src="/js/vendor.js" defer></script>
<script src="/js/app.js" defer></script>
<script>window.dataLayer = window.dataLayer || []; dataLayer.push({{"page": "bench"}});</script>
</head>
<body class="shop">
<header class="top"><a class="logo" href="/">Example Shop</a>
<nav><ul><li><a href="/new">New</a></li><li><a href="/women">Women</a></li><li><a href="/men">Men</a></li>
<li><a href="/home">Home</a></li><li><a href="/sale">Sale</a></li><li><a href="/cart">Cart (0)</a></li></ul></nav>
<form role="search" action="/search"><input type="search" name="q" aria-label="Search"></form>
</header>
<main id="content">
"""


_PAGE_FOOT = """</main>
<footer><p>&copy; 2024 Example Shop &middot; <a href="/privacy">Privacy</a> &middot; <a href="/terms">Terms</a></p>
<script>document.documentElement.classList.add("js");</script>
</footer>
</body>
</html>
"""


def make_page(size: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    parts = [_page_head("Example Shop — new season")]
    total = len(parts[0].encode())
    foot = len(_PAGE_FOOT.encode())
    i = 0
    while True:
        s = _section(rng, i)
        n = len(s.encode())
        if total + n + foot > size:
            break
        parts.append(s)
        total += n
        i += 1
    pad = size - total - foot - len("<!--  -->\n")
    if pad >= 0:  # an HTML comment brings the page to the exact size
        parts.append("<!-- " + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789 ") for _ in range(pad))
                     + " -->\n")
    parts.append(_PAGE_FOOT)
    return "".join(parts).encode()


def write_big_page(path: Path, size: int, seed: int = 2) -> int:
    """A page of `size` bytes: one head, then varied sections cycled to the size."""
    rng = random.Random(seed)
    pool = []
    pool_size = 0
    while pool_size < 2 * MiB:
        s = _section(rng, len(pool)).encode()
        pool.append(s)
        pool_size += len(s)
    head = _page_head("Example Shop — everything").encode()
    foot = _PAGE_FOOT.encode()
    written = 0
    with open(path, "wb") as f:
        f.write(head)
        written += len(head)
        i = 0
        while written + len(pool[i % len(pool)]) + len(foot) <= size:
            s = pool[i % len(pool)]
            f.write(s)
            written += len(s)
            i += 1
        f.write(foot)
        written += len(foot)
    return written


def make_css(size: int, seed: int = 3) -> bytes:
    rng = random.Random(seed)
    rules = [":root{--brand:#1a5fb4;--ink:#222;--paper:#fff;--gap:16px}\n",
             "*,*::before,*::after{box-sizing:border-box}\n",
             "body{margin:0;font:16px/1.5 Inter,system-ui,sans-serif;color:var(--ink);background:var(--paper)}\n"]
    total = sum(len(r) for r in rules)
    selectors = ["header.top", ".grid ul", ".card", ".card h3", ".price", "button.add", "table.specs td",
                 "nav.links a", "footer", ".post .meta", "blockquote", "form.newsletter input"]
    props = ["margin", "padding", "color", "background", "border-radius", "font-size", "gap", "line-height"]
    while True:
        sel = rng.choice(selectors)
        decl = ";".join(f"{rng.choice(props)}:{rng.randint(0, 32)}px" for _ in range(rng.randint(2, 4)))
        rule = f"{sel}{rng.choice(['', ':hover', ' > *', ':first-child'])}{{{decl}}}\n"
        if total + len(rule) > size - 8:
            break
        rules.append(rule)
        total += len(rule)
    css = "".join(rules)
    css += "/*" + "x" * max(0, size - len(css) - 5) + "*/\n"
    return css.encode()


# ---------------------------------------------------------------------------
# the servers


def _nginx_common(tmp: Path, name: str) -> str:
    user = ""
    if os.geteuid() == 0:  # workers would run as nobody and could not read our private temp dir
        import grp
        import pwd
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
    t = tmp / "nginx" / name
    t.mkdir(parents=True, exist_ok=True)
    return f"""{user}
worker_processes 1;
daemon off;
master_process on;
pid {t}/nginx.pid;
error_log {tmp}/logs/{name}-error.log warn;
events {{ worker_connections 1024; }}
http {{
    types {{ text/html html; text/css css; }}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    client_body_temp_path {t}/body;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
"""


def nginx_static_conf(tmp: Path, www: Path, port: int) -> str:
    return _nginx_common(tmp, "nginx-upstream") + f"""
    open_file_cache max=64 inactive=60s;
    server {{
        listen {HOST}:{port} backlog=1024;
        root {www};
    }}
}}
"""


def nginx_proxy_conf(tmp: Path, upstream_port: int, sub_port: int, pass_port: int) -> str:
    proxy = """
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";"""
    return _nginx_common(tmp, "nginx-proxy") + f"""
    upstream app {{
        server {HOST}:{upstream_port};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{  # injection, the way one would do it with stock nginx
        listen {HOST}:{sub_port} backlog=1024;
        location / {{{proxy}
            proxy_set_header Accept-Encoding "";
            sub_filter '<head>' '<head>{SUB_FILTER_TAG}';
            sub_filter_once on;
        }}
    }}
    server {{  # plain reverse proxy, no injection
        listen {HOST}:{pass_port} backlog=1024;
        location / {{{proxy}
        }}
    }}
}}
"""


def haproxy_conf(tmp: Path, upstream_port: int, port: int) -> str:
    """HAProxy as a plain reverse proxy (nothing injected), one thread, relaying
    bodies with splice(2): the page's bytes never enter the proxy's memory. The
    fastest way there is to pass a 50 MiB page on, and so a floor for its time
    to first byte through any proxy on this machine."""
    return f"""
global
    nbthread 1
    maxconn 4096
    pidfile {tmp}/haproxy.pid
defaults
    mode http
    timeout connect 5s
    timeout client 75s
    timeout server 75s
    option splice-response
    option splice-request
    http-reuse always
frontend proxy
    bind {HOST}:{port}
    default_backend site
backend site
    server upstream {HOST}:{upstream_port}
"""


TRACE_WRAPPER = r"""
# `cobrowse serve` with timestamps on the way to the first byte of one page (--trace).
# time.perf_counter is CLOCK_MONOTONIC: the same clock as the bench's client.
import json, os, sys, time
sys.path.insert(0, os.getcwd())  # the tree to run: the bench's root or --baseline DIR
out_path, request_line = sys.argv[1], b"GET " + sys.argv[2].encode() + b" "
del sys.argv[1:3]
from cobrowse.proxy.exchange import Exchange
from cobrowse.proxy.protocol import ClientProtocol

now = time.perf_counter
stamps = {}  # id(exchange) -> times
last_request = [0.0]

def wrap(cls, name, make):
    setattr(cls, name, make(getattr(cls, name)))

def data_received(orig):
    def f(self, data):
        if not self.queue and self.tunnel_exchange is None:
            last_request[0] = now()  # bytes of a new request, read from the visitor
        orig(self, data)
    return f

def start(orig):
    def f(self):
        if self.head.startswith(request_line):
            stamps[id(self)] = {"request_read": last_request[0]}
        orig(self)
    return f

def first(key, after=True):
    def make(orig):
        def f(self, *args, **kwargs):
            t = stamps.get(id(self))
            if t is None or key in t:
                return orig(self, *args, **kwargs)
            if not after:
                t[key] = now()
                return orig(self, *args, **kwargs)
            had_output = key != "head_written" or bool(self.out)
            result = orig(self, *args, **kwargs)
            if had_output:
                t[key] = now()
            return result
        return f
    return make

def complete(orig):
    def f(self):
        orig(self)
        t = stamps.pop(id(self), None)
        if t is not None:
            with open(out_path, "a") as out:
                out.write(json.dumps(t) + "\n")
    return f

wrap(ClientProtocol, "data_received", data_received)
wrap(Exchange, "start", start)
wrap(Exchange, "_attach", first("request_written"))  # its write to the upstream
wrap(Exchange, "upstream_data", first("response_read", after=False))
wrap(Exchange, "_flush", first("head_written"))  # the first write to the visitor
wrap(Exchange, "_complete", complete)

from cobrowse.cli import main
sys.exit(main())
"""


AIOHTTP_STATIC = r"""
# The upstream when nginx is missing: the files, read into memory once, so it stays cheap.
import mimetypes, os, sys
from aiohttp import web
root, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
files = {}
for name in os.listdir(root):
    with open(os.path.join(root, name), "rb") as f:
        files["/" + name] = (f.read(), mimetypes.guess_type(name)[0] or "application/octet-stream")

async def handle(request):
    try:
        body, ctype = files[request.path]
    except KeyError:
        raise web.HTTPNotFound()
    return web.Response(body=body, headers={"Content-Type": ctype})

app = web.Application()
app.router.add_get("/{tail:.*}", handle)
try:
    import uvloop
    uvloop.install()
except ImportError:
    pass
web.run_app(app, host=host, port=port, access_log=None, print=None, backlog=1024)
"""


@dataclass
class Target:
    key: str
    label: str
    port: int | None = None
    pids: callable = lambda: []  # processes whose CPU/RSS is this hop's cost
    injects: bool = False  # is the HTML page supposed to come back with our tag?
    pages: tuple[str, ...] = ()  # which of html/asset/big it is measured on
    skipped: str | None = None  # why it is not measured at all
    broken: dict = field(default_factory=dict)  # page kind -> why it is not measured
    checks: dict = field(default_factory=dict)

    def measured_on(self, kind: str) -> bool:
        return self.skipped is None and kind in self.pages and kind not in self.broken


# ---------------------------------------------------------------------------
# checks


def check_target(t: Target, page: bytes, css: bytes) -> None:
    """Fetch the page and the asset through the target; mark what is broken."""
    if "html" in t.pages or "big" in t.pages:
        try:
            status, headers, body = http_get(HOST, t.port, PAGE_PATH, _as_dict(NAV_HEADERS))
        except OSError as exc:
            status, headers, body = 0, {}, b""
            t.checks["html_error"] = str(exc)
        tags = TAG_RE.findall(body)
        rest = TAG_RE.sub(b"", body)
        c = {"status": status, "length": len(body), "tags": len(tags),
             "tag": tags[0].decode(errors="replace") if tags else None,
             "unchanged_otherwise": rest == page, "content_type": headers.get("content-type"),
             "transfer_encoding": headers.get("transfer-encoding"),
             "content_encoding": headers.get("content-encoding")}
        t.checks["html"] = c
        problem = None
        if status != 200:
            problem = f"HTML page answered {status or 'nothing'}"
        elif t.injects and len(tags) != 1:
            problem = f"script tag {'missing' if not tags else f'present {len(tags)} times'} in the HTML page"
        elif not t.injects and tags:
            problem = "unexpected script tag in the HTML page"
        elif not c["unchanged_otherwise"]:
            problem = f"HTML page differs from the original beyond the tag ({len(rest)} vs {len(page)} bytes)"
        if problem:
            t.broken["html"] = problem
            t.broken["big"] = problem
    if "asset" in t.pages:
        try:
            status, headers, body = http_get(HOST, t.port, ASSET_PATH, _as_dict(ASSET_HEADERS))
        except OSError as exc:
            status, headers, body = 0, {}, b""
            t.checks["asset_error"] = str(exc)
        t.checks["asset"] = {"status": status, "length": len(body), "identical": body == css,
                             "content_type": headers.get("content-type")}
        if status != 200:
            t.broken["asset"] = f"asset answered {status or 'nothing'}"
        elif body != css:
            t.broken["asset"] = f"asset not byte-identical ({len(body)} vs {len(css)} bytes)"


def _as_dict(headers: list[str]) -> dict[str, str]:
    return dict(h.split(": ", 1) for h in headers)


# ---------------------------------------------------------------------------
# the 50 MiB page: a raw client that notes when bytes arrive

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILERS, _CLOSE, _DONE = range(8)


class _BigFetch(asyncio.Protocol):
    """Sends one GET and decodes the response framing as it streams in, counting body bytes."""

    SAMPLE = 64 * 1024

    def __init__(self, request: bytes, done: asyncio.Future) -> None:
        self.request = request
        self.done = done
        self.state = _HEAD
        self.buf = bytearray()
        self.line = b""
        self.remaining = 0
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body_bytes = 0
        self.wire_bytes = 0
        self.sample = bytearray()
        self.t_write_start = self.t_sent = self.t_first = self.t_headers = self.t_body = self.t_end = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        # Times start when the request's write() is called: the server it
        # wakes may run on our CPU before the write returns, and part of its
        # answer would then fall before a clock started at the return
        # (cobrowse's, in one run, by 150 µs: docs/benchmarks.md). How long
        # the call took is reported beside.
        self.t_write_start = time.perf_counter()
        transport.write(self.request)
        self.t_sent = time.perf_counter()

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if self.t_first is None:
            self.t_first = now
        self.wire_bytes += len(data)
        try:
            self._feed(data, now)
        except Exception as exc:  # malformed framing
            self._finish(exc)
            return
        if self.state == _DONE:
            self.t_end = now
            self._finish()

    def connection_lost(self, exc) -> None:
        if self.done.done():
            return
        if self.state == _CLOSE:
            self.t_end = time.perf_counter()
            self._finish()
        else:
            self._finish(ConnectionError(f"connection closed before the response ended ({self.body_bytes} "
                                         f"body bytes, state {self.state})"))

    def _finish(self, exc: Exception | None = None) -> None:
        if not self.done.done():
            self.done.set_exception(exc) if exc else self.done.set_result(None)
        self.transport.close()

    def _body(self, data: bytes, pos: int, n: int, now: float) -> None:
        if n <= 0:
            return
        if self.t_body is None:
            self.t_body = now
        self.body_bytes += n
        if len(self.sample) < self.SAMPLE:
            self.sample += data[pos:pos + min(n, self.SAMPLE - len(self.sample))]

    def _feed(self, data: bytes, now: float) -> None:
        pos = 0
        if self.state == _HEAD:
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            data, self.buf = bytes(self.buf[end + 4:]), bytearray()
            self.status = int(head[0].split()[1])
            for line in head[1:]:
                k, _, v = line.partition(":")
                self.headers[k.strip().lower()] = v.strip()
            self.t_headers = now
            if "chunked" in self.headers.get("transfer-encoding", "").lower():
                self.state = _CHUNK_SIZE
            elif "content-length" in self.headers:
                self.remaining = int(self.headers["content-length"])
                self.state = _LENGTH if self.remaining else _DONE
            else:
                self.state = _CLOSE
        n = len(data)
        while pos < n and self.state != _DONE:
            st = self.state
            if st == _LENGTH or st == _CHUNK_DATA:
                take = min(self.remaining, n - pos)
                self._body(data, pos, take, now)
                pos += take
                self.remaining -= take
                if not self.remaining:
                    if st == _LENGTH:
                        self.state = _DONE
                    else:
                        self.state, self.remaining = _CHUNK_CRLF, 2
            elif st == _CLOSE:
                self._body(data, pos, n - pos, now)
                pos = n
            elif st == _CHUNK_CRLF:
                take = min(self.remaining, n - pos)
                pos += take
                self.remaining -= take
                if not self.remaining:
                    self.state = _CHUNK_SIZE
            else:  # _CHUNK_SIZE, _TRAILERS: line by line
                if self.line:
                    data, pos, self.line = self.line + data[pos:], 0, b""
                    n = len(data)
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    self.line = data[pos:]
                    return
                line, pos = data[pos:eol], eol + 2
                if st == _CHUNK_SIZE:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                    if size:
                        self.state, self.remaining = _CHUNK_DATA, size
                    else:
                        self.state = _TRAILERS
                elif not line:
                    self.state = _DONE


async def _fetch_big(port: int, path: str, timeout: float) -> _BigFetch:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    headers = "".join(f"{h}\r\n" for h in NAV_HEADERS)
    request = (f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n{headers}Connection: close\r\n\r\n").encode()
    t0 = time.perf_counter()
    transport, proto = await asyncio.wait_for(
        loop.create_connection(lambda: _BigFetch(request, done), HOST, port), timeout)
    proto.t_connect = t0
    try:
        await asyncio.wait_for(done, timeout)
    finally:
        transport.close()
    return proto


def fetch_big(port: int, path: str, timeout: float = 180.0) -> _BigFetch:
    try:
        import uvloop
        return uvloop.run(_fetch_big(port, path, timeout))
    except ImportError:
        return asyncio.run(_fetch_big(port, path, timeout))


def measure_big(t: Target, expected_size: int, timeout: float) -> dict:
    pids = t.pids()
    with RssSampler(pids) as rss:
        try:
            f = fetch_big(t.port, BIG_PATH, timeout)
        except (OSError, asyncio.TimeoutError, ConnectionError, ValueError) as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}
    tags = TAG_RE.findall(bytes(f.sample))
    r = {
        "status": f.status,
        "body_bytes": f.body_bytes,
        "expected_body_bytes": expected_size + (len(tags[0]) if tags else 0),
        "transfer_encoding": f.headers.get("transfer-encoding"),
        "content_length": f.headers.get("content-length"),
        "injected": len(tags) == 1,
        "ttfb_s": f.t_first - f.t_write_start,
        "write_call_s": f.t_sent - f.t_write_start,  # how long the request's write() took in the client
        "first_body_byte_s": (f.t_body - f.t_write_start) if f.t_body else None,
        "total_s": f.t_end - f.t_write_start,
        "connect_s": f.t_sent - f.t_connect,
        "t_write_start": f.t_write_start, "t_first": f.t_first, "t_end": f.t_end,  # perf_counter, for --trace
        "rss_pids": pids,
    }
    r["mib_per_s"] = f.body_bytes / MiB / r["total_s"] if r["total_s"] else None
    if pids:
        r.update(rss_baseline_kib=rss.baseline_kb, rss_max_kib=rss.max_kb, rss_after_kib=rss.after_kb,
                 rss_growth_kib=rss.growth_kb, rss_samples=rss.samples)
    if f.status != 200:
        r["error"] = f"status {f.status}"
    elif f.body_bytes - (len(tags[0]) if tags else 0) != expected_size:
        r["error"] = f"body is {f.body_bytes} bytes, expected {expected_size} plus the tag"
    return r


# The time to first byte of a proxied page, hop by hop (--trace).
HOPS = {
    "to_proxy": ("request_read", "from the start of the client's write until the proxy reads the request"),
    "request_work": ("request_written", "until the proxy has written the request upstream"),
    "upstream": ("response_read", "until the proxy reads the first bytes of the response"),
    "response_work": ("head_written", "until the proxy has written the response head"),
    "to_client": ("t_first", "until the client reads the first byte"),
}


def trace_hops(path: Path, r: dict) -> dict | None:
    """The steps cobrowse took for the transfer ``r``, as the time each hop took."""
    for _ in range(20):  # the proxy notes the exchange just after its last write: it may lag a little
        try:
            lines = path.read_text().splitlines()
        except OSError:
            lines = []
        for line in reversed(lines):
            t = json.loads(line)
            if r["t_write_start"] <= t.get("request_read", 0) <= r["t_end"] and len(t) == 4:
                t = {"t_write_start": r["t_write_start"], **t, "t_first": r["t_first"]}
                keys = ["t_write_start"] + [k for k, _ in HOPS.values()]
                return {hop: t[keys[i + 1]] - t[keys[i]] for i, hop in enumerate(HOPS)}
        time.sleep(0.005)
    return None


# ---------------------------------------------------------------------------
# formatting


def fmt_rps(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}"


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def fmt_ratio(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.3g}×" if v < 10 else f"{v:.0f}×"


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# ---------------------------------------------------------------------------
# the run


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=8, help="seconds of load per target and page (default 8)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32; one wrk thread)")
    p.add_argument("--warmup", type=int, default=1,
                   help="seconds of unmeasured load before each measurement (default 1, 0 for none)")
    p.add_argument("--repeat", type=int, default=1,
                   help="measure every target N times, interleaved, and report the median (default 1)")
    p.add_argument("--only", action="append", choices=["html", "asset", "big"],
                   help="run only this part (may be given more than once)")
    p.add_argument("--big-runs", type=int, default=15,
                   help="timed transfers of the 50 MiB page per target (default 15)")
    p.add_argument("--big-block", type=int, default=5,
                   help="timed transfers in a row through one target, after one untimed transfer through it "
                        "(default 5; the blocks rotate over the targets)")
    p.add_argument("--big-size", type=int, default=50, metavar="MiB", help="size of the big page (default 50)")
    p.add_argument("--big-rest", type=float, default=20.0, metavar="SECONDS",
                   help="idle time between the loads and the big page (default 20; only when loads ran)")
    p.add_argument("--no-mitmdump", action="store_true", help="leave out mitmdump")
    p.add_argument("--no-nginx", action="store_true", help="leave out nginx (also as the upstream)")
    p.add_argument("--no-haproxy", action="store_true", help="leave out HAProxy (a splicing proxy, where installed)")
    p.add_argument("--mitmdump", help="mitmdump binary (default .venv-mitmproxy/bin/mitmdump, else PATH)")
    p.add_argument("--mitm-addon", help="addon for mitmdump (default cobrowse/mitm_addon.py)")
    p.add_argument("--nginx", help="nginx binary (default /usr/sbin/nginx, else PATH)")
    p.add_argument("--haproxy", help="haproxy binary (default /usr/sbin/haproxy, else PATH)")
    p.add_argument("--wrk", help="wrk binary (default: PATH)")
    p.add_argument("--json", type=Path, help="where to write the JSON results "
                   "(default bench/results/http_proxy-<timestamp>.json)")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (pages, configs, logs)")
    p.add_argument("--trace", action="store_true",
                   help="time the steps inside cobrowse on the way to each 50 MiB page's first byte, and "
                        "split its time to first byte into hops (slightly perturbs what it measures; with the "
                        "loads, cobrowse's HTML and asset figures include that cost)")
    p.add_argument("--baseline", type=Path, metavar="DIR",
                   help="also run `cobrowse serve` from another source tree (DIR/cobrowse, say a copy of the "
                        "code before a change) as one more target: before and after under the same load")
    args = p.parse_args(argv)
    args.only = set(args.only or ["html", "asset", "big"])
    if (args.repeat < 1 or args.big_runs < 1 or args.big_block < 1 or args.duration < 1 or args.connections < 1
            or args.warmup < 0):
        p.error("--repeat, --big-runs, --big-block, --duration and --connections must be positive, "
                "--warmup at least 0")
    return args


def find_tool(explicit: str | None, name: str, *fallbacks: Path | str) -> str | None:
    if explicit:
        return explicit if Path(explicit).exists() or shutil.which(explicit) else None
    for cand in fallbacks:
        if Path(cand).is_file() and os.access(cand, os.X_OK):
            return str(cand)
    found = shutil.which(name)
    if found:
        return found
    return None


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    terminate_on_signals()
    wrk = find_tool(args.wrk, "wrk")
    nginx = None if args.no_nginx else find_tool(args.nginx, "nginx", "/usr/sbin/nginx")
    haproxy = None if args.no_haproxy else find_tool(args.haproxy, "haproxy", "/usr/sbin/haproxy")
    mitmdump = None if args.no_mitmdump else find_tool(args.mitmdump, "mitmdump",
                                                         ROOT / ".venv-mitmproxy" / "bin" / "mitmdump")
    addon = Path(args.mitm_addon) if args.mitm_addon else ROOT / "cobrowse" / "mitm_addon.py"
    needs_wrk = bool(args.only & {"html", "asset"})
    if needs_wrk and not wrk:
        print("error: wrk not found (apt-get install wrk, or --wrk PATH)", file=sys.stderr)
        return 2
    python = sys.executable

    started = dt.datetime.now(dt.timezone.utc)
    facts = machine_facts(nginx=nginx, mitmdump=mitmdump, wrk=wrk, haproxy=haproxy)
    command = shlex.join([os.path.relpath(sys.executable, Path.cwd()) if sys.executable.startswith(str(ROOT))
                          else sys.executable, *sys.argv])
    notes: list[str] = []
    others = competing_processes()
    if others:
        # Found before this run starts anything: left over from something else.
        notes.append(f"{len(others)} other server or load-generator process(es) were running, which can skew "
                     f"this run: " + "; ".join(others[:6]))
    if args.no_nginx:
        notes.append("nginx left out (--no-nginx).")
    elif not nginx:
        notes.append("nginx not found: the nginx targets are skipped and aiohttp serves the upstream.")
    if args.no_haproxy:
        notes.append("HAProxy left out (--no-haproxy).")
    elif not haproxy:
        notes.append("HAProxy not found (apt-get install haproxy): its target is skipped.")
    if args.no_mitmdump:
        notes.append("mitmdump left out (--no-mitmdump).")
    if args.trace and args.only & {"html", "asset"}:
        notes.append("--trace: cobrowse ran with its timestamps, which cost it a few µs per request: its HTML and "
                     "asset figures are not comparable with an untraced run's.")
    elif not mitmdump:
        notes.append("mitmdump not found (.venv-mitmproxy/bin/mitmdump or PATH): skipped.")
    elif not addon.is_file():
        notes.append(f"mitmproxy addon {addon} not found: mitmdump skipped.")
        mitmdump = None

    tmp = Path(tempfile.mkdtemp(prefix="cobrowse-bench-"))
    os.chmod(tmp, 0o755)
    (tmp / "logs").mkdir()
    procs = ProcessGroup(tmp / "logs")
    result: dict = {"command": command, "argv": sys.argv, "started": started.isoformat(), "machine": facts,
                    "settings": {"duration_s": args.duration, "connections": args.connections, "wrk_threads": 1,
                                 "warmup_s": args.warmup, "repeat": args.repeat, "big_runs": args.big_runs,
                                 "big_block": args.big_block, "big_rest_s": args.big_rest,
                                 "only": sorted(args.only)},
                    "notes": notes, "goals": {}}
    interrupted = False
    try:
        # ---- content
        www = tmp / "www"
        www.mkdir()
        page, css = make_page(PAGE_SIZE), make_css(ASSET_SIZE)
        (www / PAGE_PATH[1:]).write_bytes(page)
        (www / ASSET_PATH[1:]).write_bytes(css)
        big_size = 0
        if "big" in args.only:
            big_size = write_big_page(www / BIG_PATH[1:], args.big_size * MiB)
        result["content"] = {"html_bytes": len(page), "asset_bytes": len(css), "big_bytes": big_size}
        lua = tmp / "report.lua"
        lua.write_text(WRK_LUA)

        # ---- upstream
        up_port = free_port()
        if nginx:
            conf = tmp / "nginx-upstream.conf"
            conf.write_text(nginx_static_conf(tmp, www, up_port))
            up = procs.start("nginx-upstream", [nginx, "-p", str(tmp), "-e", str(tmp / "logs" / "nginx-upstream-error.log"),
                                                "-c", str(conf)])
            direct = Target("direct", "direct (nginx static)", up_port, lambda p=up: children_of(p.pid),
                            pages=("html", "asset", "big"))
        else:
            script = tmp / "upstream.py"
            script.write_text(AIOHTTP_STATIC)
            up = procs.start("aiohttp-upstream", [python, str(script), str(www), HOST, str(up_port)])
            direct = Target("direct", "direct (aiohttp static)", up_port, lambda p=up: [p.pid],
                            pages=("html", "asset", "big"))
        progress(f"starting upstream on :{up_port}")
        wait_for_http(HOST, up_port, ASSET_PATH, up)
        upstream_url = f"http://{HOST}:{up_port}"

        # ---- proxies, started together, then waited for
        targets = [direct]
        env = {k: v for k, v in os.environ.items() if not k.startswith("COBROWSE_")}
        cob_port = free_port()
        traces: dict[str, Path] = {}

        def cobrowse_argv(key: str) -> list[str]:
            if not args.trace:
                return [python, "-m", "cobrowse"]
            wrapper = tmp / "trace_cobrowse.py"
            wrapper.write_text(TRACE_WRAPPER)
            traces[key] = tmp / f"trace-{key}.jsonl"
            return [python, str(wrapper), str(traces[key]), BIG_PATH]

        cob = procs.start("cobrowse", [*cobrowse_argv("cobrowse"), "serve", "--upstream", upstream_url,
                                       "--listen", f"{HOST}:{cob_port}", "--data-dir", str(tmp / "cobrowse-data"),
                                       "--log-level", "warning"], cwd=ROOT, env=env)
        cobrowse = Target("cobrowse", "cobrowse serve", cob_port, lambda: [cob.pid], injects=True,
                          pages=("html", "asset", "big"))
        targets.append(cobrowse)
        waits = [(cobrowse, cob, PREFIX + "health")]
        if args.baseline:
            base_port = free_port()
            base = procs.start("cobrowse-baseline", [
                *cobrowse_argv("baseline"), "serve", "--upstream", upstream_url, "--listen", f"{HOST}:{base_port}",
                "--console-listen", f"{HOST}:{free_port()}", "--data-dir", str(tmp / "baseline-data"),
                "--log-level", "warning"], cwd=args.baseline, env=env)
            baseline = Target("baseline", f"cobrowse serve, baseline ({args.baseline})", base_port,
                              lambda: [base.pid], injects=True, pages=("html", "asset", "big"))
            targets.append(baseline)
            waits.append((baseline, base, PREFIX + "health"))
        mitm_proc = None
        if mitmdump:
            m_port = free_port()
            mitm_proc = procs.start("mitmdump", [mitmdump, "--mode", f"reverse:{upstream_url}", "-s", str(addon),
                                                 "--listen-host", HOST, "--listen-port", str(m_port), "-q",
                                                 "--set", f"confdir={tmp / 'mitmproxy'}"], cwd=ROOT, env=env)
            label = "mitmdump + addon" if not args.mitm_addon else f"mitmdump + {addon.name}"
            mitm = Target("mitmdump", label, m_port, lambda: [mitm_proc.pid], injects=True,
                          pages=("html", "asset", "big"))
            targets.append(mitm)
            waits.append((mitm, mitm_proc, ASSET_PATH))
        if nginx:
            sub_port, pass_port = free_port(), free_port()
            conf = tmp / "nginx-proxy.conf"
            conf.write_text(nginx_proxy_conf(tmp, up_port, sub_port, pass_port))
            ngx = procs.start("nginx-proxy", [nginx, "-p", str(tmp), "-e", str(tmp / "logs" / "nginx-proxy-error.log"),
                                              "-c", str(conf)])
            sub = Target("nginx_sub_filter", "nginx sub_filter", sub_port, lambda: children_of(ngx.pid),
                         injects=True, pages=("html", "big"))
            # On the 50 MiB page too: one hop in C with nothing injected, the floor any proxy starts from.
            pas = Target("nginx_proxy_pass", "nginx proxy_pass", pass_port, lambda: children_of(ngx.pid),
                         pages=("html", "asset", "big"))
            targets += [sub, pas]
            waits += [(sub, ngx, ASSET_PATH), (pas, ngx, ASSET_PATH)]
        if haproxy:
            ha_port = free_port()
            conf = tmp / "haproxy.cfg"
            conf.write_text(haproxy_conf(tmp, up_port, ha_port))
            ha_proc = procs.start("haproxy", [haproxy, "-db", "-f", str(conf)])
            ha = Target("haproxy", "HAProxy (splice)", ha_port, lambda: [ha_proc.pid],
                        pages=("html", "asset", "big"))
            targets.append(ha)
            waits.append((ha, ha_proc, ASSET_PATH))
        for t, proc, path in waits:
            try:
                wait_for_http(HOST, t.port, path, proc)
            except RuntimeError as exc:
                name = next(n for n, p in procs.procs if p is proc)
                t.skipped = f"did not start: {exc}"
                progress(f"{t.label}: {t.skipped}\n{procs.log_tail(name)}")
        progress("started: " + ", ".join(f"{t.label} :{t.port}" for t in targets if not t.skipped))

        # ---- checks: a benchmark of a broken target is worthless
        for t in targets:
            if t.skipped:
                continue
            check_target(t, page, css)
            for kind, why in t.broken.items():
                if kind in args.only and kind in t.pages:
                    progress(f"NOT MEASURED {t.label} ({kind}): {why}")
        result["targets"] = {t.key: {"label": t.label, "port": t.port, "injects": t.injects, "pages": t.pages,
                                     "skipped": t.skipped, "broken": t.broken, "checks": t.checks}
                             for t in targets}

        # ---- throughput
        runs: dict[str, dict[str, list[dict]]] = {}
        headers_for = {"html": NAV_HEADERS, "asset": ASSET_HEADERS}
        path_for = {"html": PAGE_PATH, "asset": ASSET_PATH}
        kinds = [k for k in ("html", "asset") if k in args.only]
        plan = []
        for rep in range(args.repeat):
            for kind in kinds:
                row = [t for t in targets if t.measured_on(kind)]
                k = rep % len(row) if row else 0
                plan += [(rep, kind, t) for t in row[k:] + row[:k]]  # rotate the order per repetition
        if plan:
            est = len(plan) * (args.duration + args.warmup)
            progress(f"{len(plan)} measurements of {args.duration:g} s (+{args.warmup:g} s warm-up): ~{est:.0f} s")
        for i, (rep, kind, t) in enumerate(plan, 1):
            url = f"http://{HOST}:{t.port}{path_for[kind]}"
            hdrs = headers_for[kind]
            try:
                if args.warmup > 0:
                    run_wrk(wrk, lua, url, duration=args.warmup, connections=args.connections, headers=hdrs)
                pids = t.pids()
                cpu0 = cpu_seconds(pids)
                r = run_wrk(wrk, lua, url, duration=args.duration, connections=args.connections, headers=hdrs)
                cpu1 = cpu_seconds(pids)
            except (RuntimeError, OSError) as exc:
                r = {"error": str(exc)}
                cpu0 = cpu1 = None
            r["rep"] = rep
            if cpu0 is not None and cpu1 is not None and r.get("requests"):
                r["cpu_s"] = cpu1 - cpu0
                r["cpu_us_per_request"] = (cpu1 - cpu0) / r["requests"] * 1e6
            runs.setdefault(kind, {}).setdefault(t.key, []).append(r)
            if "error" in r:
                progress(f"[{i}/{len(plan)}] {kind:5} {t.label}: ERROR {r['error']}")
            else:
                bad = r["errors"] + r["non_2xx_3xx"]
                progress(f"[{i}/{len(plan)}] {kind:5} {t.label:28} {r['rps']:9,.0f} req/s  "
                         f"p50 {fmt_time(r['p50_us'] / 1e6):>8}  p99 {fmt_time(r['p99_us'] / 1e6):>8}"
                         + (f"  errors {r['errors']} non-2xx {r['non_2xx_3xx']}" if bad else ""))
        result["runs"] = runs

        summary: dict[str, dict[str, dict]] = {}
        for kind, by_target in runs.items():
            expected_body = {"html": None, "asset": len(css)}[kind]
            for key, rs in by_target.items():
                ok = [r for r in rs if "error" not in r]
                s = {"runs": len(rs), "failed_runs": len(rs) - len(ok),
                     "rps": median([r["rps"] for r in ok]),
                     "p50_s": median([r["p50_us"] / 1e6 for r in ok]),
                     "p99_s": median([r["p99_us"] / 1e6 for r in ok]),
                     "cpu_us_per_request": median([r.get("cpu_us_per_request") for r in ok]),
                     "requests": sum(r["requests"] for r in ok),
                     "socket_errors": sum(r["errors"] for r in ok),
                     "non_2xx_3xx": sum(r["non_2xx_3xx"] for r in ok),
                     "bytes_per_response": median([r["bytes_per_response"] for r in ok])}
                body = expected_body or next(t for t in targets if t.key == key).checks["html"]["length"]
                # Headers and chunk framing add a little; much less or much more means a wrong body.
                if s["bytes_per_response"] and not (body <= s["bytes_per_response"] <= body * 1.1 + 1024):
                    s["odd"] = (f"{s['bytes_per_response']:.0f} bytes per response on the wire "
                                f"for a {body}-byte body")
                summary.setdefault(kind, {})[key] = s
        result["summary"] = summary

        # ---- the big page
        big: dict[str, dict] = {}
        if "big" in args.only:
            if plan and args.big_rest > 0:
                # Right after the loads, every transfer's first byte came later,
                # direct's too, for a dozen transfers (the VM's CPUs recovering
                # from two busy minutes, it seems), and the proxies, which need
                # more CPU per byte, more so (docs/benchmarks.md). The page is
                # measured after a rest, as a run of it alone would be.
                progress(f"resting {args.big_rest:g} s before the big page")
                time.sleep(args.big_rest)
            row = [t for t in targets if t.measured_on("big")]
            big_runs: dict[str, list[dict]] = {t.key: [] for t in row}
            # Each target is timed in blocks of transfers in a row, after one
            # untimed transfer through it. A transfer's time to first byte
            # depends on where the previous one left the processes: run right
            # after a proxied transfer, the direct one measured 3x slower than
            # after another direct one (docs/benchmarks.md). In a block each
            # target follows itself, as a deployment serving such pages would.
            blocks = []
            for rnd in range(-(-args.big_runs // args.big_block)):
                k = rnd % len(row) if row else 0
                for t in row[k:] + row[:k]:
                    n = min(args.big_block, args.big_runs - rnd * args.big_block)
                    blocks.append((t, None))
                    blocks += [(t, i) for i in range(n)]
            for t, i in blocks:
                r = measure_big(t, big_size, timeout=180.0)
                if i is None:
                    # Untimed, but checked, and its memory growth counts: the
                    # first transfer through a process is where it would grow.
                    r["warmup"] = True
                elif t.key in traces and "ttfb_s" in r:
                    r["hops"] = trace_hops(traces[t.key], r)
                big_runs[t.key].append(r)
                if "error" in r and "ttfb_s" not in r:
                    progress(f"big   {t.label}: ERROR {r['error']}")
                    continue
                progress(f"big   {t.label:28} {'(warm-up) ' if i is None else ''}ttfb {fmt_time(r['ttfb_s']):>8}  total {fmt_time(r['total_s']):>8}"
                         + (f"  rss +{r['rss_growth_kib'] / 1024:.1f} MiB" if "rss_growth_kib" in r else "")
                         + ("" if r["injected"] or not t.injects else "  NOT INJECTED")
                         + (f"  {r['error']}" if "error" in r else ""))
            for key, rs in big_runs.items():
                growth = [r["rss_growth_kib"] for r in rs if "rss_growth_kib" in r]
                ok = [r for r in rs if "ttfb_s" in r and not r.get("warmup")]
                big[key] = {"runs": rs,
                            "ttfb_s": median([r["ttfb_s"] for r in ok]),
                            "ttfb_best_s": min([r["ttfb_s"] for r in ok], default=None),
                            "write_call_s": median([r["write_call_s"] for r in ok]),
                            "first_body_byte_s": median([r["first_body_byte_s"] for r in ok]),
                            "total_s": median([r["total_s"] for r in ok]),
                            "mib_per_s": median([r["mib_per_s"] for r in ok]),
                            "rss_growth_max_kib": max(growth) if growth else None,
                            "injected": all(r["injected"] for r in rs if "ttfb_s" in r) if ok else None,
                            "hops": {hop: median([r["hops"][hop] for r in ok if r.get("hops")])
                                     for hop in HOPS} if any(r.get("hops") for r in ok) else None,
                            "errors": sorted({r["error"] for r in rs if "error" in r})}
        result["big"] = big

        # ---- goals
        def rps(kind, key):
            return summary.get(kind, {}).get(key, {}).get("rps")

        goals = result["goals"]
        goals["html_vs_mitmdump"] = _div(rps("html", "cobrowse"), rps("html", "mitmdump"))
        goals["html_vs_sub_filter"] = _div(rps("html", "cobrowse"), rps("html", "nginx_sub_filter"))
        goals["asset_vs_proxy_pass"] = _div(rps("asset", "cobrowse"), rps("asset", "nginx_proxy_pass"))
        goals["big_ttfb_vs_direct"] = _div(big.get("cobrowse", {}).get("ttfb_s"), big.get("direct", {}).get("ttfb_s"))
        g = big.get("cobrowse", {}).get("rss_growth_max_kib")
        goals["big_rss_growth_mib"] = g / 1024 if g is not None else None
        def cpu(kind, key):
            return summary.get(kind, {}).get(key, {}).get("cpu_us_per_request")

        # The same comparisons by CPU time per request (other ÷ cobrowse): less sensitive to
        # whatever else the machine is doing than req/s, though not immune to it.
        result["goals_by_cpu"] = {
            "html_vs_mitmdump": _div(cpu("html", "mitmdump"), cpu("html", "cobrowse")),
            "html_vs_sub_filter": _div(cpu("html", "nginx_sub_filter"), cpu("html", "cobrowse")),
            "asset_vs_proxy_pass": _div(cpu("asset", "nginx_proxy_pass"), cpu("asset", "cobrowse")),
        }
        result["goals_met"] = {
            k: (None if v is None else (v <= GOALS[k] if k == "big_ttfb_vs_direct" else
                                        v < GOALS[k] if k == "big_rss_growth_mib" else v >= GOALS[k]))
            for k, v in goals.items()}
    except KeyboardInterrupt:
        interrupted = True
        progress("interrupted: stopping everything")
    finally:
        # Anything the servers complained about goes into the notes.
        for name, _ in procs.procs:
            text = procs.log_text(name)
            bad = [ln for ln in text.splitlines()
                   if re.search(r"Traceback|\b(ERROR|CRITICAL|error|crit|alert|emerg)\b", ln)]
            if bad:
                notes.append(f"{name} logged {len(bad)} error line(s), e.g.: {bad[0].strip()[:200]}")
        procs.stop_all()
        facts["loadavg_end"] = os.getloadavg()
        result["finished"] = dt.datetime.now(dt.timezone.utc).isoformat()
        if args.keep_tmp:
            progress(f"temporary files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if interrupted:
        return 130

    out = args.json or ROOT / "bench" / "results" / f"http_proxy-{started:%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(render(result, targets, args))
    progress(f"results: {out}")
    return 0


def render(result: dict, targets: list[Target], args: argparse.Namespace) -> str:
    f = result["machine"]
    c = result["content"]
    lines = ["## Reverse proxy benchmark", ""]
    lines.append(f"- command: `{result['command']}`")
    lines.append(f"- date: {result['started'][:16].replace('T', ' ')} UTC, commit {f.get('git_commit')}"
                 + (" (cobrowse/ modified since)" if f.get("cobrowse_modified_since_commit") else ""))
    mem = f"{f['mem_total_bytes'] / 2**30:.0f} GiB RAM" if f.get("mem_total_bytes") else ""
    lines.append(f"- machine: {f['nproc']} CPUs ({f.get('cpu_model')}), {mem}, {f['kernel']}; load average "
                 f"{f['loadavg_start'][0]:.2f} at start, {f['loadavg_end'][0]:.2f} at end")
    nginx_v = (f.get("nginx") or "no nginx").replace("nginx version: ", "")
    mitm_v = (f.get("mitmproxy") or "no mitmproxy").replace("Mitmproxy: ", "mitmproxy ")
    wrk_v = re.sub(r"^wrk (\S+) .*", r"wrk \1", f.get("wrk") or "no wrk")
    haproxy_v = re.sub(r"^HAProxy version (\S+) .*", r"HAProxy \1", f.get("haproxy") or "no HAProxy")
    lines.append(f"- software: Python {f['python']} (uvloop {f.get('uvloop')}), {nginx_v}, {haproxy_v}, {mitm_v}, "
                 f"{wrk_v}")
    s = result["settings"]
    lines.append(f"- load: `wrk -t1 -c{s['connections']} -d{s['duration_s']:g}s`, {s['warmup_s']:g} s warm-up "
                 f"before each measurement, {s['repeat']} run(s) per target"
                 + (" (median shown, order rotated per run)" if s["repeat"] > 1 else "")
                 + "; one process per server" + (" (nginx `worker_processes 1`)" if f.get("nginx") else ""))
    lines.append("")
    labels = {t.key: t.label for t in targets}
    unmeasured = {t.key: t for t in targets}
    summary = result.get("summary", {})
    cob_label = "cobrowse ÷ this"
    for kind, title in (("html", f"HTML page ({c['html_bytes']:,} bytes, navigation request: "
                                 f"`Accept: text/html`, `Sec-Fetch-Dest: document`)"),
                        ("asset", f"Static asset (CSS, {c['asset_bytes']:,} bytes)")):
        if kind not in args.only:
            continue
        lines += [f"### {title}", "",
                  f"| target | req/s | p50 | p99 | server CPU per request | {cob_label} | errors / non-2xx |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        rows = summary.get(kind, {})
        cob = rows.get("cobrowse", {}).get("rps")
        for t in targets:
            if kind not in t.pages:
                continue
            label = t.label + (" (no injection)" if kind == "html" and t.key == "nginx_proxy_pass" else "")
            r = rows.get(t.key)
            if r is None or r["rps"] is None:
                why = t.skipped or t.broken.get(kind) or "failed"
                lines.append(f"| {label} | not measured: {why} | | | | | |")
                continue
            cpu = r["cpu_us_per_request"]
            lines.append(f"| {label} | {fmt_rps(r['rps'])} | {fmt_time(r['p50_s'])} | {fmt_time(r['p99_s'])} | "
                         f"{'—' if cpu is None else f'{cpu:.0f} µs'} | "
                         f"{'—' if t.key == 'cobrowse' else fmt_ratio(_div(cob, r['rps']))} | "
                         f"{r['socket_errors']} / {r['non_2xx_3xx']} |")
        lines.append("")
    big = result.get("big", {})
    if "big" in args.only:
        lines += [f"### Big page ({c['big_bytes'] / MiB:.0f} MiB HTML, one request, median of "
                  f"{s['big_runs']} per target, in blocks of {s.get('big_block', 1)} after one untimed transfer)", "",
                  "| target | time to first byte (best) | TTFB ÷ direct | client's write() | first body byte "
                  "| total | MiB/s | RSS growth (max) | injected |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        direct_ttfb = big.get("direct", {}).get("ttfb_s")
        for t in targets:
            if "big" not in t.pages:
                continue
            b = big.get(t.key)
            if not b or b["ttfb_s"] is None:
                why = t.skipped or t.broken.get("big") or "; ".join((b or {}).get("errors", [])) or "failed"
                lines.append(f"| {t.label} | not measured: {why} | | | | | | | |")
                continue
            g = b["rss_growth_max_kib"]
            inj = "—" if not t.injects else ("yes" if b["injected"] else "**no**")
            lines.append(f"| {t.label} | {fmt_time(b['ttfb_s'])} ({fmt_time(b['ttfb_best_s'])}) | "
                         f"{'—' if t.key == 'direct' else fmt_ratio(_div(b['ttfb_s'], direct_ttfb))} | "
                         f"{fmt_time(b['write_call_s'])} | "
                         f"{fmt_time(b['first_body_byte_s'])} | "
                         f"{fmt_time(b['total_s'])} | {b['mib_per_s']:.0f} | "
                         f"{'—' if g is None else f'{g / 1024:.1f} MiB'} | {inj} |")
        lines.append("")
        traced = [t for t in targets if (big.get(t.key) or {}).get("hops")]
        if traced:
            lines += ["Where the time to first byte goes (`--trace`, median of each hop, from the start of "
                      "the client's write; the medians need not add up to the median of the whole):", "",
                      "| target | " + " | ".join(HOPS) + " | whole |", "|---|" + "---:|" * (len(HOPS) + 1)]
            for t in traced:
                b = big[t.key]
                whole = median([r["ttfb_s"] for r in b["runs"] if r.get("hops")])
                lines.append(f"| {t.label} | " + " | ".join(fmt_time(b["hops"][h]) for h in HOPS)
                             + f" | {fmt_time(whole)} |")
            lines += [""] + [f"- *{h}*: {desc}" for h, (_, desc) in HOPS.items()] + [""]
    # goals
    goals, met = result.get("goals", {}), result.get("goals_met", {})
    text = {
        "html_vs_mitmdump": ("HTML: cobrowse ≥ 10× mitmdump req/s", fmt_ratio),
        "html_vs_sub_filter": ("HTML: cobrowse ≥ nginx sub_filter req/s", fmt_ratio),
        "asset_vs_proxy_pass": ("Asset: cobrowse ≥ 0.5× nginx proxy_pass req/s", fmt_ratio),
        "big_ttfb_vs_direct": (f"{args.big_size} MiB page: cobrowse TTFB ≤ 2× direct", fmt_ratio),
        "big_rss_growth_mib": (f"{args.big_size} MiB page: cobrowse RSS growth < 64 MiB",
                               lambda v: f"{v:.1f} MiB"),
    }
    def rps(kind, key):
        return summary.get(kind, {}).get(key, {}).get("rps")

    detail = {
        "html_vs_mitmdump": (rps("html", "cobrowse"), rps("html", "mitmdump"), fmt_rps, " req/s"),
        "html_vs_sub_filter": (rps("html", "cobrowse"), rps("html", "nginx_sub_filter"), fmt_rps, " req/s"),
        "asset_vs_proxy_pass": (rps("asset", "cobrowse"), rps("asset", "nginx_proxy_pass"), fmt_rps, " req/s"),
        "big_ttfb_vs_direct": (big.get("cobrowse", {}).get("ttfb_s"), big.get("direct", {}).get("ttfb_s"),
                               fmt_time, ""),
    }
    by_cpu = result.get("goals_by_cpu", {})
    lines += ["### Goals", "", "| goal | measured | from | same ratio by CPU per request | met |",
              "|---|---:|---|---:|---|"]
    for key, (desc, fmt) in text.items():
        part = "big" if key.startswith("big_") else key.split("_", 1)[0]
        if part not in args.only:
            continue
        v = goals.get(key)
        if key in detail and v is not None:
            a, b, f_, unit = detail[key]
            source = f"{f_(a)} vs {f_(b)}{unit}"
        elif key == "big_rss_growth_mib" and v is not None:
            source = f"max of {s['big_runs'] + -(-s['big_runs'] // s.get('big_block', s['big_runs']))} transfers"
        else:
            source = ""
        cpu_ratio = by_cpu.get(key)
        lines.append(f"| {desc} | {'not measured' if v is None else fmt(v)} | {source} | "
                     f"{fmt_ratio(cpu_ratio) if cpu_ratio is not None else '—'} | "
                     f"{'—' if met.get(key) is None else ('yes' if met[key] else '**no**')} |")
    lines += ["", "*server CPU per request*: user+system CPU time of that server's process (for nginx, its one "
              "worker) during the measurement, divided by the requests served. For the proxies it leaves out "
              "the upstream. *cobrowse ÷ this*: cobrowse's req/s divided by this target's. *By CPU per "
              "request*: the other server's CPU per request divided by cobrowse's.", ""]
    odd = []
    for kind, rows in summary.items():
        for key, r in rows.items():
            if r.get("socket_errors") or r.get("non_2xx_3xx"):
                odd.append(f"{labels[key]} ({kind}): {r['socket_errors']} socket errors, "
                           f"{r['non_2xx_3xx']} non-2xx/3xx responses")
            if r.get("failed_runs"):
                odd.append(f"{labels[key]} ({kind}): {r['failed_runs']} wrk run(s) failed")
            if r.get("odd"):
                odd.append(f"{labels[key]} ({kind}): {r['odd']}")
    for key, b in big.items():
        for e in b.get("errors", []):
            odd.append(f"{labels[key]} (big page): {e}")
    for t in unmeasured.values():
        if t.skipped:
            odd.append(f"{t.label}: {t.skipped}")
        for kind, why in t.broken.items():
            if kind in args.only and kind in t.pages:
                odd.append(f"{t.label} ({kind}): not measured, {why}")
    notes = result["notes"] + odd
    if notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
