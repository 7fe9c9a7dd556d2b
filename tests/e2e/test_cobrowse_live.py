"""Live co-browsing end to end: two real browsers, a visitor on the demo shop
through the proxy and an agent in the console, talking through the hub.

The visitor shares with the real widget (Get help -> Share this page); the
agent logs in to the console (its own listener and origin) and watches the
visitor's page in rrweb's replayer. What the agent sees is read from the
replay iframe in the console page (same-origin, sandboxed without scripts).

The cobrowse Service here is this module's own (not conftest's demo_service):
its ports are fixed up front so it can be restarted on the same ports and data
directory (test_both_sides_catch_up_after_a_hub_restart), and the console's
public origin must be the real port (with "127.0.0.1:0" the console would
expect Origin http://127.0.0.1:0 and refuse every login).

What is checked (numbers as in the brief):
  1 test_agent_sees_the_page_and_typing        catalog text, typed values, focus, scroll,
                                               selection, pointer, viewport size; login form
  2 test_agent_follows_navigation_within_a_second   full loads and a pushState view, each < 1 s
                                               (COBROWSE_NAV_BUDGET_MS overrides the budget)
  3 test_masked_fields_never_reach_the_agent   password, cc-number, data-cobrowse-mask
  5 test_supervisor_joins_late_and_sees_the_current_page   by code (a wrong one first), viewers,
                                               End session
  6 test_visitor_stopping_ends_the_agents_view
    test_two_visitor_tabs_show_as_two_tabs     follow-the-visitor, a closed tab
    test_agent_reconnects_and_catches_up_without_a_rebuild   rejoin with `since`
  4 test_both_sides_catch_up_after_a_hub_restart   last: it restarts the service (twice)

Logins: the console allows 10 attempts per address per 10 minutes, so only
the first test logs in through the form; the others start with a cookie from
one POST /api/login per agent (module fixture).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import expect

from cobrowse.demo.catalog import PRODUCTS

from .conftest import CSP_RECORDER, LOOP_SCOPE, TIMEOUT_MS, PageWatch

pytestmark = pytest.mark.e2e

LAUNCHER = "#cobrowse-root >> button.l"
CODE = "#cobrowse-root >> p.code"
# The replay of the tab shown in the console (a new page is swapped in once drawn).
REPLAY = ".replay-host:not([hidden]) .replay-mount:not(.is-pending) iframe"
VISITOR_VIEWPORT = {"width": 1280, "height": 800}
AGENT_VIEWPORT = {"width": 1440, "height": 900}
NAV_BUDGET_MS = int(os.environ.get("COBROWSE_NAV_BUDGET_MS", "1000"))  # the agent follows a navigation within a second

AGENTS = {
    "anna": ("Anna", "agent", "anna-console-pass"),
    "ben": ("Ben", "supervisor", "ben-console-pass"),
}

# Evaluated in the console page: the replay document, or null.
REPLAY_DOC = f"() => {{ const f = document.querySelector({json.dumps(REPLAY)}); return f && f.contentDocument; }}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# The service (restartable) and the agents' logins
# ---------------------------------------------------------------------------


@dataclass
class Live:
    config: object
    service: object
    proxy_url: str
    console_url: str
    cookies: dict[str, str] = field(default_factory=dict)  # username -> console session cookie

    def proxied(self, path: str = "/") -> str:
        return self.proxy_url + path

    async def restart(self) -> float:
        """Stop the whole service (hub included) and start it again on the same ports and data."""
        from cobrowse.server import Service

        started = time.monotonic()
        # Service.stop() does not stop the hub first: its websockets stay open and
        # aiohttp waits ~45 s for them. The hub's own stop() closes them with 1012.
        await self.service.hub.stop()
        await self.service.stop()
        self.service = Service(self.config)
        await self.service.start()
        return time.monotonic() - started


@contextlib.asynccontextmanager
async def running_live(adjust=None):
    """The demo shop and the whole service on free ports, with the AGENTS logged in.

    ``adjust(config) -> config`` changes the configuration first (another
    module's own chat settings, say)."""
    import argon2

    from cobrowse.config import load_config
    from cobrowse.demo import create_shop_app
    from cobrowse.server import Service
    from cobrowse.storage import accounts

    previous_hasher = accounts.set_password_hasher(argon2.PasswordHasher.from_parameters(argon2.profiles.CHEAPEST))
    shop_runner = web.AppRunner(create_shop_app(live_interval=3600.0), access_log=None)
    await shop_runner.setup()
    data_dir = tempfile.mkdtemp(prefix="cobrowse-live-")
    holder = None
    try:
        await web.TCPSite(shop_runner, "127.0.0.1", 0).start()
        shop_url = f"http://127.0.0.1:{shop_runner.addresses[0][1]}"
        proxy_port, console_port = _free_port(), _free_port()
        config = load_config(env={}, overrides={
            "upstream": shop_url,
            "server.data_dir": data_dir,
            "server.log_level": "warning",
            "server.listen": f"127.0.0.1:{proxy_port}",
            "console.listen": f"127.0.0.1:{console_port}",
        })
        if adjust is not None:
            config = adjust(config)
        service = Service(config)
        await service.start()
        holder = Live(config, service, f"http://127.0.0.1:{service.port}", f"http://127.0.0.1:{service.console_port}")
        for username, (display, role, password) in AGENTS.items():
            await accounts.create_user(service.db, username, password, role, display)
        async with aiohttp.ClientSession() as http:
            for username in AGENTS:
                holder.cookies[username] = await _login_cookie(http, holder.console_url, username)
        yield holder
    finally:
        if holder is not None:
            await holder.service.hub.stop()
            await holder.service.stop()
        await shop_runner.cleanup()
        accounts.set_password_hasher(previous_hasher)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest_asyncio.fixture(scope="module", loop_scope=LOOP_SCOPE)
async def live():
    async with running_live() as holder:
        yield holder


async def _login_cookie(http: aiohttp.ClientSession, console_url: str, username: str) -> str:
    from cobrowse.console import auth

    async with http.post(f"{console_url}/api/login", json={"username": username, "password": AGENTS[username][2]},
                         headers={"Origin": console_url}) as response:
        assert response.status == 200, await response.text()
        return response.cookies[auth.COOKIE_NAME].value


# ---------------------------------------------------------------------------
# Visitor and agent pages
# ---------------------------------------------------------------------------


@dataclass
class Agent:
    page: object
    watch: PageWatch
    frames: list[str]  # every websocket frame the console page received
    sent: list[dict]  # every frame it sent

    def joins(self) -> list[dict]:
        return [f for f in self.sent if f.get("t") == "join"]

    def replay(self):
        return self.page.frame_locator(REPLAY)


async def _context(browser, viewport):
    ctx = await browser.new_context(viewport=viewport, locale="en-GB", timezone_id="Europe/Amsterdam")
    ctx.set_default_timeout(TIMEOUT_MS)
    ctx.set_default_navigation_timeout(TIMEOUT_MS)
    await ctx.add_init_script(CSP_RECORDER)
    return ctx


@pytest_asyncio.fixture(loop_scope=LOOP_SCOPE)
async def contexts(browser):
    """Make browser contexts for a test; all closed at its end."""
    made = []

    async def make(viewport):
        ctx = await _context(browser, viewport)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        await ctx.close()


async def open_visitor(contexts, live, path="/"):
    page = await (await contexts(VISITOR_VIEWPORT)).new_page()
    watch = PageWatch(page)
    watch.attach(page)
    await page.goto(live.proxied(path))
    await expect(page.locator(LAUNCHER)).to_be_visible()
    return page


async def start_sharing(page, name: str) -> str:
    """The visitor opens the help panel and agrees to share; returns the 6-digit code."""
    await page.locator(LAUNCHER).click()
    await page.locator("#cobrowse-root >> #cobrowse-name").fill(name)
    await page.get_by_role("button", name="Share this page").click()
    code = page.locator(CODE)
    await expect(code).to_have_text(re.compile(r"^\d{3} \d{3}$"))
    return (await code.text_content()).replace(" ", "")


async def open_agent(contexts, live, username: str | None = None) -> Agent:
    """A console page; logged in with the module's cookie for `username` (None: not logged in)."""
    ctx = await contexts(AGENT_VIEWPORT)
    if username is not None:
        from cobrowse.console import auth

        await ctx.add_cookies([{"name": auth.COOKIE_NAME, "value": live.cookies[username], "url": live.console_url}])
    page = await ctx.new_page()
    watch = PageWatch(page)
    watch.attach(page)
    frames: list[str] = []
    sent: list[dict] = []

    def on_socket(ws):
        ws.on("framereceived", lambda payload: frames.append(
            payload if isinstance(payload, str) else payload.decode("utf-8", "replace")))
        ws.on("framesent", lambda payload: sent.append(json.loads(payload)) if isinstance(payload, str) else None)

    page.on("websocket", on_socket)
    await page.goto(live.console_url + "/")
    if username is not None:
        await expect(page.locator("#conn")).to_have_attribute("data-state", "online")
    return Agent(page, watch, frames, sent)


async def join_from_queue(agent: Agent, visitor_name: str) -> None:
    card = agent.page.locator(".queue-card", has_text=visitor_name)
    await card.click()
    await expect(agent.page.locator("#session-title")).to_have_text(visitor_name)
    await expect(agent.replay().locator("body")).to_be_visible()


async def replay_shows(agent: Agent, selector: str, text: str, timeout_ms: int = TIMEOUT_MS) -> int:
    """Wait until the replay has `selector` containing `text`; returns Date.now() at that moment."""
    seen = await agent.page.evaluate(
        """async ([frameSel, selector, text, timeout]) => {
            const end = performance.now() + timeout;
            while (performance.now() < end) {
              const f = document.querySelector(frameSel);
              const doc = f && f.contentDocument;
              const hits = doc ? doc.querySelectorAll(selector) : [];
              for (const el of hits) if ((el.textContent || '').includes(text)) return Date.now();
              await new Promise((r) => setTimeout(r, 15));
            }
            return null;
        }""",
        [REPLAY, selector, text, timeout_ms],
    )
    assert seen is not None, f"the agent's replay never showed {selector!r} with {text!r}"
    return seen


async def replay_dump(agent: Agent) -> str:
    """The replay document's markup plus every field's current value."""
    return await agent.page.evaluate(
        """(frameSel) => {
            const f = document.querySelector(frameSel);
            const doc = f && f.contentDocument;
            if (!doc) return '';
            const values = [...doc.querySelectorAll('input, textarea, select')].map((el) => el.value);
            return doc.documentElement.outerHTML + '\\n' + values.join('\\n');
        }""",
        REPLAY,
    )


async def side_by_side(contexts, left: bytes, right: bytes, path, labels=("Visitor", "Agent console")) -> None:
    """One picture of the visitor's page and the agent's console next to each other."""
    page = await (await contexts({"width": 2760, "height": 980})).new_page()
    figures = "".join(
        f'<figure><figcaption>{label}</figcaption><img src="data:image/png;base64,{base64.b64encode(png).decode()}"></figure>'
        for label, png in zip(labels, (left, right)))
    await page.set_content(
        "<style>body{margin:0;display:flex;gap:24px;padding:20px;background:#1c2130;font:600 18px system-ui;color:#fff}"
        "figure{margin:0}figcaption{margin-bottom:10px}img{display:block;height:900px;border-radius:6px}</style>"
        + figures)
    await page.screenshot(path=str(path), full_page=True)


def _clean(watch: PageWatch, *, allow=()) -> None:
    """No CSP violation, no uncaught error, no console error except the expected ones."""
    expected = ("401 (Unauthorized)",) + tuple(allow)  # GET /api/me before logging in
    errors = [e for e in watch.console_errors if not any(x in e for x in expected)]
    assert not watch.page_errors, watch.page_errors
    assert not watch.csp_console, watch.csp_console
    assert not errors, errors


# ---------------------------------------------------------------------------
# 1. The agent sees the page and what the visitor types
# ---------------------------------------------------------------------------


async def test_agent_sees_the_page_and_typing(contexts, live, screenshot_dir):
    visitor = await open_visitor(contexts, live, "/")
    await start_sharing(visitor, "Sam Taylor")

    agent = await open_agent(contexts, live)
    page = agent.page
    # The login form: a wrong password is refused plainly, the right one gets in.
    await page.locator("#login-username").fill("anna")
    await page.locator("#login-password").fill("not-the-password")
    await page.locator("#login-submit").click()
    await expect(page.locator("#login-error")).to_have_text("Wrong username or password.")
    await page.screenshot(path=str(screenshot_dir / "console-login.png"))
    await page.locator("#login-password").fill(AGENTS["anna"][2])
    await page.locator("#login-submit").click()
    await expect(page.locator("#me-name")).to_have_text("Anna")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "online")

    # The queue lists the visitor, live.
    card = page.locator(".queue-card", has_text="Sam Taylor")
    await expect(card).to_contain_text("Shop")
    await expect(card).to_contain_text("Waiting")
    await expect(card.locator(".queue-url")).to_contain_text(re.compile(r"127\.0\.0\.1:\d+/$"))
    await page.screenshot(path=str(screenshot_dir / "console-queue.png"))

    await join_from_queue(agent, "Sam Taylor")
    replay = agent.replay()
    # The catalog, inside the sandboxed replay frame, at the visitor's viewport size.
    await expect(replay.locator(".product-card, article, a", has_text=PRODUCTS[0].name).first).to_be_visible()
    await expect(page.locator("#viewport-size")).to_have_text("1280×800")
    sandbox = await page.locator(REPLAY).get_attribute("sandbox")
    assert sandbox == "allow-same-origin", "the replay frame must not run scripts"
    await expect(card).to_contain_text("1 watching")
    await expect(page.locator("#viewers-line")).to_have_text("Anna watching")

    # Typing on the login page (a full page load: the widget resumes sharing).
    await visitor.goto(live.proxied("/login"))
    await expect(replay.locator("h1")).to_have_text("Sign in")
    await visitor.locator("#email").click()
    await visitor.locator("#email").press_sequentially("sam.taylor@example.org", delay=15)
    await expect(replay.locator("#email")).to_have_value("sam.taylor@example.org")
    # The visitor's focus is shown on the field.
    await expect(replay.locator("#email")).to_have_attribute("data-cobrowse-focus", "")

    # And on the cart page.
    await visitor.goto(live.proxied("/cart"))
    await expect(replay.locator("h1")).to_have_text("Your cart")
    await visitor.locator("#promo").click()
    await visitor.locator("#promo").press_sequentially("HELP10", delay=15)
    await expect(replay.locator("#promo")).to_have_value("HELP10")
    # Scrolling follows, to the same position.
    await visitor.mouse.move(640, 400)
    await visitor.mouse.wheel(0, 300)
    await visitor.wait_for_function("() => window.scrollY >= 250")
    await visitor.wait_for_timeout(200)  # let the wheel's smooth scroll settle (not a sync wait)
    scroll_y = await visitor.evaluate("() => window.scrollY")
    await page.wait_for_function(
        f"(y) => {{ const d = ({REPLAY_DOC})(); return !!d && Math.abs(d.defaultView.scrollY - y) <= 2; }}",
        arg=scroll_y, polling=50)
    # Text selection shows.
    await visitor.locator("h2", has_text="Delivery").first.click(click_count=3)
    await page.wait_for_function(
        f"() => {{ const d = ({REPLAY_DOC})(); return !!d && d.getSelection().toString().includes('Delivery'); }}",
        polling=50)
    # The pointer is drawn where the visitor's is.
    await expect(page.locator(".replay-host:not([hidden]) .replay-mount:not(.is-pending) .replayer-mouse")).to_be_visible()

    session_png = await page.screenshot(path=str(screenshot_dir / "console-session.png"))
    visitor_png = await visitor.screenshot(path=str(screenshot_dir / "visitor-page.png"))
    await side_by_side(contexts, visitor_png, session_png, screenshot_dir / "visitor-and-agent.png")

    # The visitor's window size, kept and shown.
    await visitor.set_viewport_size({"width": 1024, "height": 700})
    await expect(page.locator("#viewport-size")).to_have_text("1024×700")
    assert await page.locator(REPLAY).get_attribute("width") == "1024"
    _clean(agent.watch)
    assert not await agent.watch.csp_violations(), await agent.watch.csp_violations()


