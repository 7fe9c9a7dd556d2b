#!/usr/bin/env python3
"""Browser benchmark: a real visitor and a real agent, two Chromium contexts, through the real service.

Three measurements on the demo shop, with the shop, the cobrowse Service
(proxy, hub, agent console; a second one with proxy.inject = false) run in a
child process of their own (on uvloop, as `cobrowse serve`), and one headless
Chromium (Debian's /usr/bin/chromium) driven by Playwright:

1. latency   Visitor keystroke -> the typed text in the agent's replay.
             One character at a time, 100-200 ms apart, into the checkout
             page's "Full name" field. Times come from both pages on one clock
             (performance.timeOrigin + performance.now(); both contexts live in
             one browser, and the pages' offsets against Date.now() are
             measured and corrected for):
               keydown      the keydown event's own timeStamp (visitor page)
               sent         the widget's WebSocket.send() of the frame with it
               received     the console's websocket 'message' event with it
               applied      rrweb sets the mirrored field's .value (a setter
                            hook on that element in the replay iframe)
               painted      the end of the first rendering update after that
                            (a MessageChannel message posted from an animation
                            frame runs once that frame's update is done)
             plus, from the Chrome DevTools Protocol, when each browser's
             network stack sent / received the frame.
2. wire      Bytes per second while the visitor types (5 keys/s) and scrolls.
             The visitor's page is loaded through a byte-counting TCP relay in
             front of the proxy, so its websocket's real bytes (permessage-
             deflate, framing) are counted; the raw JSON is the sum of the
             frames' payload sizes (Playwright `framesent`, uncompressed).
3. pageload  What every visitor pays: the loader's and the on-demand bundles'
             sizes (manifest.json, and as actually served), and the demo
             catalog loaded directly from the shop, through the proxy with
             injection and through the proxy with injection off, interleaved,
             one page per variant: PerformanceNavigationTiming
             domContentLoadedEventEnd and loadEventEnd; once with the HTTP
             cache disabled (a first visit), once with it on.

It reports, it does not assert. The numbers depend on the machine and on what
else runs on it; the report states the load average.

    .venv/bin/python bench/browser.py                       # everything, ~2-3 minutes
    .venv/bin/python bench/browser.py --only latency --keystrokes 200
    .venv/bin/python bench/browser.py --only wire --seconds 30
    .venv/bin/python bench/browser.py --only pageload --loads 50

The report (Markdown) goes to stdout, progress to stderr, the data to
bench/results/browser-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
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
from _util import free_port, machine_facts, terminate_on_signals  # noqa: E402

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
VISITOR_VIEWPORT = {"width": 1280, "height": 800}
AGENT_VIEWPORT = {"width": 1440, "height": 900}
TIMEOUT_MS = 15_000
AGENT = ("bench-agent", "bench-agent-password", "Bench Agent")

LAUNCHER = "#cobrowse-root >> button.l"
CODE = "#cobrowse-root >> p.code"
CLOSE_PANEL = "#cobrowse-root >> button[aria-label='Close']"
# The replay of the tab shown in the console (a new page is swapped in once drawn).
REPLAY = ".replay-host:not([hidden]) .replay-mount:not(.is-pending) iframe"
FIELD = "#full-name"  # the checkout page's "Full name": a plain text field, not masked
TYPE_PAGE = "/checkout"
LOAD_PAGE = "/"  # the demo catalog

GOALS = {
    "keystroke_p95_ms": 40.0,
    "wire_vs_raw": 0.5,
    "loader_gzip_bytes": 6 * 1024,
    "on_demand_gzip_bytes": 50 * 1024,
}

# ---------------------------------------------------------------------------
# scripts run in the pages

# Visitor: keydown times and the widget's websocket sends, on the page's clock.
VISITOR_PROBE = r"""
(() => {
  if (window.__bench) return;
  const now = () => performance.timeOrigin + performance.now();
  const bench = { keydown: [], input: [], sent: [] };
  Object.defineProperty(window, '__bench', { value: bench });
  // t: the event's own timeStamp (when the browser took the key); handled: when the page got it.
  addEventListener('keydown', (e) => bench.keydown.push({ key: e.key, t: performance.timeOrigin + e.timeStamp, handled: now() }), true);
  addEventListener('input', (e) => bench.input.push({ v: String(e.target && e.target.value), t: now() }), true);
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    const t = now();
    const r = send.call(this, data);
    if (typeof data == 'string' && data.startsWith('{"t":"rr"')) bench.sent.push({ t, data });
    return r;
  };
})();
"""

# Console: every websocket message, timed before the console's own handler runs.
AGENT_PROBE = r"""
(() => {
  if (window.__bench) return;
  const now = () => performance.timeOrigin + performance.now();
  const bench = { received: [], applied: [], pending: [], polled: [], frames: 0 };
  Object.defineProperty(window, '__bench', { value: bench });
  const WS = window.WebSocket;
  window.WebSocket = class extends WS {
    constructor(...args) {
      super(...args);
      // Added in the constructor: it runs before the console's onmessage.
      this.addEventListener('message', (e) => {
        const t = now();
        if (typeof e.data == 'string' && e.data.startsWith('{"t":"tab_rr"')) bench.received.push({ t, data: e.data });
      });
    }
  };
})();
"""

# In the console page, once the replay shows the field: hook the mirrored
# field's value setter (rrweb applies an Input event with `el.value = text`)
# and start a per-frame loop that stamps the end of every rendering update.
AGENT_HOOK = r"""
([frameSel, fieldSel]) => {
  const bench = window.__bench;
  const now = () => performance.timeOrigin + performance.now();
  const frame = document.querySelector(frameSel);
  const doc = frame && frame.contentDocument;
  const el = doc && doc.querySelector(fieldSel);
  if (!el) return false;
  const proto = Object.getOwnPropertyDescriptor(frame.contentWindow.HTMLInputElement.prototype, 'value');
  Object.defineProperty(el, 'value', {
    configurable: true,
    get() { return proto.get.call(this); },
    set(v) {
      proto.set.call(this, v);
      const entry = { v: String(v), t: now(), painted: null };
      bench.applied.push(entry);
      bench.pending.push(entry);
    },
  });
  if (!bench.loop) {
    bench.loop = true;
    const channel = new MessageChannel();
    let last = null;
    channel.port1.onmessage = () => {
      // Runs right after the rendering update in which the frame callback posted it.
      const t = now();
      bench.frames++;
      for (const entry of bench.pending) entry.painted = t;
      bench.pending.length = 0;
      // Cross-check: the field's value as of this frame, whatever set it.
      const f = document.querySelector(frameSel);
      const d = f && f.contentDocument;
      const x = d && d.querySelector(fieldSel);
      const v = x ? x.value : null;
      if (v !== last) {
        last = v;
        bench.polled.push({ v, t });
      }
    };
    const tick = () => {
      requestAnimationFrame(tick);
      channel.port2.postMessage(0);
    };
    requestAnimationFrame(tick);
  }
  return true;
}
"""

# The Input texts (rrweb IncrementalSnapshot, source 5) carried by a frame.
INPUT_TEXTS_JS = r"""
function inputTexts(data) {
  try {
    const m = JSON.parse(data);
    return (m.ev || []).filter((e) => e.type == 3 && e.data && e.data.source == 5).map((e) => e.data.text);
  } catch (e) {
    return [];
  }
}
"""

CLOCK_JS = r"""
async () => {
  // performance.timeOrigin + performance.now() minus Date.now(), averaged over
  // a spread of moments (Date.now() is whole milliseconds: the mean is the
  // offset + 0.5 ms, which cancels between two pages).
  const out = [];
  for (let i = 0; i < 200; i++) {
    out.push(performance.timeOrigin + performance.now() - Date.now());
    if (i % 20 == 19) await new Promise((r) => setTimeout(r, 3));
  }
  return out.reduce((a, b) => a + b, 0) / out.length;
}
"""


def _input_texts(payload: str) -> list[str]:
    try:
        m = json.loads(payload)
    except ValueError:
        return []
    ev = m.get("ev") or []
    return [e["data"].get("text") for e in ev
            if isinstance(e, dict) and e.get("type") == 3 and isinstance(e.get("data"), dict)
            and e["data"].get("source") == 5]


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
    return {"n": len(v), "min": min(v), "p50": pct(v, 50), "p95": pct(v, 95), "max": max(v),
            "mean": statistics.fmean(v)}


def bootstrap_ci(values: list[float], stat=statistics.median, rounds: int = 2000, seed: int = 1) -> tuple:
    v = [x for x in values if x is not None]
    if len(v) < 3:
        return (None, None)
    rng = random.Random(seed)
    stats = sorted(stat([rng.choice(v) for _ in v]) for _ in range(rounds))
    return (stats[int(0.025 * rounds)], stats[int(0.975 * rounds) - 1])


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# the service


class Services:
    """In the child process: the demo shop, the cobrowse Service in front of it
    (injecting), a second Service with proxy.inject = false (for the page-load
    comparison), an agent account on the first and its login cookie."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.shop_runner = None
        self.services: list = []
        self.previous_hasher = None
        self.info: dict = {}

    async def start(self) -> None:
        import aiohttp
        import argon2
        from aiohttp import web

        from cobrowse.config import load_config
        from cobrowse.console import auth
        from cobrowse.demo import create_shop_app
        from cobrowse.server import Service
        from cobrowse.storage import accounts

        # A cheap password hash: the benchmark logs in once, it does not measure logins.
        self.previous_hasher = accounts.set_password_hasher(
            argon2.PasswordHasher.from_parameters(argon2.profiles.CHEAPEST))
        # The shop's stock ticker every hour (as in the browser tests): pages
        # stay still, so every DOM change the agent sees comes from the visitor.
        self.shop_runner = web.AppRunner(create_shop_app(live_interval=3600.0), access_log=None)
        await self.shop_runner.setup()
        await web.TCPSite(self.shop_runner, HOST, 0).start()
        shop_url = f"http://{HOST}:{self.shop_runner.addresses[0][1]}"
        for name, inject in (("main", True), ("noinject", False)):
            # Fixed free ports: the console's origin must be its real port (it checks Origin on login).
            config = load_config(env={}, overrides={
                "upstream": shop_url,
                "server.data_dir": str(self.tmp / f"data-{name}"),
                "server.log_level": "warning",
                "server.listen": f"{HOST}:{free_port()}",
                "console.listen": f"{HOST}:{free_port()}",
                "proxy.inject": inject,
            })
            service = Service(config)
            self.services.append(service)
            await service.start()
        main, noinject = self.services
        console_url = f"http://{HOST}:{main.console_port}"
        username, password, display = AGENT
        await accounts.create_user(main.db, username, password, "agent", display)
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{console_url}/api/login", json={"username": username, "password": password},
                                 headers={"Origin": console_url}) as response:
                if response.status != 200:
                    raise RuntimeError(f"console login failed: {response.status} {await response.text()}")
                cookie = response.cookies[auth.COOKIE_NAME].value
        self.info = {
            "shop_url": shop_url,
            "proxy_port": main.port,
            "proxy_url": f"http://{HOST}:{main.port}",
            "noinject_url": f"http://{HOST}:{noinject.port}",
            "console_url": console_url,
            "prefix": main.config.server.prefix,
            "cookie_name": auth.COOKIE_NAME,
            "cookie": cookie,
            "pid": os.getpid(),
        }

    async def stop(self) -> None:
        from cobrowse.storage import accounts

        for service in reversed(self.services):
            if service.hub is not None:
                await service.hub.stop()
            await service.stop()
        self.services.clear()
        if self.shop_runner is not None:
            await self.shop_runner.cleanup()
            self.shop_runner = None
        if self.previous_hasher is not None:
            accounts.set_password_hasher(self.previous_hasher)
            self.previous_hasher = None


