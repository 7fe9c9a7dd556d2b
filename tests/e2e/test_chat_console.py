"""The agent's chat in the console, end to end.

Two real browsers: a visitor on the demo shop through the proxy, who chats
with the real widget (Get help -> Start a chat), and agents in the real
console (its own origin), who work only through the console's UI: the
incoming chats list (Accept), the conversation tabs, the composer ("/" for
canned replies, the Note switch, the file button), the Transcript menu.
What the visitor sees is read from the widget's shadow root (the .kl log);
what the agent sees from the console's conversation log (.chat-log .msg).

The service, logins and page helpers are test_cobrowse_live's (its module
fixture `live` runs again for this module: own ports, own data directory).

  test_chat_offer_accept_messages_canned_note_file_transcript
      the offer (name, preview) -> Accept -> messages both ways with typing and
      read receipts -> a canned reply through "/" -> a private note the visitor
      never receives (no frame, nothing on screen) -> a file both ways ->
      transcripts (TXT with the note, JSON, HTML) -> the visitor shares from
      the chat and the console opens the shared view beside the conversation
      (screenshot) -> reload: the conversation comes back -> End chat
  test_two_agents_race_for_one_offer
      both see the offer; Away hides it; the first Accept wins, the other's list drops it
  test_messages_written_offline_are_sent_once
      written while the console's socket is down (and across a reload): shown as
      sending, sent after the reconnect, received once, never shown twice
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.async_api import expect

from .conftest import TIMEOUT_MS, PageWatch
from .test_cobrowse_live import (  # noqa: F401  (live, contexts: fixtures)
    LAUNCHER,
    VISITOR_VIEWPORT,
    _clean,
    contexts,
    live,
    open_agent,
    side_by_side,
)

pytestmark = pytest.mark.e2e

ROOT = "#cobrowse-root"
VISITOR_LOG = f"{ROOT} >> .kl"
CHAT_LOG = ".chat-log:not([hidden])"


async def open_chat_visitor(contexts, live, path="/"):
    """A visitor page whose websocket frames (both ways) are recorded."""
    ctx = await contexts(VISITOR_VIEWPORT)
    page = await ctx.new_page()
    watch = PageWatch(page)
    watch.attach(page)
    frames: list[str] = []

    def on_socket(ws):
        ws.on("framereceived", lambda payload: frames.append(
            payload if isinstance(payload, str) else payload.decode("utf-8", "replace")))

    page.on("websocket", on_socket)
    await page.goto(live.proxied(path))
    await expect(page.locator(LAUNCHER)).to_be_visible()
    return page, watch, frames


async def start_chat(page, first_message: str) -> None:
    await page.locator(LAUNCHER).click()
    await page.get_by_role("button", name="Start a chat").click()
    box = page.get_by_role("textbox", name="Your message")
    await box.fill(first_message)
    await box.press("Enter")


async def visitor_says(page, text: str) -> None:
    box = page.get_by_role("textbox", name="Your message")
    await box.fill(text)
    await box.press("Enter")


async def agent_says(agent, text: str) -> None:
    box = agent.page.locator("#chat-input")
    await box.fill(text)
    await box.press("Enter")


async def fetch_text(page, url: str) -> tuple[int, str, str]:
    """GET url from the page (its cookies): status, content type, body."""
    return tuple(await page.evaluate(
        """async (url) => {
            const r = await fetch(url, { credentials: 'same-origin' });
            return [r.status, r.headers.get('content-type') || '', await r.text()];
        }""",
        url,
    ))


async def accept_offer(agent, text: str) -> None:
    offer = agent.page.locator(".offer", has_text=text)
    await expect(offer).to_be_visible()
    await offer.get_by_role("button", name=re.compile(r"^Accept")).click()


async def test_chat_offer_accept_messages_canned_note_file_transcript(contexts, live, screenshot_dir):
    agent = await open_agent(contexts, live, "anna")
    page = agent.page
    await expect(page.locator("#offers")).to_be_visible()
    await expect(page.locator("#availability")).to_have_attribute("aria-checked", "true")

    visitor, visitor_watch, visitor_frames = await open_chat_visitor(contexts, live, "/")
    await start_chat(visitor, "Hello, where is my order 10042?")

    # The offer (the visitor gave no name; the page they are on), a count, the page title's badge; Accept.
    offer = page.locator(".offer", has_text="Visitor")
    await expect(offer).to_be_visible()
    await expect(offer).to_contain_text(re.compile(r"waiting \d+ s"))
    await expect(page.locator("#offers-count")).to_have_text("1")
    await expect(page).to_have_title(re.compile(r"^\(1\) "))
    await accept_offer(agent, "Visitor")
    await expect(offer).to_have_count(0)
    await expect(page.locator(".ctab[aria-selected=true]")).to_be_visible()
    log = page.locator(CHAT_LOG)
    await expect(log.locator(".msg-visitor", has_text="where is my order 10042")).to_be_visible()
    # Nobody shares yet: the stage says so, with the hint.
    await expect(page.locator("#chat-stage")).to_be_visible()
    await expect(page.locator("#chat-stage-title")).to_have_text("Not sharing yet")
    await expect(page.locator("#chat-input")).to_be_focused()

    # Messages both ways, typing, status up to Read (the visitor's panel is open).
    await agent_says(agent, "Hi! Let me look that up for you.")
    await expect(visitor.locator(VISITOR_LOG)).to_contain_text("Let me look that up for you.")
    mine = log.locator(".msg.is-mine", has_text="Let me look that up")
    await expect(mine.locator(".msg-status[data-status=read]")).to_be_visible()
    await visitor.get_by_role("textbox", name="Your message").type("It was a kett", delay=30)
    await expect(page.locator("#chat-typing")).to_contain_text("is typing")
    await visitor.get_by_role("textbox", name="Your message").fill("It was a kettle, ordered on Monday.")
    await visitor.get_by_role("textbox", name="Your message").press("Enter")
    await expect(log.locator(".msg-visitor", has_text="ordered on Monday")).to_be_visible()
    await expect(page.locator("#chat-typing")).to_be_hidden()

    # A canned reply: made in the manager, inserted with "/" and Enter, editable, sent.
    await page.locator("#canned-open").click()
    await page.locator("#canned-add").click()
    await page.locator("#canned-name").fill("shipping")
    await page.locator("#canned-body").fill("Orders ship within 2 working days.")
    await page.locator("#canned-save").click()
    await expect(page.locator("#canned-list")).to_contain_text("/shipping")
    await page.locator("#canned-close").click()
    box = page.locator("#chat-input")
    await box.click()
    await box.type("/ship")
    option = page.locator("#chat-canned .canned-option", has_text="/shipping")
    await expect(option).to_have_attribute("aria-selected", "true")
    await box.press("Enter")
    await expect(box).to_have_value("Orders ship within 2 working days.")
    await box.press("End")
    await box.type(" Yours left yesterday.")
    await box.press("Enter")
    await expect(visitor.locator(VISITOR_LOG)).to_contain_text("Orders ship within 2 working days. Yours left yesterday.")

    # A private note: shown to agents as a note, never to the visitor.
    note = "VIP customer: offer free shipping next time"
    await page.locator("#chat-note").click()
    await expect(page.locator("#chat-note")).to_have_attribute("aria-pressed", "true")
    await agent_says(agent, note)
    note_el = log.locator(".msg-kind-note", has_text=note)
    await expect(note_el).to_be_visible()
    await expect(note_el).to_contain_text("Only agents see this")
    await expect(note_el.locator(".msg-status")).to_have_count(0)
    await page.locator("#chat-note").click()
    await agent_says(agent, "Anything else I can help with?")
    await expect(visitor.locator(VISITOR_LOG)).to_contain_text("Anything else I can help with?")
    assert note not in await visitor.locator(VISITOR_LOG).inner_text()
    assert not [f for f in visitor_frames if "VIP customer" in f], "the note reached the visitor's socket"

    # A file, from the agent to the visitor: a card with name, size and a download link.
    await page.locator("#chat-file").set_input_files(files=[
        {"name": "order-10042.txt", "mimeType": "text/plain", "buffer": b"Order 10042: 1 kettle, shipped.\n"}])
    card = log.locator(".msg-file", has_text="order-10042.txt")
    await expect(card.locator("a.file-name")).to_have_attribute("href", re.compile(r"^/api/chat/files/"))
    await expect(card).to_contain_text("32 B")
    await expect(visitor.locator(VISITOR_LOG)).to_contain_text("order-10042.txt")
    status, _, body = await fetch_text(page, await card.locator("a.file-name").get_attribute("href"))
    assert status == 200 and body == "Order 10042: 1 kettle, shipped.\n"

    # Transcripts: the agents' copy has the note; three formats.
    await page.locator("#chat-transcript").click()
    menu = page.locator("#chat-transcript-menu")
    await expect(menu).to_be_visible()
    links = {fmt: await menu.locator(f"[data-format={fmt}]").get_attribute("href") for fmt in ("txt", "json", "html")}
    await page.keyboard.press("Escape")
    await expect(menu).to_be_hidden()
    status, kind, txt = await fetch_text(page, links["txt"])
    assert status == 200 and kind.startswith("text/plain"), (status, kind)
    for text in ("where is my order 10042", "Let me look that up", "Orders ship within 2 working days", note,
                 "order-10042.txt"):
        assert text in txt, text
    status, kind, raw = await fetch_text(page, links["json"])
    assert status == 200 and "json" in kind
    assert note in json.dumps(json.loads(raw))
    status, kind, html = await fetch_text(page, links["html"])
    assert status == 200 and kind.startswith("text/html") and "<script" not in html.lower()

    # The visitor shares from the chat: the console opens their page beside the conversation
    # (while the agent is in the composer: the join leaves the focus there).
    await page.locator("#chat-input").click()
    await visitor.get_by_role("button", name="Share my page with the agent").click()
    await visitor.get_by_role("button", name="Share this page").click()
    await expect(page.locator("#chat-sharing")).to_be_visible()
    await expect(page.locator("#chat-stage")).to_be_hidden()
    await expect(agent.replay().locator("body")).to_be_visible()
    await expect(page.locator("#session")).to_be_visible()
    await expect(page.locator("#chat-input")).to_be_focused()  # the join did not take the focus away
    await page.wait_for_timeout(400)
    console_png = await page.screenshot(path=str(screenshot_dir / "chat-console-beside-shared-view.png"))
    visitor_png = await visitor.screenshot()
    await side_by_side(contexts, visitor_png, console_png, screenshot_dir / "chat-visitor-and-console.png")

    # A reload: the conversation is back, whole, and still linked to the shared view.
    await page.reload()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "online")
    log = page.locator(CHAT_LOG)
    await expect(log.locator(".msg-visitor", has_text="ordered on Monday")).to_be_visible()
    await expect(log.locator(".msg-kind-note", has_text=note)).to_be_visible()
    await expect(log.locator(".msg", has_text="Let me look that up")).to_have_count(1)
    await expect(agent.replay().locator("body")).to_be_visible()

    # End chat: both sides see it ended; the tab can then be closed.
    await page.locator("#chat-end").click()
    await page.locator("#chat-end-confirm").click()
    await expect(page.locator("#chat-status")).to_have_text("Ended")
    await expect(visitor.locator(f"{ROOT} >> .kd")).to_be_visible()
    # The page was shared for the chat: sharing stops with it, on both sides.
    await expect(visitor.locator(f"{ROOT} >> .bn")).to_be_hidden()
    await expect(page.locator("#ended-title")).to_have_text("The chat ended")
    assert any('"reason":"chat_ended"' in f for f in visitor_frames if '"t":"ended"' in f)
    await page.locator("#chat-close").click()
    await expect(page.locator(".ctab")).to_have_count(0)
    await expect(page.locator("#chat")).to_be_hidden()

    _clean(agent.watch)
    _clean(visitor_watch)


async def test_two_agents_race_for_one_offer(contexts, live):
    anna = await open_agent(contexts, live, "anna")
    ben = await open_agent(contexts, live, "ben")
    visitor, visitor_watch, _ = await open_chat_visitor(contexts, live, "/")
    await start_chat(visitor, "Can someone help me with a refund?")
    for agent in (anna, ben):
        await expect(agent.page.locator(".offer")).to_have_count(1)
    # Ben goes away and back: away silences the alerts, but he still sees who waits.
    await expect(ben.page).to_have_title(re.compile(r"^\(1\) "))
    await ben.page.locator("#availability").click()
    await expect(ben.page.locator("#availability")).to_have_attribute("aria-checked", "false")
    await expect(ben.page.locator("#offers-empty")).to_contain_text("You are away")
    await expect(ben.page.locator(".offer")).to_have_count(1)
    await expect(ben.page).not_to_have_title(re.compile(r"^\(1\) "))
    await ben.page.locator("#availability").click()
    await expect(ben.page.locator("#offers-empty")).to_be_hidden()
    await expect(ben.page).to_have_title(re.compile(r"^\(1\) "))

    await accept_offer(anna, "Visitor")
    await expect(anna.page.locator(CHAT_LOG).locator(".msg-visitor", has_text="refund")).to_be_visible()
    # Ben's list drops it (chat_taken), and nothing opened for him.
    await expect(ben.page.locator(".offer")).to_have_count(0, timeout=TIMEOUT_MS)
    await expect(ben.page.locator(".ctab")).to_have_count(0)
    await expect(visitor.locator(f"{ROOT} >> .ks")).to_contain_text("Anna")

    await anna.page.locator("#chat-end").click()
    await anna.page.locator("#chat-end-confirm").click()
    await expect(anna.page.locator("#chat-status")).to_have_text("Ended")
    for agent in (anna, ben):
        _clean(agent.watch)
    _clean(visitor_watch)


async def test_a_chat_handed_to_a_colleague_opens_in_their_console_at_once(contexts, live, screenshot_dir):
    anna = await open_agent(contexts, live, "anna")
    ben = await open_agent(contexts, live, "ben")
    visitor, visitor_watch, _ = await open_chat_visitor(contexts, live, "/")
    await start_chat(visitor, "My parcel never arrived")
    await accept_offer(anna, "Visitor")
    await expect(anna.page.locator(CHAT_LOG).locator(".msg-visitor", has_text="parcel")).to_be_visible()
    await expect(ben.page.locator(".ctab")).to_have_count(0)
    # The visitor shares their page for the chat: Anna sees it.
    await visitor.get_by_role("button", name="Share my page with the agent").click()
    await visitor.get_by_role("button", name="Share this page").click()
    await expect(anna.replay().locator("body")).to_be_visible()
    await expect(visitor.locator(f"{ROOT} >> .bn")).to_contain_text("Anna")

    await anna.page.locator("#chat-transfer").click()
    # (The list says who is there.)
    await anna.page.locator("#transfer-agent").select_option(label="Ben (supervisor) · available")
    await anna.page.locator("#transfer-submit").click()
    # Ben did nothing, reloaded nothing: the chat is in his console, with what was said, and he is told.
    await expect(ben.page.locator(".ctab")).to_have_count(1)
    await expect(ben.page.locator("#toast")).to_contain_text("handed to you")
    await expect(ben.page.locator(CHAT_LOG).locator(".msg-visitor", has_text="parcel")).to_be_visible()
    await expect(visitor.locator(f"{ROOT} >> .ks")).to_contain_text("Ben")
    # The page goes with the chat: Ben sees it, Anna no longer does, and the visitor's bar says so.
    await expect(ben.replay().locator("body")).to_be_visible()
    await expect(anna.page.locator("#ended-title")).to_have_text("The chat was handed on")
    await expect(visitor.locator(f"{ROOT} >> .bn")).to_contain_text("Ben")
    await expect(visitor.locator(f"{ROOT} >> .bn")).not_to_contain_text("Anna")
    await anna.page.screenshot(path=str(screenshot_dir / "chat-handed-on-anna.png"))
    await agent_says(ben, "Ben here, let me look")
    await expect(visitor.locator(VISITOR_LOG)).to_contain_text("Ben here, let me look")

    await ben.page.locator("#chat-end").click()
    await ben.page.locator("#chat-end-confirm").click()
    await expect(ben.page.locator("#chat-status")).to_have_text("Ended")
    for agent in (anna, ben):
        _clean(agent.watch)
    _clean(visitor_watch)


async def test_a_supervisor_sees_the_team_and_looks_in_on_a_chat(contexts, live, screenshot_dir):
    anna = await open_agent(contexts, live, "anna")
    ben = await open_agent(contexts, live, "ben")
    await expect(anna.page.locator("#chat-tools")).to_be_visible()
    await expect(anna.page.locator("#team-open")).to_be_hidden()  # (agents have no team view)
    visitor, visitor_watch, _ = await open_chat_visitor(contexts, live, "/")
    await start_chat(visitor, "Can I change my delivery address?")
    await accept_offer(anna, "Visitor")
    await expect(anna.page.locator(CHAT_LOG).locator(".msg-visitor", has_text="delivery address")).to_be_visible()

    await ben.page.locator("#team-open").click()
    dialog = ben.page.locator("#team-dialog")
    await expect(dialog).to_be_visible()
    anna_row = dialog.locator("#team-agents tr", has_text="Anna")
    await expect(anna_row).to_contain_text("Available")
    await expect(anna_row.locator(".team-num")).to_have_text("1")
    chat_row = dialog.locator("#team-chats tr", has_text="Anna")
    await expect(chat_row).to_contain_text("Active")
    # Anna goes away: it shows at the next refresh.
    await anna.page.locator("#availability").click()
    await expect(anna_row).to_contain_text("Away", timeout=TIMEOUT_MS)
    await ben.page.screenshot(path=str(screenshot_dir / "console-team-view.png"))
    await chat_row.get_by_role("button", name="Open the chat with Visitor").click()
    await expect(dialog).to_be_hidden()
    await expect(ben.page.locator(CHAT_LOG).locator(".msg-visitor", has_text="delivery address")).to_be_visible()
    await expect(ben.page.locator(".ctab")).to_have_count(1)
    await anna.page.locator("#availability").click()
    for agent in (anna, ben):
        _clean(agent.watch)
    _clean(visitor_watch)


async def scale_shown(page) -> int:
    """The mirrored page's scale, in percent, as the session bar shows it."""
    return int((await page.locator("#viewport-scale").inner_text()).rstrip("%"))


