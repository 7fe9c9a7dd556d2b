"""Markers, shared control and operator commands from the agent console, end to end.

Two real browsers: a visitor on the demo shop through the proxy, who shares
with the real widget, and an agent in the real console (its own origin),
who works only through the console's UI: the marker toolbar above the
replay, the pointer over the replay, the Control card and the command box.
What the visitor's page shows is read from the widget's shadow root
(.mk-g[data-mark=<id>]: .mk-b box, .mk-h highlighter rects, svg.mk-d, .mk-t
note; .mk-p the laser dot; .cq the control prompt), what the agent sees from
the console's marker layer (.mk[data-marker=<id>]: .mk-box, .mk-text-rect,
.mk-tag, .mk-note) over the replay iframe.

The service, logins and page helpers are test_cobrowse_live's (its module
fixture `live` runs again for this module: own ports, own data directory).

  test_element_marker_with_note_on_both_sides     the right element on the visitor's page (positions
                                                  compared), in the agent's view, at a second agent's
                                                  (with who placed it); follows scrolling; removed
  test_pinned_marker_follows_to_the_next_page     pinned: found again on the next page (both sides);
                                                  not pinned: gone
  test_text_highlight_covers_the_words            a drag over words in the replay -> the same words
                                                  highlighted on the visitor's page
  test_field_laser_and_drawing                    "fill this in", the laser (<= 30 frames/s), a stroke
  test_control_typing_select_checkbox_scroll      Request control -> Allow -> typing, a select, a
                                                  checkbox and the wheel reach the visitor's page and
                                                  the site's listeners fire; a private field is refused
                                                  with a message; Release; the visitor takes it back
  test_commands_goto_and_refusals                 goto: same-site navigates; goto: javascript: is refused
                                                  in the console; the hub's refusals are shown
  test_notes_are_plain_text_in_the_console        an XSS corpus as notes does nothing, for the author
                                                  and for another agent
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
from playwright.async_api import expect

from .conftest import TIMEOUT_MS
from .test_cobrowse_live import (  # noqa: F401  (live, contexts: fixtures)
    REPLAY,
    Agent,
    _clean,
    contexts,
    join_from_queue,
    live,
    open_agent,
    open_visitor,
    side_by_side,
    start_sharing,
)

pytestmark = pytest.mark.e2e

ROOT = "#cobrowse-root"
PROMPT = f"{ROOT} >> .cq"
NOTICE = f"{ROOT} >> .cn"

# In the console page: an element of the replay (the first matching `selector`
# whose text holds `text`), in the console page's coordinates.
REPLAY_RECT = """([frameSel, selector, text]) => {
  const f = document.querySelector(frameSel);
  const doc = f && f.contentDocument;
  if (!doc) return null;
  const el = [...doc.querySelectorAll(selector)].find((e) => !text || e.textContent.includes(text));
  if (!el) return null;
  const fr = f.getBoundingClientRect();
  const s = fr.width / f.offsetWidth;
  const r = el.getBoundingClientRect();
  return { x: fr.left + r.left * s, y: fr.top + r.top * s, width: r.width * s, height: r.height * s, scale: s };
}"""

# In the console page: the rects of characters [i, j) of the first text node holding `needle`, in page coordinates.
REPLAY_WORDS = """([frameSel, needle, word]) => {
  const f = document.querySelector(frameSel);
  const doc = f.contentDocument;
  const walker = doc.createTreeWalker(doc.body, NodeFilter.SHOW_TEXT);
  for (let n; (n = walker.nextNode()); ) {
    const at = n.data.indexOf(needle);
    if (at < 0) continue;
    const i = n.data.indexOf(word, at);
    const r = doc.createRange();
    r.setStart(n, i);
    r.setEnd(n, i + word.length);
    const b = r.getBoundingClientRect();
    const fr = f.getBoundingClientRect();
    const s = fr.width / f.offsetWidth;
    return { x: fr.left + b.left * s, y: fr.top + b.top * s, width: b.width * s, height: b.height * s };
  }
  return null;
}"""

# In the console page: is marker `id` drawn round the replay element `selector` (with `pad` px round it)?
CONSOLE_BOX_ON = """([frameSel, id, selector, text, pad]) => {
  const f = document.querySelector(frameSel);
  const doc = f && f.contentDocument;
  const m = document.querySelector(`.replay-host:not([hidden]) .mk[data-marker="${id}"]`);
  if (!doc || !m || m.hidden) return false;
  const box = m.querySelector('.mk-box, svg.mk-draw');
  const el = [...doc.querySelectorAll(selector)].find((e) => !text || e.textContent.includes(text));
  if (!box || !el) return false;
  const fr = f.getBoundingClientRect();
  const s = fr.width / f.offsetWidth;
  const r = el.getBoundingClientRect();
  const b = box.getBoundingClientRect();
  const near = (a, c) => Math.abs(a - c) <= 1.5;
  return near(b.left, fr.left + r.left * s - pad) && near(b.top, fr.top + r.top * s - pad)
    && near(b.width, r.width * s + 2 * pad) && near(b.height, r.height * s + 2 * pad);
}"""

# In the visitor's page: marker `id`'s box and the element `selector` with `text`, in viewport pixels.
VISITOR_GEOMETRY = """([id, selector, text]) => {
  const g = document.querySelector('#cobrowse-root').shadowRoot.querySelector(`.mk-g[data-mark="${id}"]`);
  const el = [...document.querySelectorAll(selector)].find((e) => !text || e.textContent.includes(text));
  const r = (e) => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.width, b.height]; };
  if (!g || !el) return null;
  const box = g.querySelector('.mk-b, svg.mk-d');
  return {
    shown: getComputedStyle(g).visibility == 'visible',
    box: box ? r(box) : null,
    rects: [...g.querySelectorAll('.mk-h')].filter((e) => !e.hidden).map(r),
    tag: g.querySelector('.mk-t') ? g.querySelector('.mk-t').textContent : null,
    el: r(el),
  };
}"""

VISITOR_BOX_ON = """([id, selector, text, pad]) => {
  const g = document.querySelector('#cobrowse-root').shadowRoot.querySelector(`.mk-g[data-mark="${id}"]`);
  const el = [...document.querySelectorAll(selector)].find((e) => !text || e.textContent.includes(text));
  if (!g || !el || getComputedStyle(g).visibility != 'visible') return false;
  const b = g.querySelector('.mk-b').getBoundingClientRect();
  const e = el.getBoundingClientRect();
  const near = (a, c) => Math.abs(a - c) <= 1.5;
  return near(b.left, e.left - pad) && near(b.top, e.top - pad) && near(b.width, e.width + 2 * pad) && near(b.height, e.height + 2 * pad);
}"""

VISITOR_MARK_GONE = """(id) => !document.querySelector('#cobrowse-root').shadowRoot.querySelector(`.mk-g[data-mark="${id}"]`)"""

XSS_NOTES = [
    '<img src=x onerror="window.__xss=1">',
    "<script>window.__xss=2</script>",
    '"><svg onload=window.__xss=3>',
    "javascript:window.__xss=4",
    "{{constructor.constructor('window.__xss=5')()}}",
    '<a href="javascript:window.__xss=6">click me</a>',
    "&lt;b&gt;not bold&lt;/b&gt; &amp;",
    "<iframe srcdoc='<script>parent.__xss=7</script>'></iframe>",
    "\u202eevil.exe \u2066rtl\u2069",
    "<style>*{display:none}</style>",
]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


async def visitor_and_agent(contexts, live, path: str, name: str, agent: str = "anna"):
    visitor = await open_visitor(contexts, live, path)
    await start_sharing(visitor, name)
    await visitor.locator(f"{ROOT} >> button[aria-label='Close']").click()  # the help panel covers the page
    a = await open_agent(contexts, live, agent)
    await join_from_queue(a, name)
    await expect(a.page.locator("#mark-bar .mk-tool[data-tool=element]")).to_be_enabled()
    return visitor, a


async def replay_rect(agent: Agent, selector: str, text: str = "") -> dict:
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        rect = await agent.page.evaluate(REPLAY_RECT, [REPLAY, selector, text])
        if rect:
            return rect
        assert time.monotonic() < deadline, f"{selector!r} ({text!r}) is not in the replay"
        await asyncio.sleep(0.05)


async def click_in_replay(agent: Agent, selector: str, text: str = "") -> None:
    r = await replay_rect(agent, selector, text)
    await agent.page.mouse.click(r["x"] + r["width"] / 2, r["y"] + r["height"] / 2)


async def tool(agent: Agent, name: str) -> None:
    button = agent.page.locator(f"#mark-bar .mk-tool[data-tool={name}]")
    if await button.get_attribute("aria-pressed") != "true":
        await button.click()
    await expect(button).to_have_attribute("aria-pressed", "true")


async def sent(agent: Agent, kind: str, count: int = 1) -> list[dict]:
    """The agent's sent frames of type `kind`, once there are `count`."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        frames = [f for f in agent.sent if f.get("t") == kind]
        if len(frames) >= count:
            return frames
        assert time.monotonic() < deadline, f"the console never sent {count} {kind!r} frame(s)"
        await asyncio.sleep(0.03)


