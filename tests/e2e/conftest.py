"""Real-browser tests: headless Debian Chromium driven by Playwright's async API.

Everything here runs on ONE event loop shared by the whole tests/e2e package
(pytest-asyncio, loop_scope="package"): the demo shop, the cobrowse service in
front of it and the Playwright connection. Tests can therefore reach into the
shop's state directly (e.g. push a websocket message to its subscribers).

Fixtures
  browser        Chromium, launched once for the package (FAILS with a hint to
                 run `make install-test` when /usr/bin/chromium is missing;
                 COBROWSE_SKIP_E2E=1 skips every test in tests/e2e instead).
  demo_service   the demo shop on a free port and the cobrowse Service (proxy)
                 in front of it, every listener on a free port: a DemoService
                 with .proxy_url, .shop_url, .console_url and .shop (the
                 shop's aiohttp app).
  context/page   a fresh browser context (own cookies) and page per test, with
                 10 s timeouts; `watch` records what the page reports.
  watch          a PageWatch: console messages, uncaught errors, CSP
                 violations (`securitypolicyviolation` events, recorded by an
                 init script into window.__cspViolations, plus console
                 messages that mention "Content Security Policy").
  screenshot_dir $COBROWSE_SCREENSHOTS, else a pytest tmp dir.

Every test collected under tests/e2e gets the `e2e` marker.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

E2E_DIR = Path(__file__).resolve().parent
ROOT = E2E_DIR.parents[1]
CHROMIUM = os.environ.get("COBROWSE_CHROMIUM") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 10_000
LOOP_SCOPE = "package"
VIEWPORT = {"width": 1280, "height": 800}


def _skip_requested() -> bool:
    return os.environ.get("COBROWSE_SKIP_E2E", "").strip().lower() in ("1", "true", "yes", "on")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests/e2e tests `e2e`, run them on the package loop, honour COBROWSE_SKIP_E2E."""
    skip = pytest.mark.skip(reason="COBROWSE_SKIP_E2E=1 is set") if _skip_requested() else None
    loop_marker = pytest.mark.asyncio(loop_scope=LOOP_SCOPE)
    for item in items:
        if E2E_DIR not in Path(item.path).resolve().parents:
            continue
        item.add_marker(pytest.mark.e2e)
        if pytest_asyncio.is_async_test(item):
            item.add_marker(loop_marker, append=False)
        if skip is not None:
            item.add_marker(skip)


# ---------------------------------------------------------------------------
# The browser
# ---------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="package", loop_scope=LOOP_SCOPE)
async def browser():
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: the browser tests need Debian's chromium. "
            "Run `make install-test` (it runs scripts/install-test-deps.sh), "
            "or set COBROWSE_SKIP_E2E=1 to skip the browser tests.",
            pytrace=False,
        )
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError:
        pytest.fail("Playwright is not installed: run `make install-test`", pytrace=False)

    expect.set_options(timeout=TIMEOUT_MS)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield browser
        finally:
            await browser.close()


# ---------------------------------------------------------------------------
# The demo shop behind the proxy
# ---------------------------------------------------------------------------


@dataclass
class DemoService:
    proxy_url: str  # http://127.0.0.1:<port>, the shop through cobrowse
    shop_url: str  # http://127.0.0.1:<port>, the shop directly
    shop: web.Application  # the shop's app (its state: app[cobrowse.demo.shop.STATE])
    service: object  # the running cobrowse.server.Service
    console_url: str | None = None  # the agent console's own listener, if the service has one

    def proxied(self, path: str = "/") -> str:
        return self.proxy_url + path

    def direct(self, path: str = "/") -> str:
        return self.shop_url + path