def _serve(conn, tmp: str) -> None:
    """The child process: start the services, report their addresses, run until told to stop
    (or until the parent is gone: the pipe closes)."""

    async def main() -> None:
        services = Services(Path(tmp))
        try:
            await services.start()
            conn.send({"ok": True, **services.info})
            try:
                await asyncio.get_running_loop().run_in_executor(None, conn.recv)
            except (EOFError, OSError):
                pass
        except Exception as exc:  # reported to the parent, which stops
            conn.send({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        finally:
            await services.stop()

    try:
        import uvloop  # as `cobrowse serve` runs
    except ImportError:
        uvloop = None
    try:
        if uvloop is not None:
            uvloop.run(main())
        else:
            asyncio.run(main())
    except KeyboardInterrupt:
        pass


class Env:
    """The services, run in a child process of their own (as in production:
    the service's event loop is not shared with the benchmark's Playwright
    client, which handles every page and websocket event it reports)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.proc = None
        self.conn = None
        self.info: dict = {}

    def start(self, timeout: float = 60.0) -> None:
        import multiprocessing

        mp = multiprocessing.get_context("spawn")
        self.conn, child = mp.Pipe()
        self.proc = mp.Process(target=_serve, args=(child, str(self.tmp)), name="cobrowse-bench-services",
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
# browser helpers


async def new_context(browser, viewport, init_script: str | None = None):
    ctx = await browser.new_context(viewport=viewport, locale="en-GB", timezone_id="Europe/Amsterdam")
    ctx.set_default_timeout(TIMEOUT_MS)
    ctx.set_default_navigation_timeout(TIMEOUT_MS)
    if init_script:
        await ctx.add_init_script(init_script)
    return ctx


async def start_sharing(page, url: str, name: str) -> None:
    """The visitor opens the page, agrees to share with the real widget, and closes the panel."""
    import re

    from playwright.async_api import expect

    await page.goto(url)
    await page.locator(LAUNCHER).click()
    await page.locator("#cobrowse-root >> #cobrowse-name").fill(name)
    await page.get_by_role("button", name="Share this page").click()
    await expect(page.locator(CODE)).to_have_text(re.compile(r"^\d{3} \d{3}$"))
    await page.locator(CLOSE_PANEL).click()


async def open_agent(browser, env: Env, visitor_name: str, init_script: str | None = None, cdp_events=None):
    """A logged-in console that has joined the visitor's session from the queue."""
    from playwright.async_api import expect

    ctx = await new_context(browser, AGENT_VIEWPORT, init_script)
    await ctx.add_cookies([{"name": env.cookie_name, "value": env.cookie, "url": env.console_url}])
    page = await ctx.new_page()
    if cdp_events is not None:
        await watch_websocket_cdp(ctx, page, cdp_events)
    await page.goto(env.console_url + "/")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "online")
    await page.locator(".queue-card", has_text=visitor_name).click()
    await expect(page.locator("#session-title")).to_have_text(visitor_name)
    await expect(page.frame_locator(REPLAY).locator("body")).to_be_visible()
    return ctx, page


async def watch_websocket_cdp(ctx, page, events: dict) -> None:
    """DevTools websocket events of this page: handshakes (ticks + wall time) and frames (ticks)."""
    cdp = await ctx.new_cdp_session(page)
    events.setdefault("handshake", [])
    events.setdefault("sent", [])
    events.setdefault("received", [])
    cdp.on("Network.webSocketWillSendHandshakeRequest", lambda e: events["handshake"].append(
        {"id": e["requestId"], "ticks": e["timestamp"], "wall": e["wallTime"]}))
    cdp.on("Network.webSocketFrameSent", lambda e: events["sent"].append(
        {"id": e["requestId"], "ticks": e["timestamp"], "data": e["response"].get("payloadData", "")}))
    cdp.on("Network.webSocketFrameReceived", lambda e: events["received"].append(
        {"id": e["requestId"], "ticks": e["timestamp"], "data": e["response"].get("payloadData", "")}))
    await cdp.send("Network.enable")


def cdp_times(events: dict, clock_offset_ms: float) -> dict:
    """Frames' DevTools times (monotonic seconds) as page-clock milliseconds.

    A handshake event carries both the monotonic time and the wall time (Date);
    the page's clock is Date plus its measured offset. Good to about 1 ms.
    """
    base = {h["id"]: h["wall"] * 1000.0 - h["ticks"] * 1000.0 for h in events.get("handshake", [])}
    out = {"sent": [], "received": []}
    for kind in ("sent", "received"):
        for f in events.get(kind, []):
            if f["id"] in base:
                out[kind].append({"t": f["ticks"] * 1000.0 + base[f["id"]] + clock_offset_ms, "data": f["data"]})
    return out


async def clock_offset(page) -> float:
    return await page.evaluate(CLOCK_JS)


# ---------------------------------------------------------------------------
# 1. keystroke latency


async def measure_latency(browser, env: Env, keystrokes: int) -> dict:
    from playwright.async_api import expect

    name = "Kim Keystrokes"
    vctx = await new_context(browser, VISITOR_VIEWPORT, VISITOR_PROBE)
    actx = None
    try:
        vpage = await vctx.new_page()
        v_cdp: dict = {}
        await watch_websocket_cdp(vctx, vpage, v_cdp)
        await start_sharing(vpage, env.proxy_url + TYPE_PAGE, name)
        a_cdp: dict = {}
        actx, apage = await open_agent(browser, env, name, AGENT_PROBE, a_cdp)
        await expect(apage.frame_locator(REPLAY).locator(FIELD)).to_be_attached()
        if not await apage.evaluate(AGENT_HOOK, [REPLAY, FIELD]):
            raise RuntimeError("the replay has no " + FIELD)

        await vpage.locator(FIELD).click()
        await vpage.wait_for_timeout(800)  # focus, pointer and click events reach the agent first
        letters = "abcdefghijklmnopqrstuvwxyz"
        rng = random.Random(5)
        text = "".join(rng.choice(letters) for _ in range(keystrokes))
        t_start = time.monotonic()
        for ch in text:
            await vpage.keyboard.press(ch)
            # 100-200 ms apart, at random: each keystroke is measured on its own, and
            # keystrokes do not fall in step with the agent's animation frames.
            await asyncio.sleep(rng.uniform(0.1, 0.2))
        typing_s = time.monotonic() - t_start
        await apage.wait_for_function(
            "(v) => window.__bench.applied.some((e) => e.v == v && e.painted)", arg=text, timeout=TIMEOUT_MS)

        v_off = await clock_offset(vpage)
        a_off = await clock_offset(apage)
        vdata = await vpage.evaluate(
            "() => { " + INPUT_TEXTS_JS + " return { keydown: window.__bench.keydown, input: window.__bench.input, "
            "sent: window.__bench.sent.map((s) => ({ t: s.t, texts: inputTexts(s.data), bytes: s.data.length })) }; }")
        adata = await apage.evaluate(
            "() => { " + INPUT_TEXTS_JS + " const b = window.__bench; return { "
            "received: b.received.map((r) => ({ t: r.t, texts: inputTexts(r.data) })), "
            "applied: b.applied, polled: b.polled, frames: b.frames }; }")
    finally:
        if actx is not None:
            await actx.close()
        await vctx.close()

    # Agent page times onto the visitor page's clock.
    skew = a_off - v_off

    def agent_t(t):
        return None if t is None else t - skew

    def first(items, value, key="texts"):
        for it in items:
            if (value in it[key]) if key == "texts" else (it[key] == value):
                return it
        return None

    v_net = cdp_times(v_cdp, v_off)
    a_net = cdp_times(a_cdp, a_off)
    for lst in (v_net["sent"], a_net["received"]):
        for f in lst:
            f["texts"] = _input_texts(f["data"]) if f["data"].startswith(('{"t":"rr"', '{"t":"tab_rr"')) else []

    keydowns = [k for k in vdata["keydown"] if len(k["key"]) == 1]
    rows = []
    for i, ch in enumerate(text):
        value = text[:i + 1]
        kd_ok = i < len(keydowns) and keydowns[i]["key"] == ch
        kd = keydowns[i]["t"] if kd_ok else None
        handled = keydowns[i]["handled"] if kd_ok else None
        inp = first(vdata["input"], value, key="v")
        sent = first(vdata["sent"], value)
        net_sent = first(v_net["sent"], value)
        net_recv = first(a_net["received"], value)
        recv = first(adata["received"], value)
        applied = first(adata["applied"], value, key="v")
        polled = first(adata["polled"], value, key="v")
        rows.append({
            "char": ch,
            "keydown": kd,
            "key_handled": handled,
            "input_event": inp and inp["t"],
            "sent": sent and sent["t"],
            "net_sent": net_sent and net_sent["t"],
            "net_received": net_recv and agent_t(net_recv["t"]),
            "received": recv and agent_t(recv["t"]),
            "applied": applied and agent_t(applied["t"]),
            "painted": applied and agent_t(applied["painted"]),
            "painted_polled": polled and agent_t(polled["t"]),
        })

    def span(a, b):
        return [r[b] - r[a] for r in rows if r[a] is not None and r[b] is not None]

    stages = {
        "keydown_to_sent": summary(span("keydown", "sent")),
        "keydown_to_key_handled": summary(span("keydown", "key_handled")),
        "key_handled_to_input_event": summary(span("key_handled", "input_event")),
        "input_event_to_sent": summary(span("input_event", "sent")),
        "sent_to_received": summary(span("sent", "received")),
        "received_to_applied": summary(span("received", "applied")),
        "applied_to_painted": summary(span("applied", "painted")),
        "keydown_to_applied": summary(span("keydown", "applied")),
        "keydown_to_painted": summary(span("keydown", "painted")),
        "keydown_to_painted_polled": summary(span("keydown", "painted_polled")),
        # network-level detail (DevTools timestamps, converted via the handshake's wall time)
        "sent_to_net_sent": summary(span("sent", "net_sent")),
        "net_sent_to_net_received": summary(span("net_sent", "net_received")),
        "net_received_to_received": summary(span("net_received", "received")),
    }
    batches = [s for s in vdata["sent"] if s["texts"]]
    return {
        "keystrokes": keystrokes,
        "typing_seconds": typing_s,
        "page": TYPE_PAGE,
        "field": FIELD,
        "clock_offsets_ms": {"visitor": v_off, "agent": a_off, "agent_minus_visitor": skew},
        "agent_frames_seen": adata["frames"],
        "input_frames_sent": len(batches),
        "input_frames_with_several_keystrokes": sum(1 for s in batches if len(s["texts"]) > 1),
        "missing": {k: sum(1 for r in rows if r[k] is None) for k in rows[0]} if rows else {},
        "stages_ms": stages,
        "rows": rows,
    }


# ---------------------------------------------------------------------------
# 2. bytes on the wire


class ByteRelay:
    """A TCP relay that counts the bytes of every connection, each way.

    A connection whose request line is the hub's websocket (GET <prefix>ws) is
    marked, and the head of its 101 answer kept (to see what was negotiated).
    """

    def __init__(self, target_port: int, ws_path: str) -> None:
        self.target_port = target_port
        self.ws_request = f"GET {ws_path}".encode()
        self.conns: list[dict] = []
        self.server = None
        self.port = 0
        self.tasks: set = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, HOST, 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            self.server = None

    async def _handle(self, reader, writer) -> None:
        task = asyncio.current_task()
        self.tasks.add(task)
        conn = {"up": 0, "down": 0, "up_reads": 0, "down_reads": 0, "head": b"", "answer": b"", "ws": False}
        self.conns.append(conn)
        up_writer = None
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.target_port)
            await asyncio.gather(self._pump(reader, up_writer, conn, "up"),
                                 self._pump(up_reader, writer, conn, "down"), return_exceptions=True)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    w.close()
            self.tasks.discard(task)

    async def _pump(self, src, dst, conn: dict, way: str) -> None:
        try:
            while True:
                data = await src.read(65536)
                if not data:
                    break
                conn[way] += len(data)
                conn[way + "_reads"] += 1
                if way == "up" and len(conn["head"]) < 4096:
                    conn["head"] += data[:4096]
                    conn["ws"] = conn["head"].startswith(self.ws_request)
                elif way == "down" and conn["ws"] and b"\r\n\r\n" not in conn["answer"]:
                    conn["answer"] += data[:2048]
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            try:
                dst.write_eof()
            except (OSError, RuntimeError):
                pass

    def websocket(self) -> dict | None:
        found = [c for c in self.conns if c["ws"]]
        return found[-1] if found else None


