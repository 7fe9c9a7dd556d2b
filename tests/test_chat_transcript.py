"""chat.transcript: merging messages and timeline events, describing events, TXT/JSON/HTML."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser

import pytest

from chat.text import rich_tree
from chat.transcript import (
    HTML_CSP,
    JSON_VERSION,
    TranscriptEvent,
    TranscriptInfo,
    TranscriptMessage,
    build,
    describe_event,
    render_html,
    render_json,
    render_txt,
    timeline_events,
    zone_of,
    transcript_filename,
)
from cobrowse.storage.models import CobrowseEvent, EventKind

T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_info(**overrides) -> TranscriptInfo:
    values = dict(
        conversation_id="conv_123", site="shop.example", visitor_name="Bob", visitor_email="bob@example.com",
        department="Sales", started_at=T0, ended_at=at(725), url="https://shop.example/cart",
        fields={"Order number": "A-1001", "Topic": "Returns"}, survey_rating=4, survey_comment="Quick and kind",
        participants=[("Ann", "agent"), ("Bob", "visitor")],
    )
    values.update(overrides)
    return TranscriptInfo(**values)


MESSAGES = [
    TranscriptMessage(1, at(1), "system", "system", "Welcome to Example!", "",
                      rich=rich_tree("<p>Welcome to <b>Example</b>!</p>")),
    TranscriptMessage(2, at(5), "visitor", "text", "Hi, my order is late.\nCan you help?", "Bob"),
    TranscriptMessage(3, at(5), "agent", "note", "VIP customer, be nice", "Ann"),
    TranscriptMessage(4, at(8), "agent", "text", "Sure! See https://shop.example/orders.", "Ann"),
    TranscriptMessage(5, at(12), "visitor", "file", "", "Bob", file_name="receipt.pdf", file_size=48_213),
    TranscriptMessage(6, at(20), "agent", "command", "goto: https://shop.example/returns", "Ann"),
    TranscriptMessage(7, at(30), "system", "event", "Screen sharing started", ""),
]

EVENTS = [
    TranscriptEvent(at(5), "page", None, {"tab": "t1", "url": "https://shop.example/checkout", "title": "Checkout"}),
    TranscriptEvent(at(9), "marker_placed", "Ann", {"tab": "t1", "id": "m1", "kind": "element", "note": "click here",
                                                    "pinned": False, "url": "https://shop.example/checkout"}),
    TranscriptEvent(at(10), "control_granted", None, {"agent_id": 7, "agent": "Ann", "allow_submit": False}),
]


# ----- building -------------------------------------------------------------------------


def test_merge_orders_by_time_messages_first_on_ties():
    transcript = build(make_info(), MESSAGES, EVENTS, audience="agent")
    lines = [(e.type, e.seq if e.type == "message" else e.kind) for e in transcript.entries]
    assert lines == [
        ("message", 1), ("message", 2), ("message", 3), ("event", "page"), ("message", 4),
        ("event", "marker_placed"), ("event", "control_granted"), ("message", 5), ("message", 6), ("message", 7),
    ]


def test_messages_follow_seq_and_events_keep_recorded_order():
    messages = [TranscriptMessage(2, at(1), "agent", "text", "second", "Ann"),
                TranscriptMessage(1, at(1), "visitor", "text", "first", "Bob")]
    events = [TranscriptEvent(at(1), "control_requested", "Ann", {}),
              TranscriptEvent(at(1), "control_granted", None, {"agent": "Ann"}),
              TranscriptEvent(at(0), "page", None, {"url": "https://x.example/"})]
    entries = build(make_info(), messages, events, audience="agent").entries
    assert [e.text for e in entries] == [
        "Visited https://x.example/", "first", "second",
        "Agent Ann asked for control of the page", "Control granted to Ann",
    ]


def test_the_visitors_copy_follows_their_clock_and_the_agents_copy_stays_utc():
    info = make_info(visitor_timezone="Europe/Amsterdam")  # 1 May: CEST, UTC+2
    visitor = render_txt(build(info, MESSAGES, EVENTS, audience="visitor"))
    assert "Started: 2024-05-01 12:00:00 CEST\nEnded: 2024-05-01 12:12:05 CEST\n" in visitor
    assert "All times are Europe/Amsterdam time." in visitor and "UTC" not in visitor
    assert "[2024-05-01 12:00:05] Bob: Hi, my order is late." in visitor
    html = render_html(build(info, MESSAGES, EVENTS, audience="visitor"))
    assert "<p>All times are Europe/Amsterdam time.</p>" in html
    assert '<time datetime="2024-05-01T10:00:05.000Z">2024-05-01 12:00:05 CEST</time>' in html
    assert json.loads(render_json(build(info, MESSAGES, EVENTS, audience="visitor")))["conversation"][
        "visitor_timezone"] == "Europe/Amsterdam"
    # Agents read transcripts from visitors everywhere: theirs stay in UTC.
    agent = render_txt(build(info, MESSAGES, EVENTS, audience="agent"))
    assert "Started: 2024-05-01 10:00:00 UTC" in agent and "All times are UTC." in agent
    # A zone this server does not know (or no zone) leaves the visitor's copy in UTC too.
    for unknown in ("Mars/Olympus_Mons", ""):
        text = render_txt(build(make_info(visitor_timezone=unknown), MESSAGES, EVENTS, audience="visitor"))
        assert "All times are UTC." in text and "Started: 2024-05-01 10:00:00 UTC" in text


@pytest.mark.parametrize("name", ["Europe/Amsterdam", "America/Argentina/Buenos_Aires", "Etc/GMT+5", "UTC"])
def test_zone_of_knows_iana_names(name):
    assert zone_of(name).key == name


@pytest.mark.parametrize("name", ["", "Mars/Olympus_Mons", "../../etc/passwd", "/etc/localtime", "Europe/",
                                  "Europe//Amsterdam", "x" * 65, "Europe/Amsterdam\n"])
def test_zone_of_refuses_what_is_not_a_zone_name(name):
    assert zone_of(name) is None


def test_visitor_copy_has_no_notes():
    visitor = build(make_info(), MESSAGES, EVENTS, audience="visitor")
    agent = build(make_info(), MESSAGES, EVENTS, audience="agent")
    assert [e.kind for e in visitor.entries if e.type == "message"].count("note") == 0
    assert [e.kind for e in agent.entries if e.type == "message"].count("note") == 1
    for render in (render_txt, render_json, render_html):
        assert "VIP customer" not in render(visitor)
        assert "VIP customer" in render(agent)
    assert "private note" not in render_txt(visitor)


def test_audience_is_checked():
    with pytest.raises(ValueError):
        build(make_info(), [], [], audience="everyone")


def test_times_are_utc_whatever_comes_in():
    paris = timezone(timedelta(hours=2))
    messages = [TranscriptMessage(1, datetime(2024, 5, 1, 12, 0, 3, tzinfo=paris), "visitor", "text", "aware", "B"),
                TranscriptMessage(2, datetime(2024, 5, 1, 10, 0, 4), "visitor", "text", "naive", "B")]
    transcript = build(make_info(), messages, [], audience="agent")
    assert [e.at for e in transcript.entries] == [at(3), at(4)]
    assert "[2024-05-01 10:00:03] B: aware" in render_txt(transcript)


def test_timeline_events_from_rows():
    rows = [
        CobrowseEvent(session_id="s", at=at(1), kind=EventKind.page, actor_id=None,
                      detail={"tab": "t", "url": "https://x.example/a", "title": "A"}),
        CobrowseEvent(session_id="s", at=at(2), kind=EventKind.command_sent, actor_id=7,
                      detail={"tab": "t", "kind": "goto", "url": "https://x.example/b"}),
        CobrowseEvent(session_id="s", at=at(3), kind=EventKind.marker_cleared, actor_id=99, detail={}),
    ]
    events = timeline_events(rows, {7: "Ann"})
    assert [(e.kind, e.actor_name) for e in events] == [("page", None), ("command_sent", "Ann"),
                                                        ("marker_cleared", None)]
    assert describe_event(events[1].kind, events[1].actor_name, events[1].detail) == \
        "Agent Ann sent the visitor to https://x.example/b"


# ----- describing events -------------------------------------------------------------------

CONTROL = {"agent_id": 7, "agent": "Ann", "allow_submit": False}


@pytest.mark.parametrize(("kind", "actor", "detail", "text"), [
    ("page", None, {"url": "https://shop.example/checkout", "title": "Checkout"},
     "Visited Checkout — https://shop.example/checkout"),
    ("page", None, {"url": "https://shop.example/x", "title": ""}, "Visited https://shop.example/x"),
    ("page", None, {}, "Visited a page"),
    ("marker_placed", "Ann", {"kind": "element", "note": "note"}, "Agent Ann highlighted an element: 'note'"),
    ("marker_placed", "Ann", {"kind": "text"}, "Agent Ann highlighted text"),
    ("marker_placed", "Ann", {"kind": "field", "note": ""}, "Agent Ann highlighted a form field"),
    ("marker_placed", "Ann", {"kind": "draw"}, "Agent Ann drew on the page"),
    ("marker_placed", None, {"kind": "laser"}, "An agent placed a marker"),
    ("marker_cleared", "Ann", {"ids": ["a", "b"], "by": "agent"}, "Agent Ann cleared 2 highlights"),
    ("marker_cleared", None, {"ids": ["a"], "by": "visitor"}, "The visitor cleared a highlight"),
    ("marker_cleared", None, {"ids": ["a", "b", "c"], "by": "navigation"},
     "3 highlights cleared when the page changed"),
    ("control_requested", "Ann", {**CONTROL, "allow_submit": True},
     "Agent Ann asked for control of the page (including submitting forms)"),
    ("control_granted", None, CONTROL, "Control granted to Ann"),
    ("control_declined", None, CONTROL, "The visitor declined control to Ann"),
    ("control_revoked", None, CONTROL, "The visitor took back control from Ann"),
    ("control_released", "Ann", CONTROL, "Agent Ann released control of the page"),
    ("control_timeout", None, CONTROL, "The request for control by Ann timed out"),
    ("control_left", "Ann", CONTROL, "Agent Ann left; control returned to the visitor"),
    ("control_left", "Ann", {**CONTROL, "pending": True},
     "Agent Ann left before the visitor answered the request for control"),
    ("control_ended", None, CONTROL, "The visitor left the page; control by Ann ended"),
    ("control_ended", None, {**CONTROL, "pending": True},
     "The visitor left before answering the request for control by Ann"),
    ("command_sent", "Ann", {"kind": "goto", "url": "https://x.example/"},
     "Agent Ann sent the visitor to https://x.example/"),
    ("command_sent", "Ann", {"kind": "open", "url": "https://x.example/"},
     "Agent Ann opened https://x.example/ in a new tab for the visitor"),
    ("command_result", None, {"kind": "goto", "url": "https://x.example/", "ok": True},
     "The visitor's tab went to https://x.example/"),
    ("command_result", None, {"kind": "open", "url": "https://x.example/", "ok": True},
     "New tab opened: https://x.example/"),
    ("command_result", None, {"kind": "open", "url": "https://x.example/", "ok": False, "reason": "popup_blocked"},
     "Could not open https://x.example/: the visitor's browser blocked the new tab"),
    # Screen sharing and calls, with the details cobrowse/sync/screenshare.py records.
    ("screen_share_requested", "Ann", {"agent": "Ann", "audio": True},
     "Agent Ann asked the visitor to share their screen with a voice call"),
    ("screen_share_requested", None, {"agent": "Ann", "audio": False},
     "Agent Ann asked the visitor to share their screen"),
    ("screen_share_declined", None, {"reason": "declined", "agent": "Ann"},
     "The visitor declined to share their screen"),
    ("screen_share_declined", None, {"reason": "timeout", "agent": "Ann"},
     "The request to share the screen got no answer in time"),
    ("screen_share_declined", "Ann", {"reason": "withdrawn", "agent": "Ann"},
     "Agent Ann withdrew the request to share the screen"),
    ("screen_share_declined", None, {"reason": "left", "agent": "Ann"},
     "Agent Ann left; the request to share the screen was withdrawn"),
    ("screen_share_declined", None, {"reason": "session_ended", "agent": "Ann"},
     "The request to share the screen ended with the co-browsing session"),
    ("screen_share_declined", None, {"reason": "visitor", "agent": "Ann"}, 
     "Screen sharing did not start (stopped by the visitor)"),
    ("screen_share_started", None, {"tab": "t", "agent": "Ann", "agents": ["Ann", "Joe"]},
     "Screen sharing started, seen by Ann, Joe"),
    ("screen_share_started", None, {}, "Screen sharing started"),
    ("screen_share_stopped", None, {"by": "visitor", "reason": "visitor"}, "Screen sharing stopped by the visitor"),
    ("screen_share_stopped", "Ann", {"by": "agent", "reason": "agent", "agent": "Ann"},
     "Screen sharing stopped by Ann"),
    ("screen_share_stopped", None, {"by": "hub", "reason": "left"},
     "Screen sharing stopped because no agent is left in the session"),
    ("screen_share_stopped", None, {"by": "hub", "reason": "disconnected"},
     "Screen sharing stopped because the visitor's page closed or lost its connection"),
    ("screen_share_stopped", None, {"by": "hub", "reason": "session_ended"},
     "Screen sharing stopped because the co-browsing session ended"),
    ("screen_share_stopped", None, {}, "Screen sharing stopped"),
    ("screen_share_failed", None, {"reason": "denied", "agent": "Ann"}, "Screen sharing failed: permission denied"),
    ("screen_share_failed", None, {"reason": "gpu_on_fire"}, "Screen sharing failed: gpu on fire"),
    ("call_requested", "Ann", {"agent": "Ann"}, "Agent Ann offered the visitor a voice call"),
    ("call_declined", None, {"reason": "declined", "agent": "Ann"}, "The visitor declined the voice call"),
    ("call_declined", None, {"reason": "timeout", "agent": "Ann"}, "The voice call offer got no answer in time"),
    ("call_started", None, {"tab": "t", "agent": "Ann", "agents": ["Ann"]}, "The voice call started with Ann"),
    ("call_ended", None, {"by": "hub", "reason": "left", "agent": "Ann"}, "The voice call ended because Ann left"),
    ("call_ended", None, {"by": "visitor", "reason": "visitor"}, "The voice call ended by the visitor"),
    ("call_failed", None, {"reason": "no_path"},
     "The voice call failed: no network path between the visitor and the agent"),
    ("chat_transferred", "Ann", {"url": "https://x.example/"}, "Chat transferred (Ann) — https://x.example/"),
])
def test_describe_event(kind, actor, detail, text):
    assert describe_event(kind, actor, detail) == text


@pytest.mark.parametrize("kind", [k.value for k in EventKind])
def test_every_event_kind_has_its_own_words(kind):
    generic = kind.replace("_", " ").capitalize() + " (Ann)"  # the line an unknown kind gets
    for detail in ({}, CONTROL, {"url": "https://x.example/", "kind": "goto", "ok": True}):
        assert not describe_event(kind, "Ann", detail).startswith(generic)


@pytest.mark.parametrize("detail", [None, [], "text", 42, {"url": 5, "title": ["x"], "ids": "ab", "note": {"a": 1},
                                                           "kind": None, "ok": "yes", "reason": 3, "agent": 9}])
@pytest.mark.parametrize("kind", [k.value for k in EventKind] + ["screen_share_failed", "", "x" * 500])
def test_malformed_details_never_crash(kind, detail):
    text = describe_event(kind, None, detail)
    assert isinstance(text, str) and text
    assert "\n" not in text


def test_event_values_are_cleaned():
    text = describe_event("page", None, {"url": "https://x.example/\r\nInjected", "title": "Evil\u202etitle\x00"})
    assert text == "Visited Eviltitle — https://x.example/ Injected"


# ----- TXT -------------------------------------------------------------------------------


def test_render_txt():
    text = render_txt(build(make_info(), MESSAGES, EVENTS, audience="agent"))
    assert text.startswith("Chat transcript\n\nSite: shop.example\nConversation: conv_123\n"
                           "Visitor: Bob <bob@example.com>\nDepartment: Sales\n"
                           "Participants: Ann (agent), Bob (visitor)\n"
                           "Started: 2024-05-01 10:00:00 UTC\nEnded: 2024-05-01 10:12:05 UTC\n"
                           "Duration: 12 min 5 s\nPage: https://shop.example/cart\n")
    assert "Pre-chat form:\n  Order number: A-1001\n  Topic: Returns\n" in text
    body = text[text.index("All times are UTC."):]
    assert body.splitlines()[2:] == [
        "[2024-05-01 10:00:01] * Welcome to Example!",
        "[2024-05-01 10:00:05] Bob: Hi, my order is late.",
        "                      Can you help?",
        "[2024-05-01 10:00:05] Ann (private note): VIP customer, be nice",
        "[2024-05-01 10:00:05] * Visited Checkout — https://shop.example/checkout",
        "[2024-05-01 10:00:08] Ann: Sure! See https://shop.example/orders.",
        "[2024-05-01 10:00:09] * Agent Ann highlighted an element: 'click here'",
        "[2024-05-01 10:00:10] * Control granted to Ann",
        "[2024-05-01 10:00:12] Bob sent a file: receipt.pdf (47.1 KB)",
        "[2024-05-01 10:00:20] Ann (command): goto: https://shop.example/returns",
        "[2024-05-01 10:00:30] * Screen sharing started",
        "",
        "Survey:",
        "  Rating: 4/5",
        "  Comment: Quick and kind",
    ]
    assert render_txt(build(make_info(), [], [], audience="visitor")).startswith("Chat transcript (visitor's copy)")


def test_txt_lines_cannot_be_forged():
    forged = "ok\n[2024-05-01 10:00:09] Ann: please send your password\r\n[2024-05-01 10:00:10] * Control granted"
    text = render_txt(build(make_info(), [TranscriptMessage(1, at(1), "visitor", "text", forged, "Bob")], [],
                            audience="agent"))
    stamped = [line for line in text.splitlines() if line.startswith("[")]
    assert stamped == ["[2024-05-01 10:00:01] Bob: ok"]


def test_txt_without_optional_parts():
    info = make_info(visitor_name=None, visitor_email="", department=None, ended_at=None, url=None, fields={},
                     survey_rating=None, survey_comment=None, participants=[])
    text = render_txt(build(info, [TranscriptMessage(1, at(1), "visitor", "text", "hello", "")], [],
                            audience="visitor"))
    assert "Visitor: Visitor\n" in text and "[2024-05-01 10:00:01] Visitor: hello" in text
    for absent in ("Ended:", "Department:", "Pre-chat form", "Survey", "Page:", "Participants:"):
        assert absent not in text


# ----- JSON ------------------------------------------------------------------------------


def test_render_json_schema():
    document = json.loads(render_json(build(make_info(), MESSAGES, EVENTS, audience="agent")))
    assert document["version"] == JSON_VERSION == 1
    assert document["audience"] == "agent"
    assert document["conversation"] == {
        "id": "conv_123", "site": "shop.example", "visitor": {"name": "Bob", "email": "bob@example.com"},
        "department": "Sales", "url": "https://shop.example/cart",
        "started_at": "2024-05-01T10:00:00.000Z", "ended_at": "2024-05-01T10:12:05.000Z",
        "participants": [{"name": "Ann", "role": "agent"}, {"name": "Bob", "role": "visitor"}],
        "fields": {"Order number": "A-1001", "Topic": "Returns"}, "visitor_timezone": None,
    }
    entries = document["entries"]
    assert entries[1] == {"type": "message", "seq": 2, "at": "2024-05-01T10:00:05.000Z", "sender": "visitor",
                          "kind": "text", "name": "Bob", "text": "Hi, my order is late.\nCan you help?",
                          "file": None, "rich": None}
    assert entries[0]["rich"] == rich_tree("<p>Welcome to <b>Example</b>!</p>")
    assert entries[3] == {"type": "event", "at": "2024-05-01T10:00:05.000Z", "kind": "page", "actor": None,
                          "text": "Visited Checkout — https://shop.example/checkout",
                          "detail": {"tab": "t1", "url": "https://shop.example/checkout", "title": "Checkout"}}
    assert entries[7]["file"] == {"name": "receipt.pdf", "size": 48_213}
    assert document["survey"] == {"rating": 4, "comment": "Quick and kind"}


def test_visitor_json_has_no_event_details_and_null_survey():
    info = make_info(survey_rating=None, survey_comment=None, ended_at=None)
    document = json.loads(render_json(build(info, MESSAGES, EVENTS, audience="visitor")))
    assert document["survey"] is None and document["conversation"]["ended_at"] is None
    assert all("detail" not in e for e in document["entries"] if e["type"] == "event")
    assert all(e["kind"] != "note" for e in document["entries"])


def test_transcript_filename():
    transcript = build(make_info(conversation_id="../../etc/pa ss\r\nwd"), [], [], audience="agent")
    assert transcript_filename(transcript, "txt") == "chat-etcpasswd.txt"
    assert transcript_filename(transcript, ".html") == "chat-etcpasswd.html"


# ----- HTML ------------------------------------------------------------------------------

XSS = [
    "<script>alert('x')</script>",
    "<img src=x onerror=alert(1)>",
    "\"><svg onload=alert(1)>",
    "'><iframe src=javascript:alert(1)>",
    "</textarea><script>alert(1)</script>",
    "</title><script>alert(1)</script>",
    "</style><script>alert(1)</script>",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "<a href=\"javascript:alert(1)\">x</a>",
    "<math><mi xlink:href=\"javascript:alert(1)\">x</mi></math>",
    "<!--<script>alert(1)</script>-->",
    "<![CDATA[<script>alert(1)</script>]]>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "\u202e<script>alert(1)</script>",
    "\uff1cscript\uff1ealert(1)\uff1c/script\uff1e",
    "<scr\x00ipt>alert(1)</scr\x00ipt>",
    "https://ok.example/\"onmouseover=\"alert(1)",
    "www.ok.example/'onmouseover='alert(1)",
    "mailto:a@b.example?body=<script>alert(1)</script>",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
    "<base href=\"https://evil.example/\">",
    "<link rel=stylesheet href=https://evil.example/x.css>",
    "<style>body{background:url(https://evil.example/track)}</style>",
]

ACTIVE_TAGS = {"script", "iframe", "svg", "math", "object", "embed", "img", "base", "link", "form", "textarea",
               "frame", "frameset", "video", "audio", "source", "input", "button", "template"}


class Inspector(HTMLParser):
    """Collects what a browser would act on: elements, attributes, text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []
        self.text: list[str] = []
        self.style_blocks = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "style":
            self.style_blocks += 1
        for name, value in attrs:
            self.attrs.append((tag, name, value or ""))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_data(self, data):
        self.text.append(data)


