"""Markers and shared control on the visitor's real page, in Chromium through the proxy.

The visitor consents through the real widget; the agent is a real agent
account speaking the agent protocol on the console's websocket (the Agent of
test_visitor_share), so nothing here depends on the console UI. Element node
ids are the ones the agent would get from the replay: the recorder's own
mirror on the visitor's page (window.__cobrowseRecorder.record.mirror).

What is drawn lives in the widget's shadow root (#cobrowse-root):
  .mk-g[data-mark=<id>]  one marker: .mk-b box (element; .mk-f field), .mk-h
                         highlighter rects (text), svg.mk-d (drawing), .mk-t
                         the note / who placed it
  .mk-p.on               the laser dot;  .mk-bar  "Clear marks"
  .cq                    the control prompt;  .cn  the "is controlling" notice

The console allows 10 logins per address per 10 minutes and the hub 10 joins
by code: this module logs its agent ("Anna") in once and joins each visitor's
session by its id, as the console does from the queue.

Fixtures (browser, demo_service, context, page, watch, screenshot_dir): see conftest.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import expect

from .conftest import LOOP_SCOPE
from .test_visitor_share import ROOT, Agent, Wire, open_page, start_sharing

pytestmark = pytest.mark.e2e

LAYER = f"{ROOT} >> .mk-l"
BAR = f"{ROOT} >> .mk-bar"
PROMPT = f"{ROOT} >> .cq"
NOTICE = f"{ROOT} >> .cn"
TOAST = f"{ROOT} >> .ct"

# Where a marker is drawn and where its element is, in viewport pixels.
GEOMETRY = """([id, selector]) => {
  const g = document.querySelector('#cobrowse-root').shadowRoot.querySelector(`.mk-g[data-mark="${id}"]`);
  const el = document.querySelector(selector);
  const r = (e) => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.width, b.height]; };
  if (!g || !el) return null;
  const box = g.querySelector('.mk-b, svg.mk-d');
  return {
    shown: getComputedStyle(g).visibility == 'visible',
    box: box ? r(box) : null,
    rects: [...g.querySelectorAll('.mk-h')].filter((e) => !e.hidden).map(r),
    tag: g.querySelector('.mk-t') ? r(g.querySelector('.mk-t')) : null,
    el: r(el),
  };
}"""

# True when marker `id`'s box is drawn round `selector` (with the box's padding).
BOX_ON = """([id, selector, pad]) => {
  const g = document.querySelector('#cobrowse-root').shadowRoot.querySelector(`.mk-g[data-mark="${id}"]`);
  const el = document.querySelector(selector);
  if (!g || !el || getComputedStyle(g).visibility != 'visible') return false;
  const b = g.querySelector('.mk-b, svg.mk-d').getBoundingClientRect();
  const e = el.getBoundingClientRect();
  const near = (a, c) => Math.abs(a - c) <= 1.5;
  return near(b.left, e.left - pad) && near(b.top, e.top - pad) && near(b.width, e.width + 2 * pad) && near(b.height, e.height + 2 * pad);
}"""

HIDDEN = """(id) => {
  const g = document.querySelector('#cobrowse-root').shadowRoot.querySelector(`.mk-g[data-mark="${id}"]`);
  return !g || getComputedStyle(g).visibility != 'visible';
}"""

NODE_ID = """(selector) => {
  const el = document.querySelector(selector);
  return el ? window.__cobrowseRecorder.record.mirror.getId(el) : -1;
}"""


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


async def node_id(page, selector: str) -> int:
    """The rrweb node id the agent sees for the element (the recorder must be running)."""
    await page.wait_for_function("() => window.__cobrowseRecorder && window.__cobrowseRecorder.record.mirror.getIds().length > 0")
    nid = await page.evaluate(NODE_ID, selector)
    assert nid > 0, f"no node id for {selector}"
    return nid


async def quote_of(page, selector: str) -> str:
    """The element's quote as the console makes it: its text, whitespace collapsed, at most 120 characters."""
    return await page.evaluate("(s) => document.querySelector(s).textContent.replace(/\\s+/g, ' ').trim().slice(0, 120)",
                               selector)


async def tab_of(page) -> str:
    return json.loads(await page.evaluate("() => sessionStorage.getItem('cobrowse:tab')"))


@pytest_asyncio.fixture(scope="module", loop_scope=LOOP_SCOPE)
async def console_login(demo_service):
    """An HTTP client logged into the console as an agent shown as "Anna" (one login for the module)."""
    from cobrowse.storage import accounts

    if not demo_service.console_url:
        pytest.skip("this service has no agent console")
    username, password = f"anna.mk{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    await accounts.create_user(demo_service.service.db, username, password, "agent", "Anna")
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    response = await http.post(demo_service.console_url + "/api/login", json={"username": username, "password": password})
    assert response.status == 200, await response.text()
    try:
        yield http
    finally:
        await http.close()


