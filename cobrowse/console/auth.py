"""Console login sessions: an HMAC-signed cookie, checked against the database on every use.

The cookie holds the user id, its expiry and a fingerprint of the user's
password hash, signed with the service's secret key. Nothing is kept in
memory, so sessions survive restarts and work across processes; changing a
password (new hash) or disabling the account ends every session at once,
because each request and each websocket join loads the user again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

COOKIE_NAME = "__cobrowse_console"
SESSION_LIFETIME = 12 * 3600  # one working day; agents log in again after


def _fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def _mac(secret: bytes, payload: str) -> str:
    digest = hmac.new(secret, b"console|" + payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def issue(secret: bytes, user_id: int, password_hash: str, now: float | None = None) -> str:
    now = now or time.time()
    expires = int(now + SESSION_LIFETIME)
    # The issue time (ms) lets a logout void the logins made before it (see issued_at).
    payload = f"{user_id}.{expires}.{_fingerprint(password_hash)}.{int(now * 1000)}"
    return f"{payload}.{_mac(secret, payload)}"


def issued_at(cookie: str) -> float:
    """When a (verified) cookie was issued, in unix seconds."""
    fields = cookie.rpartition(".")[0].split(".")
    if len(fields) >= 4 and fields[3].isdigit():
        return int(fields[3]) / 1000
    return int(fields[1]) - SESSION_LIFETIME if len(fields) > 1 and fields[1].isdigit() else 0.0


def verify(secret: bytes, cookie: str, now: float | None = None) -> tuple[int, str] | None:
    """(user id, password-hash fingerprint) of a valid, unexpired cookie, else None."""
    payload, _, mac = cookie.rpartition(".")
    if not payload or not hmac.compare_digest(_mac(secret, payload), mac):
        return None
    user_id, expires, fingerprint = (payload.split(".") + ["", "", ""])[:3]
    if not (user_id.isdigit() and expires.isdigit()) or int(expires) < (now or time.time()):
        return None
    return int(user_id), fingerprint


def matches(password_hash: str, fingerprint: str) -> bool:
    return hmac.compare_digest(_fingerprint(password_hash), fingerprint)
