"""Escalation to screen sharing and voice calls, end to end, in real Chromium.

A visitor shares the demo shop with the real widget; Anna, in the real
console, asks to see their screen. The visitor's browser shares it over WebRTC
(signalled through the hub) and the agent's <video> plays it beside the
mirrored view. Chromium runs with fake media (see shared notes:
--use-fake-ui-for-media-stream grants the picker and the microphone,
--use-fake-device-for-media-stream gives a 1280x720 test pattern for the
screen and a beep for the microphone; "=deny" refuses them). Both pages are in
their own contexts of one browser, on loopback: no STUN or TURN (the default,
empty ice_servers).

The service, logins and page helpers are test_cobrowse_live's (its module
fixture `live` runs again for this module: own ports, own data directory);
the browsers are this module's own, launched with the media flags.

  test_screen_share_reaches_the_agent_and_stops_on_both_sides
        prompt in plain words -> Share my screen -> the agent's video gets frames
        (videoWidth, requestVideoFrameCallback, currentTime) beside the mirrored
        view; "you are sharing" bar; stop from the visitor, then from the agent;
        the timeline (cobrowse_events) records request, start and stop
  test_denied_permission_is_said_on_both_sides      the browser refuses (=deny)
  test_unsupported_browser_is_said_on_both_sides    no getDisplayMedia (init script)
  test_voice_call_mute_and_hang_up                  both directions of audio, mute, hang up
  test_a_call_joins_a_screen_share_on_the_same_connection   renegotiation: video and audio on one
                                                  connection; hang up keeps the screen going
  test_in_a_chat_the_video_is_beside_it_and_the_transcript_has_the_share
        chat -> share the page from the chat -> share the screen: the video in the chat
        column, the plain-words lines in both chats, the transcript (skipped while the
        service runs without chat)
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
import pytest_asyncio
from playwright.async_api import expect

from .conftest import CHROMIUM, CHROMIUM_ARGS, LOOP_SCOPE, TIMEOUT_MS
from .test_cobrowse_live import (  # noqa: F401  (live: fixture)
    AGENT_VIEWPORT,
    VISITOR_VIEWPORT,
    Agent,
    _clean,
    _context,
    join_from_queue,
    live,
    open_agent,
    open_visitor,
    side_by_side,
    start_sharing,
)

pytestmark = pytest.mark.e2e

ROOT = "#cobrowse-root"
PROMPT = f"{ROOT} >> .sx-q"
BAR = f"{ROOT} >> .sx-bar"
NOTICE = f"{ROOT} >> .sx-note"
CARD = ".screen-card"
VIDEO = ".screen-video"
FAKE_MEDIA = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
DENY_MEDIA = ["--use-fake-ui-for-media-stream=deny", "--use-fake-device-for-media-stream"]
NO_DISPLAY_MEDIA = """
(() => {
  // A browser without screen capture (older mobile browsers, some embedded views).
  try { delete MediaDevices.prototype.getDisplayMedia; } catch (e) {}
})();
"""

# In the console page: resolves once the agent's <video> has shown `frames` new frames, with what it saw.
VIDEO_FRAMES = """async ([selector, frames]) => {
  const video = document.querySelector(selector);
  if (!video || !video.srcObject) return { error: 'no stream on the video' };
  const start = video.currentTime;
  let seen = 0;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('only ' + seen + ' frames')), 8000);
    const next = () => video.requestVideoFrameCallback(() => {
      if (++seen >= frames) { clearTimeout(timer); resolve(); } else next();
    });
    next();
  });
  return { frames: seen, width: video.videoWidth, height: video.videoHeight, advanced: video.currentTime - start,
           visible: video.getBoundingClientRect().width > 0 };
}"""


async def _launch(extra: list[str]):
    from playwright.async_api import async_playwright

    manager = async_playwright()
    p = await manager.__aenter__()
    browser = await p.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra], timeout=60_000)
    return manager, browser


@pytest_asyncio.fixture(scope="module", loop_scope=LOOP_SCOPE)
async def media_browser():
    manager, browser = await _launch(FAKE_MEDIA)
    try:
        yield browser
    finally:
        await browser.close()
        await manager.__aexit__(None, None, None)


@pytest_asyncio.fixture(scope="module", loop_scope=LOOP_SCOPE)
async def deny_browser():
    manager, browser = await _launch(DENY_MEDIA)
    try:
        yield browser
    finally:
        await browser.close()
        await manager.__aexit__(None, None, None)


class Contexts:
    """Browser contexts made in a test, closed at its end."""

    def __init__(self) -> None:
        self.made = []

    def maker(self, browser, init_script: str | None = None):
        async def make(viewport):
            ctx = await _context(browser, viewport)
            if init_script:
                await ctx.add_init_script(init_script)
            self.made.append(ctx)
            return ctx

        return make

    async def close(self) -> None:
        for ctx in self.made:
            await ctx.close()


@pytest_asyncio.fixture(loop_scope=LOOP_SCOPE)
async def made():
    contexts = Contexts()
    yield contexts
    await contexts.close()


async def visitor_and_agent(visitor_contexts, agent_contexts, live, name: str):
    visitor = await open_visitor(visitor_contexts, live, "/")
    await start_sharing(visitor, name)
    await visitor.locator(f"{ROOT} >> button[aria-label='Close']").first.click()  # the help panel covers the page
    agent = await open_agent(agent_contexts, live, "anna")
    await join_from_queue(agent, name)
    await expect(agent.page.locator(CARD)).to_be_visible()
    return visitor, agent


async def session_id(agent: Agent) -> str:
    return await agent.page.evaluate("() => window.__cobrowseConsole.session.view.id")


async def timeline(live, session: str, prefix: tuple[str, ...] = ("screen_share", "call")) -> list[tuple[str, dict]]:
    """The session's screen-share records in cobrowse_events, once written (off the live path)."""
    from cobrowse.storage.timeline import list_events

    events = await list_events(live.service.db, session)
    return [(e.kind.value, e.detail) for e in events if e.kind.value.startswith(prefix)]


