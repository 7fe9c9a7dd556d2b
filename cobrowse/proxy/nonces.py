"""CSP nonces for injected pages, drawn from the OS in batches.

A nonce must be unpredictable, so it comes from os.urandom; asking the OS
once per page costs a system call on the hot path, so we ask for 256 at a
time and hand them out one by one.
"""

from __future__ import annotations

import base64
import os

_NONCE_BYTES = 18  # 144 bits, 24 base64 characters
_BATCH = 256


class NonceSource:
    __slots__ = ("_pool",)

    def __init__(self) -> None:
        self._pool: list[str] = []

    def __call__(self) -> str:
        if not self._pool:
            raw = os.urandom(_NONCE_BYTES * _BATCH)
            encoded = base64.urlsafe_b64encode(raw).decode("ascii")
            width = _NONCE_BYTES * 4 // 3
            self._pool = [encoded[i:i + width] for i in range(0, len(encoded), width)]
        return self._pool.pop()
