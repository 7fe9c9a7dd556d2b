"""Routes and handlers of the demo shop.

An ordinary little web shop (it knows nothing about the co-browsing proxy) used
as the upstream for demos and browser tests. Public entry point:
``create_shop_app()``.

State: the cart lives in a per-visitor cookie, the login session in an
HMAC-signed cookie. The only server-side state is per app instance (signing
secret, live stock levels, websocket subscribers), kept under ``STATE``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import gzip
import hashlib
import hmac
import json
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from aiohttp import WSMsgType, web

from . import templates as t
from .cart import COOKIE_MAX_AGE, COOKIE_NAME, COUNTRIES, Cart, parse_int
from .catalog import PRODUCTS, Product, get_product

STATIC_DIR = Path(__file__).parent / "static"
SESSION_COOKIE = "session"
DEMO_PASSWORD = "demo"
STATIC_CACHE_CONTROL = "public, max-age=600"
HTML_CACHE_CONTROL = "no-cache"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ---------------------------------------------------------------------------
# Per-app state
# ---------------------------------------------------------------------------


@dataclass(eq=False)
class ShopState:
    secret: bytes
    live_interval: float
    stock: dict[int, int] = field(default_factory=lambda: {p.id: p.initial_stock for p in PRODUCTS})
    sockets: set[web.WebSocketResponse] = field(default_factory=set)
    subscribers: set[web.WebSocketResponse] = field(default_factory=set)
    rng: random.Random = field(default_factory=random.Random)


STATE = web.AppKey("cobrowse_demo_shop_state", ShopState)


def _state(request: web.Request) -> ShopState:
    return request.app[STATE]


# ---------------------------------------------------------------------------
# Helpers: cookies, session, context
# ---------------------------------------------------------------------------


def _cart(request: web.Request) -> Cart:
    return Cart.decode(request.cookies.get(COOKIE_NAME))


def _save_cart(resp: web.StreamResponse, cart: Cart) -> None:
    if cart.lines or cart.promo or cart.gift_message or cart.gift_wrap:
        resp.set_cookie(
            COOKIE_NAME, cart.encode(), path="/", max_age=COOKIE_MAX_AGE, httponly=True, samesite="Lax"
        )
    else:
        resp.del_cookie(COOKIE_NAME, path="/")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, email: str) -> str:
    payload = _b64(email.encode())
    mac = hmac.new(secret, payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def _current_user(request: web.Request) -> str | None:
    value = request.cookies.get(SESSION_COOKIE, "")
    payload, _, mac = value.partition(".")
    if not payload or not mac:
        return None
    expected = hmac.new(_state(request).secret, payload.encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(_unb64(mac), expected):
            return None
        return _unb64(payload).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def _ctx(request: web.Request, active: str = "", *, cart: Cart | None = None, nonce: str | None = None) -> t.PageContext:
    cart = cart if cart is not None else _cart(request)
    return t.PageContext(cart_count=cart.count, user=_current_user(request), active=active, nonce=nonce)


def _html(body: str, status: int = 200) -> web.Response:
    resp = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    resp.headers["Cache-Control"] = HTML_CACHE_CONTROL
    return resp


def _see_other(location: str) -> web.Response:
    """A 303 redirect as a plain response (so cookies can be set on it)."""
    return web.Response(status=303, headers={"Location": location})


# ---------------------------------------------------------------------------
# Catalog and product pages
# ---------------------------------------------------------------------------


async def catalog(request: web.Request) -> web.Response:
    state = _state(request)
    browsing = max(1, len(state.subscribers))
    return _html(t.catalog_page(PRODUCTS, state.stock, browsing, _ctx(request, "shop")))


async def product(request: web.Request) -> web.Response:
    item = get_product(request.match_info["id"])
    if item is None:
        raise web.HTTPNotFound()
    idx = PRODUCTS.index(item)
    related = [PRODUCTS[(idx + k) % len(PRODUCTS)] for k in (1, 2, 3, 4)]
    return _html(t.product_page(item, related, _state(request).stock, _ctx(request, "shop")))


# ---------------------------------------------------------------------------
# Cart
# ---------------------------------------------------------------------------


async def cart_add(request: web.Request) -> web.Response:
    form = await request.post()
    item = get_product(form.get("product_id", ""))
    if item is None:
        raise web.HTTPBadRequest(text="Unknown product")
    cart = _cart(request)
    cart.add(item, str(form.get("colour", "")), parse_int(form.get("qty", "1"), 1))
    resp = _see_other(f"/cart?added={item.id}")
    _save_cart(resp, cart)
    return resp


async def cart_view(request: web.Request) -> web.Response:
    cart = _cart(request)
    flash, kind = "", "success"
    added = get_product(request.query.get("added", ""))
    if added is not None:
        flash = f"Added {t.e(added.name)} to your cart."
    elif request.query.get("updated"):
        flash = "Your cart has been updated."
    elif request.query.get("removed"):
        flash, kind = "The item was removed from your cart.", "info"
    return _html(t.cart_page(cart, _ctx(request, "cart", cart=cart), flash=flash, flash_kind=kind))


async def cart_update(request: web.Request) -> web.Response:
    form = await request.post()
    cart = _cart(request)
    for line in list(cart.lines):
        raw = form.get(f"qty-{line.key}")
        if raw is not None:
            cart.set_qty(line.key, parse_int(raw, line.qty))
    cart.set_options(
        promo=str(form.get("promo", "")),
        shipping=str(form.get("shipping", cart.shipping)),
        country=str(form.get("country", cart.country)),
        gift_wrap=form.get("gift_wrap") is not None,
        gift_message=str(form.get("gift_message", "")),
    )
    resp = _see_other("/checkout" if form.get("action") == "checkout" else "/cart?updated=1")
    _save_cart(resp, cart)
    return resp


async def cart_remove(request: web.Request) -> web.Response:
    form = await request.post()
    cart = _cart(request)
    cart.remove(str(form.get("line", "")))
    resp = _see_other("/cart?removed=1")
    _save_cart(resp, cart)
    return resp


# ---------------------------------------------------------------------------
# Login / account
# ---------------------------------------------------------------------------


async def login_form(request: web.Request) -> web.Response:
    if _current_user(request):
        return _see_other("/account")
    return _html(t.login_page(_ctx(request, "login")))


async def login_submit(request: web.Request) -> web.Response:
    form = await request.post()
    email = str(form.get("email", "")).strip()[:254]
    password = str(form.get("password", ""))
    if "@" not in email or not hmac.compare_digest(password.encode(), DEMO_PASSWORD.encode()):
        error = "That email and password don't match. Please try again."
        if "@" not in email:
            error = "Please enter a valid email address."
        return _html(t.login_page(_ctx(request, "login"), email=email, error=error))
    resp = _see_other("/account")
    max_age = 30 * 24 * 3600 if form.get("remember") else None
    resp.set_cookie(
        SESSION_COOKIE,
        _sign(_state(request).secret, email),
        path="/",
        max_age=max_age,
        httponly=True,
        samesite="Lax",
    )
    return resp


async def account(request: web.Request) -> web.Response:
    email = _current_user(request)
    if email is None:
        return _see_other("/login")
    return _html(t.account_page(email, _ctx(request, "account")))


async def logout(request: web.Request) -> web.Response:
    resp = _see_other("/")
    resp.del_cookie(SESSION_COOKIE, path="/")
    return resp


# ---------------------------------------------------------------------------
# Checkout
# ---------------------------------------------------------------------------

_CHECKOUT_FIELDS = (
    "email", "phone", "full_name", "address1", "address2", "postcode", "city", "country",
    "cc_name", "cc_number", "cc_exp", "cc_csc",
)  # fmt: skip


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _validate_checkout(values: dict[str, str]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if "@" not in values["email"]:
        errors["email"] = "Enter an email address like name@example.com."
    for name, label in (("full_name", "your name"), ("address1", "your address"),
                        ("postcode", "a postcode"), ("city", "a city"), ("cc_name", "the name on the card")):  # fmt: skip
        if not values[name]:
            errors[name] = f"Enter {label}."
    if values["country"] not in COUNTRIES:
        errors["country"] = "Choose a country."
    number = "".join(ch for ch in values["cc_number"] if ch.isdigit())
    if not (12 <= len(number) <= 19) or not _luhn_ok(number) or any(
        ch not in "0123456789 -" for ch in values["cc_number"]
    ):
        errors["cc_number"] = "Enter a valid card number."
    month, _, year = values["cc_exp"].replace(" ", "").partition("/")
    m, y = parse_int(month, 0), parse_int(year, -1)
    if 0 <= y < 100:
        y += 2000
    today = date.today()
    if not (1 <= m <= 12) or (y, m) < (today.year, today.month) or y > today.year + 20:
        errors["cc_exp"] = "Enter a valid expiry date (MM / YY)."
    csc = values["cc_csc"]
    if not (csc.isdigit() and 3 <= len(csc) <= 4):
        errors["cc_csc"] = "Enter the 3 or 4 digit security code."
    return errors


async def checkout_form(request: web.Request) -> web.Response:
    cart = _cart(request)
    values = {"email": _current_user(request) or ""}
    return _html(t.checkout_page(cart, _ctx(request, "checkout", cart=cart), values=values))


async def checkout_submit(request: web.Request) -> web.Response:
    form = await request.post()
    values = {name: str(form.get(name, "")).strip()[:200] for name in _CHECKOUT_FIELDS}
    cart = _cart(request)
    errors = _validate_checkout(values)
    if errors:
        page = t.checkout_page(cart, _ctx(request, "checkout", cart=cart), values=values, errors=errors)
        return _html(page, status=422)
    last4 = "".join(ch for ch in values["cc_number"] if ch.isdigit())[-4:]
    # Card data is only used to render "ending in 1234"; it is never stored or logged.
    for name in ("cc_name", "cc_number", "cc_exp", "cc_csc"):
        values.pop(name)
    order_no = f"FW-{secrets.randbelow(900000) + 100000}"
    empty = Cart(country=cart.country)
    resp = _html(t.confirmation_page(order_no, values, last4, cart, _ctx(request, "checkout", cart=empty)))
    resp.headers["Cache-Control"] = "no-store"
    _save_cart(resp, empty)
    return resp


# ---------------------------------------------------------------------------
# Help centre single-page app, gzip page, strict-CSP page
# ---------------------------------------------------------------------------


async def spa(request: web.Request) -> web.Response:
    return _html(t.spa_shell(_ctx(request, "help")))


def accepts_gzip(header: str) -> bool:
    """True if an Accept-Encoding header value allows gzip (honours q=0 and *)."""
    star: bool | None = None
    for part in header.split(","):
        token, _, params = part.strip().partition(";")
        token = token.strip().lower()
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if token in ("gzip", "x-gzip"):
            return q > 0
        if token == "*":
            star = q > 0
    return bool(star)


async def gzip_page(request: web.Request) -> web.Response:
    compressed = accepts_gzip(request.headers.get("Accept-Encoding", ""))
    html = t.shipping_page(compressed, _ctx(request, "shipping")).encode()
    headers = {"Vary": "Accept-Encoding", "Cache-Control": HTML_CACHE_CONTROL}
    if compressed:
        html = gzip.compress(html, compresslevel=6, mtime=0)
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=html, content_type="text/html", charset="utf-8", headers=headers)


def csp_header(nonce: str) -> str:
    return (
        "default-src 'none'; "
        f"script-src 'nonce-{nonce}' 'strict-dynamic'; "
        "style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def _secure_response(body_for_nonce: Callable[[str], str]) -> web.Response:
    nonce = base64.b64encode(secrets.token_bytes(18)).decode("ascii")
    resp = _html(body_for_nonce(nonce))
    resp.headers["Content-Security-Policy"] = csp_header(nonce)
    resp.headers["Cache-Control"] = "no-store"
    return resp


async def secure_page(request: web.Request) -> web.Response:
    return _secure_response(lambda nonce: t.contact_page(_ctx(request, "contact", nonce=nonce)))


async def secure_submit(request: web.Request) -> web.Response:
    form = await request.post()
    values = {k: str(form.get(k, "")).strip()[:1000] for k in ("name", "email", "topic", "order", "message", "copy")}
    errors = {}
    if not values["name"]:
        errors["name"] = "Enter your name."
    if "@" not in values["email"]:
        errors["email"] = "Enter an email address like name@example.com."
    if not values["message"]:
        errors["message"] = "Write a short message."

    def render(nonce: str) -> str:
        ctx = _ctx(request, "contact", nonce=nonce)
        if errors:
            return t.contact_page(ctx, values=values, errors=errors)
        return t.contact_page(ctx, sent_name=values["name"])

    return _secure_response(render)


# ---------------------------------------------------------------------------
# Live websocket
# ---------------------------------------------------------------------------


def _presence(state: ShopState) -> dict:
    return {"type": "presence", "browsing": len(state.subscribers)}


async def _broadcast(state: ShopState, message: dict) -> None:
    targets = [ws for ws in state.subscribers if not ws.closed]
    if not targets:
        return
    data = json.dumps(message)
    results = await asyncio.gather(*(ws.send_str(data) for ws in targets), return_exceptions=True)
    for ws, result in zip(targets, results):
        if isinstance(result, Exception):
            state.subscribers.discard(ws)


async def live(request: web.Request) -> web.WebSocketResponse:
    """Websocket used by /static/live.js.

    Protocol (JSON text frames):
      -> {"type": "ping", ...}      <- the same object with "type": "pong"
      -> {"type": "subscribe"}      <- {"type": "hello", "browsing": n, "stock": {id: n}}
                                       then "presence" and "stock" broadcasts
    Binary frames are echoed back unchanged. Nothing is sent unsolicited to
    clients that have not subscribed.
    """
    state = _state(request)
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    state.sockets.add(ws)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
                continue
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                data = json.loads(msg.data)
            except ValueError:
                await ws.send_json({"type": "error", "error": "invalid JSON"})
                continue
            kind = data.get("type") if isinstance(data, dict) else None
            if kind == "ping":
                await ws.send_json({**data, "type": "pong"})
            elif kind == "subscribe":
                state.subscribers.add(ws)
                await ws.send_json(
                    {
                        "type": "hello",
                        "browsing": len(state.subscribers),
                        "stock": {str(k): v for k, v in state.stock.items()},
                    }
                )
                await _broadcast(state, _presence(state))
            else:
                await ws.send_json({"type": "error", "error": "unknown message type"})
    finally:
        state.sockets.discard(ws)
        if ws in state.subscribers:
            state.subscribers.discard(ws)
            with contextlib.suppress(Exception):
                await _broadcast(state, _presence(state))
    return ws


async def _stock_ticker(app: web.Application) -> None:
    """Simulate other shoppers: every few seconds somebody buys something."""
    state = app[STATE]
    while True:
        await asyncio.sleep(state.live_interval)
        if not state.subscribers:
            continue
        item = state.rng.choice(PRODUCTS)
        left = state.stock[item.id]
        if left <= 1:
            left = state.rng.randint(12, 30)
            event = "restocked"
        else:
            left -= state.rng.randint(1, min(2, left - 1))
            event = "sold"
        state.stock[item.id] = left
        await _broadcast(
            state,
            {
                "type": "stock",
                "event": event,
                "id": item.id,
                "name": item.name,
                "image": item.image_url,
                "stock": left,
            },
        )


async def _live_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_stock_ticker(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _close_sockets(app: web.Application) -> None:
    for ws in list(app[STATE].sockets):
        with contextlib.suppress(Exception):
            await ws.close(code=1001, message=b"server shutdown")


# ---------------------------------------------------------------------------
# JSON API and HTML fragment
# ---------------------------------------------------------------------------


def _product_json(request: web.Request, item: Product) -> dict:
    data = item.to_json()
    data["stock"] = _state(request).stock[item.id]
    return data


async def api_products(request: web.Request) -> web.Response:
    return web.json_response(
        {"products": [_product_json(request, p) for p in PRODUCTS], "currency": "EUR"},
        headers={"Cache-Control": "no-cache"},
    )


async def api_product(request: web.Request) -> web.Response:
    item = get_product(request.match_info["id"])
    if item is None:
        raise web.HTTPNotFound()
    return web.json_response(_product_json(request, item), headers={"Cache-Control": "no-cache"})


async def api_fragment(request: web.Request) -> web.Response:
    """An HTML fragment for fetch(): reviews of ?product=<id>, else journal teasers."""
    if "product" in request.query:
        item = get_product(request.query["product"])
        if item is None:
            raise web.HTTPNotFound()
        body = t.reviews_fragment(item)
    else:
        body = t.journal_fragment()
    return _html(body)


# ---------------------------------------------------------------------------
# Misc
# ---------------------------------------------------------------------------


async def redirect_me(request: web.Request) -> web.Response:
    raise web.HTTPFound(f"{request.scheme}://{request.host}/cart")


def _slash_redirect(target: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        qs = f"?{request.query_string}" if request.query_string else ""
        raise web.HTTPMovedPermanently(target + qs)

    return handler


@web.middleware
async def _shop_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        resp = await handler(request)
    except web.HTTPNotFound:
        if request.path.startswith("/api/"):
            return web.json_response({"error": "not found"}, status=404)
        return _html(t.not_found_page(request.path, _ctx(request)), status=404)
    if not resp.prepared:
        if request.path.startswith("/static/") and resp.status < 400:
            resp.headers["Cache-Control"] = STATIC_CACHE_CONTROL
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    return resp


# ---------------------------------------------------------------------------
# App factory
# ---------------------------------------------------------------------------


def create_shop_app(*, secret: bytes | None = None, live_interval: float = 4.0) -> web.Application:
    """Build the demo shop. Every call returns an independent app (own state)."""
    app = web.Application(middlewares=[_shop_middleware])
    app[STATE] = ShopState(secret=secret or secrets.token_bytes(32), live_interval=live_interval)
    app.cleanup_ctx.append(_live_ctx)
    app.on_shutdown.append(_close_sockets)

    r = app.router
    r.add_get("/", catalog)
    r.add_get("/product/{id}", product)
    r.add_get("/cart", cart_view)
    r.add_post("/cart", cart_update)
    r.add_post("/cart/add", cart_add)
    r.add_post("/cart/remove", cart_remove)
    r.add_get("/login", login_form)
    r.add_post("/login", login_submit)
    r.add_get("/account", account)
    r.add_get("/logout", logout)
    r.add_post("/logout", logout)
    r.add_get("/checkout", checkout_form)
    r.add_post("/checkout", checkout_submit)
    r.add_get("/spa", _slash_redirect("/spa/"))
    r.add_get("/spa/", spa)
    r.add_get("/spa/{tail:.*}", spa)
    r.add_get("/gzip", _slash_redirect("/gzip/"))
    r.add_get("/gzip/", gzip_page)
    r.add_get("/secure", _slash_redirect("/secure/"))
    r.add_get("/secure/", secure_page)
    r.add_post("/secure/", secure_submit)
    r.add_get("/live", live)
    r.add_get("/api/products", api_products)
    r.add_get("/api/products/{id}", api_product)
    r.add_get("/api/fragment", api_fragment)
    r.add_get("/redirect-me", redirect_me)
    r.add_static("/static/", STATIC_DIR, name="static", append_version=False)
    return app


__all__ = ["create_shop_app", "accepts_gzip", "csp_header", "STATE", "ShopState"]
