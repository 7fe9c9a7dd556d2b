"""Tests for the demo shop (cobrowse.demo): an ordinary site used as upstream."""

from __future__ import annotations

import gzip
import json
import re

import aiohttp
import pytest
from aiohttp import web

from cobrowse.demo import create_shop_app
from cobrowse.demo.cart import Cart
from cobrowse.demo.catalog import PRODUCTS
from cobrowse.demo.shop import STATE, accepts_gzip

HTML_PAGES = ["/", "/product/1", "/cart", "/login", "/checkout", "/spa/", "/gzip/", "/secure/"]
NAV_LINKS = ['href="/"', 'href="/spa/"', 'href="/gzip/"', 'href="/secure/"', 'href="/cart"', 'href="/checkout"']


@pytest.fixture
async def client(aiohttp_client):
    return await aiohttp_client(create_shop_app())


def other_visitor() -> aiohttp.ClientSession:
    """A second, independent browser (own cookie jar) for the same server."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def add_to_cart(client, product_id: int, qty: int = 1, colour: str | None = None):
    data = {"product_id": str(product_id), "qty": str(qty)}
    if colour:
        data["colour"] = colour
    return await client.post("/cart/add", data=data, allow_redirects=False)


# ---------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", HTML_PAGES)
async def test_html_pages_have_shared_layout(client, path):
    resp = await client.get(path)
    assert resp.status == 200
    assert resp.content_type == "text/html"
    body = await resp.text()
    assert body.startswith("<!doctype html>")
    assert '<meta charset="utf-8">' in body
    assert re.search(r"<head>.*<title>[^<]+</title>.*</head>", body, re.S)
    assert '<link rel="stylesheet" href="/static/shop.css">' in body
    for link in NAV_LINKS:
        assert link in body, link
    assert 'href="/login"' in body or 'href="/account"' in body
    assert '<footer class="site-footer">' in body


@pytest.mark.parametrize("path", HTML_PAGES + ["/nope", "/account"])
async def test_pages_have_no_inline_styles_or_handlers(client, path):
    await client.post("/login", data={"email": "a@b.c", "password": "demo"}, allow_redirects=False)
    await add_to_cart(client, 2)
    body = await (await client.get(path)).text()
    assert not re.search(r"\sstyle\s*=", body, re.I)
    assert not re.search(r"\son[a-z]+\s*=", body, re.I)
    assert "javascript:" not in body.lower()
    # Only /secure/ has an inline script, and it carries a nonce.
    for tag in re.findall(r"<script\b[^>]*>", body):
        assert "src=" in tag or "nonce=" in tag


async def test_catalog_lists_products_with_images_and_forms(client):
    body = await (await client.get("/")).text()
    assert len(PRODUCTS) == 8
    for p in PRODUCTS:
        assert f'src="/static/img/{p.image}"' in body
        assert p.name.replace("&", "&amp;") in body
        assert f'href="/product/{p.id}"' in body
        assert f'<input type="hidden" name="product_id" value="{p.id}">' in body
    assert body.count('<form method="post" action="/cart/add"') == 8
    assert "€18.00" in body
    assert 'src="/static/live.js"' in body
    assert "data-live-browsing" in body


async def test_product_page(client):
    body = await (await client.get("/product/3")).text()
    assert "<h1>Merino Beanie</h1>" in body
    assert 'src="/static/img/beanie.svg"' in body
    assert '<select id="colour" name="colour">' in body
    assert '<option value="Rust">Rust</option>' in body
    assert 'type="number"' in body and 'name="qty"' in body
    assert 'action="/cart/add"' in body
    assert 'data-fragment-src="/api/fragment?product=3"' in body


@pytest.mark.parametrize("path", ["/product/99", "/product/abc", "/no/such/page"])
async def test_404_page_in_shop_style(client, path):
    resp = await client.get(path)
    assert resp.status == 404
    body = await resp.text()
    assert body.startswith("<!doctype html>")
    assert "find that page</h1>" in body
    assert "/static/shop.css" in body


async def test_404_escapes_path(client):
    body = await (await client.get("/%3Cscript%3Ealert(1)%3C/script%3E")).text()
    assert "<script>alert(1)" not in body
    assert "&lt;script&gt;alert(1)" in body


async def test_static_files_cache_headers(client):
    for path in ["/static/shop.css", "/static/spa.js", "/static/live.js", "/static/shop.js", "/static/img/mug.svg"]:
        resp = await client.get(path)
        assert resp.status == 200, path
        assert resp.headers["ETag"]
        assert "Last-Modified" in resp.headers
        assert "max-age" in resp.headers["Cache-Control"]
    resp = await client.get("/static/img/mug.svg")
    assert resp.content_type == "image/svg+xml"
    etag = resp.headers["ETag"]
    again = await client.get("/static/img/mug.svg", headers={"If-None-Match": etag})
    assert again.status == 304


async def test_every_product_image_exists(client):
    for p in PRODUCTS:
        resp = await client.get(p.image_url)
        assert resp.status == 200, p.image_url
        assert (await resp.text()).lstrip().startswith("<svg")


# ---------------------------------------------------------------------------
# Cart
# ---------------------------------------------------------------------------


async def test_add_to_cart_redirects_and_sets_cookie(client):
    resp = await add_to_cart(client, 1, qty=2, colour="Sand")
    assert resp.status == 303
    assert resp.headers["Location"] == "/cart?added=1"
    assert "cart" in resp.cookies
    body = await (await client.get("/cart?added=1")).text()
    assert "Added Stoneware Mug to your cart." in body
    assert "Colour: Sand" in body
    assert 'name="qty-1-1" value="2"' in body
    assert '<span class="cart-count" data-cart-count>2</span>' in body


async def test_cart_is_per_visitor(client):
    await add_to_cart(client, 4)
    mine = await (await client.get("/cart")).text()
    assert "Dotted Notebook A5" in mine
    async with other_visitor() as other:
        async with other.get(client.make_url("/cart")) as resp:
            theirs = await resp.text()
        assert "Dotted Notebook A5" not in theirs
        assert "Your cart is empty" in theirs
        async with other.post(client.make_url("/cart/add"), data={"product_id": "7"}) as resp:
            assert resp.status == 200  # followed the redirect
            assert "Insulated Bottle" in await resp.text()
    mine = await (await client.get("/cart")).text()
    assert "Insulated Bottle" not in mine


async def test_cart_form_has_every_kind_of_control(client):
    await add_to_cart(client, 1)
    body = await (await client.get("/cart")).text()
    form = re.search(r'<form method="post" action="/cart" id="cart-form".*?</form>', body, re.S).group(0)
    assert 'type="text" id="promo"' in form
    assert '<select id="country" name="country">' in form
    assert 'type="checkbox" id="gift_wrap"' in form
    assert form.count('type="radio"') == 3 and 'name="shipping"' in form
    assert re.search(r'<textarea id="gift_message" name="gift_message"[^>]*data-cobrowse-mask', form)
    assert 'class="qty-input" type="number"' in form
    assert 'name="action" value="update"' in form
    assert 'name="action" value="checkout"' in form


async def test_cart_update_options_and_quantities(client):
    await add_to_cart(client, 1)
    await add_to_cart(client, 8)
    resp = await client.post(
        "/cart",
        data={
            "qty-1-0": "3",
            "qty-8-0": "0",
            "promo": "help10",
            "country": "DE",
            "shipping": "express",
            "gift_wrap": "1",
            "gift_message": "<b>Happy</b> birthday",
            "action": "update",
        },
        allow_redirects=False,
    )
    assert resp.status == 303
    assert resp.headers["Location"] == "/cart?updated=1"
    body = await (await client.get("/cart")).text()
    assert 'name="qty-1-0" value="3"' in body
    assert "Wool Throw" not in body.split("<tbody>")[1].split("</tbody>")[0]
    assert 'value="HELP10"' in body and "10% off" in body
    assert '<option value="DE" selected>' in body
    assert 'id="ship-express" name="shipping" value="express" checked' in body
    assert 'id="gift_wrap" name="gift_wrap" value="1" checked' in body
    assert "&lt;b&gt;Happy&lt;/b&gt; birthday</textarea>" in body
    assert "<b>Happy</b>" not in body
    # 3 × €18 = €54, −10% = €48.60, + wrap €3.50 + express €9.90 = €62.00
    assert "€62.00" in body


async def test_cart_checkout_button_and_remove(client):
    await add_to_cart(client, 2)
    await add_to_cart(client, 5)
    resp = await client.post("/cart", data={"qty-2-0": "1", "action": "checkout"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/checkout"
    resp = await client.post("/cart/remove", data={"line": "2-0"}, allow_redirects=False)
    assert resp.status == 303
    body = await (await client.get("/cart")).text()
    assert "Linen Tote Bag" not in body.split("<tbody>")[1]
    assert "Potted Succulent" in body


async def test_tampered_cart_cookie_is_ignored(client):
    client.session.cookie_jar.update_cookies({"cart": "not-base64!!"})
    resp = await client.get("/cart")
    assert resp.status == 200
    assert "Your cart is empty" in await resp.text()


def test_cart_cookie_round_trip():
    cart = Cart()
    cart.add(PRODUCTS[0], "Charcoal", 2)
    cart.add(PRODUCTS[0], "Charcoal", 1)
    cart.add(PRODUCTS[1], "not a colour", 1)
    cart.set_options(promo="help10", shipping="pickup", country="FR", gift_wrap=True, gift_message="Hi ✨")
    back = Cart.decode(cart.encode())
    assert [(l.product.id, l.colour, l.qty) for l in back.lines] == [(1, "Charcoal", 3), (2, "Natural", 1)]
    assert (back.promo, back.shipping, back.country, back.gift_wrap, back.gift_message) == (
        "HELP10", "pickup", "FR", True, "Hi ✨"
    )
    assert Cart.decode("eyJsIjogNX0").lines == []  # {"l": 5}


# ---------------------------------------------------------------------------
# Login / account
# ---------------------------------------------------------------------------


async def test_login_form(client):
    body = await (await client.get("/login")).text()
    assert 'type="email" id="email" name="email"' in body
    assert 'type="password" id="password" name="password"' in body


async def test_login_wrong_password_shows_error(client):
    resp = await client.post("/login", data={"email": "ann@example.com", "password": "nope"}, allow_redirects=False)
    assert resp.status == 200
    body = await resp.text()
    assert "don&#x27;t match" in body
    assert 'value="ann@example.com"' in body
    assert "session" not in resp.cookies


async def test_login_redirects_and_sets_session(client):
    resp = await client.post("/login", data={"email": "ann@example.com", "password": "demo"}, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/account"
    morsel = resp.cookies["session"]
    assert morsel["httponly"]
    body = await (await client.get("/account")).text()
    assert '<strong class="account-email">ann@example.com</strong>' in body
    assert 'href="/account"' in body
    resp = await client.get("/logout", allow_redirects=False)
    assert resp.status == 303
    resp = await client.get("/account", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login"


async def test_account_requires_login_and_rejects_forged_session(client):
    resp = await client.get("/account", allow_redirects=False)
    assert resp.status == 303
    client.session.cookie_jar.update_cookies({"session": "YUBiLmM.AAAA"})
    resp = await client.get("/account", allow_redirects=False)
    assert resp.status == 303


async def test_login_email_is_escaped(client):
    email = '"><script>alert(1)</script>@example.com'
    await client.post("/login", data={"email": email, "password": "demo"})
    body = await (await client.get("/account")).text()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


async def test_sessions_do_not_cross_app_instances(aiohttp_client):
    a = await aiohttp_client(create_shop_app())
    b = await aiohttp_client(create_shop_app())
    assert a.app[STATE] is not b.app[STATE]
    assert a.app[STATE].secret != b.app[STATE].secret
    resp = await a.post("/login", data={"email": "x@y.z", "password": "demo"}, allow_redirects=False)
    b.session.cookie_jar.update_cookies({"session": resp.cookies["session"].value})
    assert (await b.get("/account", allow_redirects=False)).status == 303


# ---------------------------------------------------------------------------
# Checkout
# ---------------------------------------------------------------------------

VALID_CHECKOUT = {
    "email": "ann@example.com",
    "full_name": "Ann <Smith>",
    "address1": "Oudegracht 1",
    "postcode": "3511 AA",
    "city": "Utrecht",
    "country": "NL",
    "cc_name": "ANN SMITH",
    "cc_number": "4242 4242 4242 4242",
    "cc_exp": "12/39",
    "cc_csc": "123",
}


async def test_checkout_form_has_card_autocomplete(client):
    body = await (await client.get("/checkout")).text()
    for ac in ("cc-name", "cc-number", "cc-exp", "cc-csc"):
        assert f'autocomplete="{ac}"' in body
    assert 'autocomplete="shipping address-line1"' in body
    assert '<form method="post" action="/checkout"' in body


async def test_checkout_confirmation_clears_cart_and_keeps_no_card(client):
    await add_to_cart(client, 6, qty=2)
    resp = await client.post("/checkout", data=VALID_CHECKOUT)
    assert resp.status == 200
    body = await resp.text()
    assert "Thank you, Ann!" in body
    assert re.search(r'class="order-number">FW-\d{6}<', body)
    assert "Card ending in 4242" in body
    assert "4242 4242 4242 4242" not in body and "4242424242424242" not in body
    assert "Ann &lt;Smith&gt;" in body
    assert "Soy Candle" in body
    assert "Your cart is empty" in await (await client.get("/cart")).text()


async def test_checkout_validation_does_not_echo_card(client):
    bad = dict(VALID_CHECKOUT, cc_number="4242 4242 4242 4241", cc_csc="12", city="")
    resp = await client.post("/checkout", data=bad)
    assert resp.status == 422
    body = await resp.text()
    assert "Enter a valid card number." in body
    assert "Enter the 3 or 4 digit security code." in body
    assert "Enter a city." in body
    assert "4242 4242 4242 4241" not in body
    assert 'value="Oudegracht 1"' in body  # address is kept


# ---------------------------------------------------------------------------
# SPA, gzip, strict CSP
# ---------------------------------------------------------------------------


async def test_spa_returns_same_shell_for_any_path(client):
    bodies = []
    for path in ["/spa/", "/spa/article/returns", "/spa/products", "/spa/anything/deep/here?x=1"]:
        resp = await client.get(path)
        assert resp.status == 200, path
        bodies.append(await resp.text())
    assert all(b == bodies[0] for b in bodies)
    assert '<script src="/static/spa.js" defer></script>' in bodies[0]
    assert 'id="spa-view"' in bodies[0]
    resp = await client.get("/spa", allow_redirects=False)
    assert resp.status == 301 and resp.headers["Location"] == "/spa/"


async def test_spa_js_uses_history_api(client):
    js = await (await client.get("/static/spa.js")).text()
    for needle in ("history.pushState", "popstate", "replaceChildren", "/api/products", '"input"'):
        assert needle in js


async def test_gzip_page_is_compressed_when_accepted(aiohttp_client):
    client = await aiohttp_client(create_shop_app(), auto_decompress=False)
    resp = await client.get("/gzip/", headers={"Accept-Encoding": "gzip, deflate"})
    assert resp.status == 200
    assert resp.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in resp.headers["Vary"]
    raw = await resp.read()
    assert raw[:2] == b"\x1f\x8b"
    html = gzip.decompress(raw).decode()
    assert html.startswith("<!doctype html>")
    assert "This page was served gzip-compressed" in html


async def test_gzip_page_identity_when_not_accepted(aiohttp_client):
    client = await aiohttp_client(create_shop_app(), auto_decompress=False)
    for ae in ("identity", "br", "gzip;q=0, identity", "*;q=0"):
        resp = await client.get("/gzip/", headers={"Accept-Encoding": ae})
        assert "Content-Encoding" not in resp.headers, ae
        assert "Accept-Encoding" in resp.headers["Vary"]
        text = await resp.text()
        assert text.startswith("<!doctype html>")
        assert "served uncompressed" in text


async def test_gzip_page_decoded_by_default_client(client):
    resp = await client.get("/gzip/")
    assert resp.headers["Content-Encoding"] == "gzip"
    assert "gzip-compressed" in await resp.text()


@pytest.mark.parametrize(
    "header, expected",
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("br;q=1.0, gzip;q=0.8", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("*", True),
        ("", False),
        ("identity", False),
        ("gzip;q=0", False),
        ("gzip;q=0.0, *", False),
        ("*;q=0", False),
        ("deflate, br", False),
    ],
)
def test_accepts_gzip(header, expected):
    assert accepts_gzip(header) is expected


def _csp_nonce(csp: str) -> str:
    m = re.search(r"script-src 'nonce-([A-Za-z0-9+/_=-]+)' 'strict-dynamic'", csp)
    assert m, csp
    return m.group(1)


async def test_secure_page_strict_csp_with_matching_nonce(client):
    nonces = set()
    for _ in range(3):
        resp = await client.get("/secure/")
        assert resp.status == 200
        csp = resp.headers["Content-Security-Policy"]
        for directive in (
            "default-src 'none'",
            "style-src 'self'",
            "img-src 'self'",
            "connect-src 'self'",
            "font-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ):
            assert directive in csp
        nonce = _csp_nonce(csp)
        body = await resp.text()
        scripts = re.findall(r"<script\b([^>]*)>", body)
        assert scripts == [f' nonce="{nonce}"'], scripts
        assert "Page script ran" in body
        assert '<form method="post" action="/secure/"' in body
        nonces.add(nonce)
    assert len(nonces) == 3


async def test_secure_page_post_is_escaped_and_has_csp(client):
    resp = await client.post(
        "/secure/", data={"name": "<img src=x>", "email": "a@b.c", "topic": "order", "message": "hi"}
    )
    assert resp.status == 200
    nonce = _csp_nonce(resp.headers["Content-Security-Policy"])
    body = await resp.text()
    assert f'<script nonce="{nonce}">' in body
    assert "Thanks, &lt;img src=x&gt;!" in body
    assert "<img src=x>" not in body


# ---------------------------------------------------------------------------
# Websocket
# ---------------------------------------------------------------------------


async def test_live_echoes_ping(client):
    async with client.ws_connect("/live") as ws:
        await ws.send_json({"type": "ping"})
        assert await ws.receive_json(timeout=2) == {"type": "pong"}
        await ws.send_json({"type": "ping", "id": 7, "payload": "héllo"})
        assert await ws.receive_json(timeout=2) == {"type": "pong", "id": 7, "payload": "héllo"}
        await ws.send_bytes(b"\x00\x01binary")
        msg = await ws.receive(timeout=2)
        assert msg.type == aiohttp.WSMsgType.BINARY and msg.data == b"\x00\x01binary"
        await ws.send_str("not json")
        assert (await ws.receive_json(timeout=2))["type"] == "error"


async def test_live_presence_and_stock(aiohttp_client):
    client = await aiohttp_client(create_shop_app(live_interval=0.05))
    async with client.ws_connect("/live") as a, client.ws_connect("/live") as b:
        await a.send_json({"type": "subscribe"})
        hello = await a.receive_json(timeout=2)
        assert hello["type"] == "hello" and hello["browsing"] == 1
        assert hello["stock"]["1"] == PRODUCTS[0].initial_stock
        await b.send_json({"type": "subscribe"})
        presence, stock = [], None
        while 2 not in presence or stock is None:
            msg = await a.receive_json(timeout=2)
            if msg["type"] == "presence":
                presence.append(msg["browsing"])
            elif msg["type"] == "stock":
                stock = msg
        assert set(presence) <= {1, 2}
        assert {"id", "name", "image", "stock", "event"} <= stock.keys()
        assert stock["stock"] >= 1


async def test_live_sends_nothing_unsolicited(aiohttp_client):
    client = await aiohttp_client(create_shop_app(live_interval=0.01))
    async with client.ws_connect("/live") as ws:
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.2)


# ---------------------------------------------------------------------------
# JSON API, fragment, redirect
# ---------------------------------------------------------------------------


async def test_api_products(client):
    resp = await client.get("/api/products")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    data = await resp.json()
    assert len(data["products"]) == 8
    first = data["products"][0]
    assert first["id"] == 1 and first["price"] == 1800 and first["price_display"] == "€18.00"
    assert first["image"] == "/static/img/mug.svg"
    assert isinstance(first["stock"], int)
    single = await (await client.get("/api/products/2")).json()
    assert single["name"] == "Linen Tote Bag"
    resp = await client.get("/api/products/99")
    assert resp.status == 404 and (await resp.json())["error"] == "not found"


async def test_api_fragment_is_html_without_document(client):
    for path in ["/api/fragment", "/api/fragment?product=1"]:
        resp = await client.get(path)
        assert resp.status == 200
        assert resp.content_type == "text/html"
        body = await resp.text()
        assert body.lstrip().startswith("<div")
        assert not re.search(r"<(!doctype|html|head|body)[\s>]", body, re.I)
    body = await (await client.get("/api/fragment?product=1")).text()
    assert 'data-fragment="reviews"' in body and "Maren" in body
    assert (await client.get("/api/fragment?product=42")).status == 404


async def test_redirect_me_uses_request_host(client):
    resp = await client.get("/redirect-me", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == f"http://{client.host}:{client.port}/cart"
    resp = await client.get("/redirect-me", headers={"Host": "shop.example:8443"}, allow_redirects=False)
    assert resp.headers["Location"] == "http://shop.example:8443/cart"


def test_create_shop_app_returns_independent_apps():
    a, b = create_shop_app(), create_shop_app()
    assert isinstance(a, web.Application)
    assert a[STATE] is not b[STATE]
    a[STATE].stock[1] = 0
    assert b[STATE].stock[1] == PRODUCTS[0].initial_stock
    json.dumps(PRODUCTS[0].to_json())