def received(agent: Agent, kind: str) -> list[dict]:
    out = []
    for raw in agent.frames:
        if f'"t":"{kind}"' in raw:
            out.append(json.loads(raw))
    return out


async def wait_until(fn, what: str, timeout: float = TIMEOUT_MS / 1000):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.03)


async def visitor_box_on(visitor, marker_id: str, selector: str, text: str, pad: int) -> None:
    try:
        await visitor.wait_for_function(VISITOR_BOX_ON, arg=[marker_id, selector, text, pad], timeout=5000)
    except Exception:
        geometry = await visitor.evaluate(VISITOR_GEOMETRY, [marker_id, selector, text])
        raise AssertionError(f"marker {marker_id} is not on {selector} {text!r} at the visitor: {geometry}") from None


async def console_box_on(agent: Agent, marker_id: str, selector: str, text: str, pad: int = 3) -> None:
    try:
        await agent.page.wait_for_function(CONSOLE_BOX_ON, arg=[REPLAY, marker_id, selector, text, pad], timeout=5000)
    except Exception:
        raise AssertionError(f"marker {marker_id} is not drawn on {selector} {text!r} in the console") from None


async def take_control(agent: Agent, visitor, allow_submit: bool = False) -> None:
    page = agent.page
    if allow_submit:
        await page.locator("#control-allow-submit").check()
    await page.locator("#control-request").click()
    await expect(page.locator("#control-title")).to_have_text("Waiting for the visitor…")
    await expect(visitor.locator(PROMPT)).to_be_visible()
    await visitor.locator(PROMPT).get_by_role("button", name="Allow").click()
    await expect(page.locator("#control-title")).to_have_text("You have control")
    await expect(page.locator("#control-chip")).to_be_visible()
    await expect(visitor.locator(NOTICE)).to_be_visible()


