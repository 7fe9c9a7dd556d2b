"""Gathers what a transcript tells: the conversation, its messages, and the
timeline of the co-browse sessions that ran during it (pages, markers,
control, commands, screen sharing), then hands them to chat.transcript.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cobrowse.storage import accounts, timeline
from cobrowse.storage.db import Database

from . import transcript as t

PAGE = 500
# Timeline kinds the hub also posts to a linked chat, in plain words (screenshare.chat_text).
CHAT_HOLDS = ("screen_share_", "call_")


async def transcript(db: Database, service, conversation_id: str, *, audience: str) -> t.Transcript:
    conversation = await service.get(conversation_id)
    if conversation is None:
        raise LookupError(conversation_id)
    wired = []
    after = 0
    while True:
        page, more = await service.history(conversation_id, after, notes=audience == "agent", limit=PAGE)
        wired += [service.wire(m) for m in page]
        if not more or not page:
            break
        after = page[-1].seq
    messages = [
        t.TranscriptMessage(seq=m.seq, at=_at(m.at), sender=m.sender, kind=m.kind, text=m.text, name=m.name,
                            file_name=m.file.name if m.file else None, file_size=m.file.size if m.file else None,
                            rich=_rich(m.rich))
        for m in wired
    ]
    names: dict[int, str] = {}

    async def name_of(user_id: int | None) -> str:
        if user_id is None:
            return ""
        if user_id not in names:
            user = await accounts.get_user_by_id(db, user_id)
            names[user_id] = (user.display_name or user.username) if user is not None else f"agent #{user_id}"
        return names[user_id]

    events = []
    for session_id in await service.sessions_of(conversation_id):
        for event in await timeline.list_events(db, session_id):
            kind = str(getattr(event.kind, "value", event.kind))
            if kind.startswith(CHAT_HOLDS):
                continue  # the hub wrote it into this conversation as an event line: once is enough
            events.append(t.TranscriptEvent(at=event.at, kind=str(getattr(event.kind, "value", event.kind)),
                                            actor_name=await name_of(event.actor_id), detail=dict(event.detail)))
    participants = [(p.name, p.role) for p in await service.participants(conversation_id, ever=True)]
    # The questions as the visitor read them ("Order number", not "order"); answers to a
    # question no longer configured keep its name.
    labels = service.field_labels()
    info = t.TranscriptInfo(
        conversation_id=conversation.id, site=conversation.site_host, visitor_name=conversation.visitor_name,
        visitor_email=conversation.visitor_email, department=conversation.department,
        started_at=conversation.created_at, ended_at=conversation.ended_at, url=conversation.url or "",
        fields={labels.get(k) or k: v for k, v in (conversation.fields or {}).items()}, survey_rating=conversation.survey_rating,
        survey_comment=conversation.survey_comment or "", participants=participants,
        visitor_timezone=conversation.visitor_timezone)
    return t.build(info, messages, events, audience=audience)


async def render(db: Database, service, conversation_id: str, *, audience: str, fmt: str) -> str:
    built = await transcript(db, service, conversation_id, audience=audience)
    renderer = {"txt": t.render_txt, "json": t.render_json, "html": t.render_html}[fmt]
    return renderer(built)


def _at(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _rich(raw):
    if raw is None:
        return None
    import msgspec

    return msgspec.json.decode(raw) if isinstance(raw, (msgspec.Raw, bytes)) else raw
