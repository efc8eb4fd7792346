"""Per-student budget overrides without a hub: parsing, merging, the effective budget, and
the shared state's optimistic course update against a real redis-server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aiide_server_ext.hub.broker.service import budget_refusal
from aiide_server_ext.hub.broker.state import SharedState, Usage
from aiide_server_ext.hub.course import (
    Course,
    CourseError,
    effective,
    merge_changes,
    validate_changes,
)

from .harness import COURSE

pytestmark = pytest.mark.xdist_group("hub")


def test_a_students_own_budget_replaces_the_course_budget_for_them_only() -> None:
    course = Course.parse("ds101", COURSE).with_changes(
        {"student_budgets": {"alice": {"daily_tokens": 500000}, "dan": {}}}
    )
    assert effective([course], ["students"], "alice").budget() == {"daily_tokens": 500000}
    assert effective([course], ["students"], "dan").budget() == {}  # no limit at all
    assert effective([course], ["students"], "bob").budget() == COURSE["budget"]
    assert effective([course], ["students"], "alice").public()["own_budget"] == ["ds101"]
    assert effective([course], ["students"], "bob").public()["own_budget"] == []


def test_the_strictest_course_still_wins_with_an_own_budget() -> None:
    a = Course.parse("a", {"groups": ["g1"], "budget": {"daily_tokens": 10},
                           "student_budgets": {"alice": {"daily_tokens": 1000}}})  # fmt: skip
    b = Course.parse("b", {"groups": ["g2"], "budget": {"daily_tokens": 50}})
    assert effective([a, b], ["g1", "g2"], "alice").budget() == {"daily_tokens": 50}
    assert effective([a, b], ["g1", "g2"], "bob").budget() == {"daily_tokens": 10}


def test_the_refusal_names_the_students_own_limit() -> None:
    course = Course.parse("ds101", COURSE).with_changes(
        {"student_budgets": {"alice": {"daily_tokens": 42}}}
    )
    refusal = budget_refusal(effective([course], ["students"], "alice"), {"daily_tokens": 42})
    assert refusal is not None
    assert "your token budget for today (42 tokens) is used up" in refusal[1]
    assert budget_refusal(effective([course], ["students"], "bob"), {"daily_tokens": 42}) is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"student_budgets": {"alice": {"daily_tokens": -1}}}, "student_budgets.alice.daily"),
        ({"student_budgets": {"alice": {"monthly_tokens": 5}}}, "student_budgets.alice.monthly"),
        ({"student_budgets": {"alice": {"daily_tokens": "lots"}}}, "student_budgets.alice.daily"),
        ({"student_budgets": {"alice": {"daily_tokens": True}}}, "student_budgets.alice.daily"),
        ({"student_budgets": {"alice": 5}}, "student_budgets.alice must be a budget"),
        ({"student_budgets": {"x" * 256: {}}}, "is not a user name"),
        ({"student_budgets": {"": {}}}, "is not a user name"),
        ({"student_budgets": {"a b": {}}}, "is not a user name"),
        ({"student_budgets": {"a/b": {}}}, "is not a user name"),
        ({"student_budgets": ["alice"]}, "'student_budgets' must be a mapping"),
        ({"student_budgets": []}, "'student_budgets' must be a mapping"),
    ],
)
def test_bad_student_budgets_are_refused_naming_the_field(change: Any, field: str) -> None:
    with pytest.raises(CourseError, match=field.replace(".", r"\.")):
        validate_changes(change)


def test_a_255_character_user_name_is_a_user_name() -> None:
    assert validate_changes({"student_budgets": {"x" * 255: {"daily_tokens": 1}}})


def test_changes_merge_student_by_student_and_null_goes_back_to_the_course() -> None:
    file = Course.parse("ds101", {**COURSE, "student_budgets": {"erin": {"daily_tokens": 7}}})
    current = {"budget": {"daily_tokens": 5}, "student_budgets": {"alice": {"daily_tokens": 9}}}
    merged = merge_changes(file, current, {"student_budgets": {"bob": {"weekly_tokens": 3}}})
    assert merged == {
        "budget": {"daily_tokens": 5},
        "student_budgets": {"alice": {"daily_tokens": 9}, "bob": {"weekly_tokens": 3}},
    }
    merged = merge_changes(file, merged, {"student_budgets": {"alice": None, "bob": None}})
    assert merged == {"budget": {"daily_tokens": 5}}  # nothing left to store
    # The course file's own override is hidden by a stored null (the course's budget).
    merged = merge_changes(file, merged, {"student_budgets": {"erin": None}})
    assert merged["student_budgets"] == {"erin": None}
    course = file.with_changes(merged)
    assert course.student_budgets == {}
    erin = effective([course], ["students"], "erin").budget()
    assert erin == {"daily_tokens": 5, "weekly_tokens": 400000}
    assert course.raw()["student_budgets"] == {}


@pytest.mark.asyncio
async def test_concurrent_changes_to_different_students_all_land(state: SharedState) -> None:
    file = Course.parse("ds101", COURSE)
    students = [f"s{i}" for i in range(20)]

    async def give(user: str) -> None:
        change = {"student_budgets": {user: {"daily_tokens": 100}}}
        await state.update_changes("ds101", lambda cur: merge_changes(file, cur, change))

    await asyncio.gather(*(give(u) for u in students))
    stored = await state.changes("ds101")
    assert sorted(stored["student_budgets"]) == sorted(students)


@pytest.mark.asyncio
async def test_two_replicas_changing_different_students_at_once_both_land(redis_url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    file = Course.parse("ds101", COURSE)
    replicas = [SharedState(redis_url), SharedState(redis_url)]

    async def give(state: SharedState, user: str) -> None:
        change = {"student_budgets": {user: {"weekly_tokens": 1}}}
        await state.update_changes("ds101", lambda cur: merge_changes(file, cur, change))

    try:
        await asyncio.gather(*(give(replicas[i % 2], f"s{i}") for i in range(10)))
        stored = await replicas[0].changes("ds101")
    finally:
        for r in replicas:
            await r.close()
    assert sorted(stored["student_budgets"]) == sorted(f"s{i}" for i in range(10))


@pytest.mark.asyncio
@pytest.mark.parametrize("state", ["redis"], indirect=True)
async def test_an_override_change_makes_the_admission_at_the_old_version_stale(
    state: SharedState,
) -> None:
    version, _ = await state.course_changes(["ds101"])
    assert await state.admit("alice", version, {"daily_tokens": 10}, None) is not None
    await state.update_changes("ds101", lambda cur: {"student_budgets": {"alice": {}}})
    # A broker still deciding on the old changes is told to reread them.
    assert await state.admit("alice", version, {"daily_tokens": 10}, None) is None
    new_version, changes = await state.course_changes(["ds101"], refresh=True)
    assert new_version != version and changes["ds101"] == {"student_budgets": {"alice": {}}}


@pytest.mark.asyncio
async def test_an_update_that_raises_writes_nothing(state: SharedState) -> None:
    def bad(current: dict[str, Any]) -> dict[str, Any]:
        raise CourseError("no")

    with pytest.raises(CourseError):
        await state.update_changes("ds101", bad)
    assert await state.changes("ds101") == {}


@pytest.mark.asyncio
async def test_calls_in_flight_together_never_promise_more_than_the_budget(
    state: SharedState,
) -> None:
    """Issue 21, finding 4: the last call could pass the budget (1,501 of 1,500). Each
    admitted call reserves what it may cost, up to what is left, atomically."""
    version, _ = await state.course_changes(["ds101"])
    budget = {"daily_tokens": 1500}
    await state.apply([Usage("gil", frozenset(), 1400)])
    first = await state.admit("gil", version, budget, None, reserve=80)
    second = await state.admit("gil", version, budget, None, reserve=80)
    third = await state.admit("gil", version, budget, None, reserve=80)
    assert first is not None and (first.code, first.granted) == ("ok", 80)
    assert second is not None and (second.code, second.granted) == ("ok", 20)  # what is left
    assert third is not None and third.code == "budget_exceeded"
    # Counted: the first used 50 of its 80, the second all of its 20: 1,470, not 1,560.
    await state.apply([Usage("gil", frozenset(), 50, reserved=80)])
    await state.apply([Usage("gil", frozenset(), 20, reserved=20)])
    assert (await state.used("gil"))["daily_tokens"] == 1470
    # No budget: nothing reserved.
    free = await state.admit("gil", version, {}, None, reserve=80)
    assert free is not None and (free.code, free.granted) == ("ok", 0)
