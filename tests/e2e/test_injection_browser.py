"""The injected loader in a real browser: demo shop pages loaded THROUGH the proxy
show the "Get help" button; the same pages loaded directly do not.

Fixtures (browser, demo_service, page, watch, screenshot_dir): see conftest.py.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from playwright.async_api import expect

from cobrowse.demo.catalog import PRODUCTS
from cobrowse.demo.shop import STATE

pytestmark = pytest.mark.e2e

PREFIX = "/__cobrowse/"
LAUNCHER = "#cobrowse-root >> button.l"
PANEL = "#cobrowse-root >> section.p"
OUR_TAG = re.compile(r"<script[^>]*\bsrc=\"?/__cobrowse/loader\.js", re.I)
PAGES = ["/", f"/product/{PRODUCTS[0].id}", "/cart", "/login", "/checkout", "/spa/", "/gzip/", "/secure/"]


async def open_through_proxy(page, demo_service, path: str):
    """Load `path` through the proxy; return the navigation's response once the button shows."""
    response = await page.goto(demo_service.proxied(path))
    assert response is not None and response.ok, (path, response and response.status)
    assert OUR_TAG.search(await response.text()), f"{path}: no loader tag in the page the browser got"
    await expect(page.locator(LAUNCHER)).to_be_visible()
    return response


async def assert_one_launcher(page) -> None:
    await expect(page.locator("#cobrowse-root")).to_have_count(1)
    await expect(page.locator(LAUNCHER)).to_have_count(1)
    launcher = page.locator(LAUNCHER)
    await expect(launcher).to_be_visible()
    await expect(launcher).to_have_attribute("aria-label", "Get help")
    await expect(launcher).to_have_text("Get help")


# ---------------------------------------------------------------------------
# The button on every kind of page
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
async def test_get_help_button_on_proxied_page(page, watch, demo_service, path):
    await open_through_proxy(page, demo_service, path)
    await assert_one_launcher(page)
    # The loader ran once, in this document, from our prefix (added by our inline tag
    # once the page had loaded, as an absolute URL on the page's own origin).
    assert await page.evaluate("() => window.__cobrowseLoaded === true")
    loader = page.locator(f'script[src$="{PREFIX}loader.js"]')
    await expect(loader).to_have_count(1)
    assert await loader.evaluate("(s) => new URL(s.src).origin == location.origin")
    assert await page.locator(f'script[data-src="{PREFIX}loader.js"]').count() == 1  # the inline tag
    await watch.assert_clean()


async def test_spa_keeps_one_button_across_pushstate_navigation(page, watch, demo_service):
    await open_through_proxy(page, demo_service, "/spa/")
    await expect(page.locator("#spa-view .article-card").first).to_be_visible()
    await page.evaluate("() => { window.__sameDocument = 'yes'; }")

    # Client-side navigation: the SPA intercepts the click and calls pushState.
    await page.locator("#spa-view a.article-card").first.click()
    await expect(page).to_have_url(re.compile(r"/spa/article/[a-z0-9-]+$"))
    await expect(page.locator("#spa-view article.article h2")).to_be_visible()
    assert await page.evaluate("() => window.__sameDocument") == "yes", "that was a full page load"
    await assert_one_launcher(page)

    # A view that fetches JSON through the proxy, then back (popstate).
    await page.locator('a[data-spa-tab="products"]').click()
    await expect(page).to_have_url(re.compile(r"/spa/products$"))
    await expect(page.locator("#finder-list .finder-item")).to_have_count(len(PRODUCTS))
    await page.go_back()
    await expect(page).to_have_url(re.compile(r"/spa/article/"))
    assert await page.evaluate("() => window.__sameDocument") == "yes"
    await assert_one_launcher(page)
    await watch.assert_clean()


async def test_gzip_page_is_decoded_and_gets_the_button(page, watch, demo_service):
    response = await open_through_proxy(page, demo_service, "/gzip/")
    headers = await response.all_headers()
    # The shop compressed it (it says so in the page); the proxy decoded it to
    # inject, re-encoded it (proxy.recompress, on by default), and the browser
    # decoded what it got.
    expected = "gzip" if demo_service.service.config.proxy.recompress else None
    assert headers.get("content-encoding") == expected, headers
    body = await response.text()
    assert body.lstrip().lower().startswith("<!doctype html>")
    assert "This page was served gzip-compressed" in body
    await expect(page.locator('[data-served-encoding="gzip"]')).to_be_visible()
    await expect(page.locator("h1")).to_have_text("Shipping & returns")
    await expect(page.locator("table.data-table tbody tr")).to_have_count(5)
    await assert_one_launcher(page)
    await watch.assert_clean()