async def test_on_a_laptop_the_columns_fold_to_give_the_page_room(contexts, live, screenshot_dir):
    agent = await open_agent(contexts, live, "anna")
    page = agent.page
    await page.set_viewport_size({"width": 1280, "height": 800})
    await page.evaluate("() => localStorage.removeItem('cobrowse.console.layout')")
    await page.reload()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "online")
    # Nothing shared yet: the list is there.
    await expect(page.locator("#queue-title")).to_be_visible()
    await expect(page.locator("#queue-rail")).to_be_hidden()

    visitor, visitor_watch, _ = await open_chat_visitor(contexts, live, "/")
    await start_chat(visitor, "Which size should I pick?")
    await accept_offer(agent, "Visitor")
    await visitor.get_by_role("button", name="Share my page with the agent").click()
    await visitor.get_by_role("button", name="Share this page").click()
    await expect(agent.replay().locator("body")).to_be_visible()
    # The page is on screen in a laptop-sized window: the list folds to its rail, the page gets the room.
    await expect(page.locator("#queue-rail")).to_be_visible()
    await expect(page.locator("#queue-title")).to_be_hidden()
    await expect(page.locator("#queue-toggle")).to_have_attribute("aria-expanded", "false")
    assert (await page.locator("#queue-col").bounding_box())["width"] <= 60
    await expect(page.locator("#viewport-scale")).to_have_text(re.compile(r"^\d+%$"))
    with_details = await scale_shown(page)
    assert with_details >= 45, with_details  # 26-29% before the columns folded

    # A new chat while the list is folded: the rail counts it, and the rail's button unfolds.
    other, other_watch, _ = await open_chat_visitor(contexts, live, "/cart")
    await start_chat(other, "Do you ship to Belgium?")
    await expect(page.locator("#queue-rail-offers")).to_have_text("1")
    await expect(page.locator("#queue-rail-open")).to_have_attribute("aria-label", re.compile(r"1 chat offered"))

    # Details fold too, on the agent's say-so: the page grows again.
    await page.locator("#info-toggle").click()
    await expect(page.locator("#info")).to_be_hidden()
    await expect(page.locator("#info-toggle")).to_have_attribute("aria-expanded", "false")
    await page.wait_for_function("(n) => parseInt(document.querySelector('#viewport-scale').textContent) > n",
                                 arg=with_details, timeout=TIMEOUT_MS)
    await page.wait_for_timeout(300)
    await page.screenshot(path=str(screenshot_dir / "console-laptop-folded.png"))

    # Unfolding is a choice the console keeps: after a reload, with the page shown, the list stays.
    await page.locator("#queue-rail-open").click()
    await expect(page.locator(".offer", has_text="Do you ship")).to_be_visible()
    await expect(page.locator("#queue-rail")).to_be_hidden()
    await page.reload()
    await expect(agent.replay().locator("body")).to_be_visible()
    await expect(page.locator("#queue-title")).to_be_visible()
    await expect(page.locator("#queue-rail")).to_be_hidden()
    await expect(page.locator("#info")).to_be_hidden()  # and so do the folded details
    await page.locator("#info-toggle").click()
    await expect(page.locator("#control-request")).to_be_visible()
    for watch in (agent.watch, visitor_watch, other_watch):
        _clean(watch)