async def measure_wire(browser, env: Env, seconds: float) -> dict:
    name = "Wes Wire"
    relay = ByteRelay(env.proxy_port, env.prefix + "ws")
    await relay.start()
    vctx = await new_context(browser, VISITOR_VIEWPORT)
    actx = None
    frames_sent: list[tuple[float, int, str]] = []
    frames_received: list[tuple[float, int]] = []
    try:
        vpage = await vctx.new_page()

        def on_socket(ws):
            if not ws.url.endswith(env.prefix + "ws"):
                return
            ws.on("framesent", lambda p: frames_sent.append(
                (time.monotonic(), len(p.encode() if isinstance(p, str) else p), p[:12] if isinstance(p, str) else "")))
            ws.on("framereceived", lambda p: frames_received.append(
                (time.monotonic(), len(p.encode() if isinstance(p, str) else p))))

        vpage.on("websocket", on_socket)
        relay_url = f"http://{HOST}:{relay.port}"
        t_share = time.monotonic()
        await start_sharing(vpage, relay_url + TYPE_PAGE, name)
        actx, apage = await open_agent(browser, env, name)
        await vpage.locator(FIELD).click()
        await vpage.wait_for_timeout(1000)
        ws = relay.websocket()
        if ws is None:
            raise RuntimeError("the visitor's websocket did not go through the relay")
        before = dict(ws)
        sent_before = len(frames_sent)
        received_before = len(frames_received)
        share_raw = sum(n for _, n, _ in frames_sent)

        # 5 keystrokes a second (words, the field cleared now and then) and a
        # wheel scroll every 400 ms (down for a while, then up), pointer on the page.
        await vpage.mouse.move(700, 450)
        text = ("please help me with my order number four two one seven i cannot find the delivery date "
                "and the postcode field does not accept my address ")
        keys = []
        for i, ch in enumerate(text * 4):
            keys.append(ch)
            if i % 30 == 29:  # now and then the visitor starts over: select all, delete
                keys += ["Control+a", "Backspace"]
        t0 = time.monotonic()
        step = 0
        scroll_dir = 1
        while True:
            at = t0 + step * 0.2
            if at - t0 >= seconds:
                break
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            key = keys[step % len(keys)]
            await (vpage.keyboard.press(key) if len(key) > 1 else vpage.keyboard.type(key))
            if step % 2 == 1:
                if step % 16 == 15:
                    scroll_dir = -scroll_dir
                await vpage.mouse.wheel(0, 120 * scroll_dir)
            step += 1
        typed = step
        window_s = time.monotonic() - t0
        await vpage.wait_for_timeout(500)  # the last batch and its ack
        after = dict(ws)
        sent = frames_sent[sent_before:]
        received = frames_received[received_before:]
        scroll_y = await vpage.evaluate("() => window.scrollY")
    finally:
        if actx is not None:
            await actx.close()
        await vctx.close()
        await relay.stop()

    raw_up = sum(n for _, n, _ in sent)
    raw_rr = sum(n for _, n, kind in sent if kind.startswith('{"t":"rr"'))
    wire_up = after["up"] - before["up"]
    raw_down = sum(n for _, n in received)
    wire_down = after["down"] - before["down"]
    answer = after["answer"].split(b"\r\n\r\n")[0].decode("latin-1")
    extensions = [ln.split(":", 1)[1].strip() for ln in answer.split("\r\n")
                  if ln.lower().startswith("sec-websocket-extensions:")]
    request = after["head"].split(b"\r\n\r\n")[0].decode("latin-1")
    offered = [ln.split(":", 1)[1].strip() for ln in request.split("\r\n")
               if ln.lower().startswith("sec-websocket-extensions:")]

    def kbit(n):
        return n * 8 / 1000 / window_s

    return {
        "seconds": window_s,
        "keystrokes": typed,
        "keystrokes_per_s": typed / window_s,
        "wheel_scrolls": step // 2,
        "final_scroll_y": scroll_y,
        "frames_up": len(sent),
        "frames_down": len(received),
        "raw_up_bytes": raw_up,
        "raw_up_rr_bytes": raw_rr,
        "wire_up_bytes": wire_up,
        "raw_down_bytes": raw_down,
        "wire_down_bytes": wire_down,
        "raw_up_kbit_s": kbit(raw_up),
        "wire_up_kbit_s": kbit(wire_up),
        "raw_down_kbit_s": kbit(raw_down),
        "wire_down_kbit_s": kbit(wire_down),
        "ratio_up": wire_up / raw_up if raw_up else None,
        # TCP/IP headers are not in the relay's count: ~52 bytes (IPv4 + TCP with
        # timestamps) per segment; on loopback each websocket frame is a segment.
        "wire_up_with_tcpip_estimate_kbit_s": kbit(wire_up + 52 * len(sent)),
        "share_start_raw_bytes": share_raw,
        "share_start_wire_bytes": before["up"],
        "offered_extensions": offered,
        "negotiated_extensions": extensions,
        "relay_connections": len(relay.conns),
        "since_share_s": time.monotonic() - t_share,
    }