async def test_strict_csp_page_runs_our_script_and_its_own_without_violations(page, watch, demo_service):
    response = await open_through_proxy(page, demo_service, "/secure/")
    csp = (await response.all_headers()).get("content-security-policy", "")
    assert "'strict-dynamic'" in csp and "'nonce-" in csp, csp
    await expect(page.locator("#script-status")).to_have_text("Page script ran")
    await assert_one_launcher(page)

    # The widget bundle is loaded on the first click, with the loader's nonce.
    async with page.expect_response(lambda r: f"{PREFIX}static/widget.js" in r.url) as info:
        await page.locator(LAUNCHER).click()
    assert (await info.value).ok
    await expect(page.locator(PANEL)).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(page.locator(PANEL)).to_be_hidden()

    assert await watch.csp_violations() == []
    assert watch.csp_console == []
    assert watch.console_errors == []
    assert watch.page_errors == []


async def test_pages_after_form_posts_and_redirects_get_the_button(page, watch, demo_service):
    # POST /cart/add -> 303 -> /cart?added=...
    item = PRODUCTS[2]
    await open_through_proxy(page, demo_service, f"/product/{item.id}")
    await page.locator("form.buy-form button[type=submit]").click()
    await expect(page).to_have_url(re.compile(rf"/cart\?added={item.id}$"))
    await expect(page.locator("main")).to_contain_text(item.name)
    await assert_one_launcher(page)

    # POST /secure/ answers 200 with a fresh nonce and the same strict CSP.
    await open_through_proxy(page, demo_service, "/secure/")
    await page.locator("#name").fill("Ada")
    await page.locator("#email").fill("ada@example.com")
    await page.locator("#message").fill("Where is my order?")
    async with page.expect_navigation():
        await page.locator("form.contact-form button[type=submit]").click()
    await expect(page.locator("main")).to_contain_text("Thanks, Ada!")
    await expect(page.locator("#script-status")).to_have_text("Page script ran")
    await assert_one_launcher(page)
    await watch.assert_clean()


async def test_absolute_redirect_keeps_the_visitor_on_the_proxy(page, watch, demo_service):
    # The shop answers /redirect-me with 302 Location: http://<its Host>/cart.
    response = await page.goto(demo_service.proxied("/redirect-me"))
    assert response is not None and response.ok
    assert page.url == demo_service.proxied("/cart")
    await assert_one_launcher(page)
    await watch.assert_clean()


async def test_csp_watch_does_see_a_violation(page, watch, demo_service):
    """The harness itself: a CSP violation on /secure/ is recorded both ways.

    (Scripts added by page.evaluate() are trusted under 'strict-dynamic', so the
    violation here is an image from another origin: img-src is 'self'.)
    """
    await open_through_proxy(page, demo_service, "/secure/")
    async with page.expect_console_message(lambda m: "Content Security Policy" in m.text):
        await page.evaluate(
            "(url) => { const i = document.createElement('img'); i.src = url; document.body.append(i); }",
            demo_service.direct("/static/img/nope.png"),
        )
    await page.wait_for_function("() => window.__cspViolations.length > 0")
    violations = await watch.csp_violations()
    assert violations[0]["effective"] == "img-src", violations
    assert watch.csp_console and watch.console_errors


# ---------------------------------------------------------------------------
# What is NOT injected
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/gzip/", "/secure/"])
async def test_shop_loaded_directly_has_no_button(page, watch, demo_service, path):
    response = await page.goto(demo_service.direct(path))
    assert response is not None and response.ok
    body = await response.text()
    assert PREFIX not in body
    await expect(page.locator("main h1").first).to_be_visible()
    # No tag, so nothing can ever mount: check the page is fully loaded and clean.
    await page.wait_for_load_state("load")
    assert await page.evaluate("() => window.__cobrowseLoaded") is None
    assert await page.locator(f'script[src*="{PREFIX}"]').count() == 0
    assert await page.locator("#cobrowse-root").count() == 0
    # ...and the shop does not serve our files.
    missing = await page.request.get(demo_service.direct(f"{PREFIX}loader.js"))
    assert missing.status == 404
    await watch.assert_clean()


async def test_fetch_responses_are_not_injected(page, watch, demo_service):
    await open_through_proxy(page, demo_service, "/")
    for url in ("/api/fragment", f"/api/fragment?product={PRODUCTS[0].id}"):
        result = await page.evaluate(
            """async (url) => {
                const r = await fetch(url, { headers: { Accept: 'text/html' } });
                return { status: r.status, type: r.headers.get('content-type'), text: await r.text() };
            }""",
            url,
        )
        assert result["status"] == 200, result
        assert result["type"].startswith("text/html"), result
        assert "data-fragment=" in result["text"], result
        assert PREFIX not in result["text"] and "<script" not in result["text"].lower(), result["text"]
    # The catalog's own fetch()ed fragment, as the shop's script inserted it.
    slot = page.locator("[data-fragment-src][data-fragment-loaded]")
    await expect(slot).to_have_count(1)
    await expect(slot.locator('[data-fragment="journal"]')).to_be_visible()
    assert await slot.locator("script").count() == 0
    await assert_one_launcher(page)
    await watch.assert_clean()


# ---------------------------------------------------------------------------
# The widget and the site's own websocket
# ---------------------------------------------------------------------------