async def timeline_has(live, session: str, kinds: list[str]) -> list[tuple[str, dict]]:
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        records = await timeline(live, session)
        if [k for k, _ in records] == kinds:
            return records
        assert time.monotonic() < deadline, f"timeline {records} is not {kinds}"
        await asyncio.sleep(0.1)


def received(agent: Agent, kind: str) -> list[dict]:
    return [json.loads(raw) for raw in agent.frames if f'"t":"{kind}"' in raw]


# In the console page: audio packets received from the visitor (waits for more than 5).
AGENT_HEARS = """async () => {
  for (let i = 0; i < 80; i++) {
    const pc = window.__cobrowseConsole.screen.pc;
    const stats = pc ? await pc.getStats() : new Map();
    for (const s of stats.values()) if (s.type == 'inbound-rtp' && s.kind == 'audio' && s.packetsReceived > 5) return s.packetsReceived;
    await new Promise((r) => setTimeout(r, 100));
  }
  return 0;
}"""
# In the visitor's page: the state of the agent's voice track in the widget's <audio>.
VISITOR_HEARS = """async () => {
  for (let i = 0; i < 80; i++) {
    const audio = document.querySelector('#cobrowse-root').shadowRoot.querySelector('audio');
    const track = audio && audio.srcObject && audio.srcObject.getAudioTracks()[0];
    if (track && track.readyState == 'live' && !track.muted) return 'live';
    await new Promise((r) => setTimeout(r, 100));
  }
  return 'none';
}"""


async def ask_and_share(visitor, agent: Agent) -> None:
    await agent.page.get_by_role("button", name="Request screen share").click()
    await expect(agent.page.locator(f"{CARD} .screen-status")).to_contain_text("Waiting for the visitor to answer your request")
    prompt = visitor.locator(PROMPT)
    await expect(prompt).to_be_visible()
    await expect(prompt).to_contain_text("Anna (support) asks to see your screen")
    await prompt.get_by_role("button", name="Share my screen").click()
    await expect(prompt).to_be_hidden()


async def agent_sees_frames(agent: Agent) -> dict:
    await expect(agent.page.locator(VIDEO)).to_be_visible()
    await agent.page.wait_for_function(
        "(s) => { const v = document.querySelector(s); return v && v.srcObject && v.videoWidth > 0; }",
        arg=VIDEO, timeout=TIMEOUT_MS)
    seen = await agent.page.evaluate(VIDEO_FRAMES, [VIDEO, 10])
    assert "error" not in seen, seen
    assert seen["frames"] >= 10 and seen["advanced"] > 0 and seen["visible"], seen
    assert (seen["width"], seen["height"]) == (1280, 720), seen  # Chromium's fake screen
    return seen


# ---------------------------------------------------------------------------