async def test_messages_written_offline_are_sent_once(contexts, live):
    agent = await open_agent(contexts, live, "anna")
    page = agent.page
    visitor, visitor_watch, visitor_frames = await open_chat_visitor(contexts, live, "/")
    await start_chat(visitor, "Is anyone there?")
    await accept_offer(agent, "Visitor")
    log = page.locator(CHAT_LOG)
    await expect(log.locator(".msg-visitor", has_text="Is anyone there?")).to_be_visible()

    # The socket goes down: a message waits in the outbox, shown as sending.
    await page.evaluate("() => window.__cobrowseConsole.socket.stop()")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "offline")
    await expect(page.locator("#chat-banner")).to_contain_text("Offline")
    await agent_says(agent, "Yes, one moment please.")
    pending = log.locator(".msg.is-mine", has_text="one moment please")
    await expect(pending).to_have_class(re.compile(r"\bis-sending\b"))
    await visitor_says(visitor, "Thanks!")
    # Back: the outbox goes out, the visitor's message comes in (chat_open after the last seq).
    await page.evaluate("() => window.__cobrowseConsole.socket.start()")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "online")
    await expect(pending.locator(".msg-status[data-status=read]")).to_be_visible()
    await expect(log.locator(".msg-visitor", has_text="Thanks!")).to_have_count(1)
    await expect(visitor.locator(VISITOR_LOG)).to_contain_text("Yes, one moment please.")

    # Down again, a message, a reload: the outbox was kept, it goes out once the console is back.
    await page.evaluate("() => window.__cobrowseConsole.socket.stop()")
    await agent_says(agent, "Found it: it ships today.")
    await expect(log.locator(".msg.is-sending", has_text="ships today")).to_be_visible()
    await page.reload()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "online")
    log = page.locator(CHAT_LOG)
    await expect(log.locator(".msg.is-mine", has_text="ships today").locator(".msg-status[data-status=read]")).to_be_visible()
    await expect(visitor.locator(VISITOR_LOG)).to_contain_text("Found it: it ships today.")
    for text in ("one moment please", "ships today", "Is anyone there?", "Thanks!"):
        await expect(log.locator(".msg", has_text=text)).to_have_count(1)
    received = [json.loads(f) for f in visitor_frames]
    sent_once = [f for f in received if f.get("t") == "chat_msg" and "ships today" in f.get("m", {}).get("text", "")]
    assert len(sent_once) == 1, sent_once
    seqs = await log.locator(".msg[data-seq]").evaluate_all("els => els.map((e) => Number(e.dataset.seq))")
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)), seqs

    await page.locator("#chat-end").click()
    await page.locator("#chat-end-confirm").click()
    await expect(page.locator("#chat-status")).to_have_text("Ended")
    _clean(agent.watch)
    _clean(visitor_watch)


