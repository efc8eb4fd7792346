"""Usage: model tokens per user, model and feature; kernel wall- and memory-seconds.

Cost is computed when usage is recorded, from the prices in force then, so a
price change does not rewrite history. Volume tiers make the marginal price of a
user's tokens depend on their volume so far this month. Input tokens read from or written
to a provider's prompt cache are part of a call's input tokens and recorded apart too,
each at its own price (a read is a tenth of the input price at Anthropic, a write a
quarter more).
"""

from __future__ import annotations

import csv
import datetime
import io
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiide_server_ext.stores.conn import Conn

from .errors import bad_request
from .store import Store

log = logging.getLogger("aiide.gateway")

GIB = 1024**3
GROUP_BY = ("user", "group", "model", "day", "feature", "kind")
AMOUNTS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "kernel_seconds",
    "memory_gb_seconds",
    "cost",
)
PRICE_KEYS = ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok")


@dataclass(frozen=True)
class ModelPrice:
    """Per million tokens. A cache price left out (None) is the input price: cached
    tokens then cost what they did before they were told apart."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    cache_read_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None

    def cost(self, inp: int, out: int, read: int = 0, write: int = 0) -> float:
        """Of ``inp`` input tokens, ``read`` came from the cache and ``write`` went to it."""
        read_price, write_price = (
            self.input_per_mtok if price is None else price
            for price in (self.cache_read_per_mtok, self.cache_write_per_mtok)
        )
        plain = max(inp - read - write, 0)
        return (
            plain * self.input_per_mtok
            + read * read_price
            + write * write_price
            + out * self.output_per_mtok
        )


@dataclass(frozen=True)
class Tier:
    """From ``above_tokens`` tokens this month on, prices are multiplied by ``multiplier``."""

    above_tokens: int
    multiplier: float


@dataclass(frozen=True)
class Prices:
    models: Mapping[str, ModelPrice] = field(default_factory=dict)
    kernel_second: float = 0.0
    memory_gb_second: float = 0.0
    tiers: tuple[Tier, ...] = ()
    currency: str = "USD"

    @classmethod
    def from_config(
        cls,
        models: Mapping[str, Mapping[str, float]],
        kernel_second: float,
        memory_gb_second: float,
        tiers: Iterable[Mapping[str, float]],
        currency: str,
    ) -> Prices:
        parsed = {}
        for name, entry in models.items():
            unknown = set(entry) - set(PRICE_KEYS)
            if unknown or any(float(v) < 0 for v in entry.values()):
                raise ValueError(
                    f"c.Gateway.model_prices[{name!r}]: expected non-negative "
                    f"{'/'.join(PRICE_KEYS)}"
                    + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else "")
                )
            parsed[name] = ModelPrice(**{k: float(v) for k, v in entry.items()})
        ladder = tuple(
            sorted(
                (Tier(int(t["above_tokens"]), float(t["multiplier"])) for t in tiers),
                key=lambda t: t.above_tokens,
            )
        )
        if kernel_second < 0 or memory_gb_second < 0 or any(t.multiplier < 0 for t in ladder):
            raise ValueError("c.Gateway prices and tier multipliers must not be negative")
        return cls(parsed, kernel_second, memory_gb_second, ladder, currency)

    def model_price(self, model: str) -> ModelPrice:
        """Exact name, else the longest configured prefix (dated model ids), else default."""
        if model in self.models:
            return self.models[model]
        prefixes = [k for k in self.models if model.startswith(k)]
        if prefixes:
            return self.models[max(prefixes, key=len)]
        return self.models.get("default", ModelPrice())

    def model_cost(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        volume: int,
        cache_read: int = 0,
        cache_write: int = 0,
    ) -> float:
        price = self.model_price(model)
        multiplier = 1.0
        for tier in self.tiers:
            if volume >= tier.above_tokens:
                multiplier = tier.multiplier
        base = price.cost(input_tokens, output_tokens, cache_read, cache_write)
        return base / 1_000_000 * multiplier

    def kernel_cost(self, seconds: float, memory_gb_seconds: float) -> float:
        return seconds * self.kernel_second + memory_gb_seconds * self.memory_gb_second


def day_and_month(ts: float) -> tuple[str, str]:
    d = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return d.strftime("%Y-%m-%d"), d.strftime("%Y-%m")


@dataclass(frozen=True)
class UsageQuery:
    users: tuple[str, ...] | None = None  # None: everyone (admin)
    group: str | None = None
    by: str = "model"
    since: float | None = None
    until: float | None = None


_METRICS = (
    "SUM(u.input_tokens), SUM(u.output_tokens), SUM(u.kernel_seconds), "
    "SUM(u.memory_gb_seconds), SUM(u.cost), COUNT(*), SUM(u.cache_read_tokens), "
    "SUM(u.cache_write_tokens)"
)
_KEYS = {
    "user": "u.username",
    "model": "u.model",
    "day": "u.day",
    "feature": "u.feature",
    "kind": "u.kind",
    "group": "g.grp",
}


class UsageMeter:
    def __init__(
        self, store: Store, prices: Prices, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.prices = prices
        self.clock = clock

    def _insert(
        self, c: Conn, username: str, groups: Iterable[str], values: dict[str, Any]
    ) -> None:
        ts = self.clock()
        day, month = day_and_month(ts)
        row = {"ts": ts, "day": day, "month": month, "username": username, **values}
        usage_id = c.insert(
            f"INSERT INTO usage ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",  # noqa: S608
            tuple(row.values()),
        )
        c.executemany(
            "INSERT INTO usage_groups (usage_id, grp) VALUES (?, ?)",
            [(usage_id, g) for g in sorted(set(groups))],
        )

    async def record_model(
        self,
        username: str,
        groups: Iterable[str],
        *,
        provider: str,
        model: str,
        feature: str,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> float:
        """``input_tokens`` counts every input token, those read from and written to the
        prompt cache included (they are also in ``cache_*_tokens``)."""
        inp, out = max(0, int(input_tokens)), max(0, int(output_tokens))
        cached = min(max(0, int(cache_read_tokens)), inp)
        caching = min(max(0, int(cache_write_tokens)), inp - cached)
        month = day_and_month(self.clock())[1]

        def write(c: Conn) -> float:
            c.lock(f"usage:{username}")  # the volume tier sees every earlier call of this user
            volume = c.execute(
                "SELECT COALESCE(SUM(input_tokens + output_tokens), 0) FROM usage"
                " WHERE username = ? AND month = ?",
                (username, month),
            ).fetchone()[0]
            cost = self.prices.model_cost(model, inp, out, int(volume), cached, caching)
            values = {
                "kind": "model",
                "provider": provider[:64],
                "model": model[:128],
                "feature": feature[:64],
                "input_tokens": inp,
                "output_tokens": out,
                "cache_read_tokens": cached,
                "cache_write_tokens": caching,
                "cost": cost,
            }
            self._insert(c, username, groups, values)
            return cost

        return await self.store.awrite(write)

    async def record_kernel(
        self,
        username: str,
        groups: Iterable[str],
        *,
        kernel_id: str,
        backend: str,
        wall_seconds: float,
        memory_bytes: int,
    ) -> None:
        seconds = max(0.0, float(wall_seconds))
        gb_seconds = seconds * max(0, int(memory_bytes)) / GIB
        values = {
            "kind": "kernel",
            "provider": backend[:64],
            "feature": "kernel",
            "kernel_id": kernel_id[:64],
            "kernel_seconds": seconds,
            "memory_gb_seconds": gb_seconds,
            "cost": self.prices.kernel_cost(seconds, gb_seconds),
        }
        await self.store.awrite(lambda c: self._insert(c, username, groups, values))

    async def used(
        self, *, user: str | None, group: str | None, since: float
    ) -> tuple[int, float, float]:
        """Tokens, kernel seconds and cost since ``since`` for a user or a whole group."""
        if group is not None:
            sql = (
                "SELECT COALESCE(SUM(u.input_tokens + u.output_tokens), 0),"
                " COALESCE(SUM(u.kernel_seconds), 0), COALESCE(SUM(u.cost), 0)"
                " FROM usage u JOIN usage_groups g ON g.usage_id = u.id"
                " WHERE g.grp = ? AND u.ts >= ?"
            )
            args: tuple[Any, ...] = (group, since)
        else:
            sql = (
                "SELECT COALESCE(SUM(input_tokens + output_tokens), 0),"
                " COALESCE(SUM(kernel_seconds), 0), COALESCE(SUM(cost), 0)"
                " FROM usage WHERE username = ? AND ts >= ?"
            )
            args = (user, since)
        row = await self.store.aread(lambda c: c.execute(sql, args).fetchone())
        return int(row[0]), float(row[1]), float(row[2])

    async def report(self, q: UsageQuery) -> list[dict[str, Any]]:
        if q.by not in GROUP_BY:
            raise bad_request("invalid_group_by", f"'by' must be one of {', '.join(GROUP_BY)}")
        joins = q.by == "group" or q.group is not None
        where: list[str] = ["1 = 1"]
        args: list[Any] = []
        if q.users is not None:
            where.append(f"u.username IN ({', '.join('?' * len(q.users))})")
            args.extend(q.users)
        if q.group is not None:
            where.append("g.grp = ?")
            args.append(q.group)
        if q.since is not None:
            where.append("u.ts >= ?")
            args.append(q.since)
        if q.until is not None:
            where.append("u.ts < ?")
            args.append(q.until)
        key = _KEYS[q.by]
        # Column names come from a fixed table; every value is a bound parameter.
        join = " JOIN usage_groups g ON g.usage_id = u.id" if joins else ""
        conditions = " AND ".join(where)
        sql = f"SELECT {key}, {_METRICS} FROM usage u{join} WHERE {conditions}"  # noqa: S608
        sql += f" GROUP BY {key} ORDER BY {key}"
        rows = await self.store.aread(lambda c: c.execute(sql, args).fetchall())
        return [
            {
                q.by: r[0],
                "input_tokens": int(r[1] or 0),
                "output_tokens": int(r[2] or 0),
                "cache_read_tokens": int(r[7] or 0),
                "cache_write_tokens": int(r[8] or 0),
                "kernel_seconds": round(float(r[3] or 0), 3),
                "memory_gb_seconds": round(float(r[4] or 0), 3),
                "cost": round(float(r[5] or 0), 6),
                "records": int(r[6]),
            }
            for r in rows
        ]


def to_csv(rows: list[dict[str, Any]], by: str) -> str:
    columns = [by, *AMOUNTS, "records"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows([{k: _cell(v) for k, v in row.items()} for row in rows])
    return out.getvalue()


def _cell(value: Any) -> Any:
    """No spreadsheet formulas from user-controlled names (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