# ---------------------------------------------------------------------------
# 2. The agent follows navigation, within a second each
# ---------------------------------------------------------------------------


async def _loaded_at(visitor) -> int:
    """Date.now() when the visitor's current document was ready (DOMContentLoaded)."""
    return await visitor.evaluate(
        "() => Math.round(performance.timeOrigin + performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd)")


def arm_watch(agent: Agent, selector: str, text: str = "") -> asyncio.Task:
    """Start watching the replay (in the console page) BEFORE the visitor acts; the task
    gives Date.now() of the moment `selector` with `text` appeared. Watching from inside
    the page keeps the test's own round trips out of the measured time."""
    return asyncio.ensure_future(replay_shows(agent, selector, text))


async def test_agent_follows_navigation_within_a_second(contexts, live):
    visitor = await open_visitor(contexts, live, "/")
    await start_sharing(visitor, "Nora Navigates")
    agent = await open_agent(contexts, live, "anna")
    await join_from_queue(agent, "Nora Navigates")
    await replay_shows(agent, "h1", await visitor.locator("h1").first.text_content())
    await visitor.locator("#cobrowse-root >> button[aria-label='Close']").click()  # the panel covers the page
    lags = {}

    # 1) A product page (a full page load through the proxy; the widget resumes sharing there).
    product = PRODUCTS[1]
    seen = arm_watch(agent, "h1", product.name)
    await visitor.locator(f"a[href='/product/{product.id}']").first.click()
    await expect(visitor.locator("h1")).to_have_text(product.name)
    lags["product page"] = await seen - await _loaded_at(visitor)

    # 2) The help centre, a single-page app (another full load) ...
    seen = arm_watch(agent, "#spa-view .article-card")
    await visitor.locator("header a[href='/spa/']").first.click()
    await expect(visitor.locator("#spa-view .article-card").first).to_be_visible()
    lags["help centre"] = await seen - await _loaded_at(visitor)

    # 3) ... and inside it, a client-side navigation (pushState, same document).
    await visitor.evaluate("() => { window.__sameDocument = 'yes'; }")
    seen = arm_watch(agent, "#spa-view article.article h2")
    clicked = await visitor.evaluate(
        "() => { const t = Date.now(); document.querySelector('#spa-view a.article-card').click(); return t; }")
    await expect(visitor).to_have_url(re.compile(r"/spa/article/[a-z0-9-]+$"))
    title = (await visitor.locator("#spa-view article.article h2").text_content()).strip()
    lags["pushState article"] = await seen - clicked
    await replay_shows(agent, "#spa-view article.article h2", title)
    assert await visitor.evaluate("() => window.__sameDocument") == "yes", "that was a full page load"
    # The console knows the new address.
    await expect(agent.page.locator("#info-page-url")).to_contain_text("/spa/article/")

    print("agent lag per navigation (ms):", lags)
    slow = {k: v for k, v in lags.items() if v > NAV_BUDGET_MS}
    assert not slow, f"the agent saw these pages later than {NAV_BUDGET_MS} ms after the visitor: {lags}"
    _clean(agent.watch)