class SharedLoginAgent(Agent):
    """An Agent on its own websocket over the module's logged-in client (which it leaves open)."""

    @classmethod
    async def join_session(cls, http: aiohttp.ClientSession, console_url: str, session: str) -> "SharedLoginAgent":
        ws = await http.ws_connect(console_url + "/ws")
        agent = cls(http, ws)
        await ws.send_json({"t": "agent_hello", "v": 1})
        await ws.send_json({"t": "join", "session": session})
        joined = await agent.wait(lambda: [f for f in agent.frames if f["t"] in ("joined", "error")], "joined")
        assert joined[0]["t"] == "joined", joined
        agent.session = joined[0]["session"]
        return agent

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


class Session:
    """A visitor sharing in `page` and an agent joined to it."""

    def __init__(self, page, wire: Wire, agent: Agent, shared: dict, demo_service) -> None:
        self.page = page
        self.wire = wire
        self.agent = agent
        self.shared = shared
        self.demo_service = demo_service

    @classmethod
    async def start(cls, page, demo_service, http, path: str) -> "Session":
        wire = Wire().attach(page)
        await open_page(page, demo_service, path)
        shared = await start_sharing(page, wire, name="Sam")
        await page.keyboard.press("Escape")  # close the panel
        agent = await SharedLoginAgent.join_session(http, demo_service.console_url, shared["session"])
        await expect(page.locator(f"{ROOT} >> div.bn")).to_be_visible()
        return cls(page, wire, agent, shared, demo_service)

    @property
    def id(self) -> str:
        return self.agent.session

    async def tab(self) -> str:
        return await tab_of(self.page)

    async def mark(self, marker_id: str, kind: str, selector: str, *, note: str = "", quote: str = "",
                   start: int = -1, end: int = -1, pinned: bool = False, scroll: bool = True,
                   points: list | None = None, node: bool = True) -> None:
        anchor = {"node": await node_id(self.page, selector) if node else -1, "selector": selector}
        if quote:
            anchor["quote"] = quote
        if start >= 0:
            anchor.update(start=start, end=end)
        marker = {"id": marker_id, "kind": kind, "anchor": anchor, "note": note, "pinned": pinned, "scroll": scroll}
        if points is not None:
            marker["points"] = points
        await self.agent.send({"t": "mark", "session": self.id, "tab": await self.tab(), "marker": marker})
        await self.wire.wait(lambda: [m for m in self.wire.received_of("mark") if m["marker"]["id"] == marker_id],
                             f"the mark {marker_id} at the visitor")

    async def box_on(self, marker_id: str, selector: str, pad: int = 6) -> None:
        try:
            await self.page.wait_for_function(BOX_ON, arg=[marker_id, selector, pad], timeout=5000)
        except Exception:
            raise AssertionError(f"marker {marker_id} is not on {selector}: "
                                 f"{await self.page.evaluate(GEOMETRY, [marker_id, selector])}") from None

    async def take_control(self, allow_submit: bool = False) -> None:
        before = len(self.agent.of("control_state"))
        await self.agent.send({"t": "control_request", "session": self.id, "allow_submit": allow_submit})
        await expect(self.page.locator(PROMPT)).to_be_visible()
        await self.page.locator(f"{PROMPT} >> button.cq-y").click()
        await self.agent.wait(lambda: len(self.agent.of("control_state")) > before
                              and self.agent.of("control_state")[-1].get("controller"), "control granted")
        await expect(self.page.locator(NOTICE)).to_be_visible()

    async def send_input(self, action: str, selector: str | None = None, **fields) -> None:
        frame = {"t": "input", "session": self.id, "tab": await self.tab(), "action": action,
                 "node": await node_id(self.page, selector) if selector else -1, **fields}
        await self.agent.send(frame)

    async def refused(self, count: int) -> dict:
        """The agent's `count`-th input_refused (1-based), once it came."""
        frames = await self.agent.wait(lambda: len(self.agent.of("input_refused")) >= count and self.agent.of("input_refused"),
                                       f"input_refused #{count}")
        return frames[count - 1]

    def inject(self, frame: dict, tab: str) -> None:
        """Straight into the visitor's socket, as if the hub had sent it (the browser's own checks)."""
        from cobrowse.sync.broker import visitor_tab_topic

        hub = self.demo_service.service.hub
        hub.broker.publish(visitor_tab_topic(self.id, tab), json.dumps({"session": self.id, "tab": tab, **frame}).encode())

    async def close(self) -> None:
        await self.agent.close()


# ---------------------------------------------------------------------------
# Markers on the real page
# ---------------------------------------------------------------------------