# ---------------------------------------------------------------------------
# Element marker with a note
# ---------------------------------------------------------------------------


async def test_element_marker_with_note_on_both_sides(contexts, live, screenshot_dir):
    visitor, anna = await visitor_and_agent(contexts, live, "/gzip/", "Elle Element")
    ben = await open_agent(contexts, live, "ben")
    await join_from_queue(ben, "Elle Element")
    page = anna.page

    note = "Our delivery rates are in this table"
    await page.locator("#marker-note").fill(note)
    await tool(anna, "element")
    await expect(page.locator("#tool-hint")).to_contain_text("Click a part of the page")
    # Hovering shows what would be marked; a click marks it.
    r = await replay_rect(anna, "h2", "Delivery rates")
    await page.mouse.move(r["x"] + r["width"] / 2, r["y"] + r["height"] / 2)
    await expect(page.locator(".replay-host:not([hidden]) .mk-preview")).to_be_visible()
    await page.mouse.down()
    await page.mouse.up()

    mark = (await sent(anna, "mark"))[-1]
    marker = mark["marker"]
    mid = marker["id"]
    assert marker["kind"] == "element" and marker["note"] == note
    assert marker["scroll"] is True and marker["pinned"] is False
    anchor = marker["anchor"]
    assert anchor["node"] > 0 and anchor["quote"] == "Delivery rates", anchor
    # The selector finds the same element on the visitor's real page.
    assert await visitor.evaluate("(s) => document.querySelector(s).textContent.trim()", anchor["selector"]) == "Delivery rates"
    await expect(page.locator("#marker-note")).to_have_value("")  # a note goes with one marker

    # On the visitor's page: round the right element, with the note and who placed it.
    await visitor_box_on(visitor, mid, "h2", "Delivery rates", 6)
    tag = visitor.locator(f"{ROOT} >> .mk-g[data-mark='{mid}'] .mk-t")
    await expect(tag).to_contain_text(note)
    await expect(tag).to_contain_text("Anna")

    # In Anna's view (drawn over the replay) and Ben's (relayed by the hub, with her name).
    await console_box_on(anna, mid, "h2", "Delivery rates")
    mine = page.locator(f".mk[data-marker='{mid}']")
    await expect(mine.locator(".mk-note")).to_have_text(note)
    await expect(mine.locator(".mk-tag-who")).to_have_text("You")
    await console_box_on(ben, mid, "h2", "Delivery rates")
    theirs = ben.page.locator(f".mk[data-marker='{mid}']")
    await expect(theirs.locator(".mk-tag-who")).to_have_text("Anna")
    await expect(theirs.locator(".mk-note")).to_have_text(note)
    await expect(ben.page.locator("#marker-clear")).to_be_enabled()

    # Pictures: the visitor's page and the agent's console side by side.
    await tool(anna, "pointer")
    await page.mouse.move(5, 5)
    await visitor.mouse.move(5, 790)
    await visitor.wait_for_timeout(1800)  # the visitor's arrival animation
    agent_png = await page.screenshot(path=str(screenshot_dir / "console-marker-element.png"))
    visitor_png = await visitor.screenshot(path=str(screenshot_dir / "visitor-marker-element.png"))
    await side_by_side(contexts, visitor_png, agent_png, screenshot_dir / "marker-element-both.png")

    # The visitor scrolls: both sides stay on the element.
    await visitor.mouse.move(640, 500)
    await visitor.mouse.wheel(0, 220)
    await visitor.wait_for_function("() => window.scrollY >= 150")
    await visitor_box_on(visitor, mid, "h2", "Delivery rates", 6)
    await page.wait_for_function(
        "([sel, y]) => { const f = document.querySelector(sel); return f && Math.abs(f.contentWindow.scrollY - y) <= 2; }",
        arg=[REPLAY, await visitor.evaluate("() => window.scrollY")])
    await console_box_on(anna, mid, "h2", "Delivery rates")
    # ... and resizes its window: the view is scaled anew, the marker stays on.
    await visitor.set_viewport_size({"width": 1024, "height": 700})
    await expect(page.locator("#viewport-size")).to_have_text("1024×700")
    await visitor_box_on(visitor, mid, "h2", "Delivery rates", 6)
    await console_box_on(anna, mid, "h2", "Delivery rates")

    # The page re-renders the element away and back: hidden meanwhile, back on it after.
    await visitor.evaluate("""() => {
        const h = [...document.querySelectorAll('h2')].find((e) => e.textContent.includes('Delivery rates'));
        window.__h = h; window.__hParent = h.parentNode; window.__hNext = h.nextSibling; h.remove();
    }""")
    await expect(mine).to_be_hidden()
    await visitor.evaluate("() => window.__hParent.insertBefore(window.__h, window.__hNext)")
    await console_box_on(anna, mid, "h2", "Delivery rates")

    # Removed from the console: gone everywhere.
    await mine.locator(".mk-remove").click()
    unmark = (await sent(anna, "unmark"))[-1]
    assert unmark["id"] == mid
    await visitor.wait_for_function(VISITOR_MARK_GONE, arg=mid)
    await expect(theirs).to_have_count(0)
    await expect(page.locator(f".mk[data-marker='{mid}']")).to_have_count(0)
    await expect(page.locator("#marker-clear")).to_be_disabled()
    _clean(anna.watch)
    _clean(ben.watch)
    assert not await anna.watch.csp_violations()


