"""The visitor's chat in the widget, in Chromium through the proxy on the demo shop.

A real conversation: the visitor's page (Playwright) on one side, an agent on
the other (an aiohttp client on the agent console's /ws, logged in as a real
account, speaking the chat frames of cobrowse/sync/protocol.py), the hub and the
chat service in between. What the page sends and receives is read off the wire
(page.on("websocket")), as in test_visitor_share.py.

Site options (pre-chat form, survey, welcome message) are changed on the
running chat for one test and put back after it.

Fixtures (browser, demo_service, context, page, watch, screenshot_dir): see conftest.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import secrets
import time
from contextlib import asynccontextmanager

import aiohttp
import pytest
from playwright.async_api import expect

from .test_visitor_share import Wire, start_sharing

pytestmark = pytest.mark.e2e

ROOT = "#cobrowse-root"
LAUNCHER = f"{ROOT} >> button.l"
PANEL = f"{ROOT} >> section.p"
START = f"{ROOT} >> .kh button.go"
INPUT = f"{ROOT} >> textarea.ki"
LOG = f"{ROOT} >> .kl"
STATUS = f"{ROOT} >> p.ks"
ERROR = f"{ROOT} >> .kv p.ke"
BADGE = f"{ROOT} >> button.l .kub"


# ---------------------------------------------------------------------------
# The chat service and an agent
# ---------------------------------------------------------------------------


def chat_runtime(demo_service):
    runtime = getattr(demo_service.service, "chat", None)
    if runtime is None or getattr(demo_service.service.hub, "chat", None) is None:
        pytest.skip("this service runs without chat")
    return runtime


@asynccontextmanager
async def site_options(demo_service, *, chat: dict | None = None, hub: dict | None = None):
    """Change the chat's options (config.chat, the hub's chat settings) for one test."""
    runtime = chat_runtime(demo_service)
    config, settings = runtime.config, runtime.hub_chat.settings
    if chat:
        runtime.config = dataclasses.replace(config, chat=dataclasses.replace(config.chat, **chat))
    if hub:
        runtime.hub_chat.settings = dataclasses.replace(settings, **hub)
    try:
        yield runtime
    finally:
        runtime.config, runtime.hub_chat.settings = config, settings


class ChatAgent:
    """An agent account on the console's websocket, taking chats."""

    def __init__(self, http: aiohttp.ClientSession, ws, name: str) -> None:
        self.http = http
        self.ws = ws
        self.name = name
        self.frames: list[dict] = []
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, demo_service, username: str = "anna", available: bool = True) -> "ChatAgent":
        from cobrowse.storage.accounts import ensure_demo_agent

        chat_runtime(demo_service)
        username, password = await ensure_demo_agent(demo_service.service.db, username)
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        response = await http.post(demo_service.console_url + "/api/login",
                                   json={"username": username, "password": password})
        assert response.status == 200, await response.text()
        ws = await http.ws_connect(demo_service.console_url + "/ws")
        agent = cls(http, ws, username.capitalize())
        await ws.send_json({"t": "agent_hello", "v": 1})
        await ws.send_json({"t": "chat_watch", "available": available})
        await agent.wait(lambda: agent.of("chat_offers"), "the list of offers")
        return agent

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.frames.append(json.loads(message.data))

    def of(self, kind: str, conversation: str | None = None) -> list[dict]:
        return [f for f in self.frames if f["t"] == kind and (conversation is None or f.get("conversation") == conversation)]

    def messages(self, conversation: str) -> list[dict]:
        """Every message of the conversation the agent got (history and chat_msg), by seq, once each."""
        seen: dict[int, dict] = {}
        for f in self.of("chat_history", conversation):
            seen.update({m["seq"]: m for m in f["messages"]})
        for f in self.of("chat_msg", conversation):
            seen[f["m"]["seq"]] = f["m"]
        return [seen[k] for k in sorted(seen)]

    async def wait(self, predicate, what: str, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            await asyncio.sleep(0.05)
        raise AssertionError(f"agent: timed out waiting for {what}; got {[f['t'] for f in self.frames][-20:]}")

    async def send(self, message: dict) -> None:
        await self.ws.send_json(message)

    async def accept_next(self) -> str:
        """Accept the first chat offered; returns its conversation id."""
        offers = await self.wait(lambda: [o for f in self.of("chat_offers") for o in f["offers"]], "an offer")
        conversation = offers[-1]["conversation"]
        await self.send({"t": "chat_accept", "conversation": conversation})
        await self.wait(lambda: self.of("chat_history", conversation), "the accepted chat's history")
        return conversation

    async def say(self, conversation: str, text: str) -> str:
        message_id = secrets.token_urlsafe(12)
        await self.send({"t": "chat_send", "conversation": conversation, "id": message_id, "text": text})
        await self.wait(lambda: [a for a in self.of("chat_ack") if a["id"] == message_id], f"the ack of {text!r}")
        return message_id

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        await self.http.close()


# ---------------------------------------------------------------------------
# The visitor's side
# ---------------------------------------------------------------------------


async def open_page(page, demo_service, path: str) -> None:
    response = await page.goto(demo_service.proxied(path))
    assert response is not None and response.ok, (path, response and response.status)
    await expect(page.locator(LAUNCHER)).to_be_visible()


async def start_chat(page) -> None:
    await page.locator(LAUNCHER).click()
    await expect(page.locator(START)).to_have_text("Start a chat")
    await page.locator(START).click()
    await expect(page.locator(INPUT)).to_be_focused()


async def send_text(page, text: str) -> None:
    await page.locator(INPUT).fill(text)
    await page.locator(INPUT).press("Enter")


def own(page, text: str):
    return page.locator(f"{ROOT} >> .km.me", has_text=text)


def theirs(page, text: str):
    return page.locator(f"{ROOT} >> .km.ag", has_text=text)


async def stored_chat(page):
    raw = await page.evaluate("() => localStorage.getItem('cobrowse:chat')")
    return json.loads(raw) if raw else None


# ---------------------------------------------------------------------------
# A conversation
# ---------------------------------------------------------------------------


async def test_a_conversation_with_an_agent_on_the_strict_csp_page(page, watch, demo_service, screenshot_dir):
    wire = Wire().attach(page)
    agent = await ChatAgent.connect(demo_service)
    try:
        await open_page(page, demo_service, "/secure/")  # nonce-based CSP
        await page.locator(LAUNCHER).click()
        await expect(page.locator(START)).to_be_visible()
        await page.wait_for_timeout(300)
        # Opening the panel is not asking for anything: no socket, no request, nothing stored.
        assert wire.sockets == []
        assert await page.evaluate("() => Object.keys(localStorage).concat(Object.keys(sessionStorage))"
                                   ".filter(k => k.startsWith('cobrowse:'))") == []

        await page.locator(START).click()
        await expect(page.locator(INPUT)).to_be_focused()
        await send_text(page, "Hello, I need help with my order")
        started = (await wire.wait(lambda: wire.received_of("chat_started"), "chat_started"))[0]
        start = wire.sent_of("chat_start")[0]
        assert start["key"] == started["key"] and start["url"] == demo_service.proxied("/secure/")
        # The message goes out only once the conversation exists, with a client id, and shows as sent on its ack.
        sent = (await wire.wait(lambda: wire.sent_of("chat_send"), "chat_send"))[0]
        assert re.fullmatch(r"[A-Za-z0-9_-]{8,64}", sent["id"]) and sent["text"] == "Hello, I need help with my order"
        kinds = [json.loads(f)["t"] for f in wire.sent]
        assert kinds[:2] == ["hello", "chat_start"] and kinds.index("chat_send") > 1
        await wire.wait(lambda: [a for a in wire.received_of("chat_ack") if a["id"] == sent["id"]], "chat_ack")
        await expect(own(page, "Hello, I need help")).to_contain_text("\u2713 Sent")
        await expect(page.locator(STATUS)).to_contain_text("Waiting for an agent")
        stored = await stored_chat(page)
        assert stored["conversation"] == started["conversation"] and stored["token"] == started["token"]

        # The agent takes it: the visitor sees who, and the agent's words, links made safe.
        conversation = await agent.accept_next()
        assert conversation == started["conversation"]
        await expect(page.locator(STATUS)).to_contain_text("You are chatting with Anna")
        await expect(page.locator(f"{ROOT} >> .km.ev", has_text="Anna joined the chat")).to_be_visible()
        await agent.send({"t": "chat_typing", "conversation": conversation, "on": True})
        await expect(page.locator(f"{ROOT} >> p.ky")).to_have_text("Anna is typing\u2026")
        await agent.say(conversation, "Hi! Look at www.example.org/help, or write to mailto:help@example.org. "
                                      "<b>not bold</b> javascript:alert(1)")
        reply = theirs(page, "Hi! Look at")
        await expect(reply).to_contain_text("Anna \u00b7 ")
        await expect(page.locator(f"{ROOT} >> p.ky")).to_be_hidden()
        links = reply.locator("a")
        await expect(links).to_have_count(2)
        assert await links.nth(0).get_attribute("href") == "https://www.example.org/help"
        assert await links.nth(0).get_attribute("target") == "_blank"
        assert set((await links.nth(0).get_attribute("rel")).split()) >= {"noopener", "noreferrer"}
        assert await links.nth(1).get_attribute("href") == "mailto:help@example.org"
        assert await reply.locator("b").count() == 0  # text, never markup
        await expect(reply).to_contain_text("<b>not bold</b> javascript:alert(1)")

        # Seen: the panel is open and the page visible, so the visitor read it.
        reply_seq = agent.messages(conversation)[-1]["seq"]
        await wire.wait(lambda: [s for s in wire.sent_of("chat_seen") if s["read"] >= reply_seq], "chat_seen read")
        await agent.wait(lambda: [s for s in agent.of("chat_seen", conversation)
                                  if s["by"] == "visitor" and s["read"] >= reply_seq], "the visitor's chat_seen")
        # The agent read the visitor's message.
        await agent.send({"t": "chat_seen", "conversation": conversation, "delivered": reply_seq, "read": reply_seq})
        await expect(own(page, "Hello, I need help")).to_contain_text("Read")

        # Shift+Enter is a new line, Enter sends; an emoji from the picker.
        await page.locator(INPUT).fill("Line one")
        await page.locator(INPUT).press("Shift+Enter")
        await page.locator(INPUT).press_sequentially("line two ")
        await page.locator(f"{ROOT} >> button[aria-label='Insert an emoji']").click()
        await page.locator(f"{ROOT} >> .kj button", has_text="\U0001f44d").click()
        await expect(page.locator(INPUT)).to_be_focused()
        await page.locator(INPUT).press("Enter")
        await agent.wait(lambda: [m for m in agent.messages(conversation) if m["text"] == "Line one\nline two \U0001f44d"],
                         "the two-line message with its emoji")
        typing = [f["on"] for f in wire.sent_of("chat_typing")]
        assert typing and typing[0] is True and typing[-1] is False

        await page.mouse.click(200, 700)
        await page.locator(INPUT).focus()
        await page.screenshot(path=str(screenshot_dir / "chat-conversation.png"), animations="disabled")
        # One socket for everything.
        assert len(wire.sockets) == 1
        await watch.assert_clean()
    finally:
        await agent.close()


async def test_page_loads_keep_the_conversation_and_count_new_messages(page, watch, demo_service, screenshot_dir):
    wire = Wire().attach(page)
    agent = await ChatAgent.connect(demo_service)
    try:
        await open_page(page, demo_service, "/")
        await start_chat(page)
        await send_text(page, "First question")
        conversation = await agent.accept_next()
        await agent.say(conversation, "First answer")
        await expect(theirs(page, "First answer")).to_be_visible()
        # The agent has read the question: the visitor's message says so...
        question = next(m for m in agent.messages(conversation) if m["text"] == "First question")["seq"]
        await agent.send({"t": "chat_seen", "conversation": conversation, "delivered": question, "read": question})
        mine = page.locator(f"{ROOT} >> .km", has_text="First question").locator(".kst")
        await expect(mine).to_contain_text("Read")
        await page.keyboard.press("Escape")

        # A new page: the loader reopens the chat by itself (panel closed) and asks for all of it.
        await page.locator("a[href='/login']").first.click()
        await page.wait_for_url(re.compile(r"/login$"))
        resume = (await wire.wait(lambda: wire.sent_of("chat_resume"), "chat_resume"))[0]
        assert resume["after"] == 0 and resume["token"] == (await stored_chat(page))["token"]
        await wire.wait(lambda: wire.received_of("chat_history")[1:], "the history on the new page")
        await expect(page.locator(PANEL)).to_be_hidden()
        await expect(page.locator(BADGE)).to_be_hidden()  # (everything there was read already)

        # A message while the panel is closed: a count on the launcher, said to screen readers.
        await agent.say(conversation, "Are you still there?")
        await expect(page.locator(BADGE)).to_have_text("1")
        await expect(page.locator(f"{ROOT} >> #cobrowse-unread")).to_have_text("1 new message from Anna")
        assert await page.locator(LAUNCHER).get_attribute("aria-describedby") == "cobrowse-unread"
        await page.screenshot(path=str(screenshot_dir / "chat-unread-badge.png"), animations="disabled")

        await page.locator(LAUNCHER).click()
        await expect(page.locator(BADGE)).to_be_hidden()
        log = page.locator(LOG)
        await expect(log).to_contain_text("First question")
        await expect(log).to_contain_text("Are you still there?")
        await expect(mine).to_contain_text("Read")  # ... and still does on the new page
        # Merged by seq, each message once.
        for text in ("First question", "First answer", "Are you still there?"):
            await expect(page.locator(f"{ROOT} >> .km", has_text=text)).to_have_count(1)
        await expect(page.locator(INPUT)).to_be_focused()
        last = agent.messages(conversation)[-1]["seq"]
        await wire.wait(lambda: [s for s in wire.sent_of("chat_seen") if s["read"] >= last], "read after opening")

        # Left with the panel open, the next page opens it again: the conversation goes on in view.
        resumes = len(wire.sent_of("chat_resume"))
        await page.locator("a[href='/cart']").first.click()
        await page.wait_for_url(re.compile(r"/cart$"))
        await wire.wait(lambda: wire.sent_of("chat_resume")[resumes:], "chat_resume on the next page")
        await expect(page.locator(PANEL)).to_be_visible()
        await expect(page.locator(f"{ROOT} >> .km", has_text="Are you still there?")).to_be_visible()
        await expect(page.locator(LAUNCHER)).to_have_attribute("aria-expanded", "true")
        await watch.assert_clean()
    finally:
        await agent.close()


async def test_unacknowledged_messages_are_sent_again_after_a_drop_and_a_page_load(page, watch, demo_service):
    """chat_send frames are held back on the way to the hub (page.route_web_socket):
    the message waits in the outbox, survives a page load, and goes out once."""
    hold_back = {"on": False}
    sent_by_page: list[dict] = []

    async def route(ws):
        server = ws.connect_to_server()

        def to_server(message):
            frame = json.loads(message) if isinstance(message, str) else {}
            sent_by_page.append(frame)
            if hold_back["on"] and frame.get("t") == "chat_send":
                return
            server.send(message)

        ws.on_message(to_server)
        server.on_message(lambda message: ws.send(message))

    await page.route_web_socket(re.compile(r"/__cobrowse/ws$"), route)
    agent = await ChatAgent.connect(demo_service)
    try:
        await open_page(page, demo_service, "/")
        await start_chat(page)
        await send_text(page, "Hello")
        conversation = await agent.accept_next()
        await expect(own(page, "Hello")).to_contain_text("Sent")

        hold_back["on"] = True
        await send_text(page, "Lost on the way")
        await page.wait_for_timeout(500)
        await expect(own(page, "Lost on the way")).to_contain_text("Sending\u2026")
        outbox = json.loads(await page.evaluate("() => sessionStorage.getItem('cobrowse:outbox')"))
        assert outbox["c"] == conversation and [m["text"] for m in outbox["m"]] == ["Lost on the way"]
        first_id = outbox["m"][0]["id"]

        hold_back["on"] = False
        await page.reload()
        await expect(page.locator(LAUNCHER)).to_be_visible()
        await agent.wait(lambda: [m for m in agent.messages(conversation) if m["text"] == "Lost on the way"],
                         "the held-back message, after the page load")
        await page.locator(LAUNCHER).click()
        await expect(own(page, "Lost on the way")).to_contain_text("Sent")
        await expect(own(page, "Lost on the way")).to_have_count(1)
        stored = [m for m in agent.messages(conversation) if m["text"] == "Lost on the way"]
        assert len(stored) == 1 and stored[0]["id"] == first_id
        assert [f.get("id") for f in sent_by_page if f.get("t") == "chat_send" and f["text"] == "Lost on the way"]
        assert await page.evaluate("() => sessionStorage.getItem('cobrowse:outbox')") is None
        await watch.assert_clean()
    finally:
        await agent.close()


async def test_resent_after_a_dropped_connection(page, watch, demo_service):
    wire = Wire().attach(page)
    agent = await ChatAgent.connect(demo_service)
    hub = demo_service.service.hub
    try:
        await open_page(page, demo_service, "/")
        await start_chat(page)
        await send_text(page, "Before the drop")
        conversation = await agent.accept_next()
        await expect(own(page, "Before the drop")).to_contain_text("Sent")
        await expect(page.locator(f"{ROOT} >> .km.ev", has_text="Anna joined the chat")).to_be_visible()
        for connection in list(hub._connections):
            if connection.peer.startswith("visitor"):
                await connection.ws.close(code=1011, message=b"test drop")
        await send_text(page, "During the drop")
        await expect(page.locator(STATUS)).to_contain_text("Reconnecting")
        await wire.wait(lambda: len(wire.sent_of("hello")) == 2, "a reconnect")
        resume = await wire.wait(lambda: wire.sent_of("chat_resume"), "chat_resume after the reconnect")
        assert resume[-1]["after"] >= 2
        await expect(own(page, "During the drop")).to_contain_text("Sent")
        await expect(page.locator(STATUS)).to_contain_text("You are chatting with Anna")
        assert len([m for m in agent.messages(conversation) if m["text"] == "During the drop"]) == 1
        await watch.assert_clean()
    finally:
        await agent.close()


# ---------------------------------------------------------------------------
# Forms: pre-chat, leave a message
# ---------------------------------------------------------------------------


async def test_prechat_form_checks_answers_and_the_welcome_is_formatted(page, watch, demo_service, screenshot_dir):
    from chat.text import rich_text, rich_tree

    from cobrowse.config import ChatField

    welcome = ('<p>Hello from <b>Shop</b>! See <a href="https://shop.example/faq">the FAQ</a>'
               '<script>alert(1)</script> <a href="javascript:alert(1)">no</a></p>')
    fields = (ChatField(name="order", label="Order number", required=True),
              ChatField(name="topic", label="Topic", type="select", options=("Billing", "Delivery")),
              ChatField(name="details", label="Details", type="textarea"))
    wire = Wire().attach(page)
    async with site_options(demo_service, chat={"prechat": True, "fields": fields},
                            hub={"welcome_text": rich_text(welcome), "welcome_rich": rich_tree(welcome)}) as runtime:
        known, runtime.service._fields = runtime.service._fields, {f.name: f for f in fields}
        agent = await ChatAgent.connect(demo_service)
        try:
            await open_page(page, demo_service, "/")
            await page.locator(LAUNCHER).click()
            await page.locator(START).click()
            form = page.locator(f"{ROOT} >> form.kfm")
            await expect(form.locator("#cobrowse-p-name")).to_be_focused()
            await form.locator("#cobrowse-p-email").fill("not an address")
            await form.locator("button[type=submit]").click()
            # Each problem under its field, tied to it; focus on the first.
            name = form.locator("#cobrowse-p-name")
            await expect(name).to_be_focused()
            assert await name.get_attribute("aria-invalid") == "true"
            await expect(form.locator("#" + await name.get_attribute("aria-describedby"))).to_have_text(
                "Please fill in \u201cYour name\u201d.")
            await expect(form.locator("#cobrowse-p-email-e")).to_have_text("Enter an email address like name@example.com.")
            await expect(form.locator("#cobrowse-p-f-order-e")).to_be_visible()
            assert wire.sockets == []  # nothing sent yet
            await page.screenshot(path=str(screenshot_dir / "chat-prechat-errors.png"), animations="disabled")

            await name.fill("Sam Taylor")
            await form.locator("#cobrowse-p-email").fill("sam@example.com")
            await form.locator("#cobrowse-p-f-order").fill("A-1042")
            await form.locator("#cobrowse-p-f-topic").select_option("Delivery")
            await form.locator("button[type=submit]").click()
            start = (await wire.wait(lambda: wire.sent_of("chat_start"), "chat_start"))[0]
            assert start["name"] == "Sam Taylor" and start["email"] == "sam@example.com"
            assert start["fields"] == {"order": "A-1042", "topic": "Delivery"}
            await expect(page.locator(STATUS)).to_contain_text("Waiting for an agent")

            conversation = await agent.accept_next()
            state = [s for s in agent.of("chat_state", conversation) if s.get("visitor")]
            assert state and state[-1]["visitor"] == "Sam Taylor" and state[-1]["fields"]["order"] == "A-1042"
            system = page.locator(f"{ROOT} >> .km.sy")
            await expect(system).to_contain_text("Hello from Shop! See the FAQ")
            await expect(system.locator("b")).to_have_text("Shop")
            link = system.locator("a")
            await expect(link).to_have_count(1)
            assert await link.get_attribute("href") == "https://shop.example/faq"
            assert await system.locator("script").count() == 0
            await page.screenshot(path=str(screenshot_dir / "chat-welcome.png"), animations="disabled")
            await watch.assert_clean()
        finally:
            runtime.service._fields = known
            await agent.close()


async def test_leave_a_message_when_nobody_is_available(page, watch, demo_service, screenshot_dir):
    chat_runtime(demo_service)
    wire = Wire().attach(page)
    await open_page(page, demo_service, "/secure/")
    await page.locator(LAUNCHER).click()
    # Said as the panel opens, not after a click on "Start a chat".
    await expect(page.locator(START)).to_have_text("Leave a message")
    await expect(page.locator(f"{ROOT} >> .kh .lead")).to_contain_text("No one is available to chat right now")
    # A name typed for sharing the page is not asked for again.
    await page.locator(f"{ROOT} >> #cobrowse-name").fill("Ada Typed")
    await page.locator(START).click()
    form = page.locator(f"{ROOT} >> form.kfm")
    await expect(form.locator("h3")).to_have_text("Leave a message")
    await expect(form.locator("#cobrowse-o-name")).to_have_value("Ada Typed")
    await form.locator("#cobrowse-o-name").fill("")
    await form.locator("button[type=submit]").click()
    await expect(form.locator("#cobrowse-o-name")).to_be_focused()
    await expect(form.locator("#cobrowse-o-text-e")).to_have_text("Please fill in \u201cYour message\u201d.")
    await form.locator("#cobrowse-o-name").fill("Ada")
    await form.locator("#cobrowse-o-email").fill("ada@example.com")
    await form.locator("#cobrowse-o-text").fill("Please call me back about my order.")
    await page.screenshot(path=str(screenshot_dir / "chat-leave-a-message.png"), animations="disabled")
    await form.locator("button[type=submit]").click()
    await expect(page.locator(f"{ROOT} >> .kh h3")).to_have_text("Message sent")
    left = wire.sent_of("leave_message")[0]
    assert left["name"] == "Ada" and left["text"] == "Please call me back about my order."
    assert wire.received_of("offline_stored")[0]["key"] == left["key"]
    await wire.wait(lambda: wire.sockets[-1].is_closed(), "the socket to close (nothing else needs it)")
    assert await stored_chat(page) is None
    await watch.assert_clean()


async def test_a_visitor_waiting_when_everyone_goes_away_may_leave_a_message_instead(page, watch, demo_service,
                                                                                   screenshot_dir):
    agent = await ChatAgent.connect(demo_service, "anna")
    try:
        wire = Wire().attach(page)
        await open_page(page, demo_service, "/")
        await start_chat(page)
        await send_text(page, "Is the brass lamp in stock?")
        await expect(own(page, "brass lamp")).to_be_visible()
        await expect(page.locator(STATUS)).to_contain_text("Waiting for an agent")
        instead = page.locator(f"{ROOT} >> .kv > button.kn")
        await expect(instead).to_be_hidden()
        # The last agent taking chats goes away: the visitor is told, and offered a way out.
        await agent.send({"t": "chat_watch", "available": False})
        await expect(page.locator(STATUS)).to_contain_text("No one is available right now")
        await expect(instead).to_have_text("Leave a message instead")
        await page.screenshot(path=str(screenshot_dir / "chat-nobody-available-while-waiting.png"), animations="disabled")
        # Back again: the offer goes; away again: it comes back.
        await agent.send({"t": "chat_watch", "available": True})
        await expect(page.locator(STATUS)).to_contain_text("Waiting for an agent")
        await expect(instead).to_be_hidden()
        await agent.send({"t": "chat_watch", "available": False})
        await instead.click()
        form = page.locator(f"{ROOT} >> form.kfm")
        await expect(form.locator("#cobrowse-o-text")).to_have_value("Is the brass lamp in stock?")
        await form.locator("#cobrowse-o-name").fill("Ada")
        await form.locator("#cobrowse-o-email").fill("ada@example.com")
        await form.locator("button[type=submit]").click()
        await expect(page.locator(f"{ROOT} >> .kh h3")).to_have_text("Message sent")
        conversation = wire.received_of("chat_started")[0]["conversation"]
        assert [f["status"] for f in wire.received_of("chat_state") if f["conversation"] == conversation][-1] == "ended"
        await wire.wait(lambda: wire.sockets[-1].is_closed(), "the socket to close (nothing else needs it)")
        assert await stored_chat(page) is None
        service = chat_runtime(demo_service).service
        stored, _ = await service.history(conversation, 0, notes=True)
        assert stored[-1].text == "The visitor left a message instead of waiting."
        await agent.wait(lambda: agent.of("offline_left"), "the nudge about the message left")
        await watch.assert_clean()
    finally:
        await agent.close()


# ---------------------------------------------------------------------------
# Files, transcript, the end and the survey
# ---------------------------------------------------------------------------


async def test_files_transcript_end_and_survey(page, watch, demo_service, screenshot_dir, tmp_path):
    wire = Wire().attach(page)
    uploads: list = []
    page.on("request", lambda r: "/chat/files" in r.url and r.method == "POST" and uploads.append(r))
    async with site_options(demo_service, hub={"survey": True}):
        agent = await ChatAgent.connect(demo_service)
        try:
            await open_page(page, demo_service, "/")
            await start_chat(page)
            await send_text(page, "I have a receipt")
            conversation = await agent.accept_next()

            # A type the site does not take: said before anything is uploaded.
            bad = tmp_path / "tool.exe"
            bad.write_bytes(b"MZ" + b"\0" * 64)
            await page.locator(f"{ROOT} >> .kp input[type=file]").set_input_files(str(bad))
            await expect(page.locator(ERROR)).to_contain_text("Files of this type cannot be sent")
            assert uploads == []

            receipt = tmp_path / "receipt.txt"
            receipt.write_text("Order A-1042, 2 items\n")
            await page.locator(f"{ROOT} >> .kp input[type=file]").set_input_files(str(receipt))
            file_row = own(page, "receipt.txt")
            await expect(file_row).to_contain_text("22 B")
            await expect(file_row).to_contain_text("Sent")
            await expect(page.locator(ERROR)).to_be_hidden()
            request = uploads[0]
            headers = await request.all_headers()
            assert headers["x-cobrowse-file-name"] == "receipt.txt" and headers["x-cobrowse-chat"]
            assert re.fullmatch(r"[A-Za-z0-9_-]{8,64}", headers["x-cobrowse-message-id"])
            assert "token" not in request.url and headers["x-cobrowse-chat"] not in request.url
            files = await agent.wait(lambda: [m for m in agent.messages(conversation) if m.get("kind") == "file"],
                                     "the file message")
            assert files[0]["file"]["name"] == "receipt.txt" and files[0]["file"]["size"] == 22

            async with page.expect_download() as download_info:
                await file_row.locator("button.kf").click()
            download = await download_info.value
            assert download.suggested_filename == "receipt.txt"
            assert (await download.path()).read_text() == "Order A-1042, 2 items\n"

            async with page.expect_download() as download_info:
                await page.locator(f"{ROOT} >> button[aria-label='Download the transcript']").click()
            transcript = (await (await download_info.value).path()).read_text()
            assert "I have a receipt" in transcript and "receipt.txt" in transcript
            # In the visitor's own clock (the browser's zone, sent with the chat's start).
            assert "All times are Europe/Amsterdam time." in transcript, transcript
            assert re.search(r"Started: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d CES?T", transcript), transcript

            # The end: confirm, then the survey, then a new chat.
            share_offer = page.locator(f"{ROOT} >> button.shx")
            await expect(share_offer).to_be_visible()  # (in a conversation)
            await page.locator(f"{ROOT} >> .ktl button.kn", has_text="End chat").click()
            await page.locator(f"{ROOT} >> .kc button.kend").click()
            assert wire.sent_of("chat_end") == [{"t": "chat_end"}]
            await expect(page.locator(f"{ROOT} >> .kd h3")).to_have_text("This chat has ended")
            await expect(page.locator(f"{ROOT} >> .kd h3")).to_be_focused()
            await expect(page.locator(INPUT)).to_be_hidden()
            await expect(share_offer).to_be_hidden()  # nobody left to show the page to
            assert await stored_chat(page) is None
            survey = page.locator(f"{ROOT} >> form.ksv")
            await survey.locator("button[type=submit]").click()
            await expect(survey.locator("p.ke")).to_have_text("Choose a rating from 1 to 5.")
            await survey.locator("label.krt", has_text="4").click()
            await survey.locator("textarea").fill("Quick and kind.")
            await page.screenshot(path=str(screenshot_dir / "chat-survey.png"), animations="disabled")
            await survey.locator("button[type=submit]").click()
            await expect(page.locator(f"{ROOT} >> .kd")).to_contain_text("Thank you for your feedback.")
            assert wire.sent_of("chat_survey") == [{"t": "chat_survey", "rating": 4, "comment": "Quick and kind."}]
            await wire.wait(lambda: wire.sockets[-1].is_closed(), "the socket to close")

            await page.locator(f"{ROOT} >> .kd button.go", has_text="Start a new chat").click()
            await expect(page.locator(START)).to_be_focused()
            await watch.assert_clean()
        finally:
            await agent.close()


# ---------------------------------------------------------------------------
# Sharing from the chat
# ---------------------------------------------------------------------------


async def test_share_and_stop_from_the_chat_on_one_socket(page, watch, demo_service, screenshot_dir):
    wire = Wire().attach(page)
    recorder: list[str] = []
    page.on("request", lambda r: "/static/recorder.js" in r.url and recorder.append(r.url))
    agent = await ChatAgent.connect(demo_service)
    try:
        await open_page(page, demo_service, "/")
        await start_chat(page)
        await send_text(page, "Can you see my cart?")
        conversation = await agent.accept_next()
        await page.wait_for_timeout(300)
        assert recorder == [] and not wire.sent_of("rr")  # chatting is not sharing

        toggle = page.locator(f"{ROOT} >> button.shx")
        await expect(toggle).to_have_text("Share my page with the agent")
        await toggle.click()
        assert await toggle.get_attribute("aria-expanded") == "true"
        share = page.locator(f"{ROOT} >> .sec.share")
        await expect(share).to_contain_text("passwords, card numbers and the fields this site marks as private")
        await page.screenshot(path=str(screenshot_dir / "chat-share-consent.png"), animations="disabled")
        await share.locator("button.btn.pri").click()
        await expect(share.locator("p.code")).to_have_text(re.compile(r"^\d{3} \d{3}$"))
        await wire.wait(lambda: wire.sent_of("rr"), "recorded events")
        assert recorder and len(wire.sockets) == 1  # the chat's socket carries the sharing too
        state = await agent.wait(lambda: [s for s in agent.of("chat_state", conversation) if s.get("session")],
                                 "the session linked to the conversation")
        assert state[-1]["session"] == wire.received_of("shared")[0]["session"]
        await expect(page.locator(INPUT)).to_be_visible()  # still in the chat
        await page.screenshot(path=str(screenshot_dir / "chat-sharing.png"), animations="disabled")

        await share.locator("button.btn.stop").click()
        await wire.wait(lambda: wire.sent_of("stop"), "stop")
        await expect(toggle).to_be_visible()
        await send_text(page, "Thanks, stopped")
        await agent.wait(lambda: [m for m in agent.messages(conversation) if m["text"] == "Thanks, stopped"],
                         "a message after sharing stopped")
        assert len(wire.sockets) == 1 and not wire.sockets[0].is_closed()
        await watch.assert_clean()
    finally:
        await agent.close()


async def test_try_again_in_a_tab_whose_chat_holds_the_socket_resumes_on_a_new_socket(context, demo_service,
                                                                                        monkeypatch):
    """A tab the hub turned away as one too many, where the visitor then
    chats: the chat holds the socket. The resume token travels in a hello, so
    "Try again" must open a new socket to send it; the chat goes on over it."""
    from cobrowse.sync import session as session_module

    monkeypatch.setattr(session_module, "MAX_TABS", 1)
    agent = await ChatAgent.connect(demo_service)
    try:
        first, second = await context.new_page(), await context.new_page()
        wire1, wire2 = Wire().attach(first), Wire().attach(second)
        await open_page(first, demo_service, "/")
        shared = await start_sharing(first, wire1)
        await open_page(second, demo_service, "/login")
        await wire2.wait(lambda: [f for f in wire2.received_of("error") if f["code"] == "too_many_tabs"],
                         "too_many_tabs")

        await start_chat(second)
        await send_text(second, "Hello from the second tab")
        await wire2.wait_sent("Hello from the second tab")
        held = wire2.sockets[-1]
        await second.wait_for_timeout(300)
        assert not held.is_closed()  # the chat holds it

        monkeypatch.setattr(session_module, "MAX_TABS", 2)
        await second.locator(f"{ROOT} >> button.shx").click()  # "Share my page with the agent"
        again = second.locator(f"{ROOT} >> .sec.share button.btn.pri")
        await expect(again).to_have_text("Try again")
        await again.click()
        welcome = await wire2.wait(lambda: [f for f in wire2.received_of("welcome") if f.get("session")],
                                   "the second tab's welcome into the session")
        assert welcome[0]["session"] == shared["session"]
        assert wire2.sockets[-1] is not held and held.is_closed()
        assert wire2.sent_of("hello")[-1]["resume"] == shared["resume"]
        assert not wire2.sent_of("share")
        await wire2.wait(lambda: wire2.sent_of("rr"), "the second tab's events")

        await send_text(second, "Still here")
        # This tab's conversation (the shared demo service may hold others from earlier tests).
        conversation = wire2.received_of("chat_started")[0]["conversation"]
        await agent.wait(lambda: [o for f in agent.of("chat_offers") for o in f["offers"]
                                  if o["conversation"] == conversation], "the offer of this conversation")
        await agent.send({"t": "chat_accept", "conversation": conversation})
        await agent.wait(lambda: [m for m in agent.messages(conversation) if m["text"] == "Still here"],
                         "the message sent after the new socket")
        texts = [m["text"] for m in agent.messages(conversation)]
        assert texts.count("Hello from the second tab") == 1, texts
    finally:
        await agent.close()


async def test_mobile_width(browser, demo_service, screenshot_dir):
    context = await browser.new_context(viewport={"width": 390, "height": 760}, locale="en-GB", is_mobile=True)
    page = await context.new_page()
    agent = await ChatAgent.connect(demo_service)
    try:
        await open_page(page, demo_service, "/")
        await start_chat(page)
        await send_text(page, "Hi from my phone")
        conversation = await agent.accept_next()
        await agent.say(conversation, "Hello! How can I help?")
        await expect(theirs(page, "Hello! How can I help?")).to_be_visible()
        box = await page.locator(PANEL).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["y"] >= 0
        await page.screenshot(path=str(screenshot_dir / "chat-mobile.png"), animations="disabled")
        # Closed, the widget takes no clicks: the page under the panel's place gets them.
        await page.keyboard.press("Escape")
        await expect(page.locator(PANEL)).to_be_hidden()
        hit = await page.evaluate("() => document.elementFromPoint(195, 380).closest('#cobrowse-root') === null")
        assert hit
    finally:
        await agent.close()
        await context.close()