async def test_element_marker_follows_its_element(page, watch, demo_service, console_login, screenshot_dir):
    s = await Session.start(page, demo_service, console_login, "/spa/")
    try:
        card = "#article-list > li:nth-child(2) > a.article-card"
        await page.evaluate("(sel) => { window.__card = document.querySelector(sel); }", card)
        await s.mark("m1", "element", card, note="Click here to see how to change your order",
                     quote=await quote_of(page, card))
        await s.box_on("m1", card)
        g = await page.evaluate(GEOMETRY, ["m1", card])
        # The note sits beside the box (above it here), and says who put it there.
        tag = page.locator(f"{ROOT} >> .mk-g[data-mark=m1] .mk-t")
        await expect(tag).to_contain_text("Anna")
        await expect(tag).to_contain_text("Click here to see how to change your order")
        assert abs(g["tag"][1] + g["tag"][3] - (g["box"][1])) <= 10 or g["tag"][1] >= g["box"][1] + g["box"][3]
        await expect(page.locator(BAR)).to_contain_text("Anna marked something on this page")
        await page.mouse.move(5, 790)
        await page.wait_for_timeout(1800)  # the arrival animation is over
        await page.screenshot(path=str(screenshot_dir / "markers-element-note.png"))

        # Scrolling the page.
        await page.evaluate("() => window.scrollTo(0, 180)")
        await s.box_on("m1", card)
        # A smaller viewport (and so a re-laid-out page).
        await page.set_viewport_size({"width": 760, "height": 700})
        await s.box_on("m1", card)
        # Zoom (the page's own CSS zoom: layout moves without a resize event).
        await page.evaluate("() => { document.body.style.zoom = '1.25'; }")
        await s.box_on("m1", card)
        await page.evaluate("() => { document.body.style.zoom = ''; }")
        await page.set_viewport_size({"width": 1280, "height": 800})
        await page.evaluate("() => window.scrollTo(0, 0)")
        await s.box_on("m1", card)

        # The SPA re-renders the list (a space in the filter: same URL, new elements):
        # the old node is gone, the marker finds the new one by selector and quote.
        await page.locator("#help-search").press_sequentially(" ")
        assert await page.evaluate("() => window.__card.isConnected") is False
        await s.box_on("m1", card)

        # The element leaves the DOM: the marker hides; it comes back with it.
        await page.evaluate("""(sel) => { const el = document.querySelector(sel);
            window.__parked = [el, el.parentNode]; el.remove(); }""", card)
        await page.wait_for_function(HIDDEN, arg="m1")
        await page.evaluate("() => window.__parked[1].append(window.__parked[0])")
        await page.wait_for_function("""() => { const g = document.querySelector('#cobrowse-root').shadowRoot
            .querySelector('.mk-g[data-mark="m1"]'); return getComputedStyle(g).visibility == 'visible'; }""")

        # The overlay never takes the page's clicks: a real click on the marked card follows its link.
        g = await page.evaluate(GEOMETRY, ["m1", card])
        x, y = g["el"][0] + g["el"][2] / 2, g["el"][1] + g["el"][3] / 2
        hit = await page.evaluate("([x, y]) => { const a = document.elementFromPoint(x, y).closest('a'); return a && a.href; }",
                                  [x, y])
        assert hit and hit.endswith("/spa/article/change-or-cancel"), hit
        await page.mouse.click(x, y)
        await expect(page).to_have_url(re.compile(r"/spa/article/change-or-cancel$"))
        # Another page (pushState): a marker that is not pinned is gone.
        await page.wait_for_function(HIDDEN, arg="m1")
        await expect(page.locator(BAR)).to_be_hidden()
        await watch.assert_clean()
    finally:
        await s.close()


async def test_marker_stays_through_filtering_when_pinned_and_clear_marks(page, watch, demo_service, console_login):
    """The demo's filter re-renders the list and changes only the query (?q=): the same page to the
    hub, so both markers stay on their elements; "Clear marks" then removes them everywhere."""
    s = await Session.start(page, demo_service, console_login, "/spa/")
    try:
        card = "#article-list > li:nth-child(1) > a.article-card"
        await s.mark("pin", "element", card, quote=await quote_of(page, card), pinned=True)
        await s.mark("loose", "element", "#help-search", note="Type here to search")
        await s.box_on("pin", card)
        await s.box_on("loose", "#help-search")
        await expect(page.locator(BAR)).to_contain_text("Anna marked 2 things on this page")

        await page.locator("#help-search").press_sequentially("order", delay=20)
        await expect(page).to_have_url(re.compile(r"\?q=order$"))
        await page.wait_for_function("() => document.querySelectorAll('#article-list > li').length < 9")
        await s.box_on("pin", card)
        await s.box_on("loose", "#help-search")

        # The visitor clears what is left: the hub hears it.
        await page.locator(f"{BAR} >> button").click()
        await s.wire.wait(lambda: s.wire.sent_of("unmark"), "the visitor's unmark")
        assert s.wire.sent_of("unmark")[-1] == {"t": "unmark", "id": None}
        await s.agent.wait(lambda: [u for u in s.agent.of("unmark") if u.get("id") is None], "unmark at the agent")
        await expect(page.locator(BAR)).to_be_hidden()
        assert await page.evaluate("() => document.querySelector('#cobrowse-root').shadowRoot.querySelectorAll('.mk-g').length") == 0
        await watch.assert_clean()
    finally:
        await s.close()


