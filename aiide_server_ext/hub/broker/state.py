"""State several brokers share: instructors' course changes and students' token use.

Redis when a URL is given (so replicas agree), process memory otherwise (one broker).
When Redis is unreachable, callers get ``StateUnavailable``; the broker then fails
closed (refuses model calls) unless configured to fail open.

The model-call path costs one Redis round trip before the stream, shared by every call
admitted at that moment (``admit``, batched by ``scripts.BatchedScript``: one Lua
script per call checks that the broker's cached course changes are current, checks the budget and
takes a rate-limit slot, atomically) and one after it, shared by every call finishing at
that moment (``apply``, from ``recorder.Recorder``). Course changes are cached per broker
and versioned: every change bumps ``courses:version``, and ``admit`` refuses to run on a
stale version, so an instructor's change (exam mode) holds from the very next call on
every replica.

Redis is a cache and counter, not the record: with a ``DurableState`` (the broker always
has one) course changes are written to the broker's database first and usage is added
there by the recorder, and whenever the version key is missing (Redis restarted empty, or
a first start) the state is rebuilt from the database in one atomic script before anything
is decided, so a restart changes nothing students or instructors see. Counters that a call
incremented in the empty Redis before the rebuild are kept (the larger value wins).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiide_server_ext.redis_window import SLIDING_WINDOW

from ..course import periods
from .durable import TOKENS, StateUnavailable, day_figures

if TYPE_CHECKING:
    from .durable import DurableState, Saved

PREFIX = "aiide:broker:"
VERSION_KEY = PREFIX + "courses:version"
#: course -> revision of the changes held in Redis (an older write never replaces newer).
REVISIONS_KEY = PREFIX + "courses:revision"
GROUPS_KEY = PREFIX + "groups"
#: Rate-limit windows (the gateway's limiter used the same keys and algorithm).
RATE_PREFIX = "aiide:rl:broker:"
#: Days of per-student usage history kept for instructors.
HISTORY_DAYS = 60
_SEP = "\t"
#: Seconds a usage counter outlives its period (late readers still see the total).
_USED_GRACE = 3600
#: Tries of a course change while other changes to the same course keep landing first.
_UPDATE_ATTEMPTS = 20

# KEYS: version, rate-limit window, used counters (one per budget period)
# ARGV: expected version, limit (0: none), window (us), member, tokens to reserve, then per
#       period: budget (-1: none), seconds the counter lives
# -> {-1} stale version; else {code, granted, remaining, reset (us), 0, used per period...},
#    code 0 admitted, 1 budget spent (no slot taken), 2 rate limited. An admitted call
#    under a budget reserves up to what is left of it (``granted``), so calls in flight
#    together never promise more than the budget; ``apply`` settles the difference.
_ADMIT = (
    SLIDING_WINDOW
    + """
local v = redis.call('GET', KEYS[1]) or '0'
if v ~= ARGV[1] then return {-1} end
local out = {0, 0, 0, 0, 0}
local left = -1
for i = 3, #KEYS do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  out[#out + 1] = used
  local budget = tonumber(ARGV[2 * i])
  if budget >= 0 then
    if used >= budget then out[1] = 1 end
    if left < 0 or budget - used < left then left = budget - used end
  end
end
if out[1] == 1 then return out end
local limit = tonumber(ARGV[2])
if limit > 0 then
  local taken, remaining, reset = sliding_window(KEYS[2], limit, tonumber(ARGV[3]), ARGV[4])
  out[3] = remaining
  out[4] = reset
  if not taken then out[1] = 2 return out end
end
if left > 0 then
  local grant = math.min(tonumber(ARGV[5]), left)
  if grant > 0 then
    for i = 3, #KEYS do
      redis.call('INCRBY', KEYS[i], grant)
      redis.call('EXPIRE', KEYS[i], tonumber(ARGV[2 * i + 1]))
    end
  end
  out[2] = grant
