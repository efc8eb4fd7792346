"""A server secret kept in a 0600 file, made once: the gateway's JWT signing secret and
the key that seals stored secrets are both read (or created) this way."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from collections.abc import Callable


def read_or_create(
    path: str, make: Callable[[], bytes], log: logging.Logger, what: str, who: str
) -> bytes:
    """The file's content, stripped; made with ``make()`` when missing. Two processes
    starting at once agree on one secret (linked into place: the loser reads the
    winner's); a file readable by others is made 0600 with a warning. ``what`` names the
    secret and ``who`` the part, in the log."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, make())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process won the race: use theirs
            log.info("%s: generated %s in %s", who, what, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        log.warning("%s: %s was readable by others (%o); now 0600", who, path, mode)
        os.chmod(path, 0o600)
    with open(path, "rb") as f:
        return f.read().strip()
