"""Chat transcripts: one ordered account of a conversation, rendered as TXT, JSON or HTML.

:func:`build` merges the conversation's messages with the timeline of its
co-browse sessions (pages, markers, control, commands: ``cobrowse_events``)
and its screen-share and call events, and describes every timeline event in
plain words. It is pure: the caller loads the rows (``timeline_events`` turns
``cobrowse_events`` rows into :class:`TranscriptEvent`) and gets back a
:class:`Transcript`, which the three renderers turn into text.

Audiences: the visitor's copy leaves out private notes (``note`` messages);
the agents' copy has everything, and its JSON keeps each event's raw detail.

Every value in a transcript came from someone who may be hostile (names, form
fields, messages, marker notes, page titles and URLs). The renderers treat all
of it as text: control and bidi characters are removed, the HTML renderer
escapes every value and builds links only for http, https and mailto, and its
document carries a CSP that forbids scripts altogether.
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
from html import escape
from typing import Any, Literal

from .text import (
    LINK_REL,
    clean_line,
    link_href,
    linkify_spans,
    remove_unsafe_chars,
    rich_tree,
    tree_html,
    tree_text,
)

__all__ = [
    "Audience",
    "JSON_VERSION",
    "HTML_CSP",
    "TranscriptInfo",
    "TranscriptMessage",
    "TranscriptEvent",
    "TranscriptEntry",
    "Transcript",
    "timeline_events",
    "describe_event",
    "build",
    "render_txt",
    "render_json",
    "render_html",
    "transcript_filename",
]

Audience = Literal["visitor", "agent"]
JSON_VERSION = 1
HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'"

# Caps on what one line of a transcript shows of a value (the stored values are
# capped already; these keep a malformed event detail from flooding a transcript).
_NAME_LIMIT = 100
_URL_LIMIT = 2048
_NOTE_LIMIT = 500
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*")  # "Europe/Amsterdam", "Etc/GMT+5", "UTC"


# ----- input --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TranscriptInfo:
    """What the transcript's header says about the conversation."""

    conversation_id: str
    site: str
    visitor_name: str | None
    visitor_email: str | None
    department: str | None
    started_at: datetime
    ended_at: datetime | None = None
    url: str | None = None  # the page the visitor started on
    fields: Mapping[str, str] = field(default_factory=dict)  # pre-chat answers, in the form's order
    survey_rating: int | None = None  # 1..5
    survey_comment: str | None = None
    participants: Sequence[tuple[str, str]] = ()  # (name, role)
    visitor_timezone: str = ""  # IANA name from the visitor's browser; their copy shows times in it


@dataclass(frozen=True, slots=True)
class TranscriptMessage:
    seq: int
    at: datetime
    sender: str  # visitor | agent | system
    kind: str  # text | note | file | system | command | event
    text: str
    name: str  # the sender's display name ("" for the visitor's default and system messages)
    file_name: str | None = None
    file_size: int | None = None
    rich: list[Any] | str | None = None  # system messages: the chat.text.rich_tree node tree (or its JSON)


@dataclass(frozen=True, slots=True)
class TranscriptEvent:
    """One timeline event: a ``cobrowse_events`` row, or a screen-share or call event."""

    at: datetime
    kind: str
    actor_name: str | None = None  # the agent who did it; None: the visitor or nobody
    detail: Mapping[str, Any] = field(default_factory=dict)


def timeline_events(rows: Iterable[Any], agent_names: Mapping[int, str]) -> list[TranscriptEvent]:
    """``cobrowse_events`` rows (anything with ``at``, ``kind``, ``actor_id``,
    ``detail``) as transcript events, actors named from ``agent_names`` (user id
    to display name; control events also carry the agent's name in their detail)."""
    events = []
    for row in rows:
        kind = getattr(row.kind, "value", row.kind)
        actor = agent_names.get(row.actor_id) if row.actor_id is not None else None
        events.append(TranscriptEvent(at=row.at, kind=str(kind), actor_name=actor, detail=row.detail or {}))
    return events


