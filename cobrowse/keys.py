"""The service's secret key: signs resume tokens and console sessions.

Kept in the data directory so tokens survive a restart (a visitor resumes
sharing after the hub restarts; agents stay logged in), created on first
start with owner-only permissions. Several processes of one deployment must
share the data directory, or the same COBROWSE_SECRET_KEY.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

ENV_VAR = "COBROWSE_SECRET_KEY"


def load_or_create_secret(data_dir: str | os.PathLike) -> bytes:
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return base64.urlsafe_b64decode(from_env + "=" * (-len(from_env) % 4))
    path = Path(data_dir) / "secret.key"
    try:
        return base64.urlsafe_b64decode(path.read_bytes().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(base64.urlsafe_b64encode(key) + b"\n")
    return key