async def test_screen_share_reaches_the_agent_and_stops_on_both_sides(media_browser, made, live, screenshot_dir):
    contexts = made.maker(media_browser)
    visitor, agent = await visitor_and_agent(contexts, contexts, live, "Petra Pdf")
    session = await session_id(agent)
    bundle: list[str] = []
    visitor.on("request", lambda r: "/static/screenshare.js" in r.url and bundle.append(r.url))
    await visitor.wait_for_timeout(300)
    assert bundle == []  # nothing of screen sharing is downloaded before an agent asks

    # The prompt says, in plain words, what will happen and who will see it.
    await agent.page.get_by_role("button", name="Request screen share").click()
    prompt = visitor.locator(PROMPT)
    await expect(prompt).to_be_visible()
    assert len(bundle) == 1
    await visitor.screenshot(path=str(screenshot_dir / "screenshare-prompt.png"))
    await expect(prompt).to_contain_text("Anna (support) asks to see your screen")
    await expect(prompt).to_contain_text("your browser asks what to share: one tab, one window or your whole screen")
    await expect(prompt).to_contain_text("Only the support agents in this session see it: Anna (support).")
    await expect(prompt).to_contain_text("Nothing is installed. You can stop sharing at any time")
    await prompt.get_by_role("button", name="Share my screen").click()

    # The visitor sees a clear "you are sharing" state with a stop button.
    bar = visitor.locator(BAR)
    await expect(bar).to_be_visible()
    await expect(bar).to_contain_text("You are sharing your screen with Anna (support)")
    await expect(bar.get_by_role("button", name="Stop sharing screen")).to_be_visible()

    # The agent's video gets frames, beside the mirrored view (still there).
    seen = await agent_sees_frames(agent)
    await expect(agent.page.locator(f"{CARD} .screen-status")).to_have_text("The visitor is sharing their screen")
    await expect(agent.page.locator(".replay-host:not([hidden]) iframe")).to_be_visible()
    video_box = await agent.page.locator(VIDEO).bounding_box()
    replay_box = await agent.page.locator(".replay-host:not([hidden])").bounding_box()
    assert video_box["x"] >= replay_box["x"] + replay_box["width"] - 1, (video_box, replay_box)  # beside, not over
    console_png = await agent.page.screenshot(path=str(screenshot_dir / "screenshare-console.png"))
    visitor_png = await visitor.screenshot(path=str(screenshot_dir / "screenshare-visitor.png"))
    await side_by_side(made.maker(media_browser), visitor_png, console_png,
                       screenshot_dir / "screenshare-side-by-side.png", ("Visitor: sharing", "Agent console"))
    # The signalling went through the hub: the console offered, the visitor answered.
    assert [f["kind"] for f in agent.sent if f.get("t") == "signal"][0] == "offer"
    assert any(f.get("kind") == "answer" for f in received(agent, "signal"))
    assert seen["frames"] >= 10

    # The visitor stops.
    await bar.get_by_role("button", name="Stop sharing screen").click()
    await expect(bar).to_be_hidden()
    await expect(agent.page.locator(f"{CARD} .screen-note")).to_have_text("The visitor stopped sharing their screen.")
    await expect(agent.page.locator(VIDEO)).to_be_hidden()
    assert await agent.page.evaluate(f"() => document.querySelector('{VIDEO}').srcObject") is None

    # Again, and the agent stops.
    await ask_and_share(visitor, agent)
    await agent_sees_frames(agent)
    await agent.page.get_by_role("button", name="Stop screen share").click()
    await expect(bar).to_be_hidden()
    await expect(visitor.locator(NOTICE)).to_contain_text("Anna (support) stopped the screen sharing")
    await expect(agent.page.locator(f"{CARD} .screen-note")).to_have_text("Screen sharing stopped by Anna.")

    # Co-browsing went on all along.
    await expect(agent.page.locator("#live-text")).to_have_text("Live")
    records = await timeline_has(live, session, [
        "screen_share_requested", "screen_share_started", "screen_share_stopped",
        "screen_share_requested", "screen_share_started", "screen_share_stopped"])
    assert records[0][1] == {"agent": "Anna", "audio": False}
    assert records[1][1]["agents"] == ["Anna"]
    assert records[2][1] == {"by": "visitor", "reason": "visitor"}
    assert records[5][1] == {"by": "agent", "reason": "agent", "agent": "Anna"}
    _clean(agent.watch)


