"""Page layout and HTML templates for the demo shop.

Plain functions returning strings. Every interpolated value goes through
``e()`` (html.escape). No inline ``style=`` attributes and no inline event
handlers anywhere, so every page is clean under a strict CSP; the only inline
script is the nonce'd one on the /secure/ page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from .cart import (
    COUNTRIES,
    FREE_SHIPPING_OVER,
    GIFT_WRAP_COST,
    MAX_MESSAGE,
    SHIPPING_METHODS,
    Cart,
    Totals,
)
from .catalog import Product, format_price

SHOP_NAME = "Fernwood"


def e(value: object) -> str:
    """HTML-escape any value for text or a double-quoted attribute."""
    return escape(str(value), quote=True)


money = format_price


@dataclass(slots=True)
class PageContext:
    """Per-request bits the shared header needs."""

    cart_count: int = 0
    user: str | None = None
    active: str = ""
    nonce: str | None = None


# ---------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------

MAIN_NAV = (
    ("shop", "/", "Shop"),
    ("help", "/spa/", "Help centre"),
    ("shipping", "/gzip/", "Shipping & returns"),
    ("contact", "/secure/", "Contact"),
)


def _nav_link(href: str, label: str, active: bool, cls: str = "") -> str:
    current = ' aria-current="page"' if active else ""
    klass = f' class="{e(cls)}"' if cls else ""
    return f'<a href="{e(href)}"{klass}{current}>{label}</a>'


def layout(
    title: str,
    body: str,
    ctx: PageContext,
    *,
    scripts: Sequence[str] = (),
    page_class: str = "",
    description: str = "Small-batch homeware from independent makers.",
) -> str:
    nonce_attr = f' nonce="{e(ctx.nonce)}"' if ctx.nonce else ""
    script_tags = "".join(
        f'\n<script src="{e(src)}" defer{nonce_attr}></script>' for src in scripts
    )
    nav = "\n".join(
        _nav_link(href, e(label), ctx.active == key) for key, href, label in MAIN_NAV
    )
    if ctx.user:
        account = _nav_link("/account", "Account", ctx.active == "account", "account-link")
    else:
        account = _nav_link("/login", "Sign in", ctx.active == "login", "account-link")
    count = ctx.cart_count
    count_label = f"{count} item{'s' if count != 1 else ''} in cart"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} · {SHOP_NAME}</title>
<meta name="description" content="{e(description)}">
<link rel="icon" href="/static/img/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/shop.css">{script_tags}
</head>
<body class="{e(page_class)}">
<a class="skip-link" href="#main">Skip to content</a>
<div class="announce">Free standard delivery on orders over {money(FREE_SHIPPING_OVER)} · 30-day returns</div>
<header class="site-header">
<div class="wrap header-inner">
<a class="brand" href="/"><img src="/static/img/logo.svg" alt="" width="34" height="34"><span>{SHOP_NAME}</span></a>
<nav class="main-nav" aria-label="Main">
{nav}
</nav>
<div class="header-actions">
{account}
{_nav_link("/checkout", "Checkout", ctx.active == "checkout", "checkout-link")}
<a class="cart-link" href="/cart" aria-label="{e(count_label)}"{' aria-current="page"' if ctx.active == "cart" else ""}><img src="/static/img/bag.svg" alt="" width="20" height="20"><span>Cart</span><span class="cart-count" data-cart-count>{count}</span></a>
</div>
</div>
</header>
<main id="main" class="wrap main">
{body}
</main>
{_footer()}
</body>
</html>
"""


def _footer() -> str:
    return f"""<footer class="site-footer">
<div class="wrap footer-grid">
<div class="footer-about">
<a class="brand brand-footer" href="/"><img src="/static/img/logo.svg" alt="" width="28" height="28"><span>{SHOP_NAME}</span></a>
<p>Small-batch homeware from independent makers across Europe, packed by hand in our Utrecht workshop.</p>
</div>
<nav class="footer-col" aria-label="Shop">
<h2>Shop</h2>
<a href="/">All products</a>
<a href="/cart">Cart</a>
<a href="/checkout">Checkout</a>
</nav>
<nav class="footer-col" aria-label="Customer service">
<h2>Customer service</h2>
<a href="/spa/">Help centre</a>
<a href="/gzip/">Shipping &amp; returns</a>
<a href="/secure/">Contact us</a>
</nav>
<nav class="footer-col" aria-label="Your account">
<h2>Your account</h2>
<a href="/login">Sign in</a>
<a href="/account">Account</a>
<a href="/logout">Sign out</a>
</nav>
</div>
<div class="wrap footer-bottom">
<p>© {SHOP_NAME} Supply Co. · Oudegracht 112, Utrecht · Prices include VAT</p>
</div>
</footer>"""


