"""Quotas: how much a user, or a group together, may use per day or month.

Per-user limits come from ``default_quota``, overridden by the user's groups
(``group_quotas``, the most generous group wins) and then by ``user_quotas``.
``group_budgets`` are pools shared by all members of a group. Periods are UTC
calendar days and months, so "resets at" is the same for everyone.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import GatewayError
from .metering import UsageMeter

#: metric → (what is counted, period)
METRICS: dict[str, tuple[str, str]] = {
    "daily_tokens": ("tokens", "day"),
    "monthly_tokens": ("tokens", "month"),
    "monthly_cost": ("cost", "month"),
    "daily_kernel_hours": ("kernel_hours", "day"),
    "monthly_kernel_hours": ("kernel_hours", "month"),
}
MODEL_KINDS = frozenset({"tokens", "cost"})
KERNEL_KINDS = frozenset({"kernel_hours"})

Limits = dict[str, float]


def _validate(table: Mapping[str, Any], where: str) -> Limits:
    limits: Limits = {}
    for metric, value in table.items():
        if metric not in METRICS:
            raise ValueError(f"{where}: unknown quota {metric!r}; known: {sorted(METRICS)}")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{where}[{metric!r}] must be a non-negative number or null")
        limits[metric] = float(value)
    return limits


def period_bounds(period: str, now: float) -> tuple[float, float]:
    d = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
    if period == "day":
        start = d.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + datetime.timedelta(days=1)
    else:
        start = d.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start + datetime.timedelta(days=32)).replace(day=1)
    return start.timestamp(), end.timestamp()


@dataclass(frozen=True)
class QuotaStatus:
    scope: str  # "user" or "group:<name>"
    metric: str
    limit: float
    used: float
    resets_at: float

    @property
    def remaining(self) -> float:
        return max(0.0, self.limit - self.used)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "metric": self.metric,
            "limit": self.limit,
            "used": round(self.used, 6),
            "remaining": round(self.remaining, 6),
            "resets_at": datetime.datetime.fromtimestamp(self.resets_at, datetime.timezone.utc)
            .isoformat()
            .replace("+00:00", "Z"),
        }


class Quotas:
    def __init__(
        self,
        meter: UsageMeter,
        *,
        default: Mapping[str, Any],
        users: Mapping[str, Mapping[str, Any]],
        groups: Mapping[str, Mapping[str, Any]],
        budgets: Mapping[str, Mapping[str, Any]],
        running_seconds: Callable[[str], float] = lambda _: 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.meter = meter
        self.default = _validate(default, "c.Gateway.default_quota")
        self.users = {u: _validate(t, f"c.Gateway.user_quotas[{u!r}]") for u, t in users.items()}
        self.groups = {g: _validate(t, f"c.Gateway.group_quotas[{g!r}]") for g, t in groups.items()}
        self.budgets = {
            g: _validate(t, f"c.Gateway.group_budgets[{g!r}]") for g, t in budgets.items()
        }
        self.running_seconds = running_seconds
        self.clock = clock

    @property
    def configured(self) -> bool:
        return bool(self.default or self.users or self.groups or self.budgets)

    def limits_for(self, username: str, groups: Iterable[str]) -> Limits:
        limits = dict(self.default)
        from_groups: Limits = {}
        for group in groups:
            for metric, value in self.groups.get(group, {}).items():
                from_groups[metric] = max(value, from_groups.get(metric, value))
        limits.update(from_groups)
        limits.update(self.users.get(username, {}))
        return limits

    async def status(
        self, username: str, groups: Iterable[str], kinds: frozenset[str] | None = None
    ) -> list[QuotaStatus]:
        now = self.clock()
        names = sorted(set(groups))
        wanted = [(m, lim, "user") for m, lim in self.limits_for(username, names).items()]
        for name in names:
            wanted += [(m, lim, f"group:{name}") for m, lim in self.budgets.get(name, {}).items()]
        out = []
        for metric, limit, scope in wanted:
            kind, period = METRICS[metric]
            if kinds is not None and kind not in kinds:
                continue
            start, end = period_bounds(period, now)
            group: str | None = scope.partition(":")[2] or None
            tokens, seconds, cost = await self.meter.used(user=username, group=group, since=start)
            if kind == "kernel_hours" and group is None:
                seconds += self.running_seconds(username)
            used = {"tokens": float(tokens), "cost": cost, "kernel_hours": seconds / 3600}[kind]
            out.append(QuotaStatus(scope, metric, limit, used, end))
        return out

    async def check(self, username: str, groups: Iterable[str], kinds: frozenset[str]) -> None:
        """Raise a 429 ``quota_exceeded`` naming the quota, if any of ``kinds`` is used up."""
        if not self.configured:
            return
        for status in await self.status(username, groups, kinds):
            if status.used >= status.limit:
                whose = "your" if status.scope == "user" else f"group {status.scope[6:]!r}'s"
                resets = status.as_dict()["resets_at"]
                raise GatewayError(
                    429,
                    "quota_exceeded",
                    f"{whose} {status.metric.replace('_', ' ')} quota of {status.limit:g} is "
                    f"used up ({status.used:.6g} used); it resets at {resets}",
                    {"Retry-After": str(max(1, int(status.resets_at - self.clock())))},
                )
