"""The console's chat endpoints (login cookie; the console app checks Origin on writes).

  GET    /api/chat/canned                          canned replies this agent may use
  POST   /api/chat/canned                          {scope, name, body, department?, site?}
  PUT    /api/chat/canned/{id}                     {name?, body?}
  DELETE /api/chat/canned/{id}
  GET    /api/chat/offline?state=open|resolved|all messages left while nobody was available
  POST   /api/chat/offline/{id}/resolve
  GET    /api/chat/conversations?state=            recent conversations this agent may open
  GET    /api/chat/conversations/{id}/transcript.{txt,json,html}
  POST   /api/chat/conversations/{id}/files        upload (raw body; see docs/chat.md)
  GET    /api/chat/files/{id}                      download (the conversation's agents only)
  GET    /api/chat/agents                          agents (with their status) and departments to transfer to
  GET    /api/chat/team                            supervisors: every agent's status and load, the chats going on
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from datetime import datetime

from aiohttp import web

from chat import archive

from ..chat_routes import file_response, receive_upload
from ..chat_runtime import ChatRuntime
from ..storage import accounts
from ..sync.hub import AgentIdentity

CurrentAgent = Callable[[web.Request], Awaitable[AgentIdentity | None]]
TEAM_CHATS = 200  # waiting and active chats listed each in the team view, newest first
TRANSCRIPT_TYPES = {"txt": "text/plain", "json": "application/json", "html": "text/html"}


def add_chat_api(app: web.Application, runtime: ChatRuntime, current_agent: CurrentAgent) -> None:
    service = runtime.service

    async def who(request: web.Request) -> AgentIdentity:
        agent = await current_agent(request)
        if agent is None:
            raise web.HTTPUnauthorized(text="log in first\n")
        return agent  # the chat service's permission checks read user_id, name and role

    async def json_body(request: web.Request) -> dict:
        try:
            body = await request.json()
        except ValueError:
            raise _bad("send a JSON object") from None
        if not isinstance(body, dict):
            raise _bad("send a JSON object")
        return body

    async def guarded(call):
        try:
            return await call
        except web.HTTPException:
            raise
        except Exception as exc:
            code = getattr(exc, "code", None)
            if not isinstance(code, str):
                raise
            status = {"not_found": 404, "forbidden": 403, "taken": 409, "ended": 409}.get(code, 400)
            raise _json_error(status, code, str(getattr(exc, "message", exc))) from None

    async def canned_list(request: web.Request) -> web.Response:
        user = await who(request)
        items = await service.canned_for(user, site=request.query.get("site", ""))
        return web.json_response({"canned": [_plain(c) for c in items], "role": user.role})

    async def canned_create(request: web.Request) -> web.Response:
        user = await who(request)
        body = await json_body(request)
        item = await guarded(service.create_canned(
            user, scope=str(body.get("scope", "agent")), name=str(body.get("name", "")),
            body=str(body.get("body", "")), department=str(body.get("department", "")),
            site=str(body.get("site", ""))))
        return web.json_response(_plain(item), status=201)

    async def canned_update(request: web.Request) -> web.Response:
        user = await who(request)
        body = await json_body(request)
        changes = {k: str(body[k]) for k in ("name", "body") if k in body}
        item = await guarded(service.update_canned(user, _int(request.match_info["canned_id"]), **changes))
        return web.json_response(_plain(item))

    async def canned_delete(request: web.Request) -> web.Response:
        user = await who(request)
        await guarded(service.delete_canned(user, _int(request.match_info["canned_id"])))
        return web.json_response({"ok": True})

    async def offline_list(request: web.Request) -> web.Response:
        await who(request)
        state = request.query.get("state", "open")
        if state not in ("open", "resolved", "all"):
            raise _bad("state is open, resolved or all")
        items = await service.offline(state)
        user = await who(request)
        mine = await departments_of(user)
        items = [m for m in items if _in_departments(m.department, mine)]
        return web.json_response({"messages": [_plain(m) for m in items]})

    async def departments_of(user: AgentIdentity) -> set[str] | None:
        """The departments whose messages this agent handles; None: every one (the offers rule)."""
        if user.role != "agent":
            return None
        departments = set(await service.agent_departments(user.user_id))
        return departments or None

    async def offline_resolve(request: web.Request) -> web.Response:
        user = await who(request)
        message_id = _int(request.match_info["message_id"])
        mine = await departments_of(user)
        if mine is not None:
            found = await service.offline_message(message_id)
            if found is None or not _in_departments(found.department, mine):
                raise _json_error(404, "not_found", "no such message")
        item = await guarded(service.resolve_offline(message_id, user))
        return web.json_response(_plain(item) if item is not None else {"ok": True})

    async def conversations(request: web.Request) -> web.Response:
        user = await who(request)
        state = request.query.get("state") or None
        items = await guarded(service.recent(user, state=state))
        return web.json_response({"conversations": [_plain(c) for c in items]})

    async def conversation_for(request: web.Request):
        user = await who(request)
        conversation = await service.get(request.match_info["conversation_id"])
        if conversation is None:
            raise web.HTTPNotFound(text="no such conversation\n")
        if not await service.can_open(conversation, user):
            raise web.HTTPForbidden(text="this conversation is another agent's\n")
        return user, conversation

    async def transcript(request: web.Request) -> web.StreamResponse:
        _, conversation = await conversation_for(request)
        fmt = request.match_info["fmt"]
        body = await archive.render(runtime.db, service, conversation.id, audience="agent", fmt=fmt)
        response = web.Response(text=body, content_type=TRANSCRIPT_TYPES[fmt], charset="utf-8")
        response.headers["Content-Disposition"] = f'attachment; filename="chat-{conversation.id[:12]}.{fmt}"'
        if fmt == "html":
            # Opened from the download, it still can run nothing.
            response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
        return response

    async def upload(request: web.Request) -> web.StreamResponse:
        user, conversation = await conversation_for(request)
        return await receive_upload(request, runtime, conversation.id, uploader="agent", user_id=user.user_id,
                                    name_of_sender=user.name)

    async def download(request: web.Request) -> web.StreamResponse:
        user = await who(request)
        record = await service.file(request.match_info["file_id"])
        if record is None:
            raise web.HTTPNotFound(text="no such file\n")
        conversation = await service.get(record.conversation_id)
        if conversation is None or not await service.can_open(conversation, user):
            raise web.HTTPForbidden(text="not your conversation\n")
        return file_response(runtime, record)

    def statuses() -> dict[int, str]:
        hub_chat = runtime.hub_chat
        return hub_chat.agent_statuses() if hub_chat is not None else {}

    async def agents(request: web.Request) -> web.Response:
        await who(request)
        users = await accounts.list_users(runtime.db)
        status = statuses()
        return web.json_response({
            "agents": [{"id": u.id, "name": u.display_name or u.username, "role": getattr(u.role, "value", u.role),
                        "status": status.get(u.id, "offline")}
                       for u in users if not u.disabled],
            "departments": [{"id": d.id, "name": d.name} for d in runtime.config.departments],
        })

    async def team(request: web.Request) -> web.Response:
        user = await who(request)
        if getattr(user.role, "value", user.role) == "agent":
            raise _json_error(403, "forbidden", "the team view is for supervisors and admins")
        users = await accounts.list_users(runtime.db)
        status = statuses()
        load = await guarded(service.load())
        departments = await guarded(service.departments_of_users())
        going_on = [*await guarded(service.recent(user, state="waiting", limit=TEAM_CHATS)),
                    *await guarded(service.recent(user, state="active", limit=TEAM_CHATS))]
        names = {u.id: u.display_name or u.username for u in users}
        return web.json_response({
            "agents": [{"id": u.id, "name": names[u.id], "role": getattr(u.role, "value", u.role),
                        "status": status.get(u.id, "offline"), "chats": load.get(u.id, 0),
                        "departments": departments.get(u.id, [])}
                       for u in users if not u.disabled],
            "chats": [{**_plain(c), "agent": names.get(c.agent_id, "") if c.agent_id else ""}
                      for c in sorted(going_on, key=lambda c: c.created_at)],
        })

    router = app.router
    router.add_get("/api/chat/canned", canned_list)
    router.add_post("/api/chat/canned", canned_create)
    router.add_put("/api/chat/canned/{canned_id}", canned_update)
    router.add_delete("/api/chat/canned/{canned_id}", canned_delete)
    router.add_get("/api/chat/offline", offline_list)
    router.add_post("/api/chat/offline/{message_id}/resolve", offline_resolve)
    router.add_get("/api/chat/conversations", conversations)
    router.add_get("/api/chat/conversations/{conversation_id}/transcript.{fmt:txt|json|html}", transcript)
    router.add_post("/api/chat/conversations/{conversation_id}/files", upload)
    router.add_get("/api/chat/files/{file_id}", download)
    router.add_get("/api/chat/agents", agents)
    router.add_get("/api/chat/team", team)


def _in_departments(department: str, mine: set[str] | None) -> bool:
    return mine is None or not department or department in mine


def _bad(message: str) -> web.HTTPBadRequest:
    return _json_error(400, "bad_request", message)


def _json_error(status: int, code: str, message: str) -> web.HTTPException:
    error_class = {400: web.HTTPBadRequest, 403: web.HTTPForbidden, 404: web.HTTPNotFound,
                   409: web.HTTPConflict}.get(status, web.HTTPBadRequest)
    return error_class(text=json.dumps({"error": code, "message": message}), content_type="application/json")


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise web.HTTPNotFound() from None


def _plain(item) -> dict:
    """A service record as JSON: datetimes as unix times."""
    data = dataclasses.asdict(item) if dataclasses.is_dataclass(item) else dict(item)
    return {k: (v.timestamp() if isinstance(v, datetime) else v) for k, v in data.items()
            if k not in ("storage_key", "visitor_id", "start_key")}