# ---------------------------------------------------------------------------
# Small shared pieces
# ---------------------------------------------------------------------------


def stock_label(n: int) -> tuple[str, str]:
    """(text, css class) for a stock level. Mirrored in static/live.js."""
    if n <= 0:
        return "Sold out", "stock stock-out"
    if n <= 5:
        return f"Only {n} left", "stock stock-low"
    return f"{n} in stock", "stock"


def _stock(product: Product, stock: Mapping[int, int]) -> str:
    text, cls = stock_label(stock.get(product.id, 0))
    return f'<span class="{cls}" data-stock-for="{product.id}">{e(text)}</span>'


def _stars(rating: int) -> str:
    rating = max(0, min(5, rating))
    return (
        f'<span class="stars" role="img" aria-label="{rating} out of 5 stars">'
        f'{"★" * rating}<span class="stars-off">{"★" * (5 - rating)}</span></span>'
    )


def _alert(message: str, kind: str = "info") -> str:
    role = ' role="alert"' if kind == "error" else ' role="status"'
    return f'<p class="alert alert-{e(kind)}"{role}>{message}</p>'


def product_card(product: Product, stock: Mapping[int, int], *, compact: bool = False) -> str:
    form = (
        ""
        if compact
        else f"""
<form method="post" action="/cart/add" class="add-form">
<input type="hidden" name="product_id" value="{product.id}">
<input type="hidden" name="qty" value="1">
<button class="btn btn-small" type="submit">Add to cart</button>
</form>"""
    )
    summary = "" if compact else f'\n<p class="card-summary">{e(product.summary)}</p>'
    return f"""<li class="product-card">
<a class="card-image" href="{e(product.url)}" tabindex="-1" aria-hidden="true"><img src="{e(product.image_url)}" alt="" width="400" height="400" loading="lazy"></a>
<div class="card-body">
<h3 class="card-title"><a href="{e(product.url)}">{e(product.name)}</a></h3>{summary}
<div class="card-meta"><span class="price">{money(product.price)}</span>{_stock(product, stock)}</div>{form}
</div>
</li>"""


# ---------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------


def catalog_page(
    products: Sequence[Product], stock: Mapping[int, int], browsing: int, ctx: PageContext
) -> str:
    cards = "\n".join(product_card(p, stock) for p in products)
    people = "person" if browsing == 1 else "people"
    body = f"""<section class="hero">
<div class="hero-text">
<p class="eyebrow">The autumn collection</p>
<h1>Small-batch goods for slow mornings</h1>
<p class="lead">Ceramics, linen and wool from independent makers across Europe, packed by hand in our Utrecht workshop.</p>
<div class="hero-actions">
<a class="btn" href="#products">Shop the collection</a>
<a class="btn btn-ghost" href="/spa/">Visit the help centre</a>
</div>
</div>
<aside class="live-card" data-live>
<p class="live-status"><span class="live-dot" data-live-dot></span><span><strong data-live-browsing>{browsing}</strong> <span data-live-people>{people}</span> browsing now</span></p>
<h2>Live from the shop floor</h2>
<ul class="live-feed" data-live-feed>
<li class="live-feed-empty">Stock levels on this page update live as other shoppers buy.</li>
</ul>
<div class="live-foot">
<img src="/static/img/logo.svg" alt="" width="40" height="40">
<p><strong>Workshop open today</strong><br><span class="muted">Oudegracht 112, Utrecht · 10:00–18:00</span></p>
</div>
</aside>
</section>
<section id="products" class="section">
<div class="section-head">
<h2>All products</h2>
<p class="muted">{len(products)} products · prices include VAT</p>
</div>
<ul class="product-grid">
{cards}
</ul>
</section>
<section class="section">
<div class="section-head"><h2>From the journal</h2></div>
<div class="fragment-slot" data-fragment-src="/api/fragment"><p class="muted">Loading stories…</p></div>
</section>"""
    return layout(
        "Shop", body, ctx, scripts=("/static/shop.js", "/static/live.js"), page_class="page-catalog"
    )