# ---------------------------------------------------------------------------
# 3. page weight and page-load cost


async def fetch_sizes(env: Env) -> dict:
    import aiohttp

    manifest = json.loads((ROOT / "cobrowse" / "static_dist" / "manifest.json").read_text())
    files = manifest.get("files", {})
    served = {}
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        for name in [n for n in files if not n.startswith("console.") and "/" not in n]:
            path = env.prefix + ("loader.js" if name == "loader.js" else f"static/{name}?v={files[name]['hash']}")
            async with http.get(env.proxy_url + path, headers={"Accept-Encoding": "gzip, deflate, br"}) as r:
                body = await r.read()
                served[name] = {"status": r.status, "bytes": len(body),
                                "content_encoding": r.headers.get("Content-Encoding"),
                                "cache_control": r.headers.get("Cache-Control")}
    groups = manifest.get("groups", {})
    return {"manifest": {k: {"size": v["size"], "gzip": v["gzip"]} for k, v in files.items()},
            "groups": groups, "served": served}


NAV_TIMING = r"""
async () => {
  const nav = () => performance.getEntriesByType('navigation')[0];
  while (!nav() || !(nav().loadEventEnd > 0)) await new Promise((r) => setTimeout(r, 5));
  const n = nav();
  const loader = performance.getEntriesByType('resource').find((e) => e.name.includes('/loader.js'));
  return {
    dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd, responseStart: n.responseStart,
    responseEnd: n.responseEnd, transfer: n.transferSize, body: n.encodedBodySize,
    resources: performance.getEntriesByType('resource').length,
    loader: loader ? { start: loader.startTime, end: loader.responseEnd, duration: loader.duration,
                       transfer: loader.transferSize, body: loader.encodedBodySize } : null,
  };
}
"""