# ---------------------------------------------------------------------------
# Pinned markers
# ---------------------------------------------------------------------------


async def test_pinned_marker_follows_to_the_next_page(contexts, live):
    visitor, anna = await visitor_and_agent(contexts, live, "/gzip/", "Pia Pinned")
    page = anna.page
    nav = "header nav a"
    # A pinned marker on the header's "Contact" link (on every page), an unpinned one on this page's heading.
    await page.locator("#marker-pin").click()
    await expect(page.locator("#marker-pin")).to_have_attribute("aria-pressed", "true")
    await page.locator("#marker-note").fill("Contact us from here")
    await tool(anna, "element")
    await click_in_replay(anna, nav, "Contact")
    pinned = (await sent(anna, "mark"))[-1]["marker"]
    assert pinned["pinned"] is True
    await page.locator("#marker-pin").click()
    await click_in_replay(anna, "h1")
    loose = (await sent(anna, "mark", 2))[-1]["marker"]
    assert loose["pinned"] is False
    await visitor_box_on(visitor, pinned["id"], nav, "Contact", 6)
    await console_box_on(anna, loose["id"], "h1", "")
    await expect(page.locator(f".mk[data-marker='{pinned['id']}'] .mk-tag-pin")).to_have_count(1)

    # The visitor goes to another page: the pinned one is there again (both sides), the other is gone.
    await visitor.locator("a[href='/cart']").first.click()
    await expect(anna.replay().locator("h1")).to_have_text("Your cart")
    await visitor_box_on(visitor, pinned["id"], nav, "Contact", 6)
    await console_box_on(anna, pinned["id"], nav, "Contact")
    await expect(page.locator(f".mk[data-marker='{loose['id']}']")).to_have_count(0)
    await expect(page.locator(f".mk[data-marker='{pinned['id']}'] .mk-note")).to_have_text("Contact us from here")
    _clean(anna.watch)


# ---------------------------------------------------------------------------
# Text highlight
# ---------------------------------------------------------------------------