# ---------------------------------------------------------------------------
# 3. Masked fields never reach the agent
# ---------------------------------------------------------------------------


async def test_masked_fields_never_reach_the_agent(contexts, live):
    canary = "Cnry" + secrets.token_hex(4)
    visitor = await open_visitor(contexts, live, "/login")
    await start_sharing(visitor, "Mia Masked")
    agent = await open_agent(contexts, live, "anna")
    await join_from_queue(agent, "Mia Masked")
    replay = agent.replay()
    await visitor.locator("#cobrowse-root >> button[aria-label='Close']").click()

    # Password (type=password).
    await visitor.locator("#password").fill("")
    await visitor.locator("#password").press_sequentially(canary + "-password", delay=10)
    await visitor.locator("#email").press_sequentially("mia@example.org", delay=10)
    await expect(replay.locator("#email")).to_have_value("mia@example.org")
    await expect(replay.locator("#password")).to_have_value(re.compile(r"^\*+$"))

    # Gift message (data-cobrowse-mask), on the cart page.
    await visitor.goto(live.proxied("/cart"))
    await expect(replay.locator("h1")).to_have_text("Your cart")
    await visitor.locator("#gift_message").press_sequentially(canary + " gift note", delay=10)
    await visitor.locator("#promo").press_sequentially("PROMO1", delay=10)
    await expect(replay.locator("#promo")).to_have_value("PROMO1")

    # Card number (autocomplete=cc-number), on the checkout page.
    await visitor.goto(live.proxied("/checkout"))
    await expect(replay.locator("h1")).to_have_text("Checkout")
    await visitor.locator("#cc-number").press_sequentially(canary + "4242", delay=10)
    await visitor.locator("#full-name").press_sequentially("Mia Masked", delay=10)
    await expect(replay.locator("#full-name")).to_have_value("Mia Masked")
    await expect(replay.locator("#cc-number")).to_have_value(re.compile(r"^\*+$"))

    dump = await replay_dump(agent)
    assert canary not in dump, "a masked value shows in the agent's replay"
    assert agent.frames, "no websocket frames were captured"
    leaked = [f[:200] for f in agent.frames if canary in f]
    assert not leaked, f"masked values reached the agent's browser: {leaked}"
    # (the frames did carry the visible fields: the capture works)
    assert any("mia@example.org" in f for f in agent.frames)
    _clean(agent.watch)


