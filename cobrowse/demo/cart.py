"""The visitor's cart, kept entirely in a cookie.

Nothing is stored server-side: every visitor carries their own cart. The
cookie value is base64url-encoded JSON; decoding is defensive (a tampered or
malformed cookie just yields an empty/partial cart, never an error).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

from .catalog import PRODUCTS_BY_ID, Product

COOKIE_NAME = "cart"
COOKIE_MAX_AGE = 30 * 24 * 3600

MAX_LINES = 20
MAX_QTY = 99
MAX_MESSAGE = 200
MAX_PROMO = 20

PROMOS = {"HELP10": 10}  # code -> percent off

SHIPPING_METHODS = {
    # key: (label, cost in cents, note)
    "standard": ("Standard delivery", 490, "3–5 working days · free over €50"),
    "express": ("Express delivery", 990, "Next working day if ordered before 2 pm"),
    "pickup": ("Pick up in store", 0, "Ready in 2 hours at Fernwood, Utrecht"),
}
FREE_SHIPPING_OVER = 5000
GIFT_WRAP_COST = 350

COUNTRIES = {
    "NL": "Netherlands",
    "BE": "Belgium",
    "DE": "Germany",
    "FR": "France",
    "GB": "United Kingdom",
    "IE": "Ireland",
    "US": "United States",
}


@dataclass(slots=True)
class CartLine:
    product: Product
    colour: str
    qty: int

    @property
    def key(self) -> str:
        """Stable form-field key for this line: '<product id>-<colour index>'."""
        return f"{self.product.id}-{self.product.colours.index(self.colour)}"

    @property
    def total(self) -> int:
        return self.product.price * self.qty


@dataclass(slots=True)
class Totals:
    subtotal: int
    discount: int
    gift_wrap: int
    shipping: int

    @property
    def total(self) -> int:
        return self.subtotal - self.discount + self.gift_wrap + self.shipping


@dataclass(slots=True)
class Cart:
    lines: list[CartLine] = field(default_factory=list)
    promo: str = ""
    shipping: str = "standard"
    country: str = "NL"
    gift_wrap: bool = False
    gift_message: str = ""

    # -- queries -----------------------------------------------------------
    @property
    def count(self) -> int:
        return sum(line.qty for line in self.lines)

    @property
    def promo_percent(self) -> int:
        return PROMOS.get(self.promo, 0)

    def totals(self) -> Totals:
        subtotal = sum(line.total for line in self.lines)
        discount = subtotal * self.promo_percent // 100
        wrap = GIFT_WRAP_COST if self.gift_wrap and self.lines else 0
        _, cost, _ = SHIPPING_METHODS[self.shipping]
        if not self.lines or (self.shipping == "standard" and subtotal - discount >= FREE_SHIPPING_OVER):
            cost = 0
        return Totals(subtotal, discount, wrap, cost)

    def find(self, key: str) -> CartLine | None:
        return next((line for line in self.lines if line.key == key), None)

    # -- mutations ---------------------------------------------------------
    def add(self, product: Product, colour: str, qty: int) -> None:
        if colour not in product.colours:
            colour = product.colours[0]
        qty = _clamp(qty, 1, MAX_QTY)
        for line in self.lines:
            if line.product.id == product.id and line.colour == colour:
                line.qty = min(MAX_QTY, line.qty + qty)
                return
        if len(self.lines) < MAX_LINES:
            self.lines.append(CartLine(product, colour, qty))

    def set_qty(self, key: str, qty: int) -> None:
        line = self.find(key)
        if line is None:
            return
        if qty <= 0:
            self.lines.remove(line)
        else:
            line.qty = min(qty, MAX_QTY)

    def remove(self, key: str) -> None:
        self.set_qty(key, 0)

    def set_options(
        self,
        *,
        promo: str,
        shipping: str,
        country: str,
        gift_wrap: bool,
        gift_message: str,
    ) -> None:
        self.promo = clean_promo(promo)
        self.shipping = shipping if shipping in SHIPPING_METHODS else "standard"
        self.country = country if country in COUNTRIES else "NL"
        self.gift_wrap = bool(gift_wrap)
        self.gift_message = gift_message.strip()[:MAX_MESSAGE]

    # -- cookie encoding ---------------------------------------------------
    def encode(self) -> str:
        data = {
            "l": [[line.product.id, line.colour, line.qty] for line in self.lines],
            "p": self.promo,
            "s": self.shipping,
            "c": self.country,
            "w": int(self.gift_wrap),
            "g": self.gift_message,
        }
        raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, value: str | None) -> "Cart":
        cart = cls()
        if not value:
            return cart
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            data = json.loads(raw.decode())
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return cart
        if not isinstance(data, dict):
            return cart
        lines = data.get("l")
        if isinstance(lines, list):
            for item in lines[:MAX_LINES]:
                if not (isinstance(item, list) and len(item) == 3):
                    continue
                pid, colour, qty = item
                product = PRODUCTS_BY_ID.get(pid) if isinstance(pid, int) else None
                if product is None or not isinstance(colour, str) or not isinstance(qty, int):
                    continue
                if colour in product.colours and qty > 0:
                    cart.add(product, colour, qty)

        def text(key: str, default: str) -> str:
            v = data.get(key)
            return v if isinstance(v, str) else default

        cart.set_options(
            promo=text("p", ""),
            shipping=text("s", "standard"),
            country=text("c", "NL"),
            gift_wrap=data.get("w") in (1, True),
            gift_message=text("g", ""),
        )
        return cart


def clean_promo(code: str) -> str:
    return "".join(ch for ch in code.strip().upper() if ch.isalnum())[:MAX_PROMO]


def parse_int(value: object, default: int) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        return default


def _clamp(value: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, value))