async def test_pinned_marker_is_found_again_on_the_next_page(page, watch, demo_service, console_login):
    s = await Session.start(page, demo_service, console_login, "/")
    try:
        cart = "a.cart-link"
        await s.mark("cart", "element", cart, note="Your basket is here", pinned=True)
        await s.mark("brand", "element", "a.brand")
        await s.box_on("cart", cart)
        await page.locator("a[href='/login']").first.click()
        await page.wait_for_url(re.compile(r"/login$"))
        # The new page's widget gets the pinned one again from the hub and anchors it by its selector.
        await s.wire.wait(lambda: len(s.wire.sent_of("hello")) == 2, "the new page's hello")
        await s.box_on("cart", cart)
        await expect(page.locator(f"{ROOT} >> .mk-g[data-mark=cart] .mk-t")).to_contain_text("Your basket is here")
        assert await page.evaluate("() => !document.querySelector('#cobrowse-root').shadowRoot.querySelector('.mk-g[data-mark=brand]')")
        await watch.assert_clean()
    finally:
        await s.close()


async def test_offscreen_marker_scrolls_into_view(page, demo_service, console_login):
    s = await Session.start(page, demo_service, console_login, "/")
    try:
        footer = "footer"
        assert await page.evaluate("() => document.querySelector('footer').getBoundingClientRect().top > innerHeight")
        await s.mark("far", "element", footer, note="The opening hours are down here")
        # (smoothly: to the bottom of the page, which is as far as "centre the footer" goes)
        await page.wait_for_function("() => scrollY + innerHeight >= document.documentElement.scrollHeight - 2")
        await s.box_on("far", footer)
        await page.wait_for_timeout(500)  # (the end of the smooth scroll)
        # scroll: false leaves the page where it is.
        await page.evaluate("() => window.scrollTo(0, 0)")
        await page.wait_for_timeout(300)
        await s.mark("far2", "element", footer, scroll=False)
        await page.wait_for_timeout(800)
        assert await page.evaluate("() => window.scrollY") == 0
    finally:
        await s.close()


async def test_text_highlight_covers_the_words(page, watch, demo_service, console_login, screenshot_dir):
    s = await Session.start(page, demo_service, console_login, "/spa/article/succulent-care")
    try:
        para = ".article-body p:nth-child(2)"
        text = await page.locator(para).text_content()
        words = "let the soil dry out and water less often"
        start = text.index(words)
        await s.mark("t1", "text", para, quote=words, start=start, end=start + len(words),
                     note="This is the important part")
        # The highlighter covers exactly the words' own rects (padded a little).
        expected = await page.evaluate("""([sel, start, end]) => {
            const t = document.querySelector(sel).firstChild, r = document.createRange();
            r.setStart(t, start); r.setEnd(t, end);
            return [...r.getClientRects()].filter((q) => q.width > 1).map((q) => [q.left, q.top, q.width, q.height]);
        }""", [para, start, start + len(words)])

        async def drawn():
            await page.wait_for_function("""(n) => document.querySelector('#cobrowse-root').shadowRoot
                .querySelectorAll('.mk-g[data-mark=t1]:not(.off) .mk-h:not([hidden])').length == n""", arg=len(expected))
            return (await page.evaluate(GEOMETRY, ["t1", para]))["rects"]

        rects = await drawn()
        assert len(rects) == len(expected) >= 1
        for got, want in zip(sorted(rects, key=lambda r: r[1]), sorted(expected, key=lambda r: r[1])):
            assert abs(got[0] - (want[0] - 2)) <= 1.5 and abs(got[1] - (want[1] - 1)) <= 1.5, (got, want)
            assert abs(got[2] - (want[2] + 4)) <= 2 and abs(got[3] - (want[3] + 2)) <= 1.5, (got, want)
        await expect(page.locator(f"{ROOT} >> .mk-g[data-mark=t1] .mk-t")).to_contain_text("This is the important part")

        # Offsets that do not fit the words (another rendering of the text): the quote wins.
        other = "Water thoroughly about every two weeks"
        await s.mark("t2", "text", ".article-body", quote=other, start=3, end=3 + len(other))
        got = await page.evaluate("""() => {
            const root = document.querySelector('#cobrowse-root').shadowRoot;
            const h = root.querySelector('.mk-g[data-mark=t2] .mk-h').getBoundingClientRect();
            const x = h.left + 6, y = h.top + h.height / 2;
            const c = document.caretRangeFromPoint(x, y); const t = c.startContainer.data;
            return t.slice(c.startOffset, c.startOffset + 10);
        }""")
        assert other.startswith(got.strip()[:5]) or got.startswith("Water"), got
        await page.mouse.move(5, 790)
        await page.wait_for_timeout(400)
        await page.screenshot(path=str(screenshot_dir / "markers-text-highlight.png"))
        await watch.assert_clean()
    finally:
        await s.close()


