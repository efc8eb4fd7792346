"""The HS256 signing secret: from config, else the environment, else a file made once.

The generated file is written 0600 and linked into place atomically, so two
servers starting together on one data directory agree on one secret.
"""

from __future__ import annotations

import logging
import os
import secrets

from ..stores.secret_file import read_or_create

log = logging.getLogger("aiide.gateway")

SECRET_ENV = "AIIDE_JWT_SECRET"  # noqa: S105 (a variable name, not a secret)
#: RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
MIN_SECRET_BYTES = 32


def load_secret(configured: str, path: str) -> bytes:
    if configured:
        return configured.encode()
    from_env = os.environ.get(SECRET_ENV, "")
    if from_env:
        return from_env.encode()
    return _read_or_create(path)


def _read_or_create(path: str) -> bytes:
    return read_or_create(
        path,
        lambda: secrets.token_urlsafe(64).encode(),
        log,
        "a JWT signing secret",
        "aiide gateway",
    )