@pytest_asyncio.fixture(scope="package", loop_scope=LOOP_SCOPE)
async def demo_service() -> AsyncIterator[DemoService]:
    """The demo shop and the cobrowse service in front of it, both on free ports.

    The shop is started here rather than through Service(demo_shop_listen=...):
    the proxy's upstream is part of the config it is built from, so with port 0
    the shop's port has to be known first, and this way the stock ticker's
    interval can be set (an hour: pages stay stable, nothing moves by itself).
    """
    from cobrowse.config import Config, load_config
    from cobrowse.demo import create_shop_app
    from cobrowse.server import Service

    if not (ROOT / "cobrowse" / "static_dist" / "loader.js").is_file():
        pytest.fail("cobrowse/static_dist/loader.js is missing: run `make install` (it builds the bundle)",
                    pytrace=False)

    shop = create_shop_app(live_interval=3600.0)
    shop_runner = web.AppRunner(shop, access_log=None)
    await shop_runner.setup()
    service = None
    data_dir = tempfile.mkdtemp(prefix="cobrowse-e2e-")
    try:
        await web.TCPSite(shop_runner, "127.0.0.1", 0).start()
        shop_port = shop_runner.addresses[0][1]
        shop_url = f"http://127.0.0.1:{shop_port}"
        overrides = {
            "upstream": shop_url,
            "server.data_dir": data_dir,
            "server.log_level": "warning",
        }
        # Every listener (the proxy's, the agent console's, any added later) on a free port.
        defaults = Config()
        for section in dataclasses.fields(Config):
            if hasattr(getattr(defaults, section.name), "listen"):
                overrides[f"{section.name}.listen"] = "127.0.0.1:0"
        config = load_config(env={}, overrides=overrides)  # env={}: no COBROWSE_* from outside
        service = Service(config)
        await service.start()
        console_port = getattr(service, "console_port", None)
        yield DemoService(
            proxy_url=f"http://127.0.0.1:{service.port}",
            shop_url=shop_url,
            shop=shop,
            service=service,
            console_url=f"http://127.0.0.1:{console_port}" if console_port else None,
        )
    finally:
        if service is not None:
            await service.stop()
        await shop_runner.cleanup()
        shutil.rmtree(data_dir, ignore_errors=True)


# ---------------------------------------------------------------------------
# Pages and what they report
# ---------------------------------------------------------------------------

# Runs before any of the page's own scripts, in every document of the context
# (init scripts are not subject to the page's CSP).
CSP_RECORDER = """
(() => {
  if (window.__cspViolations) return;
  const seen = [];
  Object.defineProperty(window, '__cspViolations', { value: seen });
  document.addEventListener('securitypolicyviolation', (e) => {
    seen.push({
      directive: e.violatedDirective, effective: e.effectiveDirective, blocked: e.blockedURI,
      source: e.sourceFile, line: e.lineNumber, sample: e.sample, disposition: e.disposition,
    });
  }, true);
})();
"""


@dataclass
class PageWatch:
    """What a page reported: console messages, uncaught errors, CSP violations."""

    page: object
    console: list[tuple[str, str, str]] = field(default_factory=list)  # (type, text, url)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    def attach(self, page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        page.on("requestfailed", lambda req: self.failed_requests.append(f"{req.method} {req.url}: {req.failure}"))

    def _on_console(self, msg) -> None:
        location = msg.location or {}
        self.console.append((msg.type, msg.text, location.get("url", "")))

    @property
    def console_errors(self) -> list[str]:
        return [f"{text} ({url})" if url else text for kind, text, url in self.console if kind == "error"]

    @property
    def csp_console(self) -> list[str]:
        return [text for _, text, _ in self.console if "content security policy" in text.lower()]

    async def csp_violations(self, page=None) -> list[dict]:
        """Violations recorded in the current document (window.__cspViolations)."""
        return await (page or self.page).evaluate("() => Array.from(window.__cspViolations || [])")

    async def assert_clean(self, page=None) -> None:
        """No CSP violation (event or console), no console error, no uncaught error."""
        violations = await self.csp_violations(page)
        problems = {
            "CSP violations": violations,
            "CSP console messages": self.csp_console,
            "console errors": self.console_errors,
            "uncaught errors": self.page_errors,
        }
        assert not any(problems.values()), {k: v for k, v in problems.items() if v}


@pytest_asyncio.fixture(loop_scope=LOOP_SCOPE)
async def context(browser):
    ctx = await browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="Europe/Amsterdam")
    ctx.set_default_timeout(TIMEOUT_MS)
    ctx.set_default_navigation_timeout(TIMEOUT_MS)
    await ctx.add_init_script(CSP_RECORDER)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest_asyncio.fixture(loop_scope=LOOP_SCOPE)
async def page(context):
    return await context.new_page()


@pytest.fixture
def watch(page) -> PageWatch:
    w = PageWatch(page)
    w.attach(page)
    return w


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("COBROWSE_SCREENSHOTS", "").strip()
    path = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