async def test_a_message_left_while_everyone_is_away_shows_in_the_console_at_once(contexts, live):
    anna = await open_agent(contexts, live, "anna")
    await anna.page.locator("#availability").click()  # on a break: nobody is available
    await expect(anna.page.locator("#availability")).to_have_attribute("aria-checked", "false")
    count = anna.page.locator("#offline-count")
    before = int(await count.text_content() or 0) if await count.is_visible() else 0

    visitor, visitor_watch, _ = await open_chat_visitor(contexts, live, "/")
    await visitor.locator(LAUNCHER).click()
    start = visitor.locator(f"{ROOT} >> .kh button.go")
    await expect(start).to_have_text("Leave a message")
    await start.click()
    form = visitor.locator(f"{ROOT} >> form.kfm")
    await form.locator("#cobrowse-o-name").fill("Vera")
    await form.locator("#cobrowse-o-email").fill("vera@example.com")
    await form.locator("#cobrowse-o-text").fill("Please call me about order FW-1001.")
    await form.locator("button[type=submit]").click()
    await expect(visitor.locator(f"{ROOT} >> .kh h3")).to_have_text("Message sent")
    # Well within the console's minute of polling: the hub's nudge.
    await expect(count).to_be_visible(timeout=5000)
    await expect(count).to_have_text(str(before + 1), timeout=5000)
    await anna.page.locator("#offline-open").click()
    await expect(anna.page.locator("#offline-list")).to_contain_text("Vera")
    _clean(anna.watch)
    _clean(visitor_watch)