def product_page(
    product: Product, related: Sequence[Product], stock: Mapping[int, int], ctx: PageContext
) -> str:
    colours = "\n".join(f'<option value="{e(c)}">{e(c)}</option>' for c in product.colours)
    details = "\n".join(f"<li>{e(d)}</li>" for d in product.details)
    related_cards = "\n".join(product_card(p, stock, compact=True) for p in related)
    body = f"""<nav class="breadcrumbs" aria-label="Breadcrumb"><a href="/">Shop</a><span aria-hidden="true">/</span><span>{e(product.name)}</span></nav>
<div class="product-detail">
<div class="product-gallery"><img src="{e(product.image_url)}" alt="{e(product.name)}" width="600" height="600"></div>
<div class="product-info">
<h1>{e(product.name)}</h1>
<p class="price-lg">{money(product.price)}</p>
<p>{_stock(product, stock)}</p>
<p class="description">{e(product.description)}</p>
<form method="post" action="/cart/add" class="buy-form">
<input type="hidden" name="product_id" value="{product.id}">
<div class="field">
<label for="colour">Colour</label>
<select id="colour" name="colour">
{colours}
</select>
</div>
<div class="field field-qty">
<label for="qty">Quantity</label>
<input id="qty" name="qty" type="number" min="1" max="10" value="1" inputmode="numeric" required>
</div>
<button class="btn btn-wide" type="submit">Add to cart · {money(product.price)}</button>
</form>
<ul class="details">
{details}
</ul>
<p class="assurance">Free delivery over {money(FREE_SHIPPING_OVER)} · 30-day returns · Ships from Utrecht</p>
</div>
</div>
<section class="section reviews-section">
<div class="section-head"><h2>Reviews</h2></div>
<div class="fragment-slot" data-fragment-src="/api/fragment?product={product.id}"><p class="muted">Loading reviews…</p></div>
</section>
<section class="section">
<div class="section-head"><h2>You might also like</h2></div>
<ul class="product-grid product-grid-compact">
{related_cards}
</ul>
</section>"""
    return layout(
        product.name,
        body,
        ctx,
        scripts=("/static/shop.js", "/static/live.js"),
        page_class="page-product",
        description=product.summary,
    )


def _totals_rows(totals: Totals, cart: Cart) -> str:
    rows = [f"<tr><th scope=\"row\">Subtotal</th><td>{money(totals.subtotal)}</td></tr>"]
    if totals.discount:
        rows.append(
            f'<tr class="discount"><th scope="row">Promo {e(cart.promo)} (−{cart.promo_percent}%)</th>'
            f"<td>−{money(totals.discount)}</td></tr>"
        )
    if totals.gift_wrap:
        rows.append(f'<tr><th scope="row">Gift wrap</th><td>{money(totals.gift_wrap)}</td></tr>')
    label = SHIPPING_METHODS[cart.shipping][0]
    shipping = "Free" if totals.shipping == 0 else money(totals.shipping)
    rows.append(f'<tr><th scope="row">{e(label)}</th><td>{shipping}</td></tr>')
    rows.append(f'<tr class="grand-total"><th scope="row">Total</th><td>{money(totals.total)}</td></tr>')
    return "\n".join(rows)