# ----- output -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TranscriptEntry:
    """One line of a transcript: a message, or a timeline event described in words."""

    at: datetime  # aware, UTC
    type: Literal["message", "event"]
    kind: str  # the message's kind, or the event's
    text: str  # the message text (plain), or the event's description
    name: str = ""  # who: the sender, or the agent who did it ("" for system lines and unknown actors)
    sender: str = ""  # messages: visitor | agent | system
    seq: int | None = None  # messages
    file_name: str | None = None
    file_size: int | None = None
    rich: list[Any] | None = None
    detail: Mapping[str, Any] | None = None  # events: as recorded


@dataclass(frozen=True, slots=True)
class Transcript:
    info: TranscriptInfo
    audience: Audience
    entries: tuple[TranscriptEntry, ...]


# ----- describing timeline events -----------------------------------------------------


def _detail_text(detail: Mapping[str, Any], key: str, limit: int) -> str:
    value = detail.get(key)
    return clean_line(value, limit) if isinstance(value, str) else ""


def _agent(actor_name: str | None, detail: Mapping[str, Any]) -> str:
    """The agent's name: the actor's, else the one recorded in the detail ('' if none)."""
    if actor_name:
        return clean_line(str(actor_name), _NAME_LIMIT)
    return _detail_text(detail, "agent", _NAME_LIMIT)


def _subject(agent: str) -> str:
    return f"Agent {agent}" if agent else "An agent"


def _object(agent: str) -> str:
    return agent or "an agent"


_MARKER_ACTIONS = {
    "element": "highlighted an element",
    "text": "highlighted text",
    "field": "highlighted a form field",
    "draw": "drew on the page",
}

_REASONS = {
    "denied": "permission denied",
    "unsupported": "not supported by the visitor's browser",
    "no_path": "no network path between the visitor and the agent",
    "error": "an error in the browser",
    "popup_blocked": "the visitor's browser blocked the new tab",
    "refused": "the visitor's page refused it",
    "timeout": "no answer in time",
}


def _reason(detail: Mapping[str, Any]) -> str:
    reason = _detail_text(detail, "reason", 64)
    return _REASONS.get(reason, reason.replace("_", " "))


def _count(detail: Mapping[str, Any]) -> str:
    ids = detail.get("ids")
    n = len(ids) if isinstance(ids, list) else 0
    return "a highlight" if n == 1 else f"{n} highlights" if n else "highlights"


def _with_forms(detail: Mapping[str, Any]) -> str:
    return " (including submitting forms)" if detail.get("allow_submit") is True else ""


# Screen sharing and voice calls (cobrowse/sync/screenshare.py records them): the
# same stages for both, <media>_<stage>.
_MEDIA_STAGES = frozenset({"requested", "declined", "started", "stopped", "ended", "failed"})


def _media_event(screen: bool, stage: str, agent: str, detail: Mapping[str, Any]) -> str:
    thing = "Screen sharing" if screen else "The voice call"
    request = "the request to share the screen" if screen else "the voice call offer"
    reason = _detail_text(detail, "reason", 64)
    if stage == "requested":
        if screen:
            with_call = " with a voice call" if detail.get("audio") is True else ""
            return f"{_subject(agent)} asked the visitor to share their screen{with_call}"
        return f"{_subject(agent)} offered the visitor a voice call"
    if stage == "started":
        if not screen:
            return "The voice call started" + (f" with {agent}" if agent else "")
        agents = detail.get("agents")
        names = [clean_line(n, _NAME_LIMIT) for n in agents if isinstance(n, str)] if isinstance(agents, list) else []
        seen_by = ", ".join(n for n in names if n)
        return "Screen sharing started" + (f", seen by {seen_by}" if seen_by else "")
    if stage == "failed":
        why = _reason(detail)
        return f"{thing} failed" + (f": {why}" if why else "")
    if stage == "declined":
        if reason == "declined":
            return "The visitor declined to share their screen" if screen else "The visitor declined the voice call"
        if reason == "timeout":
            return f"{request.capitalize()} got no answer in time"
        if reason == "withdrawn":
            return f"{_subject(agent)} withdrew {request}"
        if reason == "left":
            return f"{_subject(agent)} left; {request} was withdrawn"
        if reason == "session_ended":
            return f"{request.capitalize()} ended with the co-browsing session"
        # Accepted, then stopped while the visitor was still choosing what to share.
        why = _stop_reason(reason, agent)
        return f"{thing} did not start" + (f" (stopped{why})" if why else "")
    # stopped (screen) / ended (call)
    return ("Screen sharing stopped" if screen else "The voice call ended") + _stop_reason(reason, agent)