async def test_field_mark_drawing_and_laser_on_the_strict_csp_page(page, watch, demo_service, console_login, screenshot_dir):
    s = await Session.start(page, demo_service, console_login, "/secure/")
    try:
        await s.mark("f1", "field", "#email", note="Fill in the email address you ordered with")
        await s.box_on("f1", "#email", pad=5)
        await expect(page.locator(f"{ROOT} >> .mk-g[data-mark=f1] .mk-t")).to_contain_text("Fill in the email address")
        await s.mark("f2", "field", "#order")
        await expect(page.locator(f"{ROOT} >> .mk-g[data-mark=f2] .mk-t")).to_contain_text("Please fill this in")

        # A freehand circle round the "Send message" button, drawn over its box.
        import math
        circle = [[round(0.5 + 0.49 * math.cos(a / 24 * math.pi) + 0.008 * math.sin(a), 3),
                   round(0.5 + 0.46 * math.sin(a / 24 * math.pi), 3)] for a in range(0, 52)]
        await s.mark("d1", "draw", "button.btn[type=submit]", points=circle, note="Then press this")
        await s.box_on("d1", "button.btn[type=submit]", pad=0)
        d = await page.evaluate("""() => document.querySelector('#cobrowse-root').shadowRoot
            .querySelector('.mk-g[data-mark=d1] path.mk-s').getAttribute('d')""")
        assert d.startswith("M") and d.count("L") == len(circle) - 1

        # The laser dot follows the agent's pointer over an element, then fades.
        tab = await s.tab()
        target = "#message"
        anchor = {"node": await node_id(page, target), "selector": target}
        for x in (0.2, 0.4, 0.6):
            await s.agent.send({"t": "laser", "session": s.id, "tab": tab, "anchor": anchor, "x": x, "y": 0.5})
            await asyncio.sleep(0.05)
        await page.wait_for_function("""() => { const d = document.querySelector('#cobrowse-root').shadowRoot.querySelector('.mk-p');
            const m = document.querySelector('#message').getBoundingClientRect(), r = d.getBoundingClientRect();
            return d.classList.contains('on') && Math.abs(r.left + r.width / 2 - (m.left + 0.6 * m.width)) < 2
              && Math.abs(r.top + r.height / 2 - (m.top + 0.5 * m.height)) < 2; }""")
        await page.mouse.move(5, 790)
        await page.wait_for_timeout(300)
        await s.agent.send({"t": "laser", "session": s.id, "tab": tab, "anchor": anchor, "x": 0.62, "y": 0.5})
        await page.wait_for_timeout(250)
        await page.screenshot(path=str(screenshot_dir / "markers-field-draw-laser.png"))
        await page.wait_for_function("() => !document.querySelector('#cobrowse-root').shadowRoot.querySelector('.mk-p.on')",
                                     timeout=4000)

        # Under the strict CSP: not one violation for all of it.
        await watch.assert_clean()
    finally:
        await s.close()


XSS = [
    '<img src=x onerror="window.__xss=1">',
    '</style><script>window.__xss=2</script>',
    'javascript:window.__xss=3',
    '"><svg onload=window.__xss=4>',
    "{{constructor.constructor('window.__xss=5')()}}",
    '<iframe srcdoc="<script>parent.__xss=6</script>"></iframe>',
    '<a href="javascript:window.__xss=7">click</a> & &amp; &lt;b&gt;',
    "'; window.__xss=8; //",
]


async def test_notes_are_plain_text_and_run_nothing(page, watch, demo_service, console_login, screenshot_dir):
    s = await Session.start(page, demo_service, console_login, "/")
    try:
        await page.evaluate("() => { window.__xss = undefined; }")
        tab = await s.tab()
        for i, payload in enumerate(XSS):
            await s.mark(f"x{i}", "element", "h1" if i % 2 else "a.brand", note=payload, scroll=False)
        # And payloads where the anchor is, too: a bad selector and a bad quote find nothing, run nothing.
        await s.agent.send({"t": "mark", "session": s.id, "tab": tab, "marker": {
            "id": "xs", "kind": "element", "note": "x",
            "anchor": {"selector": '<img src=x onerror="window.__xss=9">', "quote": "<script>window.__xss=10</script>"}}})
        await s.wire.wait(lambda: [m for m in s.wire.received_of("mark") if m["marker"]["id"] == "xs"], "mark xs")
        notes = await page.evaluate("""() => [...document.querySelector('#cobrowse-root').shadowRoot
            .querySelectorAll('.mk-g .mk-n')].map((n) => n.textContent)""")
        for payload in XSS:
            assert payload in notes, (payload, notes)
        root_tags = await page.evaluate("""() => [...document.querySelector('#cobrowse-root').shadowRoot
            .querySelectorAll('img, script, iframe, a[href^=javascript], [onerror], [onload]')].length""")
        assert root_tags == 0
        await page.wait_for_timeout(500)
        assert await page.evaluate("() => window.__xss") is None
        assert await page.evaluate("() => document.querySelectorAll('iframe').length") == 0
        await page.screenshot(path=str(screenshot_dir / "markers-xss-notes.png"))
        await watch.assert_clean()
    finally:
        await s.close()


