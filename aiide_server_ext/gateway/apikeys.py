"""API keys: shown once, stored only as a salted hash, scoped, optionally expiring.

A key is ``aiide_<id>_<secret>``: the id finds the row, the 256-bit secret is
checked against HMAC-SHA256(salt, secret). A fast hash is enough for random
secrets of that size (no dictionary to attack), and keeps per-request checks
cheap; verified rows are cached for a few seconds, and ``last_used_at`` is
written at most once a minute per key.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiide_server_ext.stores.conn import Conn

from ..stores.errors import StoreError
from .audit import AuditLog
from .errors import GatewayError, bad_request, forbidden, not_found, unauthenticated
from .revocation import key_source, revoke_key_in
from .store import Store
from .tokens import Principal, TokenService

log = logging.getLogger("aiide.gateway")

PREFIX = "aiide_"
KEY_SHAPE = re.compile(r"^aiide_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
MAX_NAME = 100
LAST_USED_EVERY = 60.0


@dataclass(frozen=True)
class ApiKey:
    id: str
    username: str
    name: str
    scopes: frozenset[str]
    created_at: float
    created_by: str
    expires_at: float | None
    last_used_at: float | None
    revoked_at: float | None

    def public(self) -> dict[str, Any]:
        """What listing shows: never the secret, only a recognisable prefix."""
        return {
            "id": self.id,
            "user": self.username,
            "name": self.name,
            "masked": f"{PREFIX}{self.id}_…",
            "scopes": sorted(self.scopes),
            "created_at": self.created_at,
            "created_by": self.created_by,
            "expires_at": self.expires_at,
            "last_used_at": self.last_used_at,
            "revoked": self.revoked_at is not None,
        }


SELECT = (
    "SELECT id, username, name, scopes, created_at, created_by, expires_at, last_used_at,"
    " revoked_at FROM api_keys ORDER BY created_at"
)
SELECT_USER = (
    "SELECT id, username, name, scopes, created_at, created_by, expires_at, last_used_at,"
    " revoked_at FROM api_keys WHERE username = ? ORDER BY created_at"
)
SELECT_ONE = (
    "SELECT id, username, name, scopes, created_at, created_by, expires_at, last_used_at,"
    " revoked_at FROM api_keys WHERE id = ?"
)
SELECT_WITH_HASH = (
    "SELECT id, username, name, scopes, created_at, created_by, expires_at, last_used_at,"
    " revoked_at, salt, hash FROM api_keys WHERE id = ?"
)


def _key(row: tuple[Any, ...]) -> ApiKey:
    return ApiKey(
        id=row[0],
        username=row[1],
        name=row[2],
        scopes=frozenset(row[3].split()),
        created_at=row[4],
        created_by=row[5],
        expires_at=row[6],
        last_used_at=row[7],
        revoked_at=row[8],
    )


def _hash(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode(), hashlib.sha256).digest()


class ApiKeyService:
    def __init__(
        self,
        store: Store,
        audit: AuditLog,
        clock: Callable[[], float] = time.time,
        cache_seconds: float = 5.0,
        tokens: TokenService | None = None,
    ) -> None:
        self.store = store
        self.audit = audit
        self.clock = clock
        self.cache_seconds = cache_seconds
        #: Told of each revocation so tokens of the revoked keys end here at once.
        self.tokens = tokens
        self._cache: dict[str, tuple[float, bytes, bytes, ApiKey]] = {}
        #: Keys this server revoked: a verification that read the row just before the
        #: revocation committed must not cache it back as valid (concurrent use).
        self._revoked_ids: set[str] = set()
        self._touched: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def create_in(
        self,
        conn: Conn,
        actor: str,
        username: str,
        name: str,
        scopes: frozenset[str],
        expires_in: float | None,
        *,
        source: str = "",
        not_after: float | None = None,
    ) -> tuple[str, ApiKey]:
        """The raw key (to show once) and its record, audited in the same transaction.

        ``source``: the key the minting token came from (its revocation revokes this one);
        ``not_after``: the latest expiry allowed (the minting credential's own)."""
        if not name or len(name) > MAX_NAME:
            raise bad_request("invalid_name", f"'name' must be 1 to {MAX_NAME} characters")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        now = self.clock()
        expires_at = now + expires_in if expires_in else None
        if not_after is not None:
            if not_after <= now:
                raise unauthenticated("token_expired", "the minting credential has expired")
            expires_at = not_after if expires_at is None else min(expires_at, not_after)
        conn.execute(
            "INSERT INTO api_keys (id, username, name, scopes, created_at, created_by, expires_at,"
            " last_used_at, revoked_at, salt, hash, source)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key_id,
                username,
                name,
                " ".join(sorted(scopes)),
                now,
                actor,
                expires_at,
                None,
                None,
                salt,
                _hash(salt, secret),
                source,
            ),
        )
        self.audit.append(
            conn,
            actor,
            "apikey.created",
            f"user:{username}",
            "created",
            {
                "key_id": key_id,
                "name": name,
                "scopes": sorted(scopes),
                "expires_at": expires_at,
                "source": source,
            },
        )
        record = ApiKey(key_id, username, name, scopes, now, actor, expires_at, None, None)
        return f"{PREFIX}{key_id}_{secret}", record

    async def list_keys(self, username: str | None) -> list[ApiKey]:
        if username is None:
            rows = await self.store.aread(lambda c: c.execute(SELECT).fetchall())
        else:
            rows = await self.store.aread(lambda c: c.execute(SELECT_USER, (username,)).fetchall())
        return [_key(r) for r in rows]

    async def revoke(self, actor: str, is_admin: bool, key_id: str) -> ApiKey:
        now = self.clock()

        def revoke_in(c: Conn) -> tuple[ApiKey, list[str]]:
            row = c.execute(SELECT_ONE, (key_id,)).fetchone()
            if row is None or (row[1] != actor and not is_admin):
                raise not_found("unknown_key", "no such API key")  # others' keys stay invisible
            ended = revoke_key_in(c, key_id, now, f"revoked by {actor}")
            self.audit.append(
                c,
                actor,
                "apikey.revoked",
                f"user:{row[1]}",
                "revoked",
                {"key_id": key_id, "derived_keys": ended[1:]},
            )
            return _key(row), ended

        key, ended = await self.store.awrite(revoke_in)
        self.forget(ended)
        return key

    def forget(self, key_ids: list[str]) -> None:
        """Keys revoked by this server: refused here from now on, and their tokens too."""
        self._revoked_ids.update(key_ids)
        for key_id in key_ids:
            self._cache.pop(key_id, None)
        if self.tokens is not None:
            self.tokens.note_revoked([key_source(k) for k in key_ids])

    async def verify(self, raw: str) -> Principal:
        m = KEY_SHAPE.match(raw)
        if not m:
            raise unauthenticated("invalid_api_key", "the API key is malformed")
        key_id, secret = m.groups()
        now = self.clock()
        cached = self._cache.get(key_id)
        if cached is None or now - cached[0] > self.cache_seconds:
            row = await self.store.aread(
                lambda c: c.execute(SELECT_WITH_HASH, (key_id,)).fetchone()
            )
            if row is None:
                raise unauthenticated("invalid_api_key", "unknown API key")
            cached = (now, row[9], row[10], _key(row))
            self._cache[key_id] = cached
        _, salt, digest, key = cached
        if not hmac.compare_digest(_hash(salt, secret), digest):
            raise unauthenticated("invalid_api_key", "unknown API key")
        if key.revoked_at is not None or key_id in self._revoked_ids:
            raise unauthenticated("api_key_revoked", "the API key has been revoked")
        if key.expires_at is not None and now >= key.expires_at:
            raise unauthenticated("api_key_expired", "the API key has expired")
        self._touch(key_id, now)
        return Principal(
            key.username,
            key.scopes,
            "apikey",
            key_id,
            expires_at=key.expires_at,
            source=key_source(key_id),
            source_expires_at=key.expires_at,
        )

    def _touch(self, key_id: str, now: float) -> None:
        if now - self._touched.get(key_id, 0.0) < LAST_USED_EVERY:
            return
        self._touched[key_id] = now

        async def write() -> None:
            try:
                await self.store.awrite(
                    lambda c: c.execute(
                        "UPDATE api_keys SET last_used_at = ? WHERE id = ?", (now, key_id)
                    )
                )
            # Bookkeeping only: never fail the request for it.
            except (GatewayError, StoreError) as e:
                log.warning("aiide gateway: last_used_at not recorded: %s", e.message)

        task = asyncio.get_running_loop().create_task(write())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def expires_in(value: object) -> float | None:
    """Seconds until a new key expires (None: never); negative or zero is a 400."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request("invalid_expiry", "'expires_in' must be a number of seconds or null")
    if value <= 0:
        raise bad_request("invalid_expiry", "'expires_in' must be positive")
    return float(value)


def for_user(actor: str, is_admin: bool, requested: object) -> str:
    """Whose key: one's own, or anyone's for an admin."""
    if requested is None or requested == actor:
        return actor
    if not isinstance(requested, str) or not requested or len(requested) > 256:
        raise bad_request("invalid_user", "'user' must be a user name")
    if not is_admin:
        raise forbidden("admin_required", "only an admin may manage another user's keys")
    return requested