async def measure_pageload(browser, env: Env, loads: int, warmup: int = 3) -> dict:
    """The catalog loaded directly, through the proxy injected, and through the proxy not injected.

    One page per variant (its own context), kept across loads: the renderer
    process is warm, so what differs between the variants is the network and
    what the page runs. Two passes: "cold" with the HTTP cache disabled
    (DevTools Network.setCacheDisabled: a first visit, every file fetched) and
    "warm" with it on (the next pages of a visit: loader.js comes from the
    cache or is revalidated). In each round every variant loads once, the
    order rotated; a query string that changes per load keeps each one a
    plain navigation (Chromium treats a load of the same URL as a reload).
    """
    variants = {
        "direct": env.shop_url + LOAD_PAGE,
        "proxy_inject": env.proxy_url + LOAD_PAGE,
        "proxy_no_inject": env.noinject_url + LOAD_PAGE,  # a second Service, proxy.inject = false
    }
    order = list(variants)
    pages = {}
    contexts = []
    out: dict = {"loads": loads, "warmup_rounds": warmup, "page": LOAD_PAGE, "modes": {}}
    try:
        for kind in order:
            ctx = await new_context(browser, VISITOR_VIEWPORT)
            contexts.append(ctx)
            page = await ctx.new_page()
            cdp = await ctx.new_cdp_session(page)
            await cdp.send("Network.enable")
            pages[kind] = (page, cdp)
        n = 0
        for mode in ("cold", "warm"):
            for page, cdp in pages.values():
                await cdp.send("Network.setCacheDisabled", {"cacheDisabled": mode == "cold"})
            results: dict[str, list[dict]] = {k: [] for k in variants}
            for i in range(warmup + loads):
                rotated = order[i % 3:] + order[:i % 3]
                for kind in rotated:
                    page = pages[kind][0]
                    n += 1
                    sep = "&" if "?" in variants[kind] else "?"
                    await page.goto(f"{variants[kind]}{sep}bench={n}", wait_until="load")
                    timing = await page.evaluate(NAV_TIMING)
                    timing["injected"] = await page.evaluate(
                        "() => !!document.querySelector('script[src*=\"/loader.js\"]')")
                    if i >= warmup:
                        results[kind].append(timing)
            out["modes"][mode] = _pageload_summary(results)
    finally:
        for ctx in contexts:
            await ctx.close()
    return out