# ---------------------------------------------------------------------------
# Shared control
# ---------------------------------------------------------------------------


async def test_control_prompt_allow_and_typing_fires_the_sites_listeners(page, watch, demo_service, console_login, screenshot_dir):
    s = await Session.start(page, demo_service, console_login, "/secure/")
    try:
        # View-only by default: input before control is refused by the hub, never applied.
        await s.send_input("input", "#name", value="not yet")
        await s.agent.wait(lambda: [e for e in s.agent.of("error") if e.get("re") == "input"], "the hub's refusal")
        assert await page.locator("#name").input_value() == ""

        # Decline first.
        await s.agent.send({"t": "control_request", "session": s.id, "allow_submit": False})
        prompt = page.locator(PROMPT)
        await expect(prompt).to_be_visible()
        await expect(prompt).to_contain_text("Anna (support) asks to control this page")
        await expect(prompt).to_contain_text("They will be able to click and type for you.")
        await expect(prompt).to_contain_text("They cannot submit forms")
        await expect(prompt).to_contain_text(re.compile(r"Answer within \d+ seconds"))
        await page.screenshot(path=str(screenshot_dir / "control-prompt.png"), animations="disabled")
        await prompt.locator("button.cq-n").click()
        await s.wire.wait(lambda: s.wire.sent_of("control"), "the visitor's answer")
        assert s.wire.sent_of("control")[-1] == {"t": "control", "granted": False, "allow_submit": False}
        await s.agent.wait(lambda: [c for c in s.agent.of("control_state") if c.get("reason") == "declined"], "declined")
        await expect(prompt).to_be_hidden()
        await expect(page.locator(NOTICE)).to_be_hidden()

        # Then allow.
        await s.take_control()
        assert s.wire.sent_of("control")[-1] == {"t": "control", "granted": True, "allow_submit": False}
        await expect(page.locator(NOTICE)).to_contain_text("Anna (support) is controlling this page")
        await expect(page.locator(f"{NOTICE} >> button")).to_have_text("Take back control")
        # At the bottom of the window: the site's header and nav stay in sight and clickable.
        notice_box = await page.locator(NOTICE).bounding_box()
        header_box = await page.locator("header.site-header").bounding_box()
        assert notice_box["y"] > header_box["y"] + header_box["height"] + 200, (notice_box, header_box)
        await page.mouse.move(5, 790)
        await page.screenshot(path=str(screenshot_dir / "control-notice.png"), animations="disabled")

        # Typing: the site's own listeners react (its character counter), and ours see input + change.
        await page.evaluate("""() => { window.__seen = [];
            for (const type of ['input', 'change', 'focus'])
              document.querySelector('#name').addEventListener(type, (e) => window.__seen.push(type + ':' + e.target.value)); }""")
        await s.send_input("input", "#message", value="Hello from Anna")
        await expect(page.locator("#message")).to_have_value("Hello from Anna")
        await expect(page.locator("#message-count")).to_have_text("15 / 1000")
        await s.send_input("change", "#name", value="Sam Taylor")
        await expect(page.locator("#name")).to_have_value("Sam Taylor")
        assert await page.evaluate("() => window.__seen") == ["focus:", "input:Sam Taylor", "change:Sam Taylor"]
        # A select, a checkbox.
        await s.send_input("change", "#topic", value="returns")
        await expect(page.locator("#topic")).to_have_value("returns")
        await s.send_input("change", "#copy", checked=True)
        await expect(page.locator("#copy")).to_be_checked()
        # Scrolling the page.
        await s.send_input("scroll", x=0, y=200)
        await page.wait_for_function("() => Math.abs(window.scrollY - 200) < 2")
        # The typing travelled back to the agent as the page's own events.
        await s.agent.wait(lambda: "Hello from Anna" in s.agent.relayed(), "the typed text relayed")
        assert not s.agent.of("input_refused")
        await watch.assert_clean()
    finally:
        await s.close()