# ---------------------------------------------------------------------------
# 5. A second agent (supervisor) joins late, by code
# ---------------------------------------------------------------------------


async def test_supervisor_joins_late_and_sees_the_current_page(contexts, live):
    visitor = await open_visitor(contexts, live, "/login")
    code = await start_sharing(visitor, "Lars Late")
    anna = await open_agent(contexts, live, "anna")
    await join_from_queue(anna, "Lars Late")
    await visitor.locator("#cobrowse-root >> button[aria-label='Close']").click()
    await visitor.locator("#email").press_sequentially("lars@example.org", delay=10)
    await expect(anna.replay().locator("#email")).to_have_value("lars@example.org")

    # Ben comes in later, with the code the visitor reads out (a wrong one first).
    ben = await open_agent(contexts, live, "ben")
    page = ben.page
    wrong = "000000" if code != "000000" else "111111"
    await page.locator("#code-input").fill(wrong)
    await page.locator("#code-submit").click()
    await expect(page.locator("#code-error")).to_contain_text("No visitor is sharing with that code")
    await page.locator("#code-input").fill(code)
    await page.locator("#code-submit").click()
    await expect(page.locator("#session-title")).to_have_text("Lars Late")
    # The current page at once, with what was typed before he came.
    await expect(ben.replay().locator("h1")).to_have_text("Sign in")
    await expect(ben.replay().locator("#email")).to_have_value("lars@example.org")
    await expect(page.locator("#viewers-line")).to_have_text("Anna, Ben (supervisor) watching")
    await expect(anna.page.locator("#viewers-line")).to_have_text("Anna, Ben (supervisor) watching")
    await expect(visitor.locator("#cobrowse-root >> .bn")).to_contain_text("Ben")

    # Both keep following.
    await visitor.locator("#email").press_sequentially(".nl", delay=10)
    await expect(ben.replay().locator("#email")).to_have_value("lars@example.org.nl")
    await expect(anna.replay().locator("#email")).to_have_value("lars@example.org.nl")

    # The supervisor ends the session for everyone.
    await page.locator("#end").click()
    await page.locator("#end-confirm").click()
    for agent in (anna, ben):
        await expect(agent.page.locator("#ended-title")).to_have_text("The session was ended")
        await expect(agent.page.locator(REPLAY)).to_have_count(0)
    await expect(visitor.locator("#cobrowse-root >> .bn")).to_be_hidden()
    _clean(ben.watch)
    _clean(anna.watch)