def _pageload_summary(results: dict[str, list[dict]]) -> dict:
    out: dict = {"variants": {}}
    for kind, rows in results.items():
        out["variants"][kind] = {
            "dcl": summary([r["dcl"] for r in rows]),
            "load": summary([r["load"] for r in rows]),
            "response_start": summary([r["responseStart"] for r in rows]),
            "injected": sum(1 for r in rows if r["injected"]),
            "loader": summary([r["loader"]["duration"] for r in rows if r["loader"]]),
            "loader_transfer": summary([r["loader"]["transfer"] for r in rows if r["loader"]]),
            "rows": rows,
        }
    diffs = {}
    for a, b in (("proxy_inject", "direct"), ("proxy_inject", "proxy_no_inject"), ("proxy_no_inject", "direct")):
        for metric in ("dcl", "load"):
            paired = [x[metric] - y[metric] for x, y in zip(results[a], results[b])]
            lo, hi = bootstrap_ci(paired)
            diffs[f"{a}-{b}:{metric}"] = {"median": pct(paired, 50), "p25": pct(paired, 25), "p75": pct(paired, 75),
                                          "p5": pct(paired, 5), "p95": pct(paired, 95),
                                          "ci95_median": [lo, hi], "n": len(paired)}
    out["paired_differences_ms"] = diffs
    return out


# ---------------------------------------------------------------------------
# report


def ms(v) -> str:
    if v is None:
        return "—"
    return f"{v:.1f}" if abs(v) < 100 else f"{v:.0f}"


def kb(n) -> str:
    return "—" if n is None else f"{n / 1024:.2f} KB"


