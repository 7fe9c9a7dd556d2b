"""The visitor's chat endpoints, on the site's own origin under the reserved prefix.

No cookies: the visitor proves a conversation is theirs with its chat token
in the ``X-Cobrowse-Chat`` header (the widget keeps it in localStorage), so a
third-party page cannot make a visitor's browser act here (no CSRF), and
nothing of ours travels to the site upstream.

  GET  chat/config            pre-chat form, departments, whether anyone is available
  POST chat/files             upload one file into the conversation
  GET  chat/files/{id}        download a file of the conversation
  GET  chat/transcript.txt    the visitor's transcript (no private notes)
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote, unquote

from aiohttp import web

from chat import archive
from chat.files import FileRejected, served_type

from .chat_runtime import ChatRuntime

log = logging.getLogger("cobrowse.chat.web")

CHAT_KEY = web.AppKey("chat", ChatRuntime)
TOKEN_HEADER = "X-Cobrowse-Chat"
READ_CHUNK = 64 * 1024


def add_visitor_routes(app: web.Application, runtime: ChatRuntime) -> None:
    app[CHAT_KEY] = runtime
    app.router.add_get("/chat/config", chat_config)
    app.router.add_post("/chat/files", upload_file)
    app.router.add_get("/chat/files/{file_id}", download_file)
    app.router.add_get("/chat/transcript.txt", transcript_txt)


def _no_store(response: web.StreamResponse) -> web.StreamResponse:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _error(status: int, code: str, message: str) -> web.Response:
    return _no_store(web.json_response({"error": code, "message": message}, status=status))


async def chat_config(request: web.Request) -> web.Response:
    runtime = request.app[CHAT_KEY]
    options = runtime.options
    hub_chat = runtime.hub_chat
    staffed = hub_chat.available_departments()
    departments = [{"id": d.id, "name": d.name, "available": staffed is None or d.id in staffed}
                   for d in runtime.config.departments]
    fields = [{"name": f.name, "label": f.label, "type": f.type, "options": list(f.options),
               "required": f.required} for f in options.fields]
    return _no_store(web.json_response({
        "enabled": True,
        "prechat": options.prechat,
        "fields": fields,
        "departments": departments,
        "available": hub_chat.available(request.query.get("department", "")),
        "offline": options.offline_enabled,
        "survey": options.survey,
        "max_file_size": options.max_file_size,
        "file_types": list(options.file_types),
    }))


async def _conversation(request: web.Request):
    """The conversation the request's chat token proves, or an HTTP error."""
    runtime = request.app[CHAT_KEY]
    token = request.headers.get(TOKEN_HEADER, "")
    conversation_id = token.partition(".")[0]
    conversation = await runtime.service.get(conversation_id) if conversation_id else None
    if conversation is None or runtime.service.check_token(token, conversation.visitor_id) != conversation.id:
        raise web.HTTPForbidden(text="this conversation is not yours\n", headers={"Cache-Control": "no-store"})
    return conversation


async def upload_file(request: web.Request) -> web.StreamResponse:
    runtime = request.app[CHAT_KEY]
    conversation = await _conversation(request)
    return await receive_upload(request, runtime, conversation.id, uploader="visitor", user_id=None,
                                name_of_sender=conversation.visitor_name)