# ---------------------------------------------------------------------------
# 6. The visitor stops sharing: the agent's view ends
# ---------------------------------------------------------------------------


async def test_visitor_stopping_ends_the_agents_view(contexts, live, screenshot_dir):
    visitor = await open_visitor(contexts, live, "/")
    await start_sharing(visitor, "Stella Stops")
    agent = await open_agent(contexts, live, "anna")
    await join_from_queue(agent, "Stella Stops")
    await expect(agent.replay().locator("h1").first).to_be_visible()

    await visitor.locator("#cobrowse-root >> .bn-s").click()  # "Stop sharing" in the banner
    page = agent.page
    await expect(page.locator("#ended")).to_be_visible()
    await expect(page.locator("#ended-title")).to_have_text("The visitor stopped sharing")
    await expect(page.locator(REPLAY)).to_have_count(0)
    await expect(page.locator("#end")).to_be_disabled()
    await expect(page.locator(".queue-card", has_text="Stella Stops")).to_have_count(0)
    await page.screenshot(path=str(screenshot_dir / "console-ended.png"))
    # Back to the queue.
    await page.locator("#ended-back").click()
    await expect(page.locator("#stage-empty")).to_be_visible()
    _clean(agent.watch)


# ---------------------------------------------------------------------------
# Two tabs of one visitor show as two tabs
# ---------------------------------------------------------------------------


