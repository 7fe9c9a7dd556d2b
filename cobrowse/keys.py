"""The service's secret key: signs resume tokens and console sessions.

Kept in the data directory so tokens survive a restart (a visitor resumes
sharing after the hub restarts; agents stay logged in), created on first
start with owner-only permissions. Several processes of one deployment must
share the data directory, or the same COBROWSE_SECRET_KEY.

The file appears whole or not at all (written aside, then linked into
place), so processes starting together all read the same complete key; a
key shorter than MIN_SECRET_BYTES (an empty or truncated file, a short
variable) is refused rather than used: anyone could sign with it.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import tempfile
from pathlib import Path

ENV_VAR = "COBROWSE_SECRET_KEY"
MIN_SECRET_BYTES = 16


def load_or_create_secret(data_dir: str | os.PathLike) -> bytes:
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return _checked(from_env.encode(), f"environment variable {ENV_VAR}")
    path = Path(data_dir) / "secret.key"
    try:
        return _checked(path.read_bytes(), str(path))
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(32)
    fd, aside = tempfile.mkstemp(prefix=".secret.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(base64.urlsafe_b64encode(key) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(aside, path)  # fails if another process got there first: use theirs
        except FileExistsError:
            return _checked(path.read_bytes(), str(path))
    finally:
        os.unlink(aside)
    return key


def _checked(encoded: bytes, where: str) -> bytes:
    from .config import ConfigError

    text = encoded.strip()
    try:
        key = base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ConfigError("the secret key is not base64", origin=where) from None
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigError(f"the secret key must be at least {MIN_SECRET_BYTES} bytes (base64), "
                          f"got {len(key)}", origin=where)
    return key