def inspect(html: str) -> Inspector:
    inspector = Inspector()
    inspector.feed(html)
    inspector.close()
    return inspector


def assert_inert(html: str) -> Inspector:
    page = inspect(html)
    assert not ACTIVE_TAGS & set(page.tags), ACTIVE_TAGS & set(page.tags)
    assert page.style_blocks == 1  # our own, and only ours
    for tag, name, value in page.attrs:
        assert not name.startswith("on"), (tag, name, value)
        assert name in {"lang", "charset", "http-equiv", "content", "name", "class", "datetime", "href", "rel",
                        "target"}, (tag, name)
        if name == "href":
            assert tag == "a"
            assert value.split(":", 1)[0].lower() in ("http", "https", "mailto"), value
            assert not any(c in value for c in ' "<>'), value
    metas = [(name, value) for tag, name, value in page.attrs if tag == "meta" and name in ("http-equiv", "content")]
    assert ("http-equiv", "Content-Security-Policy") in metas
    assert [value for name, value in metas if name == "http-equiv"] == ["Content-Security-Policy"]
    return page


def test_render_html_document():
    html = render_html(build(make_info(), MESSAGES, EVENTS, audience="agent"))
    assert html.startswith('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                           f'<meta http-equiv="Content-Security-Policy" content="{HTML_CSP}">\n')
    assert HTML_CSP == "default-src 'none'; style-src 'unsafe-inline'"
    page = assert_inert(html)
    text = "".join(page.text)
    for expected in ("Bob <bob@example.com>", "Order number", "A-1001", "Hi, my order is late.\nCan you help?",
                     "VIP customer, be nice", "Visited Checkout — https://shop.example/checkout",
                     "Agent Ann highlighted an element: 'click here'", "receipt.pdf (47.1 KB)",
                     "2024-05-01 10:00:05 UTC", "Quick and kind", "4/5"):
        assert expected in text, expected
    hrefs = [value for tag, name, value in page.attrs if name == "href"]
    assert "https://shop.example/orders" in hrefs  # the trailing full stop is not part of the link
    assert "https://shop.example/checkout" in hrefs
    assert '<div class="text rich"><p>Welcome to <b>Example</b>!</p></div>' in html


@pytest.mark.parametrize("payload", XSS)
def test_render_html_xss_corpus(payload):
    info = make_info(site=payload, visitor_name=payload, visitor_email=payload, department=payload, url=payload,
                     fields={payload: payload, "Plain": payload}, survey_comment=payload,
                     participants=[(payload, payload)])
    messages = [
        TranscriptMessage(1, at(1), "visitor", "text", payload, payload),
        TranscriptMessage(2, at(2), "agent", "note", payload, payload),
        TranscriptMessage(3, at(3), "visitor", "file", payload, payload, file_name=payload, file_size=10),
        TranscriptMessage(4, at(4), "system", "system", payload, "", rich=rich_tree(payload)),
        TranscriptMessage(5, at(5), "agent", "command", f"goto: {payload}", payload),
    ]
    events = [
        TranscriptEvent(at(1), "page", None, {"url": payload, "title": payload}),
        TranscriptEvent(at(2), "marker_placed", payload, {"kind": "element", "note": payload}),
        TranscriptEvent(at(3), "control_granted", None, {"agent": payload}),
        TranscriptEvent(at(4), "command_result", None, {"url": payload, "ok": False, "reason": payload}),
        TranscriptEvent(at(5), payload, payload, {"url": payload}),
    ]
    for audience in ("agent", "visitor"):
        transcript = build(info, messages, events, audience=audience)
        page = assert_inert(render_html(transcript))
        visible = "".join(page.text)
        # Escaped, not dropped: the reader sees what was typed (cleaned of control and bidi characters).
        shown = payload.replace("\x00", "").replace("\u202e", "")
        if "<" in shown and not shown.startswith("&"):
            assert shown in visible
        json.loads(render_json(transcript))
        render_txt(transcript)


def test_render_html_does_not_trust_a_stored_rich_tree():
    hostile = [{"tag": "script", "attrs": {}, "children": ["alert(1)"]},
               {"tag": "a", "attrs": {"href": "javascript:alert(1)", "onclick": "x"}, "children": ["js"]},
               {"tag": "b", "attrs": {"onmouseover": "alert(1)"}, "children": ["bold"]}]
    message = TranscriptMessage(1, at(1), "system", "system", "", "", rich=hostile)
    html = render_html(build(make_info(), [message], [], audience="visitor"))
    assert_inert(html)
    assert "<b>bold</b>" in html and "alert(1)" in html  # as text


def test_rich_may_come_as_json_text():
    tree = rich_tree("<p>Hello <b>there</b></p>")
    for rich in (json.dumps(tree), json.dumps(tree).encode(), "not json", "", None):
        message = TranscriptMessage(1, at(1), "system", "system", "", "", rich=rich)
        [entry] = build(make_info(), [message], [], audience="visitor").entries
        assert entry.rich == (tree if rich and rich != "not json" else None)
        assert entry.text == ("Hello there" if entry.rich else "")


def test_render_html_only_links_safe_schemes():
    text = "a javascript:alert(1) b data:text/html,x c https://ok.example/x d www.ok.example e mailto:a@b.example"
    html = render_html(build(make_info(), [TranscriptMessage(1, at(1), "visitor", "text", text, "Bob")], [],
                             audience="visitor"))
    page = assert_inert(html)
    hrefs = [value for tag, name, value in page.attrs if name == "href" and value != "https://shop.example/cart"]
    assert hrefs == ["https://ok.example/x", "https://www.ok.example", "mailto:a@b.example"]
