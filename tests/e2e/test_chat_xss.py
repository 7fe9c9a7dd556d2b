"""An XSS corpus through chat: names, pre-chat fields, messages, notes, canned
replies and the site's welcome message. Nothing executes in either browser.

The visitor's side is attacked from a raw websocket client (it can send what no
widget would: any name, any field value, any text); the agent's side from the
console's own composer. Each page carries a trap: every payload, if it ran,
would set ``window.__xss`` (or open a dialog). Both pages must show the
payloads as plain text.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
import pytest_asyncio
from playwright.async_api import expect

from chat_clients import VisitorClient

from .conftest import LOOP_SCOPE
from .test_chat_console import CHAT_LOG, VISITOR_LOG, accept_offer, agent_says
from .test_cobrowse_live import (  # noqa: F401  (contexts: fixture)
    LAUNCHER,
    VISITOR_VIEWPORT,
    contexts,
    open_agent,
    running_live,
)

pytestmark = pytest.mark.e2e

# Each one would set window.__xss if the browser ran it.
CORPUS = [
    '<img src=x onerror="window.__xss=1">',
    "<script>window.__xss=1</script>",
    '<svg onload="window.__xss=1"></svg>',
    '"><iframe srcdoc="<script>parent.__xss=1</script>"></iframe>',
    "javascript:window.__xss=1",
    "[click me](javascript:window.__xss=1)",
    'https://example.com/"onmouseover="window.__xss=1"x="',
    "</textarea><script>window.__xss=1</script>",
    "<a href=javascript:window.__xss=1>link</a>",
    '<details open ontoggle="window.__xss=1">',
    "{{constructor.constructor('window.__xss=1')()}}",
    "\u202e<b onmouseover=window.__xss=1>spoof</b>",
]
WELCOME = ('<p>Welcome <b>friend</b> <img src=x onerror="window.__xss=1"><script>window.__xss=1</script>'
           '<a href="javascript:window.__xss=1">bad link</a> <a href="https://example.com/help">help</a></p>')
# A department's name is the site owner's words, shown to agents in place of its id.
DEPARTMENT_NAME = 'Billing <img src=x onerror="window.__xss=1">'
TRAP = "window.__xss = undefined; window.addEventListener('error', () => {});"


def _with_hostile_chat_settings(config):
    from cobrowse.config import ChatField, Department

    chat = dataclasses.replace(config.chat, prechat=True, welcome_message=WELCOME, fields=(
        ChatField(name="order", label="Order number"),
        ChatField(name="topic", label="Topic", type="select", options=("Orders", "<b>Other</b>")),
    ))
    return dataclasses.replace(config, chat=chat, departments=(Department(id="billing", name=DEPARTMENT_NAME),))


@pytest_asyncio.fixture(scope="module", loop_scope=LOOP_SCOPE)
async def xss_live():
    async with running_live(_with_hostile_chat_settings) as holder:
        yield holder


async def _armed(page) -> list[str]:
    dialogs: list[str] = []

    async def dismiss(dialog):
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", lambda dialog: asyncio.ensure_future(dismiss(dialog)))
    await page.add_init_script(TRAP)
    return dialogs


async def _nothing_ran(page, dialogs: list[str]) -> None:
    await page.wait_for_timeout(300)  # an onerror of a broken image fires after a tick
    assert await page.evaluate("() => window.__xss") is None, "a payload ran"
    assert dialogs == []


async def test_hostile_visitor_input_stays_text_in_the_console(contexts, xss_live):
    live = xss_live
    agent = await open_agent(contexts, live, "anna")
    dialogs = await _armed(agent.page)
    await agent.page.reload()
    await expect(agent.page.locator("#conn")).to_have_attribute("data-state", "online")

    visitor = VisitorClient(live.proxy_url.replace("http://", "ws://") + "/__cobrowse/ws", name=CORPUS[0])
    await visitor._open()
    visitor.reader = asyncio.ensure_future(visitor._read(visitor.ws))
    await visitor.write({"t": "chat_start", "key": "xss-start-key", "name": CORPUS[0], "email": "v@example.com",
                         "department": "billing", "fields": {"order": CORPUS[1], "topic": "Orders"}})
    await visitor.wait_for(lambda: visitor.token is not None, "chat_started")
    for payload in CORPUS:
        await visitor.send(payload)
    await visitor.wait_for(lambda: not visitor.outbox, "acks")

    # The offer names the department (not its id "billing"), as text.
    await expect(agent.page.locator(".offer .offer-dept")).to_have_text(DEPARTMENT_NAME)
    await accept_offer(agent, "onerror")  # the name, shown as text in the offer
    log = agent.page.locator(CHAT_LOG)
    for payload in CORPUS:
        # Exactly the characters sent (bidi overrides are cleaned away by the server).
        await expect(log).to_contain_text(payload.replace("\u202e", ""))
    # A private note with a payload renders as text too.
    await agent.page.locator("#chat-note").click()
    await expect(agent.page.locator("#chat-note")).to_have_attribute("aria-pressed", "true")
    await agent_says(agent, CORPUS[2] + " (note)")
    await expect(log).to_contain_text(CORPUS[2] + " (note)")
    await _nothing_ran(agent.page, dialogs)
    for selector in ("img[src='x']", "svg[onload]", "iframe[srcdoc]", "details[ontoggle]", "a[href^='javascript']",
                     "script:not([src])"):
        assert await agent.page.locator(f"{CHAT_LOG} {selector}").count() == 0, selector
    await expect(agent.page.locator("body")).to_contain_text(CORPUS[1])  # the pre-chat answer, as text
    await expect(agent.page.locator("#chat-sub .badge-role")).to_have_text(DEPARTMENT_NAME)
    await expect(agent.page.locator("#chat-stage-facts")).to_contain_text(DEPARTMENT_NAME)
    await visitor.close()


async def test_hostile_agent_input_and_welcome_stay_inert_for_the_visitor(contexts, xss_live):
    live = xss_live
    page = await (await contexts(VISITOR_VIEWPORT)).new_page()
    dialogs = await _armed(page)
    await page.goto(live.proxied("/"))
    await expect(page.locator(LAUNCHER)).to_be_visible()

    agent = await open_agent(contexts, live, "anna")
    agent_dialogs = await _armed(agent.page)
    await agent.page.reload()
    await expect(agent.page.locator("#conn")).to_have_attribute("data-state", "online")

    # The visitor fills the pre-chat form with a payload of their own.
    await page.locator(LAUNCHER).click()
    root = page.locator("#cobrowse-root")
    await root.get_by_role("button", name="Start a chat").click()
    await root.locator("#cobrowse-p-name").fill(CORPUS[3])
    await root.get_by_label("Order number").fill(CORPUS[4])
    await root.get_by_role("button", name="Start chat").click()
    box = page.get_by_role("textbox", name="Your message")
    await box.fill(CORPUS[5])
    await box.press("Enter")

    await accept_offer(agent, "iframe")
    visitor_log = page.locator(VISITOR_LOG)
    await expect(visitor_log).to_contain_text("Welcome friend")  # the formatting survived, sanitized
    for payload in CORPUS[6:]:
        await agent_says(agent, payload)
    for payload in CORPUS[6:]:
        await expect(visitor_log).to_contain_text(payload.replace("\u202e", ""))
    await _nothing_ran(page, dialogs)
    await _nothing_ran(agent.page, agent_dialogs)
    welcome_links = await page.evaluate("""() => {
        const root = document.querySelector('#cobrowse-root').shadowRoot || document.querySelector('#cobrowse-root');
        return Array.from(root.querySelectorAll('.kl a')).map((a) => a.getAttribute('href'));
    }""")
    assert "https://example.com/help" in welcome_links
    assert not [href for href in welcome_links if href and not href.startswith(("https:", "http:", "mailto:"))]
    shadow_has = await page.evaluate("""() => {
        const host = document.querySelector('#cobrowse-root');
        const root = host.shadowRoot || host;
        return root.querySelectorAll('.kl img, .kl script, .kl svg[onload], .kl iframe, .kl details').length;
    }""")
    assert shadow_has == 0