async def test_control_prompt_times_out_by_itself(page, watch, demo_service, console_login):
    s = await Session.start(page, demo_service, console_login, "/")
    try:
        # (The hub gives 30 s; a request straight into the page with 5 s shows the countdown run out.)
        s.inject({"t": "control_requested", "agent": {"name": "Ben", "role": "supervisor"}, "allow_submit": True,
                  "timeout": 5}, await s.tab())
        prompt = page.locator(PROMPT)
        await expect(prompt).to_contain_text("Ben (support supervisor) asks to control this page")
        await expect(prompt).to_contain_text("Answer within 5 seconds")
        await expect(prompt).to_contain_text("Answer within 3 seconds")
        await expect(prompt).to_be_hidden(timeout=5000)
        assert s.wire.sent_of("control") == []  # no answer is not an answer: the hub times it out
        await expect(page.locator(NOTICE)).to_be_hidden()
        # Esc in the prompt declines; focus goes back to where the visitor was.
        await page.evaluate("""() => {
            const field = document.createElement('input');
            field.id = 'typing-here';
            document.body.prepend(field);
            field.focus();
        }""")
        s.inject({"t": "control_requested", "agent": {"name": "Ben", "role": "supervisor"}, "allow_submit": False,
                  "timeout": 20}, await s.tab())
        await expect(prompt).to_be_visible()
        assert await page.evaluate("() => document.activeElement.id") != "typing-here", "the prompt took focus"
        await page.keyboard.press("Escape")
        await expect(prompt).to_be_hidden()
        assert await page.evaluate("() => document.activeElement.id") == "typing-here"
        assert s.wire.sent_of("control") == [{"t": "control", "granted": False, "allow_submit": False}]
        await watch.assert_clean()
    finally:
        await s.close()


async def test_control_refuses_private_fields_and_submitting(page, watch, demo_service, console_login, screenshot_dir):
    s = await Session.start(page, demo_service, console_login, "/login")
    posts: list[str] = []
    page.on("request", lambda r: r.method == "POST" and posts.append(r.url))
    try:
        await s.take_control(allow_submit=False)
        await s.send_input("input", "#email", value="sam@example.com")
        await expect(page.locator("#email")).to_have_value("sam@example.com")

        # The password field: refused, never typed into.
        await s.send_input("input", "#password", value="hunter2")
        refused = await s.refused(1)
        assert (refused["action"], refused["reason"]) == ("input", "masked")
        assert await page.locator("#password").input_value() == ""
        await expect(page.locator(TOAST)).to_contain_text("support cannot type in private fields")
        await s.send_input("click", "#password")
        assert (await s.refused(2))["reason"] == "masked"
        await s.send_input("key", "#password", key="a")
        assert (await s.refused(3))["reason"] == "masked"

        # Submitting: the hub refuses a `submit` it was not allowed ...
        await s.send_input("submit", "form.stack")
        await s.agent.wait(lambda: [e for e in s.agent.of("error") if e.get("code") == "submit_not_allowed"],
                           "the hub's submit_not_allowed")
        # ... and the page refuses the other ways in: the submit button, Enter in a field.
        await s.send_input("click", "button[type=submit]")
        assert (await s.refused(4)) == {"t": "input_refused", "action": "click", "reason": "submit_not_allowed",
                                        "session": s.id, "tab": await s.tab()}
        await s.send_input("key", "#email", key="Enter")
        assert (await s.refused(5))["reason"] == "submit_not_allowed"
        await page.wait_for_timeout(500)
        assert posts == [] and page.url.endswith("/login")
        await page.screenshot(path=str(screenshot_dir / "control-refused.png"), animations="disabled")

        # A click that is not a submission works (the checkbox, through its label).
        await s.send_input("click", "label[for=remember]")
        await expect(page.locator("#remember")).to_be_checked()

        # Esc takes control back at once.
        await page.keyboard.press("Escape")
        await s.wire.wait(lambda: s.wire.sent_of("control")[-1] == {"t": "control", "granted": False}, "take back")
        await s.agent.wait(lambda: s.agent.of("control_state")[-1].get("reason") == "revoked", "revoked")
        await expect(page.locator(NOTICE)).to_be_hidden()
        await s.send_input("input", "#email", value="after@example.com")
        await s.agent.wait(lambda: [e for e in s.agent.of("error") if e.get("code") == "not_controlling"], "not controlling")
        # And if a frame got through anyway, the page itself is view-only again.
        s.inject({"t": "input", "action": "input", "node": await node_id(page, "#email"), "value": "injected@example.com"},
                 await s.tab())
        refused = await s.refused(6)
        assert refused["reason"] == "no_control"
        assert await page.locator("#email").input_value() == "sam@example.com"
        await watch.assert_clean()
    finally:
        await s.close()