async def test_two_visitor_tabs_show_as_two_tabs(contexts, live, screenshot_dir):
    visitor = await open_visitor(contexts, live, "/")
    await start_sharing(visitor, "Tim Tabs")
    agent = await open_agent(contexts, live, "anna")
    await join_from_queue(agent, "Tim Tabs")
    tabs = agent.page.locator("#tabs [role=tab]")
    await expect(tabs).to_have_count(1)

    # A second tab of the same browser: sharing resumes there on its own.
    second = await visitor.context.new_page()
    await second.goto(live.proxied("/cart"))
    await expect(tabs).to_have_count(2)
    await expect(agent.page.locator("#tabs")).to_contain_text("Your cart")
    await second.locator("#promo").press_sequentially("TAB2", delay=10)
    # The console follows the visitor into the tab they use.
    await expect(agent.page.locator("#tabs [aria-selected=true]")).to_contain_text("Your cart")
    await expect(agent.replay().locator("#promo")).to_have_value("TAB2")
    # The agent can look at the other tab.
    await tabs.filter(has_text="Shop").click()
    await expect(agent.replay().locator(".product-card, article, a", has_text=PRODUCTS[0].name).first).to_be_visible()
    await expect(agent.page.locator("#follow")).to_have_attribute("aria-pressed", "false")
    await agent.page.screenshot(path=str(screenshot_dir / "console-two-tabs.png"))

    # The visitor closes the second tab: past the hub's grace period (15 s, a page
    # load's worth; the hub's clock is moved on instead of waiting) it shows as closed.
    await second.close()
    hub = live.service.hub
    real_clock = hub.clock
    try:
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        mine = next(s for s in hub.sessions.values() if s.name == "Tim Tabs")
        while not any(not t.connected for t in mine.tabs.values()):
            assert time.monotonic() < deadline, "the hub never saw the tab go"
            await asyncio.sleep(0.05)
        hub.clock = lambda: real_clock() + 20
        closed = agent.page.locator("#tabs [role=tab].is-closed")
        await expect(closed).to_have_count(1)
        await expect(closed).to_contain_text("Your cart")
    finally:
        hub.clock = real_clock
    await expect(agent.page.locator("#info-tabs")).to_have_text("1 open")
    # A moment later it leaves the strip: only the open tab is left (one tab: no "Follow visitor").
    await expect(tabs).to_have_count(1)
    await expect(tabs).to_contain_text("Shop")
    await expect(agent.page.locator("#follow")).to_be_hidden()
    await expect(agent.replay().locator(".product-card, article, a", has_text=PRODUCTS[0].name).first).to_be_visible()

    # The visitor closes the last tab too: the view and the queue say they left,
    # instead of a blank page still marked live.
    await visitor.close()
    try:
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while any(t.connected for t in mine.tabs.values()):
            assert time.monotonic() < deadline, "the hub never saw the last tab go"
            await asyncio.sleep(0.05)
        hub.clock = lambda: real_clock() + 20
        await expect(agent.page.locator("#overlay")).to_contain_text("The visitor has no page open")
        await expect(agent.page.locator("#live-text")).to_have_text("Away")
        card = agent.page.locator(".queue-card", has_text="Tim Tabs")
        await expect(card.locator(".badge-away")).to_have_text("Left")
        await agent.page.screenshot(path=str(screenshot_dir / "console-visitor-left.png"))
    finally:
        hub.clock = real_clock
    _clean(agent.watch)


