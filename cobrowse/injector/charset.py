"""Which encoding a page's bytes are in, as far as inserting ASCII goes.

Our tag is ASCII, and every encoding a page can declare in a ``<meta>`` is
ASCII-compatible (the HTML standard maps a meta "utf-16" to UTF-8), so the
only pages that need care are UTF-16 ones, known from a byte order mark or
the Content-Type header. Precedence is the browser's: BOM, then header.
"""

from __future__ import annotations

_BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)

# WHATWG Encoding Standard labels for UTF-16 ("utf-16" alone means LE there).
_UTF16_LABELS = {
    "utf-16": "utf-16-le",
    "utf-16le": "utf-16-le",
    "utf-16-le": "utf-16-le",
    "unicode": "utf-16-le",
    "ucs-2": "utf-16-le",
    "iso-10646-ucs-2": "utf-16-le",
    "csunicode": "utf-16-le",
    "unicodefeff": "utf-16-le",
    "utf-16be": "utf-16-be",
    "utf-16-be": "utf-16-be",
    "unicodefffe": "utf-16-be",
}

BOM_SNIFF_LENGTH = 3


def charset_from_content_type(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip("\"'").lower() or None
    return None


def detect_wide_encoding(prefix: bytes, header_charset: str | None) -> tuple[str | None, int]:
    """(Python codec name if the page is UTF-16, else None; length of its BOM).

    ``prefix`` is the start of the decoded body (at least BOM_SNIFF_LENGTH
    bytes unless the body is shorter).
    """
    for bom, codec in _BOMS:
        if prefix.startswith(bom):
            return (codec if codec != "utf-8" else None), len(bom)
    if header_charset:
        return _UTF16_LABELS.get(header_charset), 0
    return None, 0
