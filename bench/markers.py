#!/usr/bin/env python3
"""Marker benchmark: what 20 markers cost the visitor's scrolled frames, and how soon a marker shows.

A real visitor shares the demo catalog (`/`) through the real service (the
shop, the cobrowse Service with its hub and console, in a child process of
their own on uvloop, as `cobrowse serve`), and an agent places markers on it.
Both are pages of ONE headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright), so their clocks can be put on one time line:

  visitor  the catalog through the proxy, shared with the real widget;
  agent    a page on the agent console's origin, logged in as an agent, that
           speaks the agent protocol on the console's websocket (/ws) as the
           console does: agent_hello, join, then `mark` frames. (Not the
           console's UI: this times the hop and the widget, not the marker
           tools.)

Each round (default 3):

1. scroll, 0 markers   the visitor's page is scrolled by a script, N px in
                       every animation frame (down to the end, back up),
                       for F frames (default 10 px, 300 frames).
2. place 20 markers    one at a time, 150-350 ms apart: 10 element boxes
                       (product cards, the sticky header's cart link, a
                       button), 5 text highlights, 3 form-field rings
                       ("fill this in"), 2 drawings; 7 of them with a note.
                       Each one is timed from the agent's ws.send() to the
                       frame that draws it on the visitor's page:
                         sent      the agent page, right before ws.send()
                         received  the visitor page's websocket 'message'
                                   event with it (a listener added before the
                                   widget's own)
                         shown     the marker's group loses its `off` class
                                   (the widget positioned and showed it: a
                                   MutationObserver on the widget's shadow root)
                         painted   the end of the rendering update of that
                                   frame (a MessageChannel message posted then
                                   runs once the frame is done)
                       Times are performance.timeOrigin + performance.now() in
                       each page, corrected by each page's measured offset
                       against Date.now().
3. scroll, 20 markers  as in 1, then every marker is cleared (`unmark`).

While it scrolls it records, for the visitor's page:

  frame times       the intervals between animation frames (rAF timestamps);
                    a frame longer than 20 ms missed at least one vsync;
  DevTools metrics  Performance.getMetrics before and after: style recalcs
                    and their time, layouts, script and task time;
  a trace           Chrome tracing (devtools.timeline) of the visitor's
                    renderer main thread: every style recalc
                    (UpdateLayoutTree) with its wall time, its thread (CPU)
                    time and the number of elements it restyled; layouts;
  style writes      the `style` attribute changes in the widget's shadow
                    root (every CSSOM write of a marker's position or size is
                    one), from a MutationObserver.

Frame times and milliseconds depend on the machine and on what else runs on
it. The counts (recalcs, elements restyled, style writes per frame) do not:
compare those across runs and machines; compare the milliseconds only within
one run (0 vs 20 markers, side by side).

    .venv/bin/python bench/markers.py                     # 3 rounds, 2-4 minutes
    .venv/bin/python bench/markers.py --rounds 5 --frames 600
    .venv/bin/python bench/markers.py --dist /tmp/old/static_dist   # another build of the bundle

--dist serves the widget from another built static_dist (e.g. one built from an
older markers.js), for before/after comparisons in the same conditions.

The report (Markdown) goes to stdout, progress to stderr, the data to
bench/results/markers-<timestamp>.json. It reports; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import math
import os
import platform
import random
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import free_port, terminate_on_signals  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 15_000
AGENT = ("bench-marker-agent", "bench-marker-agent-password", "Bench Agent")
PAGE = "/"  # the demo catalog: a sticky header, a hero, 8 product cards
LAUNCHER = "#cobrowse-root >> button.l"
CODE = "#cobrowse-root >> p.code"
CLOSE_PANEL = "#cobrowse-root >> button[aria-label='Close']"
TRACE_CATEGORIES = ["devtools.timeline", "toplevel", "blink.user_timing"]
SLOW_FRAME_MS = 20.0  # longer than one 60 Hz frame (16.7 ms) plus slack: a missed vsync
GOALS = {"marker_delay_p95_ms": 50.0, "dropped_frames_with_20_markers": 0}

# The 20 markers, on the catalog. kind, selector, note; text: the words (a
# slice of the element's text); draw: a loop round the element.
CARD = ".product-grid > li:nth-child({})"
MARKERS = (
    [("element", "a.cart-link", "Your basket is here"),  # in the sticky header
     ("text", ".hero h1", ""),
     ("element", ".hero-actions a.btn", "Start here")]
    + [("element", CARD.format(i), "Have a look at this one" if i % 3 == 1 else "") for i in range(1, 9)]
    + [("text", CARD.format(i) + " .card-summary", "This is what you asked about" if i == 2 else "")
       for i in range(1, 5)]
    + [("field", CARD.format(i) + " button", "") for i in range(6, 9)]
    + [("draw", CARD.format(i) + " .card-image", "This picture" if i == 2 else "") for i in (2, 5)]
)
DRAWING = [[round(0.5 + 0.46 * math.cos(a / 12 * math.pi), 3), round(0.5 + 0.42 * math.sin(a / 12 * math.pi), 3)]
           for a in range(0, 26)]

# ---------------------------------------------------------------------------
# scripts run in the pages

CLOCK_JS = r"""
async () => {
  // performance.timeOrigin + performance.now() minus Date.now(), averaged over a
  // spread of moments (Date.now() is whole ms: the +0.5 ms cancels between pages).
  const out = [];
  for (let i = 0; i < 200; i++) {
    out.push(performance.timeOrigin + performance.now() - Date.now());
    if (i % 20 == 19) await new Promise((r) => setTimeout(r, 3));
  }
  return out.reduce((a, b) => a + b, 0) / out.length;
}
"""

# Visitor, before the page's scripts: when each `mark` frame arrives.
VISITOR_PROBE = r"""
(() => {
  if (window.__bench) return;
  const now = () => performance.timeOrigin + performance.now();
  const bench = { received: {}, shown: {}, painted: {}, writes: 0, counting: false };
  Object.defineProperty(window, '__bench', { value: bench });
  const WS = window.WebSocket;
  window.WebSocket = class extends WS {
    constructor(...args) {
      super(...args);
      // Added in the constructor: it runs before the widget's own handler.
      this.addEventListener('message', (e) => {
        const t = now();
        if (typeof e.data != 'string' || !e.data.startsWith('{"t":"mark"')) return;
        try {
          const id = JSON.parse(e.data).marker.id;
          if (!(id in bench.received)) bench.received[id] = t;
        } catch (err) {}
      });
    }
  };
})();
"""

# Visitor, once the widget's marker layer exists: when each marker is shown
# and painted, and how many style writes the widget makes.
VISITOR_WATCH = r"""
() => {
  const bench = window.__bench;
  if (bench.watching) return true;
  const host = document.querySelector('#cobrowse-root');
  const root = host && host.shadowRoot;
  if (!root || !root.querySelector('.mk-l')) return false;
  bench.watching = true;
  const now = () => performance.timeOrigin + performance.now();
  const channel = new MessageChannel();
  let pending = [];
  channel.port1.onmessage = () => {
    const t = now();
    for (const id of pending) if (!(id in bench.painted)) bench.painted[id] = t;
    pending = [];
  };
  const look = (g) => {
    const id = g.dataset && g.dataset.mark;
    if (!id || id in bench.shown || g.classList.contains('off')) return;
    bench.shown[id] = now();
    if (!pending.length) channel.port2.postMessage(0);
    pending.push(id);
  };
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type == 'attributes') {
        if (r.attributeName == 'style') {
          if (bench.counting) bench.writes++;
        } else if (r.target.classList && r.target.classList.contains('mk-g')) look(r.target);
      } else for (const n of r.addedNodes) if (n.classList && n.classList.contains('mk-g')) look(n);
    }
  }).observe(root, { subtree: true, childList: true, attributes: true, attributeFilter: ['class', 'style'] });
  return true;
}
"""

# Visitor: scroll by `step` px in every animation frame for `frames` frames,
# down to the end and back; the intervals between frames, and the style writes.
SCROLL_JS = r"""
async ([step, frames]) => {
  const bench = window.__bench;
  const max = document.documentElement.scrollHeight - innerHeight;
  window.scrollTo(0, 0);
  await new Promise((r) => setTimeout(r, 300));
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const times = [];
  bench.writes = 0;
  bench.counting = true;
  performance.mark('bench-scroll-start');
  let y = 0;
  let dir = 1;
  await new Promise((done) => {
    const tick = (t) => {
      times.push(t);
      if (times.length > frames) return done();
      y += dir * step;
      if (y >= max) { y = max; dir = -1; }
      if (y <= 0) { y = 0; dir = 1; }
      window.scrollTo(0, y);
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  performance.mark('bench-scroll-end');
  bench.counting = false;
  return { intervals: times.slice(1).map((t, i) => t - times[i]), writes: bench.writes, max };
}
"""

# Visitor: node ids (the recorder's mirror, as the agent's replay has them) and
# the rest of each marker's anchor, as the console makes it.
ANCHORS_JS = r"""
(list) => list.map(([kind, sel]) => {
  const el = document.querySelector(sel);
  if (!el) return null;
  const text = el.textContent;
  const a = { node: window.__cobrowseRecorder.record.mirror.getId(el), selector: sel };
  if (kind == 'text') {
    const words = text.trim().split(/\s+/).slice(1, 5).join(' ');
    a.quote = words;
    a.start = text.indexOf(words);
    a.end = a.start + words.length;
  } else a.quote = text.replace(/\s+/g, ' ').trim().slice(0, 120);
  return a;
})
"""

# Agent: a page on the console's origin with the console's websocket.
AGENT_JOIN_JS = r"""
async (session) => {
  const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/ws');
  const frames = [];
  window.__agent = { ws, frames, sent: {} };
  ws.addEventListener('message', (e) => frames.push(JSON.parse(e.data)));
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
  ws.send(JSON.stringify({ t: 'agent_hello', v: 1 }));
  ws.send(JSON.stringify({ t: 'join', session }));
  for (let i = 0; i < 200; i++) {
    const f = frames.find((f) => f.t == 'joined' || f.t == 'error');
    if (f) return f;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { t: 'timeout' };
}
"""

AGENT_SEND_JS = r"""
(frame) => {
  const a = window.__agent;
  const data = JSON.stringify(frame);
  const t = performance.timeOrigin + performance.now();
  a.ws.send(data);
  if (frame.t == 'mark') a.sent[frame.marker.id] = t;
  return t;
}
"""

# ---------------------------------------------------------------------------
# statistics


def pct(values: list[float], q: float) -> float | None:
    """q-th percentile (0-100), linear between the closest ranks."""
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    k = (len(v) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def summary(values: list[float]) -> dict:
    v = [x for x in values if x is not None]
    if not v:
        return {"n": 0}
    return {"n": len(v), "min": min(v), "p50": pct(v, 50), "p95": pct(v, 95), "p99": pct(v, 99), "max": max(v),
            "mean": statistics.fmean(v)}


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# the services, in a child process


def _serve(conn, tmp: str, dist: str | None) -> None:
    """The child process: the shop, the cobrowse Service in front of it, an agent
    account and its login cookie; runs until told to stop (or the pipe closes)."""

    async def main() -> None:
        import aiohttp
        import argon2
        from aiohttp import web

        import cobrowse.assets
        from cobrowse.config import load_config
        from cobrowse.console import auth
        from cobrowse.demo import create_shop_app
        from cobrowse.server import Service
        from cobrowse.storage import accounts

        if dist:
            cobrowse.assets.STATIC_DIST = Path(dist).resolve()  # the widget from another build
        # A cheap password hash: the benchmark logs in once.
        previous = accounts.set_password_hasher(argon2.PasswordHasher.from_parameters(argon2.profiles.CHEAPEST))
        shop = web.AppRunner(create_shop_app(live_interval=3600.0), access_log=None)  # no stock ticks
        service = None
        try:
            await shop.setup()
            await web.TCPSite(shop, HOST, 0).start()
            shop_url = f"http://{HOST}:{shop.addresses[0][1]}"
            config = load_config(env={}, overrides={
                "upstream": shop_url,
                "server.data_dir": str(Path(tmp) / "data"),
                "server.log_level": "warning",
                "server.listen": f"{HOST}:{free_port()}",
                "console.listen": f"{HOST}:{free_port()}",
            })
            service = Service(config)
            await service.start()
            console_url = f"http://{HOST}:{service.console_port}"
            username, password, display = AGENT
            await accounts.create_user(service.db, username, password, "agent", display)
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{console_url}/api/login", json={"username": username, "password": password},
                                     headers={"Origin": console_url}) as response:
                    if response.status != 200:
                        raise RuntimeError(f"console login failed: {response.status} {await response.text()}")
                    cookie = response.cookies[auth.COOKIE_NAME].value
            conn.send({"ok": True, "proxy_url": f"http://{HOST}:{service.port}", "console_url": console_url,
                       "cookie_name": auth.COOKIE_NAME, "cookie": cookie,
                       "static_dist": str(cobrowse.assets.STATIC_DIST)})
            try:
                await asyncio.get_running_loop().run_in_executor(None, conn.recv)
            except (EOFError, OSError):
                pass
        except Exception as exc:  # reported to the parent, which stops
            conn.send({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        finally:
            if service is not None:
                if service.hub is not None:
                    await service.hub.stop()
                await service.stop()
            await shop.cleanup()
            accounts.set_password_hasher(previous)

    try:
        import uvloop  # as `cobrowse serve` runs
    except ImportError:
        uvloop = None
    try:
        (uvloop.run if uvloop is not None else asyncio.run)(main())
    except KeyboardInterrupt:
        pass


class Env:
    def __init__(self, tmp: Path, dist: str | None) -> None:
        self.tmp = tmp
        self.dist = dist
        self.proc = None
        self.conn = None
        self.info: dict = {}

    def start(self, timeout: float = 60.0) -> None:
        import multiprocessing

        mp = multiprocessing.get_context("spawn")
        self.conn, child = mp.Pipe()
        self.proc = mp.Process(target=_serve, args=(child, str(self.tmp), self.dist), name="cobrowse-bench-markers",
                               daemon=True)
        self.proc.start()
        child.close()
        if not self.conn.poll(timeout):
            raise RuntimeError(f"the services did not start within {timeout:.0f} s")
        info = self.conn.recv()
        if not info.get("ok"):
            raise RuntimeError(f"the services did not start: {info.get('error')}")
        self.info = info

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            self.conn.send("stop")
        except (OSError, ValueError):
            pass
        self.proc.join(20)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()
        self.proc = None

    def __getattr__(self, name: str):
        try:
            return self.__dict__["info"][name]
        except KeyError:
            raise AttributeError(name) from None


# ---------------------------------------------------------------------------
# the trace


def trace_stats(raw: bytes) -> dict:
    """Style recalcs, layouts and tasks on the visitor page's renderer main
    thread (the one the scroll script's performance marks are on), between
    those two marks."""
    data = json.loads(raw)
    events = data["traceEvents"] if isinstance(data, dict) else data
    marks = {e.get("name"): e for e in events if e.get("name") in ("bench-scroll-start", "bench-scroll-end")}
    if len(marks) < 2:
        return {"error": "the scroll marks are not in the trace"}
    start, end = marks["bench-scroll-start"], marks["bench-scroll-end"]
    thread = (start["pid"], start["tid"])
    t0, t1 = start["ts"], end["ts"]
    mine = [e for e in events if (e.get("pid"), e.get("tid")) == thread and e.get("ph") == "X"
            and t0 <= e.get("ts", -1) <= t1]
    out = {"window_ms": (t1 - t0) / 1000.0}
    recalc = [e for e in mine if e["name"] == "UpdateLayoutTree"]
    layout = [e for e in mine if e["name"] == "Layout"]
    # (the outermost task event: its sum is the thread's busy time)
    task_name = "ThreadControllerImpl::RunTask" if any(e["name"] == "ThreadControllerImpl::RunTask" for e in mine) \
        else "RunTask"
    tasks = [e for e in mine if e["name"] == task_name]
    out["recalcs"] = len(recalc)
    out["recalc_ms"] = sum(e.get("dur", 0) for e in recalc) / 1000.0
    out["recalc_cpu_ms"] = sum(e.get("tdur", e.get("dur", 0)) for e in recalc) / 1000.0
    out["restyled_elements"] = sum((e.get("args") or {}).get("elementCount") or 0 for e in recalc)
    out["recalc_max_ms"] = max((e.get("dur", 0) for e in recalc), default=0) / 1000.0
    out["layouts"] = len(layout)
    out["layout_ms"] = sum(e.get("dur", 0) for e in layout) / 1000.0
    out["layout_cpu_ms"] = sum(e.get("tdur", e.get("dur", 0)) for e in layout) / 1000.0
    # (RunTask events do not nest on one thread: their sum is the thread's busy time)
    out["task_ms"] = sum(e.get("dur", 0) for e in tasks) / 1000.0
    out["task_cpu_ms"] = sum(e.get("tdur", e.get("dur", 0)) for e in tasks) / 1000.0
    return out


# ---------------------------------------------------------------------------
# the run


async def new_context(browser, init_script: str | None = None):
    ctx = await browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="Europe/Amsterdam")
    ctx.set_default_timeout(TIMEOUT_MS)
    ctx.set_default_navigation_timeout(TIMEOUT_MS)
    if init_script:
        await ctx.add_init_script(init_script)
    return ctx


async def metrics(cdp) -> dict:
    return {m["name"]: m["value"] for m in (await cdp.send("Performance.getMetrics"))["metrics"]}


METRICS = ("RecalcStyleCount", "RecalcStyleDuration", "LayoutCount", "LayoutDuration", "ScriptDuration",
           "TaskDuration")


async def scroll_window(browser, vpage, cdp, args, env, label: str) -> dict:
    """One scripted scroll of the visitor page, with the metrics and (unless --no-trace) a trace."""
    before = await metrics(cdp)
    if args.trace:
        await browser.start_tracing(page=vpage, categories=TRACE_CATEGORIES)
    try:
        got = await vpage.evaluate(SCROLL_JS, [args.step, args.frames])
    finally:
        raw = await browser.stop_tracing() if args.trace else None
    after = await metrics(cdp)
    if raw is not None and args.save_traces:
        args.save_traces.mkdir(parents=True, exist_ok=True)
        name = f"trace-{dt.datetime.now():%H%M%S}-{label}.json"
        (args.save_traces / name).write_bytes(raw)
        progress(f"  trace saved: {args.save_traces / name} (open it in DevTools' Performance panel)")
    out = {"intervals": got["intervals"], "writes": got["writes"], "scroll_max": got["max"],
           "metrics": {k: after.get(k, 0) - before.get(k, 0) for k in METRICS},
           "loadavg": os.getloadavg()[0]}
    if raw is not None:
        out["trace"] = trace_stats(raw)
    return out


async def run(args: argparse.Namespace, result: dict) -> None:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=TIMEOUT_MS)
    tmp = Path(tempfile.mkdtemp(prefix="cobrowse-bench-markers-"))
    env = Env(tmp, args.dist)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, asyncio.current_task().cancel)
    rng = random.Random(args.seed)
    try:
        progress("starting the shop and the service (child process) ...")
        await loop.run_in_executor(None, env.start)
        result["static_dist"] = env.static_dist
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS, timeout=60_000)
            try:
                result["chromium"] = f"Chromium {browser.version}"
                # The visitor: shares the catalog with the real widget.
                vctx = await new_context(browser, VISITOR_PROBE)
                vpage = await vctx.new_page()
                errors: list[str] = []
                vpage.on("pageerror", lambda exc: errors.append(str(exc)))
                await vpage.goto(env.proxy_url + PAGE)
                await vpage.locator(LAUNCHER).click()
                await vpage.locator("#cobrowse-root >> #cobrowse-name").fill("Marker Bench")
                await vpage.get_by_role("button", name="Share this page").click()
                import re

                await expect(vpage.locator(CODE)).to_have_text(re.compile(r"^\d{3} \d{3}$"))
                await vpage.locator(CLOSE_PANEL).click()
                await vpage.wait_for_function("() => window.__cobrowseRecorder"
                                              " && window.__cobrowseRecorder.record.mirror.getIds().length > 0")
                session = json.loads(await vpage.evaluate("() => localStorage.getItem('cobrowse:share')"))["session"]
                tab = json.loads(await vpage.evaluate("() => sessionStorage.getItem('cobrowse:tab')"))
                # (over the sticky header: nothing under the pointer changes as it scrolls)
                await vpage.mouse.move(1, 1)

                # The agent: the console's origin, logged in, on the console's websocket.
                actx = await new_context(browser)
                await actx.add_cookies([{"name": env.cookie_name, "value": env.cookie, "url": env.console_url}])
                apage = await actx.new_page()
                await apage.goto(env.console_url + "/api/me")
                joined = await apage.evaluate(AGENT_JOIN_JS, session)
                if joined.get("t") != "joined":
                    raise RuntimeError(f"the agent could not join: {joined}")
                offsets = {"visitor": await vpage.evaluate(CLOCK_JS), "agent": await apage.evaluate(CLOCK_JS)}
                result["clock_offset_ms"] = offsets["agent"] - offsets["visitor"]

                cdp = await vctx.new_cdp_session(vpage)
                await cdp.send("Performance.enable")
                specs = MARKERS[: args.markers]
                anchors = await vpage.evaluate(ANCHORS_JS, [[k, s] for k, s, _ in specs])
                missing = [s for (k, s, _), a in zip(specs, anchors) if a is None or a["node"] <= 0]
                if missing:
                    raise RuntimeError(f"not on the page (or no node id): {missing}")

                result["rounds"] = []
                for r in range(args.rounds):
                    rnd: dict = {"loadavg_start": os.getloadavg()[0]}
                    progress(f"round {r + 1}/{args.rounds}: scrolling with 0 markers ...")
                    rnd["zero"] = await scroll_window(browser, vpage, cdp, args, env, f"r{r + 1}-0")
                    # The markers, one at a time, from the top of the page.
                    await vpage.evaluate("() => window.scrollTo(0, 0)")
                    progress(f"round {r + 1}/{args.rounds}: placing {len(specs)} markers ...")
                    watching = await vpage.evaluate(VISITOR_WATCH)
                    for _ in range(100):
                        if watching:
                            break
                        await asyncio.sleep(0.05)
                        watching = await vpage.evaluate(VISITOR_WATCH)
                    ids = []
                    for i, ((kind, sel, note), anchor) in enumerate(zip(specs, anchors)):
                        mid = f"r{r}m{i}"
                        marker = {"id": mid, "kind": kind, "anchor": anchor, "note": note, "pinned": False,
                                  "scroll": False}
                        if kind == "draw":
                            marker["points"] = DRAWING
                        await apage.evaluate(AGENT_SEND_JS, {"t": "mark", "session": session, "tab": tab,
                                                             "marker": marker})
                        ids.append(mid)
                        await asyncio.sleep(rng.uniform(0.15, 0.35))
                    await vpage.wait_for_function(
                        "(ids) => ids.every((id) => id in window.__bench.painted)", arg=ids, timeout=10_000)
                    sent = await apage.evaluate("() => window.__agent.sent")
                    seen = await vpage.evaluate("() => window.__bench")
                    off = offsets["agent"] - offsets["visitor"]
                    rnd["marks"] = [{"id": mid, "kind": spec[0],
                                     "sent": sent[mid] - off,  # on the visitor's clock
                                     "received": seen["received"].get(mid), "shown": seen["shown"].get(mid),
                                     "painted": seen["painted"].get(mid)} for mid, spec in zip(ids, specs)]
                    drawn = await vpage.evaluate("""() => document.querySelector('#cobrowse-root').shadowRoot
                        .querySelectorAll('.mk-g:not(.off)').length""")
                    rnd["drawn"] = drawn
                    await asyncio.sleep(args.settle)  # the arrival animations are over
                    progress(f"round {r + 1}/{args.rounds}: scrolling with {drawn} markers ...")
                    rnd["markers"] = await scroll_window(browser, vpage, cdp, args, env, f"r{r + 1}-{len(specs)}")
                    await apage.evaluate(AGENT_SEND_JS, {"t": "unmark", "session": session, "tab": tab, "id": None})
                    await vpage.wait_for_function("""() => !document.querySelector('#cobrowse-root').shadowRoot
                        .querySelector('.mk-g')""")
                    await asyncio.sleep(0.5)
                    result["rounds"].append(rnd)
                result["page_errors"] = errors
            finally:
                await browser.close()
    finally:
        await loop.run_in_executor(None, env.stop)
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------
# the report


def aggregate(result: dict) -> dict:
    """Pooled over the rounds: frame intervals, per-frame costs, delays."""
    agg: dict = {}
    for variant in ("zero", "markers"):
        windows = [r[variant] for r in result["rounds"]]
        intervals = [x for w in windows for x in w["intervals"]]
        frames = len(intervals)
        a = {"frames": frames, "interval": summary(intervals),
             "slow_frames": sum(1 for x in intervals if x > SLOW_FRAME_MS),
             "missed_vsyncs": sum(max(0, round(x / (1000 / 60)) - 1) for x in intervals),
             "writes_per_frame": sum(w["writes"] for w in windows) / frames}
        m = {k: sum(w["metrics"][k] for w in windows) for k in METRICS}
        a["metrics_per_frame"] = {
            "recalcs": m["RecalcStyleCount"] / frames, "recalc_ms": m["RecalcStyleDuration"] * 1000 / frames,
            "layouts": m["LayoutCount"] / frames, "layout_ms": m["LayoutDuration"] * 1000 / frames,
            "script_ms": m["ScriptDuration"] * 1000 / frames, "task_ms": m["TaskDuration"] * 1000 / frames}
        a["recalc_ms_per_frame_by_round"] = [w["metrics"]["RecalcStyleDuration"] * 1000 / len(w["intervals"])
                                             for w in windows]
        traces = [w.get("trace") for w in windows if w.get("trace") and "error" not in w["trace"]]
        if traces:
            tf = sum(len(w["intervals"]) for w in windows if w.get("trace") and "error" not in w["trace"])
            a["trace_per_frame"] = {k: sum(t[k] for t in traces) / tf for k in (
                "recalcs", "recalc_ms", "recalc_cpu_ms", "restyled_elements", "layouts", "layout_ms",
                "layout_cpu_ms", "task_ms", "task_cpu_ms")}
            a["trace_per_frame"]["recalc_max_ms"] = max(t["recalc_max_ms"] for t in traces)
        agg[variant] = a
    marks = [m for r in result["rounds"] for m in r["marks"]]

    def span(a, b):
        return [m[b] - m[a] for m in marks if m.get(a) is not None and m.get(b) is not None]

    agg["delay"] = {"n": len(marks),
                    "sent_received": summary(span("sent", "received")),
                    "received_shown": summary(span("received", "shown")),
                    "shown_painted": summary(span("shown", "painted")),
                    "sent_painted": summary(span("sent", "painted")),
                    "missing": sum(1 for m in marks if m.get("painted") is None)}
    by_kind = collections.defaultdict(list)
    for m in marks:
        if m.get("painted") is not None:
            by_kind[m["kind"]].append(m["painted"] - m["sent"])
    agg["delay_by_kind"] = {k: summary(v) for k, v in sorted(by_kind.items())}
    return agg


def ms(v, digits: int = 1) -> str:
    if v is None:
        return "–"
    return f"{v:.{digits}f}" if abs(v) < 100 else f"{v:.0f}"


def ratio(a, b) -> str:
    if a is None or b is None or not a:
        return "–"
    return f"{b / a:.2f}×"


def render(result: dict) -> str:
    agg = result["aggregate"]
    z, m = agg["zero"], agg["markers"]
    n = result["settings"]["markers"]
    lines = [
        "# Markers on the visitor's page",
        "",
        f"- command: `{result['command']}`",
        f"- date: {result['started'][:16].replace('T', ' ')} UTC; took {result['duration_s']:.0f} s",
        f"- machine: {result['machine']['nproc']} CPUs ({result['machine']['cpu_model']}), "
        f"{result['machine']['kernel']}; load average (1 min) "
        + ", ".join(f"{k} {v:.2f}" for k, v in result["loadavg"].items()),
        f"- uptime at start: `{result['machine']['uptime']}`",
        f"- software: {result.get('chromium', '?')} headless, Playwright {result['playwright']}, "
        f"Python {result['machine']['python']}; widget from `{result.get('static_dist', '?')}`",
        f"- {result['settings']['rounds']} rounds; each scrolls the catalog by {result['settings']['step']} px a frame "
        f"for {result['settings']['frames']} frames with 0 markers, then with {n}"
        + ("" if result["settings"]["trace"] else " (no trace)"),
        "",
        f"## Scrolling: 0 vs {n} markers",
        "",
        f"| per scrolled frame | 0 markers | {n} markers | ratio |",
        "|---|---:|---:|---:|",
    ]

    def row(label, a, b, digits=1, show_ratio=True):
        lines.append(f"| {label} | {ms(a, digits)} | {ms(b, digits)} | {ratio(a, b) if show_ratio else ''} |")

    zi, mi = z["interval"], m["interval"]
    for q in ("p50", "p95", "p99", "max"):
        row(f"frame interval {q} (ms)", zi[q], mi[q])
    lines.append(f"| frames over {SLOW_FRAME_MS:.0f} ms / missed vsyncs | {z['slow_frames']} / {z['missed_vsyncs']} of "
                 f"{z['frames']} | {m['slow_frames']} / {m['missed_vsyncs']} of {m['frames']} | |")
    zt, mt = z.get("trace_per_frame"), m.get("trace_per_frame")
    if zt and mt:
        row("style recalc, wall (ms) [trace]", zt["recalc_ms"], mt["recalc_ms"], 2)
        row("style recalc, thread CPU (ms) [trace]", zt["recalc_cpu_ms"], mt["recalc_cpu_ms"], 2)
        row("style recalcs (count) [trace]", zt["recalcs"], mt["recalcs"], 2)
        row("elements restyled (count) [trace]", zt["restyled_elements"], mt["restyled_elements"], 1)
        row("layouts (count) [trace]", zt["layouts"], mt["layouts"], 2)
        row("layout, thread CPU (ms) [trace]", zt["layout_cpu_ms"], mt["layout_cpu_ms"], 2)
        row("main thread busy, thread CPU (ms) [trace]", zt["task_cpu_ms"], mt["task_cpu_ms"], 2)
        row("longest single style recalc (ms) [trace]", zt["recalc_max_ms"], mt["recalc_max_ms"], 2)
    zm, mm = z["metrics_per_frame"], m["metrics_per_frame"]
    row("style recalc (ms) [DevTools metrics]", zm["recalc_ms"], mm["recalc_ms"], 2)
    row("style recalcs (count) [DevTools metrics]", zm["recalcs"], mm["recalcs"], 2)
    row("script (ms) [DevTools metrics]", zm["script_ms"], mm["script_ms"], 2)
    row("tasks (ms) [DevTools metrics]", zm["task_ms"], mm["task_ms"], 2)
    row("style writes in the widget (count)", z["writes_per_frame"], m["writes_per_frame"], 2, show_ratio=False)
    lines += ["", "Style recalc per frame by round (ms, DevTools metrics): 0 markers "
              + ", ".join(ms(x, 2) for x in z["recalc_ms_per_frame_by_round"]) + f"; {n} markers "
              + ", ".join(ms(x, 2) for x in m["recalc_ms_per_frame_by_round"]) + "."]
    d = agg["delay"]
    lines += ["", f"## Agent → visitor marker delay ({d['n']} markers, placed one at a time; ms)", "",
              "| stage | p50 | p95 | max | mean |", "|---|---:|---:|---:|---:|"]
    for key, label in (("sent_received", "agent's ws.send() → the visitor's websocket message"),
                       ("received_shown", "message → marker shown (positioned, visible)"),
                       ("shown_painted", "shown → end of the frame that paints it"),
                       ("sent_painted", "**agent sends → drawn on the visitor's page**")):
        s = d[key]
        cells = " | ".join(ms(s.get(q)) for q in ("p50", "p95", "max", "mean"))
        lines.append(f"| {label} | {cells} |")
    lines += ["", "By kind (send → drawn, p50 / p95): " + "; ".join(
        f"{k} {ms(s['p50'])} / {ms(s['p95'])} (n={s['n']})" for k, s in agg["delay_by_kind"].items()) + "."]
    if d["missing"]:
        lines.append(f"\n{d['missing']} markers were never seen drawn.")
    lines += ["", f"The two pages' clocks differed by {result['clock_offset_ms']:.2f} ms (corrected)."]
    if result.get("page_errors"):
        lines.append(f"Page errors: {result['page_errors'][:5]}")
    lines += ["", "## Against the goals", "",
              f"- marker delay p95 ≤ {GOALS['marker_delay_p95_ms']:.0f} ms: {ms(d['sent_painted'].get('p95'))} ms",
              f"- no dropped frames with {n} markers: {m['slow_frames']} frames over {SLOW_FRAME_MS:.0f} ms "
              f"(0 markers: {z['slow_frames']}), of {m['frames']}"]
    return "\n".join(lines) + "\n"


def facts() -> dict:
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import subprocess

        uptime = subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        uptime = "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {"nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "cpu_model": cpu_model, "kernel": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "uptime": uptime}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="rounds of (scroll with 0, place markers, scroll with them); "
                   "default 3")
    p.add_argument("--frames", type=int, default=300, help="animation frames per scroll (default 300, ~5 s)")
    p.add_argument("--step", type=int, default=10, help="px scrolled per frame (default 10)")
    p.add_argument("--markers", type=int, default=len(MARKERS), choices=range(1, len(MARKERS) + 1),
                   metavar=f"1..{len(MARKERS)}", help=f"markers placed (default {len(MARKERS)})")
    p.add_argument("--settle", type=float, default=3.0, help="seconds between the last marker and the scroll, "
                   "for the arrival animations to end (default 3)")
    p.add_argument("--no-trace", dest="trace", action="store_false", help="no Chrome trace (frame times and "
                   "DevTools metrics only)")
    p.add_argument("--save-traces", type=Path, metavar="DIR", help="also write each scroll's Chrome trace there")
    p.add_argument("--dist", help="serve the bundle from this static_dist instead of cobrowse/static_dist")
    p.add_argument("--seed", type=int, default=1, help="seed of the gaps between markers")
    p.add_argument("--chromium", default=os.environ.get("COBROWSE_CHROMIUM") or "/usr/bin/chromium",
                   help="Chromium binary (default /usr/bin/chromium)")
    p.add_argument("--json", type=Path, help="where to write the JSON results "
                   "(default bench/results/markers-<timestamp>.json)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    terminate_on_signals()
    dist = Path(args.dist) if args.dist else ROOT / "cobrowse" / "static_dist"
    if not (dist / "widget.js").is_file():
        print(f"error: {dist} holds no built bundle: run `node static/build.mjs`", file=sys.stderr)
        return 2
    if not (Path(args.chromium).is_file() and os.access(args.chromium, os.X_OK)):
        print(f"error: Chromium not found at {args.chromium} (--chromium PATH)", file=sys.stderr)
        return 2
    from importlib.metadata import version

    started = dt.datetime.now(dt.timezone.utc)
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/markers.py", *sys.argv[1:]])
    result: dict = {"command": command, "argv": sys.argv, "started": started.isoformat(), "machine": facts(),
                    "playwright": version("playwright"), "goals": GOALS,
                    "settings": {"rounds": args.rounds, "frames": args.frames, "step": args.step,
                                 "markers": args.markers, "trace": args.trace, "dist": args.dist, "seed": args.seed},
                    "markers": [list(m) for m in MARKERS[: args.markers]],
                    "loadavg": {"at start": os.getloadavg()[0]}}
    t0 = time.monotonic()
    try:
        asyncio.run(run(args, result))
    except (KeyboardInterrupt, asyncio.CancelledError):
        progress("interrupted")
        return 130
    result["loadavg"]["at end"] = os.getloadavg()[0]
    result["duration_s"] = time.monotonic() - t0
    result["finished"] = dt.datetime.now(dt.timezone.utc).isoformat()
    result["aggregate"] = aggregate(result)
    out = args.json or ROOT / "bench" / "results" / f"markers-{started:%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(render(result))
    progress(f"took {result['duration_s']:.0f} s; results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