# ---------------------------------------------------------------------------
# The agent's socket drops: it reconnects and catches up with `since`
# ---------------------------------------------------------------------------


async def test_agent_reconnects_and_catches_up_without_a_rebuild(contexts, live):
    visitor = await open_visitor(contexts, live, "/login")
    await start_sharing(visitor, "Dora Drop")
    agent = await open_agent(contexts, live, "anna")
    await join_from_queue(agent, "Dora Drop")
    await visitor.locator("#cobrowse-root >> button[aria-label='Close']").click()
    await visitor.locator("#email").press_sequentially("dora@", delay=10)
    await expect(agent.replay().locator("#email")).to_have_value("dora@")
    page = agent.page
    await page.evaluate(f"() => {{ document.querySelector({json.dumps(REPLAY)}).__same = true; }}")

    # The socket goes away (as a network drop would); the visitor goes on typing meanwhile.
    await page.evaluate("() => window.__cobrowseConsole.socket.drop(4000, 'test')")
    await visitor.locator("#email").press_sequentially("example.org", delay=10)
    await visitor.wait_for_timeout(300)  # let those events reach the hub while the agent is away
    joins_before = sum('"t":"joined"' in f for f in agent.frames)
    await page.evaluate("() => window.__cobrowseConsole.socket.reconnectNow()")

    await expect(agent.replay().locator("#email")).to_have_value("dora@example.org")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "online")
    # It asked for what it missed ...
    rejoin = agent.joins()[-1]
    assert rejoin.get("since") and all(seq >= 0 for seq in rejoin["since"].values()), rejoin
    # ... and only the missed events came (no fresh snapshot): the same replay frame goes on.
    assert await page.evaluate(f"() => document.querySelector({json.dumps(REPLAY)}).__same === true")
    rejoined = [json.loads(f) for f in agent.frames if '"t":"tab_rr"' in f][-1]
    assert not rejoined.get("reset"), "the rejoin rebuilt the page instead of sending what was missed"
    assert sum('"t":"joined"' in f for f in agent.frames) == joins_before + 1
    _clean(agent.watch)