def _stop_reason(reason: str, agent: str) -> str:
    if reason == "visitor":
        return " by the visitor"
    if reason == "agent":
        return f" by {_object(agent)}"
    if reason == "left":
        return f" because {agent} left" if agent else " because no agent is left in the session"
    if reason == "disconnected":
        return " because the visitor's page closed or lost its connection"
    if reason == "session_ended":
        return " because the co-browsing session ended"
    return ""


def describe_event(kind: str, actor_name: str | None, detail: Mapping[str, Any] | None) -> str:
    """A timeline event in plain words ("Visited Checkout — https://shop.example/checkout").

    Covers every ``EventKind`` and the screen-share and call events; any other
    kind gets a generic line. A malformed detail gives a vaguer line, never an error.
    """
    detail = detail if isinstance(detail, Mapping) else {}
    kind = str(kind)
    agent = _agent(actor_name, detail)
    url = _detail_text(detail, "url", _URL_LIMIT)

    if kind == "page":
        title = _detail_text(detail, "title", 300)
        if title and url:
            return f"Visited {title} — {url}"
        return f"Visited {title or url or 'a page'}"

    if kind == "marker_placed":
        action = _MARKER_ACTIONS.get(_detail_text(detail, "kind", 16), "placed a marker")
        note = _detail_text(detail, "note", _NOTE_LIMIT)
        return f"{_subject(agent)} {action}" + (f": '{note}'" if note else "")
    if kind == "marker_cleared":
        by = detail.get("by")
        if by == "visitor":
            return f"The visitor cleared {_count(detail)}"
        if by == "navigation":
            return f"{_count(detail).capitalize()} cleared when the page changed"
        return f"{_subject(agent)} cleared {_count(detail)}"

    if kind == "control_requested":
        return f"{_subject(agent)} asked for control of the page{_with_forms(detail)}"
    if kind == "control_granted":
        return f"Control granted to {_object(agent)}{_with_forms(detail)}"
    if kind == "control_declined":
        return f"The visitor declined control to {_object(agent)}"
    if kind == "control_revoked":
        return f"The visitor took back control from {_object(agent)}"
    if kind == "control_released":
        return f"{_subject(agent)} released control of the page"
    if kind == "control_timeout":
        return f"The request for control by {_object(agent)} timed out"
    if kind == "control_left":
        if detail.get("pending") is True:
            return f"{_subject(agent)} left before the visitor answered the request for control"
        return f"{_subject(agent)} left; control returned to the visitor"
    if kind == "control_ended":
        if detail.get("pending") is True:
            return f"The visitor left before answering the request for control by {_object(agent)}"
        return f"The visitor left the page; control by {_object(agent)} ended"

    if kind == "command_sent":
        target = url or "a page"
        if detail.get("kind") == "open":
            return f"{_subject(agent)} opened {target} in a new tab for the visitor"
        return f"{_subject(agent)} sent the visitor to {target}"
    if kind == "command_result":
        target = url or "the page"
        if detail.get("ok") is True:
            if detail.get("kind") == "open":
                return f"New tab opened: {target}"
            return f"The visitor's tab went to {target}"
        reason = _reason(detail)
        return f"Could not open {target}" + (f": {reason}" if reason else "")

    media, _, stage = kind.rpartition("_")
    if media in ("screen_share", "call") and stage in _MEDIA_STAGES:
        return _media_event(media == "screen_share", stage, agent, detail)

    words = clean_line(kind.replace("_", " "), 64) or "event"
    line = words[0].upper() + words[1:]
    return line + (f" ({agent})" if agent else "") + (f" — {url}" if url else "")