def cart_page(cart: Cart, ctx: PageContext, *, flash: str = "", flash_kind: str = "success") -> str:
    if cart.lines:
        rows = "\n".join(
            f"""<tr>
<td><div class="cart-product"><a href="{e(line.product.url)}"><img src="{e(line.product.image_url)}" alt="" width="72" height="72"></a>
<div><a class="cart-product-name" href="{e(line.product.url)}">{e(line.product.name)}</a>
<span class="muted">Colour: {e(line.colour)}</span>
<button class="link-btn" type="submit" form="remove-{e(line.key)}">Remove</button></div></div></td>
<td class="num" data-label="Price">{money(line.product.price)}</td>
<td class="num" data-label="Quantity"><label class="visually-hidden" for="qty-{e(line.key)}">Quantity of {e(line.product.name)}</label>
<input class="qty-input" type="number" id="qty-{e(line.key)}" name="qty-{e(line.key)}" value="{line.qty}" min="0" max="99" inputmode="numeric"></td>
<td class="num" data-label="Total">{money(line.total)}</td>
</tr>"""
            for line in cart.lines
        )
    else:
        rows = '<tr><td colspan="4" class="cart-empty">Your cart is empty. <a href="/">Browse the shop</a> to find something you like.</td></tr>'
    remove_forms = "\n".join(
        f'<form id="remove-{e(line.key)}" method="post" action="/cart/remove" class="hidden-form">'
        f'<input type="hidden" name="line" value="{e(line.key)}"></form>'
        for line in cart.lines
    )
    countries = "\n".join(
        f'<option value="{e(code)}"{" selected" if code == cart.country else ""}>{e(name)}</option>'
        for code, name in COUNTRIES.items()
    )
    radios = "\n".join(
        f"""<div class="radio-row">
<input type="radio" id="ship-{e(key)}" name="shipping" value="{e(key)}"{" checked" if key == cart.shipping else ""}>
<label for="ship-{e(key)}"><span class="radio-title">{e(label)} <span class="muted">{"Free" if cost == 0 else money(cost)}</span></span><span class="hint">{e(note)}</span></label>
</div>"""
        for key, (label, cost, note) in SHIPPING_METHODS.items()
    )
    promo_note = ""
    if cart.promo and cart.promo_percent:
        promo_note = f'<p class="hint hint-ok">Code {e(cart.promo)} applied: {cart.promo_percent}% off.</p>'
    elif cart.promo:
        promo_note = f'<p class="hint hint-error">We don\'t recognise the code “{e(cart.promo)}”.</p>'
    else:
        promo_note = '<p class="hint">Signed up for our newsletter? Try HELP10.</p>'
    totals = cart.totals()
    flash_html = _alert(flash, flash_kind) if flash else ""
    count = cart.count
    body = f"""<div class="page-head"><h1>Your cart</h1><p class="muted">{count} item{"s" if count != 1 else ""}</p></div>
{flash_html}
<form method="post" action="/cart" id="cart-form" class="cart-layout">
<div class="cart-main">
<section class="panel">
<table class="cart-table">
<thead><tr><th scope="col">Product</th><th scope="col" class="num">Price</th><th scope="col" class="num">Quantity</th><th scope="col" class="num">Total</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</section>
<section class="panel cart-options">
<h2>Delivery &amp; extras</h2>
<div class="options-grid">
<div class="field">
<label for="promo">Promo code</label>
<input type="text" id="promo" name="promo" value="{e(cart.promo)}" autocomplete="off" placeholder="Enter a code" maxlength="20">
{promo_note}
</div>
<div class="field">
<label for="country">Deliver to</label>
<select id="country" name="country">
{countries}
</select>
</div>
</div>
<fieldset class="field radio-group">
<legend>Delivery method</legend>
{radios}
</fieldset>
<div class="field check">
<input type="checkbox" id="gift_wrap" name="gift_wrap" value="1"{" checked" if cart.gift_wrap else ""}>
<label for="gift_wrap">Gift wrap in recycled paper (+{money(GIFT_WRAP_COST)})</label>
</div>
<div class="field">
<label for="gift_message">Gift message</label>
<textarea id="gift_message" name="gift_message" rows="3" maxlength="{MAX_MESSAGE}" placeholder="Write a personal note for the card…" data-cobrowse-mask>{e(cart.gift_message)}</textarea>
<p class="hint">Handwritten on a card and tucked in the parcel. Never printed on the invoice.</p>
</div>
</section>
</div>
<aside class="panel summary">
<h2>Order summary</h2>
<table class="totals">
{_totals_rows(totals, cart)}
</table>
<div class="summary-actions">
<button class="btn btn-ghost" type="submit" name="action" value="update">Update cart</button>
<button class="btn" type="submit" name="action" value="checkout">Checkout</button>
</div>
<p class="hint">Taxes included. Secure checkout.</p>
</aside>
</form>
{remove_forms}"""
    return layout("Your cart", body, ctx, page_class="page-cart")


def login_page(ctx: PageContext, *, email: str = "", error: str = "") -> str:
    error_html = _alert(e(error), "error") if error else ""
    body = f"""<div class="auth">
<section class="panel auth-card">
<h1>Sign in</h1>
<p class="muted">Track your orders and check out faster next time.</p>
{error_html}
<form method="post" action="/login" class="stack">
<div class="field">
<label for="email">Email</label>
<input type="email" id="email" name="email" value="{e(email)}" autocomplete="username" required>
</div>
<div class="field">
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
</div>
<div class="field check">
<input type="checkbox" id="remember" name="remember" value="1">
<label for="remember">Keep me signed in</label>
</div>
<button class="btn btn-wide" type="submit">Sign in</button>
</form>
<p class="demo-hint">Demo account: any email address with the password <code>demo</code>.</p>
</section>
</div>"""
    return layout("Sign in", body, ctx, page_class="page-login")