end
return out
"""
)


# KEYS: version; ARGV: a fresh version, the saved state as JSON -> 1 rebuilt, 0 not needed.
# Only when the version key is missing, so replicas rebuilding at once do it once.
_REBUILD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local doc = cjson.decode(ARGV[2])
for _, e in ipairs(doc.set) do redis.call('SET', e[1], e[2]) end
for _, e in ipairs(doc.fields) do redis.call('HSET', e[1], e[2], e[3]) end
for _, e in ipairs(doc.max) do
  if tonumber(e[2]) > tonumber(redis.call('GET', e[1]) or '0') then
    redis.call('SET', e[1], e[2])
  end
  redis.call('EXPIRE', e[1], e[3])
end
for _, e in ipairs(doc.hmax) do
  if tonumber(e[3]) > tonumber(redis.call('HGET', e[1], e[2]) or '0') then
    redis.call('HSET', e[1], e[2], e[3])
  end
  redis.call('EXPIRE', e[1], e[4])
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""

# KEYS: version, the course's key, revisions; ARGV: course, revision, changes (JSON).
# Not yet rebuilt (no version): leave it to the rebuild, which reads the database.
_PUBLISH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if tonumber(ARGV[2]) > tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '-1') then
  redis.call('SET', KEYS[2], ARGV[3])
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
end
redis.call('INCR', KEYS[1])
return 1
"""


@dataclass(frozen=True)
class Admission:
    """What ``admit`` decided: ``ok``, ``budget_exceeded`` or ``rate_limited``."""

    code: str
    used: dict[str, int]
    #: The rate limit's figures (for the response headers); None when none applies.
    decision: Any = None
    #: Tokens reserved against the budget for this call (0: no budget applies); the call
    #: must not use more, and its ``Usage.reserved`` gives them back when it is counted.
    granted: int = 0


@dataclass(frozen=True)
class Usage:
    """One call's contribution: tokens against the budgets, figures for the day."""

    user: str
    groups: frozenset[str]
    tokens: int = 0
    metrics: Mapping[str, int] = field(default_factory=dict)
    #: Seconds since the epoch of the call (decides the day and week it counts in).
    at: float = field(default_factory=time.time)
    #: Tokens ``admit`` reserved for the call (already in the budget counters).
    reserved: int = 0


def _unreachable(e: Exception) -> StateUnavailable:
    return StateUnavailable(f"Redis is unreachable ({type(e).__name__})")


