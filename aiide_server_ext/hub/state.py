"""State several brokers share: instructors' course changes and students' token use.

Redis when a URL is given (so replicas agree), process memory otherwise (one broker).
When Redis is unreachable, callers get ``StateUnavailable``; the broker then fails
closed (refuses model calls) unless configured to fail open.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from .course import periods

PREFIX = "aiide:broker:"
#: Days of per-student usage history kept for instructors.
HISTORY_DAYS = 60
_SEP = "\t"


class StateUnavailable(Exception):
    pass


class SharedState:
    def __init__(self, redis_url: str = "", timeout: float = 2.0) -> None:
        self.redis_url = redis_url
        self.timeout = timeout
        self._client: Any = None
        self._changes: dict[str, dict[str, Any]] = {}
        self._counters: dict[str, tuple[int, float]] = {}
        self._days: dict[str, dict[str, int]] = {}
        self._groups: dict[str, str] = {}

    def _redis(self) -> Any:
        if self._client is None:
            import redis.asyncio as aioredis
            from redis.backoff import NoBackoff
            from redis.exceptions import ConnectionError as RedisConnectionError
            from redis.retry import Retry

            self._client = aioredis.from_url(
                self.redis_url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                decode_responses=True,
                # A restarted Redis leaves stale pooled connections: reconnect once.
                retry=Retry(NoBackoff(), 1),
                retry_on_error=[RedisConnectionError],
            )
        return self._client

    async def _call(self, name: str, *args: Any) -> Any:
        import redis

        try:
            return await getattr(self._redis(), name)(*args)
        except (redis.RedisError, OSError) as e:
            raise StateUnavailable(f"Redis is unreachable ({type(e).__name__})") from None

    # -- course changes ----------------------------------------------------------------

    async def changes(self, course: str) -> dict[str, Any]:
        if not self.redis_url:
            return dict(self._changes.get(course, {}))
        text = await self._call("get", f"{PREFIX}course:{course}")
        return dict(json.loads(text)) if text else {}

    async def set_changes(self, course: str, changes: Mapping[str, Any]) -> None:
        if not self.redis_url:
            self._changes[course] = dict(changes)
            return
        await self._call("set", f"{PREFIX}course:{course}", json.dumps(dict(changes)))

    # -- token use -----------------------------------------------------------------------

    async def used(self, user: str) -> dict[str, int]:
        """Tokens used by the user in the current day and week."""
        keys = {kind: f"{PREFIX}used:{user}:{key}" for kind, (key, _) in periods().items()}
        if not self.redis_url:
            now = time.time()
            return {
                k: v[0] if (v := self._counters.get(key)) and v[1] > now else 0
                for k, key in keys.items()
            }
        values = await self._call("mget", list(keys.values()))
        return {kind: int(v or 0) for kind, v in zip(keys, values, strict=True)}

    async def add_used(self, user: str, tokens: int) -> None:
        if tokens <= 0:
            return
        now = time.time()
        for key, ttl in periods(now).values():
            name = f"{PREFIX}used:{user}:{key}"
            if not self.redis_url:
                count, _ = self._counters.get(name, (0, 0.0))
                self._counters[name] = (count + tokens, now + ttl)
                continue
            pipe = self._redis().pipeline(transaction=True)
            pipe.incrby(name, tokens).expire(name, ttl + 3600)
            try:
                await pipe.execute()
            except Exception as e:
                raise StateUnavailable(f"Redis is unreachable ({type(e).__name__})") from None

    # -- history for instructors -------------------------------------------------------------

    async def count(self, user: str, groups: frozenset[str], day: str, **metrics: int) -> None:
        """Add to the user's figures for the day (tokens, calls, ``limit:<code>`` hits)."""
        fields = {f"{user}{_SEP}{k}": v for k, v in metrics.items() if v}
        if not fields:
            return
        if not self.redis_url:
            table = self._days.setdefault(day, {})
            for k, v in fields.items():
                table[k] = table.get(k, 0) + v
            self._groups[user] = json.dumps(sorted(groups))
            return
        name = f"{PREFIX}usage:{day}"
        pipe = self._redis().pipeline(transaction=True)
        for k, v in fields.items():
            pipe.hincrby(name, k, v)
        pipe.expire(name, HISTORY_DAYS * 86400)
        pipe.hset(f"{PREFIX}groups", user, json.dumps(sorted(groups)))
        try:
            await pipe.execute()
        except Exception as e:
            raise StateUnavailable(f"Redis is unreachable ({type(e).__name__})") from None

    async def history(self, days: list[str]) -> dict[str, dict[str, dict[str, int]]]:
        """day -> user -> metric -> value, for the given UTC days."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        for day in days:
            if self.redis_url:
                raw = await self._call("hgetall", f"{PREFIX}usage:{day}")
            else:
                raw = self._days.get(day, {})
            for key, value in raw.items():
                user, _, metric = str(key).partition(_SEP)
                out.setdefault(day, {}).setdefault(user, {})[metric] = int(value)
        return out

    async def groups_of(self) -> dict[str, frozenset[str]]:
        """The hub groups each metered student had when last metered."""
        raw = await self._call("hgetall", f"{PREFIX}groups") if self.redis_url else self._groups
        return {str(u): frozenset(json.loads(g)) for u, g in raw.items()}

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