def render(result: dict) -> str:
    f = result["machine"]
    lines = ["## Browser benchmark", ""]
    lines.append(f"- command: `{result['command']}`")
    lines.append(f"- date: {result['started'][:16].replace('T', ' ')} UTC, commit {f.get('git_commit')}"
                 + (" (cobrowse/ modified since)" if f.get("cobrowse_modified_since_commit") else ""))
    mem = f"{f['mem_total_bytes'] / 2**30:.0f} GiB RAM" if f.get("mem_total_bytes") else ""
    la = result.get("loadavg", {})
    lines.append(f"- machine: {f['nproc']} CPUs ({f.get('cpu_model')}), {mem}, {f['kernel']}; load average "
                 + ", ".join(f"{v:.2f} {k}" for k, v in la.items()))
    lines.append(f"- software: Python {f['python']}, {result.get('chromium')} (headless), "
                 f"Playwright {result.get('playwright')}")
    lines.append("")
    goals = []

    lat = result.get("latency")
    if lat:
        s = lat["stages_ms"]
        lines += [f"### 1. Keystroke → agent's view ({lat['keystrokes']} keystrokes, 100–200 ms apart, "
                  f"`{lat['field']}` on `{lat['page']}`)", "",
                  "| stage | p50 | p95 | max | mean |", "|---|---:|---:|---:|---:|"]
        labels = [
            ("keydown_to_sent", "visitor: keydown → websocket send()"),
            ("keydown_to_key_handled", "  of which: key event's timeStamp → the page's keydown listener"),
            ("input_event_to_sent", "  of which: the page's input event → send() (the widget)"),
            ("sent_to_received", "send() → agent's websocket message"),
            ("received_to_applied", "agent: message → value set in the replay"),
            ("applied_to_painted", "value set → end of the frame that paints it"),
            ("keydown_to_painted", "**keydown → painted in the agent's view**"),
            ("keydown_to_painted_polled", "keydown → painted (cross-check: value polled each frame)"),
        ]
        for key, label in labels:
            st = s.get(key, {})
            lines.append(f"| {label} | {ms(st.get('p50'))} | {ms(st.get('p95'))} | {ms(st.get('max'))} | "
                         f"{ms(st.get('mean'))} |")
        lines += ["", "Network-level detail (DevTools frame timestamps, ±1 ms):", "",
                  "| stage | p50 | p95 | max |", "|---|---:|---:|---:|"]
        for key, label in (("sent_to_net_sent", "send() → visitor's network stack sends it"),
                           ("net_sent_to_net_received", "visitor network stack → agent network stack "
                                                        "(TCP, proxy, hub, TCP)"),
                           ("net_received_to_received", "agent network stack → the page's message event")):
            st = s.get(key, {})
            lines.append(f"| {label} | {ms(st.get('p50'))} | {ms(st.get('p95'))} | {ms(st.get('max'))} |")
        off = lat["clock_offsets_ms"]
        lines += ["", f"All times in ms. Clock check: the agent page's clock differed from the visitor page's "
                  f"by {off['agent_minus_visitor']:+.2f} ms (corrected). {lat['input_frames_sent']} frames carried "
                  f"input events ({lat['input_frames_with_several_keystrokes']} with more than one keystroke). "
                  f"Missing samples: {sum(lat['missing'].values())}.", ""]
        p95 = s["keydown_to_painted"].get("p95")
        goals.append(("Keystroke → visible, p95 ≤ 40 ms", f"{ms(p95)} ms", p95 is not None and p95 <= 40))

    wire = result.get("wire")
    if wire:
        lines += [f"### 2. Bytes per second, visitor typing ({wire['keystrokes_per_s']:.1f} keys/s) and scrolling, "
                  f"{wire['seconds']:.1f} s", "",
                  "| direction | frames | raw JSON | on the wire (TCP payload) | wire ÷ raw |",
                  "|---|---:|---:|---:|---:|"]
        lines.append(f"| visitor → hub | {wire['frames_up']} | {wire['raw_up_kbit_s']:.2f} kbit/s | "
                     f"{wire['wire_up_kbit_s']:.2f} kbit/s | {wire['ratio_up']:.2f} |")
        rd = wire["wire_down_bytes"] / wire["raw_down_bytes"] if wire["raw_down_bytes"] else None
        lines.append(f"| hub → visitor (acks) | {wire['frames_down']} | {wire['raw_down_kbit_s']:.2f} kbit/s | "
                     f"{wire['wire_down_kbit_s']:.2f} kbit/s | {'—' if rd is None else f'{rd:.2f}'} |")
        lines += ["", f"- negotiated: `{'; '.join(wire['negotiated_extensions']) or 'no extension'}` "
                  f"(offered by Chromium: `{'; '.join(wire['offered_extensions']) or 'none'}`)",
                  f"- with TCP/IP headers (≈52 bytes per frame, estimated): "
                  f"{wire['wire_up_with_tcpip_estimate_kbit_s']:.2f} kbit/s up",
                  f"- sharing start (hello, share, first full snapshot, before the window): "
                  f"{wire['share_start_raw_bytes']:,} bytes raw, {wire['share_start_wire_bytes']:,} bytes on the wire "
                  f"(incl. the HTTP upgrade)", ""]
        goals.append(("Wire ≤ 0.5 × raw JSON (visitor → hub)", f"{wire['ratio_up']:.2f}",
                      wire["ratio_up"] is not None and wire["ratio_up"] <= 0.5))

    pl = result.get("pageload")
    sizes = result.get("sizes")
    if sizes:
        m = sizes["manifest"]
        lines += ["### 3a. What a visitor downloads", "",
                  "| file | minified | gzip (manifest) | as served (`Accept-Encoding: gzip, deflate, br`) | when |",
                  "|---|---:|---:|---:|---|"]
        when = {"loader.js": "every page", "widget.js": "on “Get help”", "recorder.js": "on “Share”"}
        for name in [n for n in m if not n.startswith("console.")]:
            sv = sizes["served"].get(name, {})
            enc = sv.get("content_encoding") or "uncompressed"
            lines.append(f"| {name} | {kb(m[name]['size'])} | {kb(m[name]['gzip'])} | "
                         f"{kb(sv.get('bytes'))} ({enc}) | {when.get(name, 'on demand')} |")
        od = sizes["groups"].get("on-demand", {})
        lines.append("")
        lines.append(f"On-demand bundles together (manifest group `on-demand`): {kb(od.get('gzip'))} gzip "
                     f"({' + '.join(od.get('files', []))}).")
        lines.append("")
        goals.append(("Loader ≤ 6 KB gzip", kb(m.get("loader.js", {}).get("gzip")),
                      m.get("loader.js", {}).get("gzip", 1e9) <= GOALS["loader_gzip_bytes"]))
        goals.append(("On-demand bundles ≤ 50 KB gzip", kb(od.get("gzip")),
                      (od.get("gzip") or 1e9) <= GOALS["on_demand_gzip_bytes"]))
    if pl:
        names = {"direct": "directly from the shop", "proxy_inject": "through the proxy, injected",
                 "proxy_no_inject": "through the proxy, `inject = false`"}
        dn = {"proxy_inject-direct": "proxy + injection − direct",
              "proxy_inject-proxy_no_inject": "injection on − off (both through the proxy)",
              "proxy_no_inject-direct": "proxy without injection − direct"}
        titles = {"cold": "cold cache (HTTP cache disabled: a first visit)",
                  "warm": "warm cache (the next pages of a visit)"}
        for mode, res in pl["modes"].items():
            v = res["variants"]
            lines += [f"### 3b. Demo catalog (`{pl['page']}`) load, {titles[mode]}, {pl['loads']} loads each, "
                      "interleaved", "",
                      "| how | DOMContentLoaded p50 | p95 | load p50 | p95 | loader.js fetch p50 |",
                      "|---|---:|---:|---:|---:|---:|"]
            for kind in ("direct", "proxy_no_inject", "proxy_inject"):
                r = v[kind]
                lines.append(f"| {names[kind]} | {ms(r['dcl'].get('p50'))} | {ms(r['dcl'].get('p95'))} | "
                             f"{ms(r['load'].get('p50'))} | {ms(r['load'].get('p95'))} | "
                             f"{ms(r['loader'].get('p50'))} |")
            lines += ["", "Paired differences (one load of each per round), ms:", "",
                      "| difference | metric | median | 95% CI of the median | p25 … p75 | p5 … p95 |",
                      "|---|---|---:|---:|---:|---:|"]
            for key, d in res["paired_differences_ms"].items():
                pair, metric = key.split(":")
                lo, hi = d["ci95_median"]
                lines.append(f"| {dn[pair]} | {'DOMContentLoaded' if metric == 'dcl' else 'load'} | "
                             f"{ms(d['median'])} | {ms(lo)} … {ms(hi)} | {ms(d['p25'])} … {ms(d['p75'])} | "
                             f"{ms(d['p5'])} … {ms(d['p95'])} |")
            lines.append("")
            lines.append(f"The loader was in {v['proxy_inject']['injected']} of {pl['loads']} injected loads and in "
                         f"{v['proxy_no_inject']['injected']} with injection off.")
            lines.append("")
            d = res["paired_differences_ms"]["proxy_inject-proxy_no_inject:load"]
            goals.append((f"Injection costs no measurable load time ({mode} cache; load event, on − off)",
                          f"{ms(d['median'])} ms (95% CI {ms(d['ci95_median'][0])} … {ms(d['ci95_median'][1])})",
                          None))

    if goals:
        lines += ["### Goals", "", "| goal | measured | met |", "|---|---:|---|"]
        for goal, measured, met in goals:
            lines.append(f"| {goal} | {measured} | {'see text' if met is None else ('yes' if met else '**no**')} |")
        lines.append("")
    for note in result.get("notes", []):
        lines.append(f"- note: {note}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keystrokes", type=int, default=100, help="keystrokes timed one by one (default 100)")
    p.add_argument("--seconds", type=float, default=20.0, help="length of the typing+scrolling window for the "
                   "bytes-on-the-wire measurement (default 20)")
    p.add_argument("--loads", type=int, default=30, help="page loads per variant and cache mode (default 30)")
    p.add_argument("--only", action="append", choices=["latency", "wire", "pageload"],
                   help="run only this measurement (repeatable)")
    p.add_argument("--chromium", default=os.environ.get("COBROWSE_CHROMIUM") or "/usr/bin/chromium",
                   help="Chromium binary (default /usr/bin/chromium)")
    p.add_argument("--json", type=Path, help="where to write the JSON results "
                   "(default bench/results/browser-<timestamp>.json)")
    args = p.parse_args(argv)
    args.only = args.only or ["latency", "wire", "pageload"]
    return args


