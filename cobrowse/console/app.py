"""The agent console: its own aiohttp app on its own listener (its own origin).

Routes:
  GET  /               the console page (static_dist/console.html)
  GET  /static/{name}  console bundle files
  POST /api/login      {"username", "password"} -> sets the session cookie
  POST /api/logout
  GET  /api/me         the logged-in agent, or 401
  GET  /ws             the agent websocket into the hub (cookie-authenticated)

Every state-changing request and the websocket handshake must come from the
console's own origin (Origin header), so no other site can drive an agent's
session with the agent's cookie.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from ..assets import STATIC_DIST, bundle_missing_message, bundle_path
from ..config import Config
from ..storage import accounts
from ..storage.db import Database
from ..sync.hub import AgentIdentity, Hub
from ..sync.ratelimit import KeyedLimiter
from . import auth

log = logging.getLogger("cobrowse.console")

# The replay frame shows the visitor's page: its styles are inline <style>
# elements and its images and fonts come from the site, so those are open;
# scripts are ours only, and the replay never runs the page's scripts.
CONSOLE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline' https: http:; "
               "img-src * data: blob:; font-src * data:; media-src * blob:; connect-src 'self'; "
               "frame-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
               "object-src 'none'")

AGENT_KEY = web.AppKey("agent", AgentIdentity)


def console_origin(config: Config) -> str:
    from ..server import public_url

    return config.console.public_url or public_url(config.console.listen)


def build_console_app(config: Config, hub: Hub, db: Database, secret: bytes,
                      origins: set[str] | None = None, chat=None) -> web.Application:
    """``origins``: the origins agents' browsers use; the caller adds the bound
    address once it is known (a listen port of 0 is picked by the OS)."""
    allowed = origins if origins is not None else {console_origin(config)}
    secure_cookie = console_origin(config).startswith("https://")
    login_limiter = KeyedLimiter(rate=10 / 600, burst=10)

    @web.middleware
    async def security_headers(request: web.Request, handler):
        if request.method not in ("GET", "HEAD", "OPTIONS") or request.path == "/ws":
            sender = request.headers.get("Origin")
            if sender is not None and sender not in allowed:
                log.warning("refused %s %s from origin %s", request.method, request.path, sender)
                raise web.HTTPForbidden(text="cross-origin request refused\n")
        response = await handler(request)
        response.headers.setdefault("Content-Security-Policy", CONSOLE_CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    def login_of(request: web.Request) -> tuple[str, int, str] | None:
        """(cookie, user id, password fingerprint) of a request's valid login cookie."""
        cookie = request.cookies.get(auth.COOKIE_NAME)
        if not cookie:
            return None
        checked = auth.verify(secret, cookie)
        return None if checked is None else (cookie, checked[0], checked[1])

    def agent_of(login: tuple[str, int, str], user) -> AgentIdentity | None:
        cookie, _, fingerprint = login
        if user is None or user.disabled or not auth.matches(user.password_hash, fingerprint):
            return None
        if user.logins_valid_after is not None and auth.issued_at(cookie) <= user.logins_valid_after.timestamp():
            return None  # logged out since
        return AgentIdentity(user.id, user.display_name or user.username, _role(user))

    async def current_agent(request: web.Request) -> AgentIdentity | None:
        login = login_of(request)
        if login is None:
            return None
        return agent_of(login, await accounts.get_user_by_id(db, login[1]))

    async def current_agents(requests: list[web.Request]) -> list[AgentIdentity | None]:
        """current_agent for each request, with one query (the hub's periodic check)."""
        logins = [login_of(request) for request in requests]
        users = await accounts.get_users_by_id(db, (login[1] for login in logins if login is not None))
        return [None if login is None else agent_of(login, users.get(login[1])) for login in logins]

    async def page(request: web.Request) -> web.StreamResponse:
        path = STATIC_DIST / "console.html"
        if not path.is_file():
            raise web.HTTPServiceUnavailable(text=bundle_missing_message() + "\n")
        return web.FileResponse(path, headers={"Content-Type": "text/html; charset=utf-8"})

    async def static_file(request: web.Request) -> web.StreamResponse:
        path = bundle_path(request.match_info["name"])
        return web.FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})

    async def login(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            username, password = str(body["username"]), str(body["password"])
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "send JSON with username and password"}, status=400)
        now = time.monotonic()
        peer = request.remote or "?"
        keys = (f"addr:{peer}", f"user:{username.lower()}")
        if not (login_limiter.allow(keys[0], now) and login_limiter.allow(keys[1], now)):
            return web.json_response({"error": "too many attempts; wait a few minutes"}, status=429)
        user = await accounts.authenticate(db, username, password)
        if user is None:
            return web.json_response({"error": "wrong username or password"}, status=401)
        # Only wrong guesses count: a team logging in from one address (an office,
        # a TLS terminator) must not lock itself out. Taken first, given back now,
        # so parallel guesses cannot all pass before any of them is counted.
        for key in keys:
            login_limiter.refund(key)
        response = web.json_response(_me(user))
        response.set_cookie(auth.COOKIE_NAME, auth.issue(secret, user.id, user.password_hash), path="/",
                            httponly=True, samesite="Strict", secure=secure_cookie, max_age=auth.SESSION_LIFETIME)
        log.info("agent %s logged in from %s", user.username, peer)
        return response

    async def logout(request: web.Request) -> web.Response:
        agent = await current_agent(request)
        if agent is not None:
            # Void the login on the server too: a copy of the cookie is worth nothing now
            # (the agent's other open consoles are logged out as well, within a minute).
            await accounts.end_logins(db, agent.user_id)
        response = web.json_response({"ok": True})
        response.del_cookie(auth.COOKIE_NAME, path="/")
        return response

    async def me(request: web.Request) -> web.Response:
        agent = await current_agent(request)
        if agent is None:
            return web.json_response({"error": "not logged in"}, status=401)
        return web.json_response({"id": agent.user_id, "name": agent.name, "role": agent.role})

    async def agent_socket(request: web.Request) -> web.StreamResponse:
        agent = await current_agent(request)
        if agent is None:
            raise web.HTTPUnauthorized(text="log in first\n")
        return await hub.agent_socket(request, agent, authenticate=current_agent, authenticate_many=current_agents)

    app = web.Application(middlewares=[security_headers])
    app.router.add_get("/", page)
    app.router.add_get("/static/{name:.+}", static_file)
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/me", me)
    app.router.add_get("/ws", agent_socket)
    if chat is not None:
        from .chat_api import add_chat_api

        add_chat_api(app, chat, current_agent)
    return app


def _role(user) -> str:
    return getattr(user.role, "value", str(user.role))


def _me(user) -> dict:
    return {"id": user.id, "name": user.display_name or user.username, "role": _role(user)}