async def test_denied_permission_is_said_on_both_sides(deny_browser, media_browser, made, live):
    visitor, agent = await visitor_and_agent(made.maker(deny_browser), made.maker(media_browser), live, "Dana Deny")
    session = await session_id(agent)
    await ask_and_share(visitor, agent)
    await expect(visitor.locator(NOTICE)).to_contain_text("Nothing is shared: permission was not given")
    await expect(visitor.locator(NOTICE)).to_contain_text("You can keep chatting and co-browsing")
    await expect(visitor.locator(BAR)).to_be_hidden()
    note = agent.page.locator(f"{CARD} .screen-note")
    await expect(note).to_contain_text("Screen sharing is not possible: The visitor did not give permission")
    await expect(note).to_contain_text("Chat and co-browsing go on.")
    await expect(agent.page.get_by_role("button", name="Request screen share")).to_be_visible()
    await expect(agent.page.locator("#live-text")).to_have_text("Live")
    records = await timeline_has(live, session, ["screen_share_requested", "screen_share_failed"])
    assert records[1][1]["reason"] == "denied"


async def test_unsupported_browser_is_said_on_both_sides(media_browser, made, live):
    visitor, agent = await visitor_and_agent(made.maker(media_browser, NO_DISPLAY_MEDIA), made.maker(media_browser),
                                             live, "Uli Unsupported")
    assert await visitor.evaluate("() => 'getDisplayMedia' in navigator.mediaDevices") is False
    session = await session_id(agent)
    await agent.page.get_by_role("button", name="Request screen share").click()
    # No prompt to click: the visitor is told at once, and so is the agent.
    await expect(visitor.locator(NOTICE)).to_contain_text("This browser cannot share a screen")
    await expect(visitor.locator(PROMPT)).to_be_hidden()
    note = agent.page.locator(f"{CARD} .screen-note")
    await expect(note).to_contain_text("The visitor’s browser cannot share a screen from a web page.")
    await expect(note).to_contain_text("Chat and co-browsing go on.")
    records = await timeline_has(live, session, ["screen_share_requested", "screen_share_failed"])
    assert records[1][1]["reason"] == "unsupported"


async def test_voice_call_mute_and_hang_up(media_browser, made, live, screenshot_dir):
    contexts = made.maker(media_browser)
    visitor, agent = await visitor_and_agent(contexts, contexts, live, "Carl Call")
    session = await session_id(agent)
    await agent.page.get_by_role("button", name="Offer a call").click()
    prompt = visitor.locator(PROMPT)
    await expect(prompt).to_contain_text("Anna (support) offers a voice call")
    await expect(prompt).to_contain_text("your browser asks to use your microphone")
    await prompt.get_by_role("button", name="Accept the call").click()
    bar = visitor.locator(BAR)
    await expect(bar).to_contain_text("On a call with Anna (support)")
    await expect(agent.page.locator(f"{CARD} .screen-status")).to_have_text("On a call")
    # Audio flows both ways.
    assert await agent.page.evaluate(AGENT_HEARS) > 5
    assert await agent.page.evaluate("() => window.__cobrowseConsole.screen.els.voice.srcObject.getAudioTracks().length") == 1
    assert await visitor.evaluate(VISITOR_HEARS) == "live"  # the agent's microphone reaches the visitor
    await visitor.screenshot(path=str(screenshot_dir / "screenshare-call-visitor.png"))
    # Mute, then hang up.
    await bar.get_by_role("button", name="Mute").click()
    await expect(agent.page.locator(f"{CARD} .screen-status")).to_have_text("On a call (the visitor is muted)")
    await bar.get_by_role("button", name="Unmute").click()
    await expect(agent.page.locator(f"{CARD} .screen-status")).to_have_text("On a call")
    await bar.get_by_role("button", name="Hang up").click()
    await expect(bar).to_be_hidden()
    await expect(agent.page.locator(f"{CARD} .screen-note")).to_have_text("The visitor hung up.")
    assert await agent.page.evaluate("() => window.__cobrowseConsole.screen.mic") is None  # the agent's mic is off
    await timeline_has(live, session, ["call_requested", "call_started", "call_ended"])


