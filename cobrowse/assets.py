"""Our own endpoints under the reserved prefix: the injected loader and the bundle.

The loader is fetched by every page of every proxied site, so it is cached
briefly by browsers (a new release reaches visitors within minutes) and
revalidated cheaply by ETag; the lazily loaded bundle files are addressed by
content hash by the loader and can be cached for long.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC_DIST = Path(__file__).resolve().parent / "static_dist"

LOADER_CACHE = "public, max-age=300"
BUNDLE_CACHE = "public, max-age=3600"
# The agent console's page and code: served by the console's own listener only,
# never on a site's origin (where its login form would post to the site).
CONSOLE_FILES = "console."


def bundle_missing_message() -> str:
    return (f"the browser bundle is not built ({STATIC_DIST} is missing): run `make install` "
            "(npm ci and node static/build.mjs), or install a wheel, which carries it")


async def loader(request: web.Request) -> web.StreamResponse:
    return _file(STATIC_DIST / "loader.js", LOADER_CACHE)


def inline_tag() -> bytes | None:
    """The inline tag's script (static/src/stub.js, built), or None before the bundle is built."""
    try:
        return (STATIC_DIST / "stub.js").read_bytes().strip()
    except OSError:
        return None


def bundle_path(name: str) -> Path:
    """A file of the built bundle by name; 404 for anything outside it (no ``..`` escapes)."""
    path = (STATIC_DIST / name).resolve()
    if STATIC_DIST not in path.parents or not path.is_file():
        raise web.HTTPNotFound()
    return path


async def static_file(request: web.Request) -> web.StreamResponse:
    path = bundle_path(request.match_info["name"])
    if path.name.startswith(CONSOLE_FILES):
        raise web.HTTPNotFound()  # the console runs only on its own origin
    return _file(path, BUNDLE_CACHE)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "bundle": (STATIC_DIST / "loader.js").is_file()})


def _file(path: Path, cache_control: str) -> web.StreamResponse:
    if not path.is_file():
        raise web.HTTPServiceUnavailable(text=bundle_missing_message() + "\n")
    # FileResponse answers If-None-Match/If-Modified-Since and serves a
    # pre-compressed .br/.gz sibling when the browser accepts it.
    return web.FileResponse(path, headers={"Cache-Control": cache_control,
                                           "X-Content-Type-Options": "nosniff"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/loader.js", loader)
    app.router.add_get("/static/{name:.+}", static_file)
    app.router.add_get("/health", health)
