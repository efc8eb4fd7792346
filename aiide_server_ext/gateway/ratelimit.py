"""Sliding-window rate limits per (user, route class): in memory or in Redis.

Both backends keep a log of hit times, so the count in any window never
exceeds the limit (no fixed-window bursts at the boundary). In memory each hit
is a synchronous step on the event loop; in Redis one Lua script does the whole
check-and-add atomically using Redis' own clock, so servers sharing a Redis
share exact limits whatever their clocks say.
"""

from __future__ import annotations

import abc
import logging
import math
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..redis_window import SLIDING_WINDOW
from .errors import unavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("aiide.gateway")

_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}
_SHAPE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")


@dataclass(frozen=True)
class RateLimit:
    count: int
    window: float

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """``"60/minute"``, ``"20/min"``, ``"100/10s"``, ``"1000/hour"``."""
        m = _SHAPE.match(text.lower())
        if not m or m.group(3) not in _UNITS or int(m.group(1)) <= 0:
            raise ValueError(f"rate limit {text!r}: expected COUNT/[N]UNIT such as 60/minute")
        return cls(int(m.group(1)), float(int(m.group(2) or 1) * _UNITS[m.group(3)]))

    @property
    def per_second(self) -> float:
        return self.count / self.window

    def describe(self) -> str:
        return f"{self.count} per {self.window:g}s"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float = 0.0
    degraded: bool = False

    def headers(self) -> dict[str, str]:
        """``X-RateLimit-Reset`` and ``Retry-After`` are in seconds from now."""
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.remaining)),
            "X-RateLimit-Reset": str(max(0, math.ceil(self.reset_after))),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers


@dataclass(frozen=True)
class RateLimits:
    """Per route class, with per-role overrides (the most generous of a caller's roles)."""

    defaults: Mapping[str, RateLimit]
    by_role: Mapping[str, Mapping[str, RateLimit]]

    @classmethod
    def from_config(
        cls, defaults: Mapping[str, str | None], by_role: Mapping[str, Mapping[str, str | None]]
    ) -> RateLimits:
        return cls(
            {k: RateLimit.parse(v) for k, v in defaults.items() if v},
            {r: {k: RateLimit.parse(v) for k, v in t.items() if v} for r, t in by_role.items()},
        )

    def for_caller(self, roles: frozenset[str], route_class: str) -> RateLimit | None:
        candidates = [
            t[route_class] for r in roles if route_class in (t := self.by_role.get(r, {}))
        ]
        if candidates:
            return max(candidates, key=lambda limit: limit.per_second)
        return self.defaults.get(route_class)


class RateLimiter(abc.ABC):
    """A backend: count one hit for ``key`` and say whether it is within ``limit``."""

    def __init__(self, **options: Any) -> None:  # noqa: B027 (optional to override)
        """Backends take the ``c.Gateway`` options they need and ignore the rest."""

    @abc.abstractmethod
    async def hit(self, key: str, limit: RateLimit) -> Decision: ...

    async def close(self) -> None:
        return None


class MemoryRateLimiter(RateLimiter):
    """One server's limits; exact because every hit is one step on the event loop."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, **options: Any) -> None:
        super().__init__(**options)
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._sweep_at = 0.0

    def hit_now(self, key: str, limit: RateLimit) -> Decision:
        now = self.clock()
        hits = self._hits.get(key)
        if hits is None:
            hits = self._hits[key] = deque()
        cutoff = now - limit.window
        while hits and hits[0] <= cutoff:
            hits.popleft()
        if len(hits) < limit.count:
            hits.append(now)
            return Decision(
                True, limit.count, limit.count - len(hits), hits[0] + limit.window - now
            )
        wait = hits[0] + limit.window - now
        if now > self._sweep_at:
            self._sweep(now)
        return Decision(False, limit.count, 0, wait, wait)

    def _sweep(self, now: float) -> None:
        """Forget idle keys now and then, so memory follows active users only."""
        self._sweep_at = now + 60.0
        for key in [k for k, v in self._hits.items() if not v or v[-1] < now - 86400]:
            del self._hits[key]

    async def hit(self, key: str, limit: RateLimit) -> Decision:
        return self.hit_now(key, limit)


# KEYS: window; ARGV: limit, window (us), member -> {allowed (1/0), remaining, wait (us)}
_LUA = (
    SLIDING_WINDOW
    + """
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local taken, remaining, wait = sliding_window(KEYS[1], limit, window, ARGV[3])
if taken then return {1, remaining, wait} end
return {0, 0, wait}
"""
)


def _unreachable(e: Exception) -> bool:
    """Cannot connect at all (as opposed to one slow answer)."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    if isinstance(e, RedisTimeoutError | TimeoutError):
        return False
    return isinstance(e, RedisConnectionError | OSError)


def _stale(e: Exception) -> bool:
    """A pooled connection the server closed (Redis restarted): worth one reconnect."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    return isinstance(e, RedisConnectionError) and "closed" in str(e).lower()


class RedisRateLimiter(RateLimiter):
    """Limits shared by every server using the same Redis (``c.Gateway.redis_url``)."""

    def __init__(
        self,
        redis_url: str = "redis://localhost:6379/0",
        failure_mode: str = "open",
        timeout: float = 2.0,
        prefix: str = "aiide:rl:",
        max_connections: int = 32,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if failure_mode not in ("open", "closed"):
            raise ValueError("redis failure mode must be 'open' or 'closed'")
        self.url = redis_url
        self.failure_mode = failure_mode
        self.timeout = timeout
        self.prefix = prefix
        self.max_connections = max_connections
        self._client: Redis | None = None
        self._script: Any = None
        self._down_until = 0.0
        self._warned_at = -1e9

    def _redis(self) -> Any:
        if self._client is None:
            # Imported on the first limited request only. A blocking pool queues a burst
            # instead of failing it with "too many connections" (which would fail open).
            from redis.asyncio import BlockingConnectionPool, Redis

            pool = BlockingConnectionPool.from_url(
                self.url,
                max_connections=self.max_connections,
                timeout=max(5.0, self.timeout),
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
            )
            self._client = Redis(connection_pool=pool)
            self._script = self._client.register_script(_LUA)
        return self._script

    async def hit(self, key: str, limit: RateLimit) -> Decision:
        for attempt in (0, 1) if time.monotonic() >= self._down_until else ():
            try:
                script = self._redis()
                allowed, remaining, wait_us = await script(
                    keys=[self.prefix + key],
                    args=[limit.count, int(limit.window * 1_000_000), uuid.uuid4().hex],
                )
                wait = int(wait_us) / 1_000_000
                if int(allowed):
                    return Decision(True, limit.count, int(remaining), wait)
                return Decision(False, limit.count, 0, wait, wait)
            except Exception as e:  # redis errors, OSError, timeouts: no answer to go by
                if attempt == 0 and _stale(e):
                    continue  # a restarted Redis closed the pooled connection: reconnect once
                if _unreachable(e):  # skip Redis for a second rather than wait on each request
                    self._down_until = time.monotonic() + 1.0
                self._warn(e)
                break
        if self.failure_mode == "closed":
            raise unavailable(
                "rate_limiter_unavailable",
                "the shared rate limiter is unreachable; requests are refused until it is back",
            )
        return Decision(True, limit.count, limit.count, 0.0, degraded=True)

    def _warn(self, e: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= 30.0:
            self._warned_at = now
            log.warning(
                "aiide gateway: Redis rate limiter unreachable (%s: %s); failing %s",
                type(e).__name__,
                e,
                self.failure_mode,
            )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose(close_connection_pool=True)
            self._client = None