# ----- building ------------------------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    # Rows come back aware (UTCDateTime); a naive time here can only mean UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _rich(value: object) -> list[Any] | None:
    """A message's node tree: a list, or its JSON text as a database column may hold it."""
    if isinstance(value, (str, bytes, bytearray)):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, list) and value else None


def _message_entry(message: TranscriptMessage) -> TranscriptEntry:
    rich = _rich(message.rich)
    text = remove_unsafe_chars(message.text or "")
    if not text.strip() and rich is not None:
        text = tree_text(rich)
    return TranscriptEntry(
        at=_utc(message.at), type="message", kind=message.kind, text=text,
        name=clean_line(message.name or "", _NAME_LIMIT), sender=message.sender, seq=message.seq,
        file_name=clean_line(message.file_name, 255) if message.file_name else None,
        file_size=message.file_size, rich=rich,
    )


def _event_entry(event: TranscriptEvent) -> TranscriptEntry:
    detail = event.detail if isinstance(event.detail, Mapping) else {}
    return TranscriptEntry(
        at=_utc(event.at), type="event", kind=str(event.kind),
        text=describe_event(event.kind, event.actor_name, detail),
        name=_agent(event.actor_name, detail), detail=dict(detail),
    )


def build(info: TranscriptInfo, messages: Iterable[TranscriptMessage], events: Iterable[TranscriptEvent], *,
          audience: Audience) -> Transcript:
    """The transcript for ``audience``: messages (in seq order) and events (in time
    order) merged by time, a message first when the two have the same time. The
    visitor's copy has no ``note`` messages."""
    if audience not in ("visitor", "agent"):
        raise ValueError(f"audience must be 'visitor' or 'agent', not {audience!r}")
    kept = [m for m in messages if not (audience == "visitor" and m.kind == "note")]
    message_entries = [_message_entry(m) for m in sorted(kept, key=lambda m: m.seq)]
    event_entries = sorted((_event_entry(e) for e in events), key=lambda e: e.at)  # stable: recorded order on ties
    # heapq.merge takes from the first iterable first on equal keys: messages before events.
    merged = heapq.merge(message_entries, event_entries, key=lambda entry: entry.at)
    return Transcript(info=info, audience=audience, entries=tuple(merged))


# ----- shared rendering helpers --------------------------------------------------------


def _plain(value: object) -> str:
    return remove_unsafe_chars(value if isinstance(value, str) else "" if value is None else str(value))


def _line(value: object, limit: int = 1000) -> str:
    return clean_line(_plain(value), limit)


def zone_of(name: str) -> ZoneInfo | None:
    """The time zone called ``name`` (IANA, as browsers give it), or None: empty, malformed or unknown here."""
    if not name or len(name) > 64 or not _ZONE_NAME.fullmatch(name):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _clock(transcript: Transcript) -> ZoneInfo | None:
    """Whose clock the times follow: the visitor's own in their copy, when known; UTC otherwise
    (agents compare transcripts from visitors everywhere)."""
    return zone_of(transcript.info.visitor_timezone) if transcript.audience == "visitor" else None