async def test_text_highlight_covers_the_words(contexts, live, screenshot_dir):
    visitor, anna = await visitor_and_agent(contexts, live, "/gzip/", "Tess Text")
    page = anna.page
    await tool(anna, "text")
    sentence = "We pack every order by hand"
    first = await page.evaluate(REPLAY_WORDS, [REPLAY, sentence, "pack"])
    last = await page.evaluate(REPLAY_WORDS, [REPLAY, sentence, "hand"])
    assert first and last
    # A rough drag: from inside the first word to inside the last one (whole words are taken).
    await page.mouse.move(first["x"] + first["width"] * 0.6, first["y"] + first["height"] / 2)
    await page.mouse.down()
    await page.mouse.move(last["x"] + last["width"] * 0.3, last["y"] + last["height"] / 2, steps=6)
    await expect(page.locator(".replay-host:not([hidden]) .mk-preview-text .mk-text-rect").first).to_be_visible()
    await page.mouse.up()

    marker = (await sent(anna, "mark"))[-1]["marker"]
    anchor = marker["anchor"]
    assert marker["kind"] == "text"
    assert anchor["quote"] == "pack every order by hand", anchor
    # The offsets are the words' place in the element's text on the visitor's page too.
    text = await visitor.evaluate("(s) => document.querySelector(s).textContent", anchor["selector"])
    assert text[anchor["start"]:anchor["end"]] == anchor["quote"], (text, anchor)

    # On the visitor's page, the highlighter covers exactly those words.
    mid = marker["id"]
    await visitor.wait_for_function(
        "(id) => { const g = document.querySelector('#cobrowse-root').shadowRoot.querySelector(`.mk-g[data-mark=\"${id}\"]`);"
        " return g && getComputedStyle(g).visibility == 'visible' && g.querySelectorAll('.mk-h').length > 0; }", arg=mid)
    geometry = await visitor.evaluate("""([id, sentence, words]) => {
        const g = document.querySelector('#cobrowse-root').shadowRoot.querySelector(`.mk-g[data-mark="${id}"]`);
        const rects = [...g.querySelectorAll('.mk-h')].filter((e) => !e.hidden).map((e) => e.getBoundingClientRect());
        const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
        let n; while ((n = walker.nextNode()) && !n.data.includes(sentence));
        const i = n.data.indexOf(words);
        const r = document.createRange(); r.setStart(n, i); r.setEnd(n, i + words.length);
        const w = r.getBoundingClientRect();
        const u = { left: Math.min(...rects.map((x) => x.left)), top: Math.min(...rects.map((x) => x.top)),
                    right: Math.max(...rects.map((x) => x.right)), bottom: Math.max(...rects.map((x) => x.bottom)) };
        return { words: [w.left, w.top, w.right, w.bottom], marks: [u.left, u.top, u.right, u.bottom] };
    }""", [mid, sentence, "pack every order by hand"])
    words, marks = geometry["words"], geometry["marks"]
    assert all(abs(a - b) <= 4 for a, b in zip(words, marks)), geometry

    # In the agent's view: the highlight over the same words of the replay.
    rects = anna.page.locator(f".mk[data-marker='{mid}'] .mk-text-rect")
    await expect(rects.first).to_be_visible()
    box = await rects.first.bounding_box()
    assert abs(box["x"] - first["x"]) <= 2 and abs(box["x"] + box["width"] - (last["x"] + last["width"])) <= 2, (box, first, last)
    await tool(anna, "pointer")
    await page.mouse.move(5, 5)
    await visitor.wait_for_timeout(400)
    agent_png = await page.screenshot(path=str(screenshot_dir / "console-marker-text.png"))
    visitor_png = await visitor.screenshot(path=str(screenshot_dir / "visitor-marker-text.png"))
    await side_by_side(contexts, visitor_png, agent_png, screenshot_dir / "marker-text-both.png")

    # Clear all: gone on the visitor's page.
    await page.locator("#marker-clear").click()
    assert (await sent(anna, "unmark"))[-1]["id"] is None
    await visitor.wait_for_function(VISITOR_MARK_GONE, arg=mid)
    _clean(anna.watch)


# ---------------------------------------------------------------------------
# Field, laser, drawing
# ---------------------------------------------------------------------------