# ---------------------------------------------------------------------------
# 4. Both sides catch up after the hub restarts (kept last: it restarts the service)
# ---------------------------------------------------------------------------


async def test_both_sides_catch_up_after_a_hub_restart(contexts, live):
    visitor = await open_visitor(contexts, live, "/login")
    await start_sharing(visitor, "Rita Restart")
    agent = await open_agent(contexts, live, "anna")
    await join_from_queue(agent, "Rita Restart")
    await visitor.locator("#cobrowse-root >> button[aria-label='Close']").click()
    await visitor.locator("#email").press_sequentially("rita@example.org", delay=10)
    await expect(agent.replay().locator("#email")).to_have_value("rita@example.org")
    for page in (visitor, agent.page):
        await page.evaluate("() => { window.__notReloaded = true; }")

    took = await live.restart()
    print(f"service restarted in {took:.2f} s")

    # The agent's console notices and comes back by itself.
    await expect(agent.page.locator("#conn")).to_have_attribute("data-state", "online")
    # New typing after the restart reaches the agent's view (resume + rejoin, no reload).
    await visitor.locator("#email").press_sequentially(".after", delay=10)
    await expect(agent.replay().locator("#email")).to_have_value("rita@example.org.after")
    await expect(agent.page.locator("#overlay")).to_be_hidden()
    for page in (visitor, agent.page):
        assert await page.evaluate("() => window.__notReloaded === true"), "a page was reloaded"
    # The replay frame still shows the page, and the session still has its name.
    await expect(agent.replay().locator("h1")).to_have_text("Sign in")
    await expect(agent.page.locator("#session-title")).to_have_text("Rita Restart")

    # Again, with the visitor back first and busy on another page: the restarted
    # hub numbers the tab's events from 0 again, so by the time the agent returns
    # it holds seqs the agent has seen in the OLD stream. `since` must not be
    # trusted then (it would hand over the new page's events without its snapshot).
    page = agent.page
    await page.evaluate("() => window.__cobrowseConsole.socket.drop(4000, 'test')")
    agent_seq = await page.evaluate(
        "() => { const v = window.__cobrowseConsole.session.view; return Math.max(...[...v.tabs.values()].map((t) => t.lastSeq)); }")
    await live.restart()
    await visitor.goto(live.proxied("/cart"))
    typed = ""
    for _ in range(40):  # until the new stream has gone past the agent's old position
        await visitor.locator("#promo").press_sequentially("x" * 5, delay=5)
        typed += "x" * 5
        tabs = [t for held in live.service.hub.sessions.values() for t in held.tabs.values()]
        if any(t.first_seq <= agent_seq + 1 < t.next_seq for t in tabs):
            break
    else:
        pytest.fail("the visitor's new event stream never passed the agent's old position")
    await page.evaluate("() => window.__cobrowseConsole.socket.reconnectNow()")
    await expect(agent.replay().locator("h1")).to_have_text("Your cart")
    await expect(agent.replay().locator("#promo")).to_have_value(typed)
    # The console saw that the hub had made the session anew and asked for whole pages.
    assert agent.joins()[-1].get("since") == {}, agent.joins()[-1]
    # (While the service is down, the console's retries and its login check are refused.)
    _clean(agent.watch, allow=("WebSocket connection to", "ERR_CONNECTION_REFUSED"))