def _stamp(moment: datetime, zone: ZoneInfo | None = None) -> str:
    if zone is None:
        return _utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC")
    return _utc(moment).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def _times_note(zone: ZoneInfo | None) -> str:
    return f"All times are {zone.key} time." if zone is not None else "All times are UTC."


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return _utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _duration(info: TranscriptInfo) -> str:
    if info.ended_at is None:
        return ""
    seconds = max(0, int((_utc(info.ended_at) - _utc(info.started_at)).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def _size(size: int | None) -> str:
    if size is None or size < 0:
        return ""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def _sender_name(entry: TranscriptEntry, info: TranscriptInfo) -> str:
    if entry.name:
        return entry.name
    if entry.sender == "visitor":
        return _line(info.visitor_name, _NAME_LIMIT) or "Visitor"
    if entry.sender == "agent":
        return "Agent"
    return ""


def _visitor(info: TranscriptInfo) -> str:
    name = _line(info.visitor_name, _NAME_LIMIT) or "Visitor"
    email = _line(info.visitor_email, 320)
    return f"{name} <{email}>" if email else name


def _pairs(participants: Sequence[Sequence[str]]) -> list[tuple[str, str]]:
    """(name, role) pairs, tolerating a missing role."""
    return [(tuple(p) + ("", ""))[:2] for p in participants]  # type: ignore[misc]


def _participants(info: TranscriptInfo) -> str:
    people = []
    for name, role in _pairs(info.participants):
        name, role = _line(name, _NAME_LIMIT), _line(role, 32)
        if name:
            people.append(f"{name} ({role})" if role else name)
    return ", ".join(people)


def _survey_rating(info: TranscriptInfo) -> str:
    rating = info.survey_rating
    return f"{rating}/5" if isinstance(rating, int) and not isinstance(rating, bool) else ""


def _has_survey(info: TranscriptInfo) -> bool:
    return bool(_survey_rating(info) or _plain(info.survey_comment).strip())


def _header(info: TranscriptInfo, zone: ZoneInfo | None = None) -> list[tuple[str, str]]:
    """The header's (label, value) rows, empty values left out."""
    rows = [
        ("Site", _line(info.site, 255)),
        ("Conversation", _line(info.conversation_id, 128)),
        ("Visitor", _visitor(info)),
        ("Department", _line(info.department, _NAME_LIMIT)),
        ("Participants", _participants(info)),
        ("Started", _stamp(info.started_at, zone)),
        ("Ended", _stamp(info.ended_at, zone) if info.ended_at else ""),
        ("Duration", _duration(info)),
        ("Page", _line(info.url, _URL_LIMIT)),
    ]
    return [(label, value) for label, value in rows if value]


def _fields(info: TranscriptInfo) -> list[tuple[str, str]]:
    fields = info.fields if isinstance(info.fields, Mapping) else {}
    return [(_line(label, 200), _plain(value).strip()) for label, value in fields.items()]


def _message_words(entry: TranscriptEntry, info: TranscriptInfo) -> tuple[str, str]:
    """(who, what) for a message line: ``who`` may be '' (system lines)."""
    name = _sender_name(entry, info)
    if entry.kind == "file":
        size = _size(entry.file_size)
        what = f"sent a file: {entry.file_name or 'unnamed'}" + (f" ({size})" if size else "")
        caption = entry.text.strip()
        return name, what + (f"\n{caption}" if caption else "")
    if entry.kind == "note":
        return f"{name} (private note)", entry.text
    if entry.kind == "command":
        return f"{name} (command)" if name else "Command", entry.text
    if entry.kind in ("system", "event") or entry.sender == "system":
        return "", entry.text
    return name, entry.text


def transcript_filename(transcript: Transcript, extension: str) -> str:
    """``chat-<conversation>.<extension>``, safe in a Content-Disposition header."""
    conversation = re.sub(r"[^A-Za-z0-9_-]", "", transcript.info.conversation_id)[:64] or "transcript"
    return f"chat-{conversation}.{extension.lstrip('.')}"


# ----- TXT ------------------------------------------------------------------------------


def _indent_rest(text: str, indent: str) -> str:
    # Continuation lines are indented so that no message can forge a line that
    # looks like another timestamped entry.
    return text.replace("\n", "\n" + indent)


def render_txt(transcript: Transcript) -> str:
    """Plain text, UTF-8, ``\\n`` line ends: the header, the pre-chat answers, one
    entry per line (continuations indented), the survey."""
    info = transcript.info
    zone = _clock(transcript)
    out = ["Chat transcript" + (" (visitor's copy)" if transcript.audience == "visitor" else ""), ""]
    for label, value in _header(info, zone):
        out.append(f"{label}: {value}")
    fields = _fields(info)
    if fields:
        out += ["", "Pre-chat form:"]
        out += [f"  {label}: {_indent_rest(value, '    ')}" for label, value in fields]
    out += ["", _times_note(zone), ""]
    for entry in transcript.entries:
        stamp = f"[{_stamp(entry.at, zone).rsplit(' ', 1)[0]}]"
        indent = " " * (len(stamp) + 1)
        if entry.type == "event":
            out.append(f"{stamp} * {_indent_rest(entry.text, indent)}")
            continue
        who, what = _message_words(entry, info)
        if not who:
            out.append(f"{stamp} * {_indent_rest(what, indent)}")
        elif entry.kind == "file":
            out.append(f"{stamp} {who} {_indent_rest(what, indent)}")
        else:
            out.append(f"{stamp} {who}: {_indent_rest(what, indent)}")
    if _has_survey(info):
        out += ["", "Survey:"]
        if _survey_rating(info):
            out.append(f"  Rating: {_survey_rating(info)}")
        comment = _plain(info.survey_comment).strip()
        if comment:
            out.append(f"  Comment: {_indent_rest(comment, '    ')}")
    return "\n".join(out) + "\n"


# ----- JSON ------------------------------------------------------------------------------


def _json_entry(entry: TranscriptEntry, audience: Audience) -> dict[str, Any]:
    if entry.type == "event":
        item: dict[str, Any] = {"type": "event", "at": _iso(entry.at), "kind": entry.kind,
                                "actor": entry.name or None, "text": entry.text}
        if audience == "agent":
            item["detail"] = dict(entry.detail or {})
        return item
    return {
        "type": "message",
        "seq": entry.seq,
        "at": _iso(entry.at),
        "sender": entry.sender,
        "kind": entry.kind,
        "name": entry.name or None,
        "text": entry.text,
        "file": {"name": entry.file_name, "size": entry.file_size} if entry.kind == "file" else None,
        # Round-tripped through the sanitizer: what a consumer gets is a checked tree.
        "rich": rich_tree(tree_html(entry.rich)) if entry.rich else None,
    }


def render_json(transcript: Transcript) -> str:
    """JSON, schema version :data:`JSON_VERSION`. Times are ISO-8601 UTC with
    milliseconds (``2024-05-01T10:00:05.120Z``); absent values are null.

    ``{version, audience, conversation: {id, site, visitor: {name, email},
    department, url, started_at, ended_at, participants: [{name, role}],
    fields: {label: value}, visitor_timezone}, entries: [...], survey: {rating, comment} | null}``;
    an entry is ``{type: "message", seq, at, sender, kind, name, text, file:
    {name, size} | null, rich}`` or ``{type: "event", at, kind, actor, text}``
    (+ ``detail`` in the agents' copy).
    """
    info = transcript.info
    fields = info.fields if isinstance(info.fields, Mapping) else {}
    document = {
        "version": JSON_VERSION,
        "audience": transcript.audience,
        "conversation": {
            "id": info.conversation_id,
            "site": _plain(info.site),
            "visitor": {"name": _plain(info.visitor_name) or None, "email": _plain(info.visitor_email) or None},
            "department": _plain(info.department) or None,
            "url": _plain(info.url) or None,
            "started_at": _iso(info.started_at),
            "ended_at": _iso(info.ended_at),
            "participants": [{"name": _plain(name), "role": _plain(role) or None}
                             for name, role in _pairs(info.participants)],
            "fields": {_plain(k): _plain(v) for k, v in fields.items()},
            "visitor_timezone": info.visitor_timezone if zone_of(info.visitor_timezone) else None,
        },
        "entries": [_json_entry(entry, transcript.audience) for entry in transcript.entries],
        "survey": ({"rating": info.survey_rating, "comment": _plain(info.survey_comment) or None}
                   if _has_survey(info) else None),
    }
    # default=str: an event detail is whatever was recorded; a stray non-JSON value
    # must not make the whole transcript fail.
    return json.dumps(document, ensure_ascii=False, indent=2, default=str) + "\n"


# ----- HTML -------------------------------------------------------------------------------

_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328;
       background: #f6f8fa; margin: 0; }
main { max-width: 760px; margin: 0 auto; padding: 24px 16px 48px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 16px; }
h2 { font-size: 17px; margin: 28px 0 10px; }
table { border-collapse: collapse; }
th, td { text-align: left; vertical-align: top; padding: 3px 12px 3px 0; }
th { color: #57606a; font-weight: 600; white-space: nowrap; }
td { white-space: pre-wrap; overflow-wrap: anywhere; }
ol.log { list-style: none; margin: 0; padding: 0; }
.entry { padding: 6px 10px; margin: 4px 0; border-radius: 6px; }
.entry time { color: #57606a; font-size: 12px; margin-right: 8px; white-space: nowrap; }
.who { font-weight: 600; margin-right: 6px; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; }
.rich { white-space: normal; }
.visitor { background: #eef6ff; }
.agent { background: #f3f3f3; }
.note { background: #fff8c5; border-left: 3px solid #d4a72c; }
.system, .event { color: #57606a; font-style: italic; }
.survey td { white-space: pre-wrap; }
a { color: #0969da; overflow-wrap: anywhere; }
"""


def _h(value: object) -> str:
    return escape(_plain(value), quote=True)


def _linked(text: str) -> str:
    """Escaped text with its http, https and mailto links as anchors."""
    out = []
    for kind, span in linkify_spans(_plain(text)):
        if kind == "url":
            out.append(f'<a href="{escape(link_href(span), quote=True)}" rel="{LINK_REL}">{escape(span)}</a>')
        else:
            out.append(escape(span, quote=True))
    return "".join(out)


def _html_entry(entry: TranscriptEntry, info: TranscriptInfo, zone: ZoneInfo | None = None) -> str:
    time = f'<time datetime="{_iso(entry.at)}">{escape(_stamp(entry.at, zone))}</time>'
    if entry.type == "event":
        return f'<li class="entry event">{time}<span class="text">{_linked(entry.text)}</span></li>'
    who, what = _message_words(entry, info)
    classes = ["entry", entry.kind if entry.kind in ("note", "system", "event", "command", "file") else "message"]
    if entry.sender in ("visitor", "agent", "system") and entry.sender not in classes:
        classes.append(entry.sender)
    if entry.rich and entry.kind == "system":
        body = f'<div class="text rich">{tree_html(entry.rich)}</div>'
    else:
        body = f'<div class="text">{_linked(what)}</div>'
    who_html = f'<span class="who">{_h(who)}</span>' if who else ""
    return f'<li class="{" ".join(classes)}">{time}{who_html}{body}</li>'


def render_html(transcript: Transcript) -> str:
    """A complete standalone HTML document: inline style, no scripts, no external
    resources, a CSP (:data:`HTML_CSP`) that would stop any script anyway, every
    value escaped."""
    info = transcript.info
    title = "Chat transcript" + (f" — {_line(info.site, 255)}" if _line(info.site, 255) else "")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        # First in <head>: a CSP given in a meta element applies only to what follows it.
        f'<meta http-equiv="Content-Security-Policy" content="{HTML_CSP}">',  # our constant: no quotes
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_h(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        "<main>",
        f"<h1>{_h(title)}</h1>",
        '<table class="info">',
    ]
    zone = _clock(transcript)
    for label, value in _header(info, zone):
        cell = _linked(value) if label == "Page" else _h(value)
        parts.append(f"<tr><th>{_h(label)}</th><td>{cell}</td></tr>")
    parts.append("</table>")
    fields = _fields(info)
    if fields:
        parts += ["<h2>Pre-chat form</h2>", '<table class="fields">']
        parts += [f"<tr><th>{_h(label)}</th><td>{_linked(value)}</td></tr>" for label, value in fields]
        parts.append("</table>")
    parts += ["<h2>Conversation</h2>", f"<p>{_h(_times_note(zone))}</p>", '<ol class="log">']
    parts += [_html_entry(entry, info, zone) for entry in transcript.entries]
    parts.append("</ol>")
    if _has_survey(info):
        parts += ['<section class="survey">', "<h2>Survey</h2>", "<table>"]
        if _survey_rating(info):
            parts.append(f"<tr><th>Rating</th><td>{_h(_survey_rating(info))}</td></tr>")
        comment = _plain(info.survey_comment).strip()
        if comment:
            parts.append(f"<tr><th>Comment</th><td>{_linked(comment)}</td></tr>")
        parts += ["</table>", "</section>"]
    parts += ["</main>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"