async def test_field_laser_and_drawing(contexts, live, screenshot_dir):
    visitor, anna = await visitor_and_agent(contexts, live, "/secure/", "Fay Field")
    page = anna.page

    # "Fill this in": clicking the field's label marks the field itself.
    await tool(anna, "field")
    await click_in_replay(anna, "label[for=email]")
    marker = (await sent(anna, "mark"))[-1]["marker"]
    assert marker["kind"] == "field" and marker["anchor"]["selector"] == "#email", marker
    await visitor_box_on(visitor, marker["id"], "#email", "", 5)
    await console_box_on(anna, marker["id"], "#email", "", 4)
    # Not a field: nothing is marked, the agent is told.
    await click_in_replay(anna, "h1")
    await expect(page.locator("#toast")).to_contain_text("not a form field")
    assert len(await sent(anna, "mark")) == 1

    # The laser: a dot on the visitor's page where the agent points, at most ~30 frames a second.
    await tool(anna, "laser")
    r = await replay_rect(anna, "h1")
    before = len([f for f in anna.sent if f.get("t") == "laser"])
    started = time.monotonic()
    for i in range(60):
        await page.mouse.move(r["x"] + 5 + i * 3, r["y"] + r["height"] / 2)
        await asyncio.sleep(0.016)
    took = time.monotonic() - started
    await asyncio.sleep(0.15)  # the last position goes out at the next 1/30 s slot
    lasers = [f for f in anna.sent if f.get("t") == "laser"][before:]
    assert lasers and len(lasers) <= 31 * took + 2, (len(lasers), took)
    last = lasers[-1]
    assert last["anchor"]["node"] > 0 and 0 <= last["x"] <= 1 and 0 <= last["y"] <= 1, last
    dot = visitor.locator(f"{ROOT} >> .mk-p.on")
    await expect(dot).to_be_visible()
    # Where the agent points (the element's box, the same relative place), within a few pixels.
    await visitor.wait_for_timeout(200)  # the dot glides (a short transition)
    spot = await visitor.evaluate("""([sel, x, y]) => {
        const e = document.querySelector(sel).getBoundingClientRect();
        const d = document.querySelector('#cobrowse-root').shadowRoot.querySelector('.mk-p').getBoundingClientRect();
        return { want: [e.left + x * e.width, e.top + y * e.height], got: [d.left + d.width / 2, d.top + d.height / 2] };
    }""", [last["anchor"]["selector"], last["x"], last["y"]])
    assert all(abs(a - b) <= 3 for a, b in zip(spot["want"], spot["got"])), spot
    # Leaving the replay hides it.
    await page.mouse.move(5, 5)
    hidden = await wait_until(lambda: [f for f in anna.sent if f.get("t") == "laser" and f.get("anchor") is None],
                              "a laser frame that hides the dot")
    assert hidden

    # A stroke: drawn on the visitor's page inside the element it was drawn on.
    await tool(anna, "draw")
    r = await replay_rect(anna, "#message")
    x0, y0 = r["x"] + 20, r["y"] + r["height"] * 0.3
    await page.mouse.move(x0, y0)
    await page.mouse.down()
    for i in range(1, 25):
        await page.mouse.move(x0 + i * 10, y0 + (i % 6) * 5)
    await page.mouse.up()
    drawing = [f for f in await sent(anna, "mark", 2) if f["marker"]["kind"] == "draw"][-1]["marker"]
    assert len(drawing["points"]) >= 10 and all(0 <= x <= 1 and 0 <= y <= 1 for x, y in drawing["points"])
    assert drawing["anchor"]["selector"] == "#message", drawing["anchor"]
    geometry = None
    for _ in range(100):
        geometry = await visitor.evaluate(VISITOR_GEOMETRY, [drawing["id"], "#message", ""])
        if geometry and geometry["shown"] and geometry["box"]:
            break
        await asyncio.sleep(0.05)
    assert geometry and geometry["shown"], geometry
    assert all(abs(a - b) <= 1.5 for a, b in zip(geometry["box"], geometry["el"])), geometry
    await expect(page.locator(f".mk[data-marker='{drawing['id']}'] svg.mk-draw")).to_be_visible()
    await tool(anna, "pointer")
    await page.mouse.move(5, 5)
    await visitor.wait_for_timeout(400)
    agent_png = await page.screenshot(path=str(screenshot_dir / "console-marker-field-draw.png"))
    visitor_png = await visitor.screenshot(path=str(screenshot_dir / "visitor-marker-field-draw.png"))
    await side_by_side(contexts, visitor_png, agent_png, screenshot_dir / "marker-field-draw-both.png")
    _clean(anna.watch)


# ---------------------------------------------------------------------------
# Shared control
# ---------------------------------------------------------------------------


