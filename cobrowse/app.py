"""The aiohttp application behind the reserved prefix: our assets and endpoints.

The proxy relays every request under the prefix to this app over an internal
unix socket, with the visitor's address in X-Forwarded-For; site traffic
never reaches it.
"""

from __future__ import annotations

from aiohttp import web

from . import assets
from .config import Config

CONFIG_KEY = web.AppKey("config", Config)


def build_app(config: Config) -> web.Application:
    app = web.Application()
    app[CONFIG_KEY] = config
    ours = web.Application()
    assets.add_routes(ours)
    app.add_subapp(config.server.prefix.rstrip("/"), ours)
    return app