async def run(args: argparse.Namespace, result: dict) -> None:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=TIMEOUT_MS)
    tmp = Path(tempfile.mkdtemp(prefix="cobrowse-bench-browser-"))
    env = Env(tmp)
    loop = asyncio.get_running_loop()
    # SIGTERM/SIGHUP cancel the run, so the finally blocks below close the
    # browser (through Playwright) and stop the services' process in order.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, asyncio.current_task().cancel)
    try:
        progress("starting the shop and the services (child process) ...")
        await loop.run_in_executor(None, env.start)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS, timeout=60_000)
            try:
                result["chromium"] = f"Chromium {browser.version}"
                if "latency" in args.only:
                    progress(f"1/3 keystroke latency: {args.keystrokes} keystrokes ...")
                    result["loadavg"]["before latency"] = os.getloadavg()[0]
                    result["latency"] = await measure_latency(browser, env, args.keystrokes)
                if "wire" in args.only:
                    progress(f"2/3 bytes on the wire: {args.seconds:g} s of typing and scrolling ...")
                    result["loadavg"]["before wire"] = os.getloadavg()[0]
                    result["wire"] = await measure_wire(browser, env, args.seconds)
                if "pageload" in args.only:
                    progress(f"3/3 page weight and load: {args.loads} loads per variant ...")
                    result["loadavg"]["before pageload"] = os.getloadavg()[0]
                    result["sizes"] = await fetch_sizes(env)
                    result["pageload"] = await measure_pageload(browser, env, args.loads)
            finally:
                await browser.close()
    finally:
        await loop.run_in_executor(None, env.stop)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    terminate_on_signals()
    if not (ROOT / "cobrowse" / "static_dist" / "manifest.json").is_file():
        print("error: cobrowse/static_dist is not built: run `node static/build.mjs`", file=sys.stderr)
        return 2
    if not (Path(args.chromium).is_file() and os.access(args.chromium, os.X_OK)):
        print(f"error: Chromium not found at {args.chromium} (--chromium PATH)", file=sys.stderr)
        return 2
    from importlib.metadata import version

    started = dt.datetime.now(dt.timezone.utc)
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/browser.py", *sys.argv[1:]])
    facts = machine_facts(nginx=None, mitmdump=None, wrk=None)
    for k in ("nginx", "mitmproxy", "wrk", "uvloop"):
        facts.pop(k, None)
    result: dict = {"command": command, "argv": sys.argv, "started": started.isoformat(), "machine": facts,
                    "playwright": version("playwright"), "goals": GOALS,
                    "settings": {"keystrokes": args.keystrokes, "seconds": args.seconds, "loads": args.loads,
                                 "only": args.only},
                    "loadavg": {"at start": facts["loadavg_start"][0]}, "notes": []}
    t0 = time.monotonic()
    try:
        asyncio.run(run(args, result))
    except (KeyboardInterrupt, asyncio.CancelledError):
        progress("interrupted")
        return 130
    result["loadavg"]["at end"] = os.getloadavg()[0]
    result["duration_s"] = time.monotonic() - t0
    result["finished"] = dt.datetime.now(dt.timezone.utc).isoformat()
    out = args.json or ROOT / "bench" / "results" / f"browser-{started:%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(render(result))
    progress(f"took {result['duration_s']:.0f} s; results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