def account_page(email: str, ctx: PageContext) -> str:
    body = f"""<div class="page-head"><h1>Your account</h1></div>
<div class="account-grid">
<section class="panel">
<h2>Profile</h2>
<p>Signed in as <strong class="account-email">{e(email)}</strong></p>
<p class="muted">Member since today · Newsletter: not subscribed</p>
<a class="btn btn-ghost" href="/logout">Sign out</a>
</section>
<section class="panel">
<h2>Orders</h2>
<p class="muted">You haven't placed any orders yet.</p>
<a class="btn" href="/">Start shopping</a>
</section>
<section class="panel">
<h2>Need help?</h2>
<p class="muted">Our help centre answers the most common questions about orders, delivery and returns.</p>
<a href="/spa/">Visit the help centre</a>
</section>
</div>"""
    return layout("Your account", body, ctx, page_class="page-account")


def _summary_items(cart: Cart) -> str:
    if not cart.lines:
        return '<p class="muted">Your cart is empty. <a href="/">Browse the shop</a>.</p>'
    items = "\n".join(
        f"""<li><img src="{e(line.product.image_url)}" alt="" width="56" height="56">
<span class="summary-item-name">{e(line.product.name)}<span class="muted">{e(line.colour)} · × {line.qty}</span></span>
<span class="num">{money(line.total)}</span></li>"""
        for line in cart.lines
    )
    return f'<ul class="summary-items">\n{items}\n</ul>'


def _field(
    name: str,
    label: str,
    values: Mapping[str, str],
    errors: Mapping[str, str],
    *,
    type_: str = "text",
    autocomplete: str = "",
    required: bool = True,
    extra: str = "",
    keep_value: bool = True,
    field_class: str = "",
) -> str:
    fid = name.replace("_", "-")
    value = e(values.get(name, "")) if keep_value else ""
    err = errors.get(name)
    invalid = f' aria-invalid="true" aria-describedby="{fid}-error"' if err else ""
    err_html = f'\n<p class="field-error" id="{fid}-error">{e(err)}</p>' if err else ""
    ac = f' autocomplete="{e(autocomplete)}"' if autocomplete else ""
    req = " required" if required else ""
    optional = "" if required else ' <span class="muted">(optional)</span>'
    cls = f"field {field_class}".strip()
    return f"""<div class="{cls}">
<label for="{fid}">{e(label)}{optional}</label>
<input type="{type_}" id="{fid}" name="{name}" value="{value}"{ac}{req}{invalid}{extra}>{err_html}
</div>"""


def checkout_page(
    cart: Cart,
    ctx: PageContext,
    *,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
) -> str:
    values = values or {}
    errors = errors or {}
    country = values.get("country") or cart.country
    countries = "\n".join(
        f'<option value="{e(code)}"{" selected" if code == country else ""}>{e(name)}</option>'
        for code, name in COUNTRIES.items()
    )
    error_html = ""
    if errors:
        error_html = _alert(
            "Please check the highlighted fields. For your security, card details are never kept, so please re-enter them.",
            "error",
        )
    f = lambda *a, **k: _field(*a, values=values, errors=errors, **k)  # noqa: E731
    totals = cart.totals()
    card = dict(keep_value=False)
    body = f"""<div class="page-head"><h1>Checkout</h1><p class="muted">Secure checkout · your card details are never stored</p></div>
{error_html}
<form method="post" action="/checkout" class="checkout-layout">
<div class="checkout-main">
<section class="panel">
<h2>Contact</h2>
{f("email", "Email", type_="email", autocomplete="email")}
{f("phone", "Phone", type_="tel", autocomplete="tel", required=False)}
</section>
<section class="panel">
<h2>Shipping address</h2>
{f("full_name", "Full name", autocomplete="shipping name")}
{f("address1", "Address", autocomplete="shipping address-line1")}
{f("address2", "Apartment, suite, etc.", autocomplete="shipping address-line2", required=False)}
<div class="field-row">
{f("postcode", "Postcode", autocomplete="shipping postal-code")}
{f("city", "City", autocomplete="shipping address-level2")}
</div>
<div class="field">
<label for="country">Country</label>
<select id="country" name="country" autocomplete="shipping country">
{countries}
</select>
</div>
</section>
<section class="panel">
<h2>Payment</h2>
<p class="muted card-note"><img src="/static/img/lock.svg" alt="" width="16" height="16"> Card payments are encrypted. We never store your card details.</p>
{f("cc_name", "Name on card", autocomplete="cc-name", **card)}
{f("cc_number", "Card number", autocomplete="cc-number", extra=' inputmode="numeric" placeholder="1234 5678 9012 3456" maxlength="23"', **card)}
<div class="field-row">
{f("cc_exp", "Expiry date", autocomplete="cc-exp", extra=' placeholder="MM / YY" maxlength="7"', **card)}
{f("cc_csc", "Security code", autocomplete="cc-csc", extra=' inputmode="numeric" placeholder="CVC" maxlength="4"', **card)}
</div>
<p class="hint">Demo shop: use test card 4242 4242 4242 4242 with any future date and any CVC.</p>
</section>
</div>
<aside class="panel summary">
<h2>Order summary</h2>
{_summary_items(cart)}
<table class="totals">
{_totals_rows(totals, cart)}
</table>
<button class="btn btn-wide" type="submit">Place order · {money(totals.total)}</button>
<p class="hint"><a href="/cart">Edit cart</a></p>
</aside>
</form>"""
    return layout("Checkout", body, ctx, page_class="page-checkout")