async def test_button_opens_the_panel_and_esc_closes_it(page, watch, demo_service, screenshot_dir):
    await open_through_proxy(page, demo_service, "/")
    launcher = page.locator(LAUNCHER)
    panel = page.locator(PANEL)
    await expect(page.locator("img").first).to_be_visible()
    await page.screenshot(path=str(screenshot_dir / "catalog-with-button.png"))

    await launcher.click()
    await expect(panel).to_be_visible()
    await expect(panel.locator("h2")).to_have_text("Get help")
    await expect(panel).to_contain_text("Chat with our support team")
    await expect(panel).to_contain_text("nothing is shared until you agree")
    await expect(launcher).to_have_attribute("aria-expanded", "true")
    await page.screenshot(path=str(screenshot_dir / "widget-panel-open.png"))

    await page.keyboard.press("Escape")
    await expect(panel).to_be_hidden()
    await expect(launcher).to_have_attribute("aria-expanded", "false")
    await expect(launcher).to_be_focused()

    # Open again and close with the close button.
    await launcher.click()
    await expect(panel).to_be_visible()
    await page.locator("#cobrowse-root >> button.x").click()
    await expect(panel).to_be_hidden()
    await watch.assert_clean()


async def test_live_websocket_works_through_the_proxy(page, watch, demo_service):
    frames: list[dict] = []
    hello = asyncio.Event()
    sockets = []

    def on_frame(payload) -> None:
        try:
            message = json.loads(payload)
        except (TypeError, ValueError):
            return
        frames.append(message)
        if message.get("type") == "hello":
            hello.set()

    def on_websocket(ws) -> None:
        sockets.append(ws.url)
        ws.on("framereceived", on_frame)

    page.on("websocket", on_websocket)
    await open_through_proxy(page, demo_service, "/")
    await asyncio.wait_for(hello.wait(), timeout=10)
    live_url = demo_service.proxied("/live").replace("http://", "ws://")
    assert sockets and all(url == live_url for url in sockets), sockets
    await expect(page.locator("[data-live-dot]")).to_have_class(re.compile(r"\bis-live\b"))

    # Somebody buys something: the shop pushes a stock event to its subscribers
    # (the ticker is slowed to an hour in the fixture, so do it by hand).
    item = PRODUCTS[1]
    message = {"type": "stock", "event": "sold", "id": item.id, "name": item.name,
               "image": item.image_url, "stock": 3}
    subscribers = [ws for ws in demo_service.shop[STATE].subscribers if not ws.closed]
    assert subscribers, "the page's websocket is not subscribed in the shop"
    await asyncio.gather(*(ws.send_json(message) for ws in subscribers), return_exceptions=True)

    feed = page.locator("[data-live-feed] li")
    await expect(feed.first).to_contain_text(f"Someone just bought the {item.name}")
    await expect(page.locator(f'[data-stock-for="{item.id}"]').first).to_have_text("Only 3 left")
    assert any(f.get("type") == "stock" and f.get("id") == item.id for f in frames)
    await watch.assert_clean()


# ---------------------------------------------------------------------------
# A phone, and a page wider than its screen
# ---------------------------------------------------------------------------

# Content wider than the screen (a wide table, say) makes a phone's layout
# viewport wider than what it shows: a box fixed to its corner is off screen.
WIDE_CONTENT = """
document.addEventListener('DOMContentLoaded', () => {
  const wide = document.createElement('div');
  wide.id = 'too-wide';
  wide.style.cssText = 'width:720px;height:40px;background:#fde68a';
  document.body.prepend(wide);
});
"""
ON_SCREEN = """(el) => { const r = el.getBoundingClientRect(), v = visualViewport;
  return r.left >= v.offsetLeft && r.top >= v.offsetTop
    && r.right <= v.offsetLeft + v.width && r.bottom <= v.offsetTop + v.height; }"""


async def test_button_and_panel_stay_on_a_phone_screen_when_the_page_is_wider(browser, demo_service,
                                                                             screenshot_dir):
    ctx = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                    device_scale_factor=2)
    try:
        await ctx.add_init_script(WIDE_CONTENT)
        page = await ctx.new_page()
        await open_through_proxy(page, demo_service, "/")
        assert await page.evaluate("() => innerWidth") > 390  # the layout viewport did grow
        launcher = page.locator(LAUNCHER)
        assert await launcher.evaluate(ON_SCREEN)
        await launcher.tap()
        panel = page.locator(PANEL)
        await expect(panel).to_be_visible()
        await page.wait_for_function(ON_SCREEN, arg=await panel.element_handle())
        await page.screenshot(path=str(screenshot_dir / "phone-wide-page-panel.png"))
        await page.keyboard.press("Escape")
        await expect(panel).to_be_hidden()
        # Content that widens the page later: the button is back in view once the visitor scrolls.
        await page.evaluate("() => { document.getElementById('too-wide').style.width = '1100px'; }")
        await page.mouse.wheel(0, 300)
        await page.wait_for_function(ON_SCREEN, arg=await launcher.element_handle())
    finally:
        await ctx.close()
