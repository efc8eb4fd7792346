"""Issue 21, finding 4 without a hub: the course budget a student has becomes a quota in
their server's usage API (what the status bar and usage panel show), and a spent budget's
refusal says when the next period starts."""

from __future__ import annotations

import calendar
import time
from typing import Any

import pytest

from aiide_server_ext.hub.singleuser.gate import budget_statuses, renewal

# Monday 2026-12-07 22:40 UTC: the day ends in 1 h 20 min, the ISO week in 6 days 1 h 20.
NOW = calendar.timegm(time.strptime("2026-12-07 22:40", "%Y-%m-%d %H:%M"))
MIDNIGHT = calendar.timegm(time.strptime("2026-12-08", "%Y-%m-%d"))
NEXT_MONDAY = calendar.timegm(time.strptime("2026-12-14", "%Y-%m-%d"))


def _me(used: dict[str, int], **extra: Any) -> dict[str, Any]:
    """The broker's ``api/me`` answer for a student of ds101."""
    return {
        "courses": ["ds101"],
        "budget": {"daily_tokens": 1500, "weekly_tokens": 6000},
        "own_budget": [],
        "used": used,
        **extra,
    }


def test_the_course_budget_is_a_quota_with_what_is_left_and_when_it_renews() -> None:
    statuses = budget_statuses(_me({"daily_tokens": 1200, "weekly_tokens": 2000}), NOW)
    shown = [s.as_dict() for s in statuses]
    assert shown == [
        {"scope": "course ds101", "metric": "daily_tokens", "limit": 1500.0, "used": 1200.0,
         "remaining": 300.0, "resets_at": "2026-12-08T00:00:00Z"},
        {"scope": "course ds101", "metric": "weekly_tokens", "limit": 6000.0, "used": 2000.0,
         "remaining": 4000.0, "resets_at": "2026-12-14T00:00:00Z"},
    ]  # fmt: skip


def test_a_budget_of_their_own_is_named_and_no_budget_is_no_quota() -> None:
    own = _me({"daily_tokens": 5}, budget={"daily_tokens": 9000}, own_budget=["ds101"])
    assert [s.scope for s in budget_statuses(own, NOW)] == ["own budget in ds101"]
    assert budget_statuses(_me({}, budget={}), NOW) == []
    assert budget_statuses(_me(None), NOW) == []  # type: ignore[arg-type]  # Redis down


@pytest.mark.parametrize(
    ("used", "renews"),
    [
        ({"daily_tokens": 1500, "weekly_tokens": 2000}, MIDNIGHT),
        ({"daily_tokens": 1600, "weekly_tokens": 6000}, NEXT_MONDAY),
        ({"daily_tokens": 100, "weekly_tokens": 100}, None),
    ],
)
def test_a_spent_budget_renews_when_its_last_spent_period_ends(
    used: dict[str, int], renews: float | None
) -> None:
    assert renewal(_me(used), NOW) == renews