async def test_control_with_submit_allowed_submits_and_link_clicks_navigate(page, watch, demo_service, console_login):
    s = await Session.start(page, demo_service, console_login, "/secure/")
    try:
        await s.agent.send({"t": "control_request", "session": s.id, "allow_submit": True})
        await expect(page.locator(PROMPT)).to_contain_text("They can also submit forms for you")
        await page.locator(f"{PROMPT} >> button.cq-y").click()
        await s.agent.wait(lambda: s.agent.of("control_state") and s.agent.of("control_state")[-1].get("allow_submit"),
                           "control with submit")
        await expect(page.locator(NOTICE)).to_contain_text("(forms too)")
        await s.send_input("input", "#name", value="Sam")
        await s.send_input("input", "#email", value="sam@example.com")
        await s.send_input("input", "#message", value="Where is my parcel?")
        await expect(page.locator("#message")).to_have_value("Where is my parcel?")
        await s.send_input("click", "button[type=submit]")
        await expect(page.locator(".alert")).to_contain_text("Thanks, Sam!")
        # The page load kept the session, and control (the hub restores it after welcome).
        await s.wire.wait(lambda: len(s.wire.sent_of("hello")) == 2, "the next page's hello")
        await expect(page.locator(NOTICE)).to_be_visible()

        # A link clicked by the agent navigates the visitor (the agent follows with the next snapshot).
        await s.send_input("click", "a[href='/login']")
        await page.wait_for_url(re.compile(r"/login$"))
        await s.agent.wait(lambda: [f for f in s.agent.of("tab") if f["state"]["url"].endswith("/login")], "the agent follows")
        await watch.assert_clean()
    finally:
        await s.close()


async def test_commands_goto_and_refused_urls(page, context, watch, demo_service, console_login):
    s = await Session.start(page, demo_service, console_login, "/")
    try:
        await s.take_control()
        tab = await s.tab()
        # goto a page of the site: the tab goes there, and the agent hears it worked.
        await s.agent.send({"t": "command", "session": s.id, "tab": tab, "kind": "goto",
                            "url": demo_service.proxied("/cart")})
        await page.wait_for_url(re.compile(r"/cart$"))
        result = await s.agent.wait(lambda: s.agent.of("command_result"), "command_result")
        assert result[0]["ok"] is True and result[0]["kind"] == "goto"

        # javascript: never reaches the page (the hub refuses it) ...
        await s.wire.wait(lambda: len(s.wire.sent_of("hello")) == 2, "the cart page's hello")
        await page.evaluate("() => { window.__xss = undefined; }")
        await s.agent.send({"t": "command", "session": s.id, "tab": tab, "kind": "goto", "url": "javascript:window.__xss=1"})
        await s.agent.wait(lambda: [e for e in s.agent.of("error") if e.get("re") == "command"], "the hub's refusal")
        # ... and if it did, the page would refuse it too.
        for kind, url in [("goto", "javascript:window.__xss=2"), ("open", "javascript:window.__xss=3"),
                          ("goto", "data:text/html,<script>alert(1)</script>"), ("goto", "http://u:p@example.com/")]:
            s.inject({"t": "command", "kind": kind, "url": url}, tab)
        refused = await s.wire.wait(lambda: len(s.wire.sent_of("command_result")) >= 5 and s.wire.sent_of("command_result")[1:],
                                    "the page's refusals")
        assert [(r["ok"], r.get("reason")) for r in refused] == [(False, "refused")] * 4, refused
        await page.wait_for_timeout(300)
        assert await page.evaluate("() => window.__xss") is None and page.url.endswith("/cart")

        # open: a new tab, without an opener.
        async with context.expect_page() as opened:
            await s.agent.send({"t": "command", "session": s.id, "tab": tab, "kind": "open",
                                "url": demo_service.proxied("/spa/")})
        popup = await opened.value
        await popup.wait_for_url(re.compile(r"/spa/$"))
        assert await popup.evaluate("() => window.opener") is None
        result = await s.agent.wait(lambda: [r for r in s.agent.of("command_result")
                                             if r["kind"] == "open" and r["url"].endswith("/spa/")], "open's result")
        assert result[0]["ok"] is True, result
        await popup.close()
        await watch.assert_clean()
    finally:
        await s.close()


async def test_control_types_into_rich_text_editors_as_plain_text(page, watch, demo_service, console_login):
    """contenteditable editors take the agent's text through the browser's own editing
    command (the editor's listeners see a normal edit), as text, never as markup; a masked
    editor is refused like a masked field."""
    s = await Session.start(page, demo_service, console_login, "/")
    try:
        await page.evaluate("""() => {
            const editor = document.createElement('div');
            editor.id = 'editor'; editor.contentEditable = 'true'; editor.textContent = 'old text';
            editor.addEventListener('input', (e) => { window.__edits = (window.__edits || 0) + 1; });
            const secret = document.createElement('div');
            secret.id = 'secret-editor'; secret.contentEditable = 'true'; secret.dataset.cobrowseMask = '';
            secret.textContent = 'private';
            document.querySelector('main, body').prepend(editor, secret);
        }""")
        await s.take_control(allow_submit=False)
        await s.send_input("input", "#editor", value="Hello <b>there</b>")
        await expect(page.locator("#editor")).to_have_text("Hello <b>there</b>")
        assert await page.locator("#editor b").count() == 0
        assert await page.evaluate("() => window.__edits") >= 1, "the editor heard an input event"
        await s.send_input("input", "#secret-editor", value="typed")
        assert (await s.refused(1))["reason"] == "masked"
        await expect(page.locator("#secret-editor")).to_have_text("private")
    finally:
        await s.close()