async def test_control_typing_select_checkbox_scroll(contexts, live, screenshot_dir):
    visitor, anna = await visitor_and_agent(contexts, live, "/secure/", "Cora Control")
    ben = await open_agent(contexts, live, "ben")
    await join_from_queue(ben, "Cora Control")
    page = anna.page
    await expect(page.locator("#control-title")).to_have_text("View only")
    await expect(page.locator("#command-input")).to_be_disabled()
    # The test's own listeners on the visitor's page (besides the site's message counter).
    await visitor.evaluate("""() => {
        window.__seen = [];
        const log = (e) => window.__seen.push(`${e.type}:${e.target.id}=${e.target.type == 'checkbox' ? e.target.checked : e.target.value}`);
        for (const id of ['name', 'topic', 'copy']) {
            document.getElementById(id).addEventListener('input', log);
            document.getElementById(id).addEventListener('change', log);
        }
    }""")

    await take_control(anna, visitor)
    await expect(page.locator("#control-text")).to_contain_text("Submitting forms is not allowed")
    # Another agent sees who has control, and cannot ask meanwhile.
    await expect(ben.page.locator("#control-title")).to_have_text("Anna has control")
    await expect(ben.page.locator("#control-request")).to_be_disabled()
    await expect(ben.page.locator("#control-chip")).to_be_hidden()
    await expect(page.locator("#command-input")).to_be_enabled()
    await page.screenshot(path=str(screenshot_dir / "console-control.png"))

    # Typing into a normal field of the replay.
    await click_in_replay(anna, "#name")
    await page.keyboard.type("Sam Taylor", delay=25)
    await expect(visitor.locator("#name")).to_have_value("Sam Taylor")
    await expect(anna.replay().locator("#name")).to_have_value("Sam Taylor")
    inputs = [f for f in anna.sent if f.get("t") == "input" and f.get("action") == "input"]
    assert inputs[-1]["value"] == "Sam Taylor" and inputs[-1]["node"] > 0
    # The site's own listener (the message counter) fires.
    await click_in_replay(anna, "#message")
    await page.keyboard.type("Where is my order?", delay=15)
    await expect(visitor.locator("#message")).to_have_value("Where is my order?")
    await expect(visitor.locator("#message-count")).to_have_text("18 / 1000")
    await expect(anna.replay().locator("#message-count")).to_have_text("18 / 1000")
    # Backspace edits the value the same way.
    await page.keyboard.press("Backspace")
    await expect(visitor.locator("#message")).to_have_value("Where is my order")

    # A select and a checkbox (through its label).
    await anna.replay().locator("#topic").select_option("returns")
    await expect(visitor.locator("#topic")).to_have_value("returns")
    await click_in_replay(anna, "label[for=copy]")
    await expect(visitor.locator("#copy")).to_be_checked()
    seen = await visitor.evaluate("() => window.__seen")
    assert "input:name=Sam Taylor" in seen and "change:topic=returns" in seen and "change:copy=true" in seen, seen

    # Scrolling with the wheel over the replay scrolls the visitor's page (and the view follows).
    r = await replay_rect(anna, "h1")
    await page.mouse.move(r["x"] + 10, r["y"] + 40)
    await page.mouse.wheel(0, 300)
    await visitor.wait_for_function("() => window.scrollY >= 100")
    y = await visitor.evaluate("() => window.scrollY")
    await page.wait_for_function(
        "([sel, y]) => Math.abs(document.querySelector(sel).contentWindow.scrollY - y) <= 2", arg=[REPLAY, y])
    scrolls = [f for f in anna.sent if f.get("t") == "input" and f.get("action") == "scroll"]
    assert scrolls and scrolls[-1]["node"] > 0

    # A click on a submit button: not allowed without "also allow submitting forms".
    await click_in_replay(anna, "button[type=submit]")
    await expect(page.locator("#toast")).to_contain_text("Submitting forms is not allowed")
    await expect(visitor.locator("h1")).to_have_text("Contact us")

    # A private field: the visitor's page refuses, the agent is told plainly.
    await page.locator("#command-input").fill("goto: /login")
    await page.locator("#command-submit").click()
    await expect(anna.replay().locator("h1")).to_have_text("Sign in")
    await expect(page.locator("#control-title")).to_have_text("You have control")  # control survives the page load
    await click_in_replay(anna, "#password")
    await page.keyboard.type("x")
    await expect(page.locator("#toast")).to_contain_text("That field is private")
    await expect(visitor.locator("#password")).to_have_value("")

    # Release: view only again, and the visitor's notice goes.
    await page.locator("#control-release").click()
    await expect(page.locator("#control-title")).to_have_text("View only")
    await expect(page.locator("#control-note")).to_have_text("You released control.")
    await expect(visitor.locator(NOTICE)).to_be_hidden()
    await expect(page.locator("#control-chip")).to_be_hidden()

    # Asked again and allowed; then the visitor takes control back.
    await take_control(anna, visitor)
    await visitor.locator(NOTICE).get_by_role("button", name="Take back control").click()
    await expect(page.locator("#control-title")).to_have_text("View only")
    await expect(page.locator("#control-note")).to_have_text("The visitor took control back.")
    # Declined.
    await page.locator("#control-request").click()
    await visitor.locator(PROMPT).get_by_role("button", name="Decline").click()
    await expect(page.locator("#control-note")).to_have_text("The visitor declined your request.")
    # Without control, the replay takes no input at all.
    await click_in_replay(anna, "#email")
    await page.keyboard.type("nope")
    await visitor.wait_for_timeout(300)
    await expect(visitor.locator("#email")).to_have_value("")
    await expect(ben.page.locator("#control-title")).to_have_text("View only")
    _clean(anna.watch)
    _clean(ben.watch)


# ---------------------------------------------------------------------------
# Operator commands
# ---------------------------------------------------------------------------


