"""The aiohttp application behind the reserved prefix: our assets and endpoints.

The proxy relays every request under the prefix to this app over an internal
unix socket, with the visitor's address in X-Forwarded-For; site traffic
never reaches it.
"""

from __future__ import annotations

from aiohttp import web

from . import assets
from .config import Config
from .keys import load_or_create_secret
from .sync.broker import InMemoryBroker
from .sync.hub import Hub

CONFIG_KEY = web.AppKey("config", Config)
HUB_KEY = web.AppKey("hub", Hub)


def build_app(config: Config, hub: Hub | None = None, chat=None) -> web.Application:
    """``chat``: the running chat (cobrowse.chat_runtime.ChatRuntime), or None when chat is off."""
    app = web.Application()
    app[CONFIG_KEY] = config
    if hub is None:
        hub = Hub(InMemoryBroker(), load_or_create_secret(config.server.data_dir))
    app[HUB_KEY] = hub

    async def hub_lifecycle(app: web.Application):
        hub.start()
        yield
        await hub.stop()

    app.cleanup_ctx.append(hub_lifecycle)

    ours = web.Application()
    assets.add_routes(ours)
    ours.router.add_get("/ws", hub.visitor_socket)
    ours.router.add_get("/console/", _console_redirect)
    ours.router.add_get("/console", _console_redirect)
    if chat is not None:
        from .chat_routes import add_visitor_routes

        add_visitor_routes(ours, chat)
    app.add_subapp(config.server.prefix.rstrip("/"), ours)
    return app


async def _console_redirect(request: web.Request) -> web.StreamResponse:
    # The console lives on its own origin, never on a site's (see ConsoleOptions).
    from .console.app import console_origin

    raise web.HTTPFound(console_origin(request.config_dict[CONFIG_KEY]) + "/")
