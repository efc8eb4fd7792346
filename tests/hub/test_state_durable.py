"""Issue 21, finding 3: course state survives a Redis restart (and a broker restart).

Against a real redis-server that is stopped and started again empty (no persistence), and
the broker's real database (sqlite): the exam, budgets, student budgets and model list an
instructor set, each student's budget counters and the dashboard's figures are all back
on the next read, and a change made while Redis is empty is not lost."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from optional import require
from servers import RedisServer

from aiide_server_ext.gateway.audit import AuditLog, AuditQuery
from aiide_server_ext.gateway.redaction import Redactor
from aiide_server_ext.gateway.store import Store
from aiide_server_ext.hub.broker.durable import DurableState
from aiide_server_ext.hub.broker.recorder import Event, Recorder
from aiide_server_ext.hub.broker.state import SharedState, Usage
from aiide_server_ext.hub.course import periods

pytestmark = pytest.mark.xdist_group("hub")

EXAM = {
    "exam": {"enabled": True, "disable": ["chat"], "message": "Midterm until 11:00"},
    "budget": {"daily_tokens": 1500},
    "models": ["claude-haiku-4-5"],
    "student_budgets": {"alice": {"daily_tokens": 9000}},
}
COURSES = ["ds101"]


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    require("redis", shutil.which("redis-server") is not None, "redis-server is not installed")
    server = RedisServer()
    server.__enter__()
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    db = Store(str(tmp_path / "broker.sqlite"), label="the broker database")
    yield db
    db.close()


def _restart(server: RedisServer) -> None:
    server.stop()
    server.__enter__()  # same port, empty: what a restart without persistence gives


async def _course_and_usage(state: SharedState, store: Store) -> Recorder:
    """An instructor's exam and budgets, and two students' calls, as the broker records them."""
    recorder = Recorder(state, AuditLog(store, Redactor([])))
    await state.update_changes("ds101", lambda _: dict(EXAM))
    groups = frozenset({"students"})
    await recorder.record(
        [
            Usage("alice", groups, 1200, {"input": 200, "output": 1000, "calls": 1}),
            Usage("bob", groups, 700, {"input": 300, "output": 400, "calls": 1}),
            Usage("bob", groups, 0, {"limit:exam_mode": 1}),
        ],
        [Event("alice", "model.used", "model:claude-haiku-4-5", "ok")],
    )
    return recorder


async def _seen(state: SharedState) -> tuple[object, ...]:
    today = periods()["daily_tokens"][0]
    _version, changes = await state.course_changes(COURSES, refresh=True)
    _, _, alice = await state.snapshot("alice", COURSES)
    return (
        changes,
        await state.changes("ds101"),
        alice,
        await state.used("bob"),
        (await state.history([today])).get(today),
        await state.groups_of(),
    )


@pytest.mark.asyncio
async def test_a_redis_restart_mid_exam_changes_nothing(redis: RedisServer, store: Store) -> None:
    state = SharedState(redis.url, durable=DurableState(store))
    try:
        recorder = await _course_and_usage(state, store)
        before = await _seen(state)
        assert before[0] == {"ds101": EXAM} and before[2]["daily_tokens"] == 1200
        assert before[4] == {
            "alice": {"input": 200, "output": 1000, "calls": 1},
            "bob": {"input": 300, "output": 400, "calls": 1, "limit:exam_mode": 1},
        }
        version = (await state.course_changes(COURSES))[0]

        _restart(redis)
        assert await state.admit("bob", version, {"daily_tokens": 1500}, None) is None  # stale
        assert await _seen(state) == before
        # A budget check right after the restart still counts what bob used.
        fresh = (await state.course_changes(COURSES))[0]
        admission = await state.admit("bob", fresh, {"daily_tokens": 700}, None)
        assert admission is not None and admission.code == "budget_exceeded"
        # Usage recorded after the restart adds to the rebuilt counters.
        await recorder.record([Usage("bob", frozenset({"students"}), 50, {"calls": 1})])
        assert (await state.used("bob"))["daily_tokens"] == 750
        await recorder.close()
    finally:
        await state.close()


@pytest.mark.asyncio
async def test_a_new_broker_after_redis_and_the_broker_restart_sees_the_same_course(
    redis: RedisServer, store: Store
) -> None:
    first = SharedState(redis.url, durable=DurableState(store))
    recorder = await _course_and_usage(first, store)
    before = await _seen(first)
    await recorder.close()
    await first.close()

    _restart(redis)
    second = SharedState(redis.url, durable=DurableState(store))  # the restarted broker
    try:
        assert await _seen(second) == before
        # An instructor's change while two replicas run lands in the record and in Redis.
        await second.update_changes("ds101", lambda c: {**c, "exam": {"enabled": False}})
        _restart(redis)
        third = SharedState(redis.url, durable=DurableState(store))
        changes = (await third.course_changes(COURSES))[1]
        assert changes["ds101"]["exam"] == {"enabled": False}
        assert changes["ds101"]["student_budgets"] == EXAM["student_budgets"]
        await third.close()
    finally:
        await second.close()


@pytest.mark.asyncio
async def test_without_redis_a_restarted_broker_reads_the_course_from_its_database(
    store: Store,
) -> None:
    first = SharedState("", durable=DurableState(store))
    recorder = await _course_and_usage(first, store)
    before = await _seen(first)
    await recorder.close()
    second = SharedState("", durable=DurableState(store))
    assert await _seen(second) == before


@pytest.mark.asyncio
async def test_usage_is_in_the_database_exactly_when_it_is_audited(
    redis: RedisServer, store: Store
) -> None:
    state = SharedState(redis.url, durable=DurableState(store))
    try:
        recorder = await _course_and_usage(state, store)
        await recorder.close()
        saved = await DurableState(store).load()
        today = periods()["daily_tokens"][0]
        assert saved.days[today]["alice"] == {"input": 200, "output": 1000, "calls": 1,
                                              "tokens": 1200}  # fmt: skip
        events = await AuditLog(store, Redactor([])).query(AuditQuery(actor="alice"))
        assert [e["action"] for e in events] == ["model.used"]
    finally:
        await state.close()
