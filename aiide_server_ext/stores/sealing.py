"""Secrets at rest: values a store keeps for users (their own provider keys, header
variables) sealed with AES-256-GCM under a server key.

Why: the agent's database is a file (or a PostgreSQL table) that backups, a copied
data directory or a read-only database role see whole; a user's model key in it must
be useless without the server key, which lives elsewhere (an environment variable or a
0600 file in Jupyter's data directory, which sandboxed kernels never see).

A sealed value reads ``aiide-sealed:v1:<key id>:<base64(nonce | ciphertext | tag)>``.
The key id (8 hex digits of a hash of the key) says which key sealed it, so a server
started with another key says so instead of failing obscurely; the additional data
binds each value to its row (user and name), so a value copied into another user's
row does not open. ``cryptography`` is imported on first seal or open, not at start.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
from typing import TYPE_CHECKING

from .errors import StoreError
from .secret_file import read_or_create

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger("aiide.stores")

PREFIX = "aiide-sealed:v1:"
KEY_ENV = "AIIDE_SECRET_KEY"
KEY_BYTES = 32
NONCE_BYTES = 12


class SealError(StoreError):
    """A sealed value cannot be opened (another server key, or altered)."""

    def __init__(self, message: str) -> None:
        super().__init__(500, "secret_unreadable", message)


def key_id(key: bytes) -> str:
    """A public name for a key: which key sealed a value, never the key."""
    return hashlib.sha256(b"aiide-sealing-key-id\0" + key).hexdigest()[:8]


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


def sealed_by(value: str) -> str | None:
    """The key id a sealed value names (None for a plain value)."""
    if not is_sealed(value):
        return None
    return value[len(PREFIX) :].split(":", 1)[0]


class Sealer:
    """Seals and opens strings under one server key; ``source`` names where the key
    came from, for the server's log (never the key itself; errors that reach users name
    key ids only)."""

    def __init__(self, key: bytes, source: str) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"{source}: the server key must be {KEY_BYTES} bytes")
        self._key = key
        self.source = source
        self.key_id = key_id(key)
        self._aead: AESGCM | None = None

    def __repr__(self) -> str:  # never show the key
        return f"Sealer(key id {self.key_id} from {self.source})"

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._aead = AESGCM(self._key)
        return self._aead

    def seal(self, value: str, context: str) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        body = self._cipher().encrypt(nonce, value.encode(), context.encode())
        return f"{PREFIX}{self.key_id}:{base64.urlsafe_b64encode(nonce + body).decode()}"

    def open(self, sealed: str, context: str) -> str:
        """The plain value; ``SealError`` naming the cause when it cannot be opened."""
        by = sealed_by(sealed)
        if by is None:
            raise SealError("the value is not sealed")
        if by != self.key_id:
            raise SealError(
                f"it was sealed with server key {by}, but this server's key is "
                f"{self.key_id} (the administrator replaced it): store it again, or the "
                "administrator restores that key"
            )
        from cryptography.exceptions import InvalidTag

        try:
            raw = base64.urlsafe_b64decode(sealed[len(PREFIX) + len(by) + 1 :])
            plain = self._cipher().decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode())
        except (InvalidTag, binascii.Error, ValueError):
            raise SealError(
                "it does not open with this server's key: it was altered or moved to "
                "another user's row; store it again"
            ) from None
        return str(plain.decode())


def load_server_key(path: str) -> Sealer:
    """The server key: ``$AIIDE_SECRET_KEY`` (urlsafe base64 of 32 bytes), else the file
    at ``path``, made once (0600, linked into place atomically so that two servers
    starting together agree on one key)."""
    from_env = os.environ.get(KEY_ENV, "")
    if from_env:
        return Sealer(_decode(from_env, f"${KEY_ENV}"), f"${KEY_ENV}")
    text = read_or_create(
        path,
        lambda: base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)) + b"\n",
        log,
        "the server key for stored secrets",
        "aiide",
    ).decode(errors="replace")
    return Sealer(_decode(text, path), path)


def _decode(text: str, source: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise ValueError(
            f"{source}: the server key must be {KEY_BYTES} random bytes in urlsafe base64 "
            f"(e.g. python -c 'import base64,os;print(base64.urlsafe_b64encode(os.urandom(32))"
            ".decode())')"
        )
    return key