async def receive_upload(request: web.Request, runtime: ChatRuntime, conversation_id: str, *, uploader: str,
                         user_id: int | None, name_of_sender: str) -> web.Response:
    """Store the request body as a file of the conversation and post it as a message (both sides share this)."""
    client_id = request.headers.get("X-Cobrowse-Message-Id", "")
    name = unquote(request.headers.get("X-Cobrowse-File-Name", ""))
    content_type = request.headers.get("Content-Type", "application/octet-stream")
    limit = runtime.options.max_file_size
    if request.content_length is not None and request.content_length > limit:
        return _error(413, "too_large", f"files can be at most {_size(limit)}")
    conversation = await runtime.service.get(conversation_id)
    if conversation is None:
        return _error(404, "not_found", "no such conversation")
    if conversation.status == "ended":
        return _error(409, "ended", "this chat has ended")
    # A visitor's files: only once an agent has joined, and so many per chat. Without
    # both, anyone who opens a chat could fill the disk, one file after another.
    most = runtime.options.max_visitor_files
    if uploader == "visitor":
        if conversation.status != "active":
            return _error(409, "not_active", "files can be sent once an agent has joined the chat")
        if await runtime.service.files_sent(conversation_id, "visitor", other_than=client_id) >= most:
            return _error(429, "too_many_files", f"at most {most} files can be sent in one chat")

    async def chunks():
        while True:
            chunk = await request.content.read(READ_CHUNK)
            if not chunk:
                return
            yield chunk

    try:
        saved = await runtime.files.save(chunks(), name=name, content_type=content_type)
    except FileRejected as exc:
        status = 413 if exc.code == "too_large" else 415 if exc.code == "bad_type" else 400
        return _error(status, exc.code, exc.message)
    try:
        # Stored and published in seq order with the conversation's other messages (see
        # HubChat.posting); shielded: the client going away must not cut the transaction in half.
        async with runtime.hub_chat.posting(conversation_id):
            # (again, in turn with this chat's other uploads: those sent meanwhile count)
            if uploader == "visitor" and \
                    await runtime.service.files_sent(conversation_id, "visitor", other_than=client_id) >= most:
                await runtime.files.delete(saved.storage_key)
                return _error(429, "too_many_files", f"at most {most} files can be sent in one chat")
            message, created = await asyncio.shield(runtime.service.record_file(
                conversation_id, uploader=uploader, user_id=user_id, name=saved.name, size=saved.size,
                content_type=saved.content_type, storage_key=saved.storage_key, sha256=saved.sha256,
                client_id=client_id, agent_name=name_of_sender))
            if created:
                runtime.hub_chat.file_posted(conversation_id, message)
    except Exception as exc:
        await runtime.files.delete(saved.storage_key)
        code = getattr(exc, "code", None)
        if isinstance(code, str):
            status = 409 if code == "ended" else 400
            return _error(status, code, str(getattr(exc, "message", exc)))
        raise
    if not created:
        await runtime.files.delete(saved.storage_key)  # a retried upload: the first copy is the message's
    else:
        log.info("file %r (%d bytes) sent by %s %s in %s", saved.name, saved.size, uploader,
                 user_id or "", conversation_id)
    wire = runtime.service.wire(message)
    return _no_store(web.json_response({"seq": wire.seq, "id": wire.id, "at": wire.at,
                                        "file": {"id": wire.file.id, "name": wire.file.name,
                                                 "size": wire.file.size, "type": wire.file.type}
                                        if wire.file else None}))


async def download_file(request: web.Request) -> web.StreamResponse:
    runtime = request.app[CHAT_KEY]
    conversation = await _conversation(request)
    record = await runtime.service.file(request.match_info["file_id"])
    if record is None or record.conversation_id != conversation.id:
        raise web.HTTPNotFound(text="no such file\n")
    return file_response(runtime, record)


def file_response(runtime: ChatRuntime, record) -> web.StreamResponse:
    """A stored file as a download: never rendered by the browser on our origin."""
    path = runtime.files.path(record.storage_key)
    if not path.is_file():
        raise web.HTTPGone(text="this file is no longer stored\n")
    ascii_name = record.name.encode("ascii", "replace").decode().replace('"', "'").replace("?", "_")
    headers = {
        "Content-Type": served_type(record.content_type or ""),
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(record.name)}",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
    }
    return web.FileResponse(path, headers=headers)


async def transcript_txt(request: web.Request) -> web.StreamResponse:
    runtime = request.app[CHAT_KEY]
    conversation = await _conversation(request)
    body = await archive.render(runtime.db, runtime.service, conversation.id, audience="visitor", fmt="txt")
    response = web.Response(text=body, content_type="text/plain", charset="utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="chat-{conversation.id[:12]}.txt"'
    return _no_store(response)


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.0f} MB" if n >= 1024 * 1024 else f"{n // 1024} KB"