async def test_a_call_joins_a_screen_share_on_the_same_connection(media_browser, made, live):
    contexts = made.maker(media_browser)
    visitor, agent = await visitor_and_agent(contexts, contexts, live, "Sid Screen-and-call")
    session = await session_id(agent)
    await ask_and_share(visitor, agent)
    await agent_sees_frames(agent)
    await agent.page.evaluate("() => { window.__cobrowseConsole.screen.pc.tag = 'the first'; }")
    await agent.page.get_by_role("button", name="Offer a call").click()
    await visitor.locator(PROMPT).get_by_role("button", name="Accept the call").click()
    bar = visitor.locator(BAR)
    await expect(bar).to_contain_text("You are sharing your screen with Anna (support)")
    await expect(bar).to_contain_text("On a call with Anna (support)")
    await expect(agent.page.locator(f"{CARD} .screen-status")).to_have_text(
        "The visitor is sharing their screen · On a call")
    assert await agent.page.evaluate(AGENT_HEARS) > 5
    assert await visitor.evaluate(VISITOR_HEARS) == "live"
    assert await agent.page.evaluate("() => window.__cobrowseConsole.screen.pc.tag") == "the first"  # renegotiated
    offers = [f for f in agent.sent if f.get("t") == "signal" and f.get("kind") == "offer"]
    assert len(offers) == 2 and "m=audio" in offers[1]["sdp"] and "m=video" in offers[1]["sdp"]
    await agent_sees_frames(agent)  # the screen goes on
    # The agent hangs up: the screen goes on; then the visitor stops it.
    await agent.page.get_by_role("button", name="Hang up").click()
    await expect(bar.get_by_role("button", name="Hang up")).to_be_hidden()
    await expect(bar.get_by_role("button", name="Stop sharing screen")).to_be_visible()
    await expect(agent.page.locator(f"{CARD} .screen-status")).to_have_text("The visitor is sharing their screen")
    await agent_sees_frames(agent)
    await bar.get_by_role("button", name="Stop sharing screen").click()
    await expect(bar).to_be_hidden()
    records = await timeline_has(live, session, ["screen_share_requested", "screen_share_started", "call_requested",
                                                 "call_started", "call_ended", "screen_share_stopped"])
    assert records[4][1] == {"by": "agent", "reason": "agent", "agent": "Anna"}


async def test_in_a_chat_the_video_is_beside_it_and_the_transcript_has_the_share(media_browser, made, live,
                                                                                  screenshot_dir):
    """The visitor chats, shares their page from the chat, then their screen: the video shows in the chat
    column (the console's media slot), the chat says what happens in plain words on both sides, and the
    conversation's transcript records the share."""
    if getattr(live.service.hub, "chat", None) is None:
        pytest.skip("this service runs without chat")
    from .test_chat_visitor import INPUT, LOG, start_chat, send_text

    contexts = made.maker(media_browser)
    agent = await open_agent(contexts, live, "anna")
    visitor = await open_visitor(contexts, live, "/")
    await start_chat(visitor)
    await send_text(visitor, "The PDF of my invoice does not open")
    await agent.page.get_by_role("button", name=re.compile(r"^Accept the chat")).first.click()
    await expect(agent.page.locator("#chat-panel")).to_be_visible()
    await visitor.locator(f"{ROOT} >> button.shx").click()
    await visitor.locator(f"{ROOT} >> .sec.share button.btn.pri").click()
    await expect(agent.page.locator(CARD)).to_be_visible()  # the shared page opened beside the chat

    await ask_and_share(visitor, agent)
    await agent_sees_frames(agent)
    await expect(agent.page.locator(f"#chat-media {VIDEO}")).to_be_visible()
    await expect(agent.page.locator("#chat-logs .msg-event", has_text="Anna asked to see your screen")).to_be_visible()
    await expect(visitor.locator(LOG)).to_contain_text("Anna asked to see your screen")
    await expect(visitor.locator(LOG)).to_contain_text("Screen sharing started")
    await agent.page.screenshot(path=str(screenshot_dir / "screenshare-console-chat.png"))
    await visitor.screenshot(path=str(screenshot_dir / "screenshare-visitor-chat.png"))
    await visitor.locator(BAR).get_by_role("button", name="Stop sharing screen").click()
    await expect(visitor.locator(LOG)).to_contain_text("Screen sharing stopped by the visitor.")
    await expect(visitor.locator(INPUT)).to_be_visible()  # the chat goes on

    conversation = await agent.page.evaluate("() => window.__cobrowseConsole.chat.current().conversation")
    transcript = await agent.page.evaluate(
        "(id) => fetch('/api/chat/conversations/' + id + '/transcript.txt').then((r) => r.text())", conversation)
    # Each step once: the chat's own lines, not the session's timeline a second time.
    for line in ("Anna asked to see your screen", "Screen sharing started", "Screen sharing stopped by the visitor"):
        assert transcript.count(line) == 1, transcript
    assert "asked the visitor to share their screen" not in transcript, transcript