class SharedState:
    def __init__(
        self, redis_url: str = "", timeout: float = 2.0, durable: DurableState | None = None
    ) -> None:
        self.redis_url = redis_url
        self.timeout = timeout
        #: The record in the database (None: Redis or memory alone, as in unit tests).
        self.durable = durable
        #: Memory mode: the database was read into memory (once, at first use).
        self._loaded = False
        self._scripts: dict[str, Any] = {}
        #: ``admit``'s script, its concurrent calls sharing one round trip (``scripts.py``).
        self._admitter: Any = None
        self._client: Any = None
        self._changes: dict[str, dict[str, Any]] = {}
        self._counters: dict[str, tuple[int, float]] = {}
        self._days: dict[str, dict[str, int]] = {}
        self._groups: dict[str, str] = {}
        #: (version, course -> changes) as last read from Redis.
        self._cache: tuple[str, dict[str, dict[str, Any]]] | None = None
        self._limiter: Any = None
        self._update_lock: asyncio.Lock | None = None

    def _redis(self) -> Any:
        if self._client is None:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.exceptions import ConnectionError as RedisConnectionError

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
            raise _unreachable(e) from None

    async def _pipe(self, pipe: Any) -> list[Any]:
        try:
            return list(await pipe.execute())
        except Exception as e:
            raise _unreachable(e) from None

    # -- course changes ----------------------------------------------------------------

    # -- rebuilt from the database ---------------------------------------------------------

    async def _script(self, name: str, source: str, keys: list[str], args: list[Any]) -> Any:
        if name not in self._scripts:
            self._scripts[name] = self._redis().register_script(source)
        try:
            return await self._scripts[name](keys=keys, args=args)
        except Exception as e:
            raise _unreachable(e) from None

    async def _rebuild(self) -> None:
        """Redis has no version (it restarted empty): put the database's state back."""
        import logging

        assert self.durable is not None
        saved = await self.durable.load()
        doc = _redis_doc(saved)
        version = str(time.time_ns())  # never one a broker cached before the restart
        if await self._script("rebuild", _REBUILD, [VERSION_KEY], [version, json.dumps(doc)]):
            logging.getLogger("aiide.broker").warning(
                "aiide broker: Redis had no course state (restarted?): rebuilt from the "
                "database (%d courses changed, %d students' usage)",
                len(saved.courses),
                len(saved.used()),
            )
        self._cache = None

    async def _ensure(self) -> None:
        """Before reading what Redis (or memory) holds: rebuilt if it was lost."""
        if self.durable is None:
            return
        if not self.redis_url:
            if not self._loaded:
                self._load_memory(await self.durable.load())
            return
        if not await self._call("exists", VERSION_KEY):
            await self._rebuild()

    def _load_memory(self, saved: Saved) -> None:
        self._loaded = True
        self._changes = {c: changes for c, (_, changes) in saved.courses.items()}
        for user, used in saved.used().items():
            for kind, (key, ttl) in periods().items():
                self._counters[f"{PREFIX}used:{user}:{key}"] = (used[kind], time.time() + ttl)
        self._days = history_of(saved.days)
        self._groups = dict(saved.groups)

    async def changes(self, course: str) -> dict[str, Any]:
        await self._ensure()
        if not self.redis_url:
            return dict(self._changes.get(course, {}))
        text = await self._call("get", f"{PREFIX}course:{course}")
        return dict(json.loads(text)) if text else {}

    async def set_changes(self, course: str, changes: Mapping[str, Any]) -> None:
        await self.update_changes(course, lambda _: dict(changes))

    async def update_changes(
        self, course: str, update: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        """Replaces the course's changes with ``update(current)`` and bumps the version, as
        one optimistic transaction (WATCH): two instructors changing different students'
        budgets at once both land. ``update`` may raise to change nothing. Changes made
        through this broker wait for each other (a lock), so only other replicas' changes
        can make the transaction start over."""
        if self._update_lock is None:
            self._update_lock = asyncio.Lock()
        async with self._update_lock:
            return await self._update_changes(course, update)

    async def _update_changes(
        self, course: str, update: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        if self.durable is not None:  # the database first: it is the record
            await self._ensure()
            revision, new = await self.durable.update(course, update)
            if not self.redis_url:
                self._changes[course] = new
                return new
            keys = [VERSION_KEY, f"{PREFIX}course:{course}", REVISIONS_KEY]
            await self._script("publish", _PUBLISH, keys, [course, revision, json.dumps(new)])
            self._cache = None
            return new
        if not self.redis_url:
            new = update(dict(self._changes.get(course, {})))
            self._changes[course] = new
            return new
        import redis

        key = f"{PREFIX}course:{course}"
        try:
            async with self._redis().pipeline(transaction=True) as pipe:
                for _ in range(_UPDATE_ATTEMPTS):
                    try:
                        await pipe.watch(key)
                        text = await pipe.get(key)
                        new = update(dict(json.loads(text)) if text else {})
                        pipe.multi()
                        pipe.set(key, json.dumps(new)).incr(VERSION_KEY)
                        await pipe.execute()
                    except redis.WatchError:
                        continue  # changed meanwhile: apply the update to the new value
                    self._cache = None
                    return new
        except (redis.RedisError, OSError) as e:
            raise _unreachable(e) from None
        raise StateUnavailable(f"course {course} kept changing; try again")

    async def course_changes(
        self, courses: Iterable[str], refresh: bool = False
    ) -> tuple[str, dict[str, dict[str, Any]]]:
        """(version, course -> changes): the cached copy unless ``refresh`` (or none yet)."""
        if not self.redis_url:
            await self._ensure()
            return "", {c: dict(v) for c, v in self._changes.items()}
        if self._cache is not None and not refresh:
            return self._cache
        names = sorted(courses)
        for attempt in (1, 2):
            pipe = self._redis().pipeline(transaction=True)  # one snapshot: version, changes
            pipe.get(VERSION_KEY)
            for name in names:
                pipe.get(f"{PREFIX}course:{name}")
            version, *texts = await self._pipe(pipe)
            if version is not None or self.durable is None or attempt == 2:
                break
            await self._rebuild()
        changes = {n: dict(json.loads(t)) for n, t in zip(names, texts, strict=True) if t}
        self._cache = (str(version or "0"), changes)
        return self._cache

    async def snapshot(
        self, user: str, courses: Iterable[str]
    ) -> tuple[str, dict[str, dict[str, Any]], dict[str, int]]:
        """(version, current course changes, the user's token use): one round trip when
        the cached changes are current (the version is read with the counters)."""
        keys = self._used_keys(user)
        if not self.redis_url:
            return "", (await self.course_changes(courses))[1], await self.used(user)
        pipe = self._redis().pipeline(transaction=True)
        pipe.get(VERSION_KEY).mget(list(keys.values()))
        version, values = await self._pipe(pipe)
        if version is None and self.durable is not None:  # Redis lost it: rebuild, reread
            await self._rebuild()
            pipe = self._redis().pipeline(transaction=True)
            pipe.get(VERSION_KEY).mget(list(keys.values()))
            version, values = await self._pipe(pipe)
        cached = self._cache
        if cached is None or cached[0] != str(version or "0"):
            cached = await self.course_changes(courses, refresh=True)
        return cached[0], cached[1], {k: int(v or 0) for k, v in zip(keys, values, strict=True)}

    # -- the model call ------------------------------------------------------------------

    def _used_keys(self, user: str, now: float | None = None) -> dict[str, str]:
        return {kind: f"{PREFIX}used:{user}:{key}" for kind, (key, _) in periods(now).items()}

    async def admit(
        self, user: str, version: str, budget: Mapping[str, int], limit: Any, reserve: int = 0
    ) -> Admission | None:
        """Budget check, a rate-limit slot (``limit``: a ``RateLimit`` or None) and, under a
        budget, up to ``reserve`` tokens of what is left of it, in one atomic step. None:
        the course changes at ``version`` are stale (refresh, decide again). A spent
        budget takes no slot."""
        from aiide_server_ext.gateway.ratelimit import Decision

        keys = self._used_keys(user)
        if not self.redis_url:
            await self._ensure()
            return self._admit_here(user, keys, budget, limit, reserve)
        ttls = {kind: ttl + _USED_GRACE for kind, (_, ttl) in periods().items()}
        if self._admitter is None:
            from .scripts import BatchedScript

            self._admitter = BatchedScript(_ADMIT, self._redis, _unreachable)
        out = await self._admitter.run(
            [VERSION_KEY, RATE_PREFIX + f"model:{user}", *keys.values()],
            [
                version,
                limit.count if limit else 0,
                int(limit.window * 1_000_000) if limit else 0,
                uuid.uuid4().hex,
                max(0, int(reserve)),
                *(x for kind in keys for x in (budget.get(kind, -1), ttls[kind])),
            ],
        )
        if int(out[0]) < 0:
            self._cache = None
            return None
        code = ("ok", "budget_exceeded", "rate_limited")[int(out[0])]
        used = {kind: int(v) for kind, v in zip(keys, out[5:], strict=True)}
        decision = None
        if limit is not None and code != "budget_exceeded":
            reset = int(out[3]) / 1_000_000
            allowed = code == "ok"
            decision = Decision(allowed, limit.count, int(out[2]), reset, 0 if allowed else reset)
        return Admission(code, used, decision, int(out[1]))

    def _admit_here(
        self,
        user: str,
        keys: Mapping[str, str],
        budget: Mapping[str, int],
        limit: Any,
        reserve: int = 0,
    ) -> Admission:
        from aiide_server_ext.gateway.ratelimit import MemoryRateLimiter

        now = time.time()
        used = {
            k: v[0] if (v := self._counters.get(key)) and v[1] > now else 0
            for k, key in keys.items()
        }
        if any(kind in budget and used[kind] >= budget[kind] for kind in used):
            return Admission("budget_exceeded", used)
        decision = None
        if limit is not None:
            if self._limiter is None:
                self._limiter = MemoryRateLimiter()
            decision = self._limiter.hit_now(f"model:{user}", limit)
            if not decision.allowed:
                return Admission("rate_limited", used, decision)
        left = [budget[kind] - used[kind] for kind in used if kind in budget]
        granted = min(max(0, int(reserve)), *left) if left else 0
        if granted:
            for kind, (_, ttl) in periods(now).items():
                count, _ = self._counters.get(keys[kind], (0, 0.0))
                self._counters[keys[kind]] = (count + granted, now + ttl)
        return Admission("ok", used, decision, granted)

    async def apply(self, entries: Iterable[Usage]) -> None:
        """Several calls' usage in one transaction (one round trip): budget counters,
        per-day figures, the students' groups."""
        entries = list(entries)
        used: dict[str, tuple[int, int]] = {}  # key -> (tokens, ttl)
        for e in entries:
            if e.tokens != e.reserved:  # what the call used, less what admit reserved
                for key, ttl in periods(e.at).values():
                    name = f"{PREFIX}used:{e.user}:{key}"
                    used[name] = (used.get(name, (0, 0))[0] + e.tokens - e.reserved, ttl)
        figures, groups = day_figures(entries)
        days: dict[str, dict[str, int]] = {}
        for (day, user, metric), value in figures.items():
            if metric != TOKENS:
                days.setdefault(day, {})[f"{user}{_SEP}{metric}"] = value
        if not self.redis_url:
            await self._ensure()
            now = time.time()
            for name, (tokens, ttl) in used.items():
                count, _ = self._counters.get(name, (0, 0.0))
                self._counters[name] = (count + tokens, now + ttl)
            for day, table in days.items():
                mine = self._days.setdefault(day, {})
                for k, v in table.items():
                    mine[k] = mine.get(k, 0) + v
            self._groups.update(groups)
            return
        if not (used or days):
            return
        pipe = self._redis().pipeline(transaction=True)
        for name, (tokens, ttl) in used.items():
            pipe.incrby(name, tokens).expire(name, ttl + _USED_GRACE)
        for day, table in days.items():
            for k, v in table.items():
                pipe.hincrby(f"{PREFIX}usage:{day}", k, v)
            pipe.expire(f"{PREFIX}usage:{day}", HISTORY_DAYS * 86400)
        if groups:
            pipe.hset(GROUPS_KEY, mapping=groups)
        await self._pipe(pipe)

    # -- token use -----------------------------------------------------------------------

    async def used(self, user: str) -> dict[str, int]:
        """Tokens used by the user in the current day and week."""
        keys = self._used_keys(user)
        await self._ensure()
        if not self.redis_url:
            now = time.time()
            return {
                k: v[0] if (v := self._counters.get(key)) and v[1] > now else 0
                for k, key in keys.items()
            }
        values = await self._call("mget", list(keys.values()))
        return {kind: int(v or 0) for kind, v in zip(keys, values, strict=True)}

    async def add_used(self, user: str, tokens: int) -> None:
        await self.apply([Usage(user, frozenset(), tokens)])

    # -- history for instructors -------------------------------------------------------------

    async def count(self, user: str, groups: frozenset[str], day: str, **metrics: int) -> None:
        """Add to the user's figures for the day (tokens, calls, ``limit:<code>`` hits)."""
        import calendar

        at = calendar.timegm(time.strptime(day, "%Y-%m-%d")) + 43200  # noon UTC that day
        await self.apply([Usage(user, groups, 0, metrics, at)])

    async def history(self, days: list[str]) -> dict[str, dict[str, dict[str, int]]]:
        """day -> user -> metric -> value, for the given UTC days."""
        await self._ensure()
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
        await self._ensure()
        raw = await self._call("hgetall", GROUPS_KEY) if self.redis_url else self._groups
        return {str(u): frozenset(json.loads(g)) for u, g in raw.items()}

    async def ping(self) -> None:
        """Raises StateUnavailable when Redis (when configured) does not answer."""
        if self.redis_url:
            await self._call("ping")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _redis_doc(saved: Saved, now: float | None = None) -> dict[str, list[list[Any]]]:
    """The saved state as the rebuild script's operations (see ``_REBUILD``)."""
    now = now if now is not None else time.time()
    doc: dict[str, list[list[Any]]] = {"set": [], "fields": [], "max": [], "hmax": []}
    for course, (revision, changes) in saved.courses.items():
        doc["set"].append([f"{PREFIX}course:{course}", json.dumps(changes)])
        doc["fields"].append([REVISIONS_KEY, course, revision])
    for user, groups in saved.groups.items():
        doc["fields"].append([GROUPS_KEY, user, groups])
    for user, used in saved.used(now).items():
        for kind, (key, ttl) in periods(now).items():
            if used[kind]:
                doc["max"].append([f"{PREFIX}used:{user}:{key}", used[kind], ttl + _USED_GRACE])
    for day, table in history_of(saved.days).items():
        for name, value in table.items():
            doc["hmax"].append([f"{PREFIX}usage:{day}", name, value, HISTORY_DAYS * 86400])
    return doc


def history_of(days: Mapping[str, Mapping[str, Mapping[str, int]]]) -> dict[str, dict[str, int]]:
    """day -> {"user<TAB>metric": value}: the dashboard's per-day hashes (no ``TOKENS``)."""
    return {
        day: {
            f"{user}{_SEP}{metric}": value
            for user, figures in users.items()
            for metric, value in figures.items()
            if metric != TOKENS
        }
        for day, users in days.items()
    }