def confirmation_page(
    order_no: str,
    values: Mapping[str, str],
    card_last4: str,
    cart: Cart,
    ctx: PageContext,
) -> str:
    totals = cart.totals()
    first_name = values.get("full_name", "").split(" ")[0] or "there"
    address_lines = [
        values.get("full_name", ""),
        values.get("address1", ""),
        values.get("address2", ""),
        f'{values.get("postcode", "")} {values.get("city", "")}'.strip(),
        COUNTRIES.get(values.get("country", ""), ""),
    ]
    address = "<br>".join(e(line) for line in address_lines if line)
    body = f"""<section class="panel confirm">
<img class="confirm-icon" src="/static/img/check.svg" alt="" width="56" height="56">
<p class="eyebrow">Order confirmed</p>
<h1>Thank you, {e(first_name)}!</h1>
<p class="lead">Your order <strong class="order-number">{e(order_no)}</strong> has been placed. A confirmation is on its way to <strong>{e(values.get("email", ""))}</strong>.</p>
<div class="confirm-grid">
<section><h2>Shipping to</h2><address>{address}</address><p class="muted">{e(SHIPPING_METHODS[cart.shipping][0])}</p></section>
<section><h2>Payment</h2><p>Card ending in {e(card_last4)}</p><p class="muted">Charged {money(totals.total)}</p></section>
</div>
{_summary_items(cart)}
<table class="totals">
{_totals_rows(totals, cart)}
</table>
<div class="hero-actions"><a class="btn" href="/">Continue shopping</a><a class="btn btn-ghost" href="/spa/">Track an order</a></div>
</section>"""
    return layout("Order confirmed", body, ctx, page_class="page-confirm")


def spa_shell(ctx: PageContext) -> str:
    body = """<section class="help-hero">
<p class="eyebrow">Help centre</p>
<h1>How can we help?</h1>
<p class="lead">Answers about orders, delivery, returns and caring for your things.</p>
<nav class="tabs" aria-label="Help centre">
<a href="/spa/" data-spa-tab="articles">Articles</a>
<a href="/spa/products" data-spa-tab="products">Product finder</a>
<a href="/spa/article/contact-options" data-spa-tab="contact">Contact options</a>
</nav>
</section>
<div id="spa-view" class="spa-view" data-spa-view>
<p class="muted">Loading the help centre…</p>
</div>
<noscript><p class="alert alert-info">The help centre needs JavaScript. You can still <a href="/secure/">contact us</a>.</p></noscript>"""
    return layout("Help centre", body, ctx, scripts=("/static/spa.js",), page_class="page-help")


