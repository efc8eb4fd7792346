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


class StateUnavailable(Exception):
    pass


class SharedState:
    def __init__(self, redis_url: str = "", timeout: float = 2.0) -> None:
        self.redis_url = redis_url
        self.timeout = timeout
        self._client: Any = None
        self._changes: dict[str, dict[str, Any]] = {}
        self._counters: dict[str, tuple[int, float]] = {}

    def _redis(self) -> Any:
        if self._client is None:
            import redis.asyncio as aioredis

            self._client = aioredis.from_url(
                self.redis_url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                decode_responses=True,
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

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