async def test_commands_goto_and_refusals(contexts, live, screenshot_dir):
    visitor, anna = await visitor_and_agent(contexts, live, "/", "Gus Goto")
    page = anna.page
    await take_control(anna, visitor)
    status = page.locator("#command-status")

    # Refused in the console: never sent.
    for bad in ("goto: javascript:alert(1)", "open: data:text/html,<script>alert(1)</script>", "goto: file:///etc/passwd"):
        await page.locator("#command-input").fill(bad)
        await page.locator("#command-submit").click()
        await expect(status).to_have_attribute("data-kind", "error")
        await expect(status).to_contain_text("Only web addresses")
    await page.locator("#command-input").fill("please go to the cart")
    await page.locator("#command-input").press("Enter")
    await expect(status).to_contain_text("Start with goto: or open:")
    assert not [f for f in anna.sent if f.get("t") == "command"]

    # Refused by the hub (another site): its reason is shown.
    await page.locator("#command-input").fill("open: https://example.com/")
    await page.locator("#command-submit").click()
    await expect(status).to_contain_text("Refused:")
    await expect(status).to_contain_text("not one of this site's origins")
    # A javascript: URL sent past the console's check is refused by the hub too.
    session = await page.evaluate("() => window.__cobrowseConsole.session.view.id")
    tab = await page.evaluate("() => window.__cobrowseConsole.session.view.active")
    await page.evaluate("([s, t]) => window.__cobrowseConsole.socket.send({t: 'command', session: s, tab: t, kind: 'goto', url: 'javascript:alert(1)'})",
                        [session, tab])
    await expect(status).to_contain_text("only http and https URLs")
    await expect(visitor).to_have_url(re.compile(r"/$"))

    # goto: a same-site path navigates the visitor's tab; the console says so and follows.
    await page.locator("#command-input").fill("goto: /cart")
    await page.locator("#command-submit").click()
    await expect(visitor).to_have_url(re.compile(r"/cart$"))
    await expect(visitor.locator("h1")).to_have_text("Your cart")
    await expect(status).to_have_attribute("data-kind", "ok")
    await expect(status).to_contain_text("went to")
    await expect(anna.replay().locator("h1")).to_have_text("Your cart")
    command = [f for f in anna.sent if f.get("t") == "command"][-1]
    assert command["kind"] == "goto" and command["url"] == live.proxied("/cart"), command

    # open: a new tab (headless Chromium may let it through or block it; either way the agent is told).
    await page.locator("#command-input").fill("open: /spa/")
    await page.locator("#command-submit").click()
    await expect(status).to_contain_text(re.compile(r"A new tab opened for the visitor|blocked the new tab"))
    await page.screenshot(path=str(screenshot_dir / "console-command.png"))
    _clean(anna.watch)


# ---------------------------------------------------------------------------
# Notes are plain text
# ---------------------------------------------------------------------------


async def test_notes_are_plain_text_in_the_console(contexts, live):
    visitor, anna = await visitor_and_agent(contexts, live, "/gzip/", "Xavier Xss")
    ben = await open_agent(contexts, live, "ben")
    await join_from_queue(ben, "Xavier Xss")
    dialogs = []
    for p in (anna.page, ben.page, visitor):
        p.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
    page = anna.page
    targets = ["Delivery rates", "Packaging", "Returns", "Frequently asked"]
    ids = []
    for i, note in enumerate(XSS_NOTES):
        await page.locator("#marker-note").fill(note)
        await tool(anna, "element")
        await click_in_replay(anna, "h2", targets[i % len(targets)])
        frames = await sent(anna, "mark", i + 1)
        assert frames[-1]["marker"]["note"] == note.strip()
        ids.append(frames[-1]["marker"]["id"])
    await tool(anna, "pointer")

    for agent in (anna, ben):
        for mid, note in zip(ids, XSS_NOTES):
            shown = agent.page.locator(f".mk[data-marker='{mid}'] .mk-note-text")
            await expect(shown).to_have_count(1)
            assert await shown.text_content() == note.strip()
        # Nothing became markup: no element inside a note or tag but our own.
        extra = await agent.page.evaluate(
            "() => [...document.querySelectorAll('.mk-note *, .mk-tag *')].map((e) => e.localName)"
            ".filter((n) => !['span', 'button', 'svg', 'path'].includes(n))")
        assert not extra, extra
        stray = await agent.page.evaluate(
            "() => document.querySelectorAll('.mk-layer img, .mk-layer script, .mk-layer iframe, .mk-layer a, .mk-layer style').length")
        assert stray == 0
        assert await agent.page.evaluate("() => window.__xss === undefined")
        _clean(agent.watch)
        assert not await agent.watch.csp_violations()
    assert await visitor.evaluate("() => window.__xss === undefined")
    await visitor.wait_for_timeout(300)
    assert not dialogs, dialogs