def shipping_page(compressed: bool, ctx: PageContext) -> str:
    if compressed:
        note = (
            '<p class="served-note served-gzip" data-served-encoding="gzip">'
            "This page was served gzip-compressed (Content-Encoding: gzip).</p>"
        )
    else:
        note = (
            '<p class="served-note" data-served-encoding="identity">'
            "This page was served uncompressed, because your browser did not accept gzip.</p>"
        )
    rows = "\n".join(
        f'<tr><th scope="row">{e(name)}</th><td data-label="Standard">{e(std)}</td>'
        f'<td data-label="Express">{e(exp)}</td><td data-label="Delivery time">{e(days)}</td></tr>'
        for name, std, exp, days in (
            ("Netherlands", "€4.90 · free over €50", "€9.90", "1–2 days"),
            ("Belgium & Germany", "€6.90 · free over €75", "€14.90", "2–3 days"),
            ("France & Ireland", "€8.90 · free over €100", "€19.90", "3–5 days"),
            ("United Kingdom", "€12.90", "€24.90", "4–6 days"),
            ("United States", "€19.90", "€39.90", "6–10 days"),
        )
    )
    faqs = "\n".join(
        f'<details class="faq"><summary>{e(q)}</summary><p>{e(a)}</p></details>'
        for q, a in (
            (
                "When will my order ship?",
                "Orders placed before 2 pm on a working day leave our workshop the same day. "
                "Anything later ships the next working day.",
            ),
            (
                "Can I change my delivery address?",
                "Yes, as long as the parcel has not left us yet. Contact us with your order number "
                "and the new address.",
            ),
            (
                "Do you ship plants abroad?",
                "Succulents ship within the EU only, in a ventilated box with a care card.",
            ),
            (
                "How do I return something?",
                "Start a return from your account or contact us. Print the prepaid label, drop the "
                "parcel at any PostNL point and we refund within 5 days of receiving it.",
            ),
        )
    )
    body = f"""<div class="page-head page-head-split">
<div><h1>Shipping &amp; returns</h1><p class="muted">Everything you need to know about getting your order, and sending it back.</p></div>
{note}
</div>
<div class="content-grid">
<section class="panel prose">
<h2>Delivery rates</h2>
<div class="table-scroll">
<table class="data-table">
<thead><tr><th scope="col">Destination</th><th scope="col">Standard</th><th scope="col">Express</th><th scope="col">Delivery time</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</div>
<h2>Packaging</h2>
<p>We pack every order by hand in recycled cardboard with paper tape and paper padding. No plastic, and every box is reusable. Fragile ceramics travel in a moulded pulp insert.</p>
<h2>Returns</h2>
<p>Changed your mind? You can return any unused item within 30 days of delivery for a full refund. Candles must be unburnt and plants cannot be returned, but if a plant arrives damaged we will replace it.</p>
<p>Items that arrive damaged are always on us: send a photo within 7 days and we will send a replacement or refund you, your choice.</p>
</section>
<aside class="panel">
<h2>Frequently asked</h2>
{faqs}
<p class="muted">Still stuck? <a href="/secure/">Contact us</a> or browse the <a href="/spa/">help centre</a>.</p>
</aside>
</div>"""
    return layout("Shipping & returns", body, ctx, page_class="page-shipping")


CONTACT_TOPICS = (
    ("order", "A question about my order"),
    ("returns", "Returns and refunds"),
    ("advice", "Product advice"),
    ("wholesale", "Wholesale and press"),
    ("other", "Something else"),
)

SECURE_SCRIPT = """
(function () {
  var status = document.getElementById("script-status");
  status.textContent = "Page script ran";
  status.classList.add("is-ok");
  var message = document.getElementById("message");
  var counter = document.getElementById("message-count");
  function update() { counter.textContent = message.value.length + " / " + message.maxLength; }
  message.addEventListener("input", update);
  update();
})();
"""


