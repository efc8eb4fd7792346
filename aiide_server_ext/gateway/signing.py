"""The HS256 signing secret: from config, else the environment, else a file made once.

The generated file is written 0600 and linked into place atomically, so two
servers starting together on one data directory agree on one secret.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat

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
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_urlsafe(64).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process won the race: use theirs
            log.info("aiide gateway: generated a JWT signing secret in %s", path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        log.warning("aiide gateway: %s was readable by others (%o); now 0600", path, mode)
        os.chmod(path, 0o600)
    with open(path, "rb") as f:
        return f.read().strip()