def contact_page(
    ctx: PageContext,
    *,
    sent_name: str | None = None,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
) -> str:
    """The /secure/ page. ``ctx.nonce`` must be set: it goes on the inline script."""
    assert ctx.nonce, "contact_page needs a CSP nonce"
    values = values or {}
    errors = errors or {}
    notice = ""
    if sent_name is not None:
        notice = _alert(
            f"Thanks, {e(sent_name)}! Your message has been sent. We usually reply within one working day.",
            "success",
        )
    elif errors:
        notice = _alert("Please fill in the highlighted fields.", "error")
    topic = values.get("topic", "")
    topics = "\n".join(
        f'<option value="{e(k)}"{" selected" if k == topic else ""}>{e(label)}</option>'
        for k, label in CONTACT_TOPICS
    )
    f = lambda *a, **k: _field(*a, values=values, errors=errors, **k)  # noqa: E731
    msg_err = errors.get("message")
    msg_invalid = ' aria-invalid="true"' if msg_err else ""
    msg_err_html = f'\n<p class="field-error">{e(msg_err)}</p>' if msg_err else ""
    body = f"""<div class="page-head"><h1>Contact us</h1><p class="muted">Real people in Utrecht, Monday to Saturday. We usually reply within one working day.</p></div>
<div class="content-grid">
<section class="panel">
{notice}
<form method="post" action="/secure/" class="stack contact-form">
<div class="field-row">
{f("name", "Your name", autocomplete="name")}
{f("email", "Email", type_="email", autocomplete="email")}
</div>
<div class="field-row">
<div class="field">
<label for="topic">Topic</label>
<select id="topic" name="topic">
{topics}
</select>
</div>
{f("order", "Order number", required=False, extra=' placeholder="FW-123456"')}
</div>
<div class="field">
<label for="message">Message</label>
<textarea id="message" name="message" rows="6" maxlength="1000" required{msg_invalid}>{e(values.get("message", ""))}</textarea>{msg_err_html}
<p class="hint" id="message-count">0 / 1000</p>
</div>
<div class="field check">
<input type="checkbox" id="copy" name="copy" value="1"{" checked" if values.get("copy") else ""}>
<label for="copy">Send me a copy of this message</label>
</div>
<button class="btn" type="submit">Send message</button>
</form>
</section>
<aside class="panel contact-aside">
<h2>Other ways to reach us</h2>
<dl class="contact-list">
<dt>Phone</dt><dd>+31 30 123 4567<br><span class="muted">Mon–Fri 9:00–17:30</span></dd>
<dt>Email</dt><dd>hello@fernwood.example</dd>
<dt>Workshop &amp; shop</dt><dd>Oudegracht 112<br>3511 AX Utrecht</dd>
</dl>
<div class="security-box">
<h3>A protected page</h3>
<p>This page is served with a strict, nonce-based Content-Security-Policy: only scripts carrying this response's nonce may run.</p>
<p id="script-status" class="script-status">Page script has not run.</p>
</div>
</aside>
</div>
<script nonce="{e(ctx.nonce)}">{SECURE_SCRIPT}</script>"""
    return layout("Contact us", body, ctx, page_class="page-contact")


def not_found_page(path: str, ctx: PageContext) -> str:
    body = f"""<section class="not-found">
<img src="/static/img/succulent.svg" alt="" width="180" height="180">
<p class="eyebrow">Error 404</p>
<h1>We couldn't find that page</h1>
<p class="lead">Nothing lives at <code>{e(path)}</code>. It may have moved, or the link may be mistyped.</p>
<div class="hero-actions"><a class="btn" href="/">Back to the shop</a><a class="btn btn-ghost" href="/spa/">Help centre</a></div>
</section>"""
    return layout("Page not found", body, ctx, page_class="page-404")


# ---------------------------------------------------------------------------
# Fragments for fetch() (no document wrapper)
# ---------------------------------------------------------------------------


def reviews_fragment(product: Product) -> str:
    avg = sum(r.rating for r in product.reviews) / max(1, len(product.reviews))
    items = "\n".join(
        f"""<article class="review">
<header><strong>{e(r.author)}</strong> {_stars(r.rating)}</header>
<p>{e(r.text)}</p>
</article>"""
        for r in product.reviews
    )
    return f"""<div class="review-list" data-fragment="reviews" data-product="{product.id}">
<p class="rating-summary">{_stars(round(avg))} <span>{avg:.1f} out of 5 · {len(product.reviews)} reviews</span></p>
{items}
</div>
"""


JOURNAL = (
    ("Meet the maker: a pottery studio outside Porto", "How our stoneware mugs are thrown, glazed and fired twice.", "/product/1"),
    ("Five succulents that thrive on a north windowsill", "Low light? These tough little plants do not mind.", "/product/5"),
    ("Caring for wool: less washing, more airing", "Keep your throw and beanie soft for years with a few simple habits.", "/product/8"),
)


def journal_fragment() -> str:
    items = "\n".join(
        f"""<article class="journal-card">
<h3><a href="{e(href)}">{e(title)}</a></h3>
<p>{e(text)}</p>
</article>"""
        for title, text, href in JOURNAL
    )
    return f'<div class="journal-grid" data-fragment="journal">\n{items}\n</div>\n'
