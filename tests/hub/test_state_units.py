"""The broker's shared state and batched recorder against a real redis-server (no hub)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from optional import require
from servers import RedisServer

from aiide_server_ext.gateway.audit import AuditLog, AuditQuery
from aiide_server_ext.gateway.ratelimit import RateLimit
from aiide_server_ext.gateway.redaction import Redactor
from aiide_server_ext.gateway.store import Store
from aiide_server_ext.hub.broker.durable import StateUnavailable
from aiide_server_ext.hub.broker.recorder import Event, Recorder
from aiide_server_ext.hub.broker.state import SharedState, Usage
from aiide_server_ext.hub.course import periods

pytestmark = pytest.mark.xdist_group("hub")


@pytest.mark.asyncio
async def test_admit_takes_a_slot_until_the_rate_limit_then_refuses(state: SharedState) -> None:
    version, _ = await state.course_changes(["ds101"])
    codes = []
    for _ in range(4):
        admission = await state.admit("alice", version, {}, RateLimit(3, 60))
        assert admission is not None
        codes.append(admission.code)
    assert codes == ["ok", "ok", "ok", "rate_limited"]
    assert admission.decision is not None and admission.decision.headers()["Retry-After"]


@pytest.mark.asyncio
async def test_a_spent_budget_is_refused_without_taking_a_rate_limit_slot(
    state: SharedState,
) -> None:
    version, _ = await state.course_changes(["ds101"])
    await state.apply([Usage("bob", frozenset({"students"}), 50, {"input": 20, "output": 30})])
    refused = await state.admit("bob", version, {"daily_tokens": 50}, RateLimit(1, 60))
    assert refused is not None
    assert (refused.code, refused.used["daily_tokens"]) == ("budget_exceeded", 50)
    admitted = await state.admit("bob", version, {"daily_tokens": 51}, RateLimit(1, 60))
    assert admitted is not None and admitted.code == "ok"  # the one slot was still free


@pytest.mark.asyncio
async def test_a_course_change_makes_a_cached_version_stale(redis_url: str) -> None:
    one, two = SharedState(redis_url), SharedState(redis_url)  # two broker replicas
    try:
        version, changes = await one.course_changes(["ds101"])
        await two.set_changes("ds101", {"exam": {"enabled": True}})
        assert await one.admit("carol", version, {}, None) is None  # stale: decide again
        fresh, changes = await one.course_changes(["ds101"], refresh=True)
        assert fresh != version and changes == {"ds101": {"exam": {"enabled": True}}}
        admission = await one.admit("carol", fresh, {}, None)
        assert admission is not None and admission.code == "ok"
        # The snapshot (one round trip) notices a change too.
        await two.set_changes("ds101", {"exam": {"enabled": False}})
        _, now, used = await one.snapshot("carol", ["ds101"])
        assert now["ds101"]["exam"] == {"enabled": False} and used["daily_tokens"] == 0
    finally:
        await one.close()
        await two.close()


@pytest.mark.asyncio
async def test_apply_adds_budgets_and_day_figures_of_several_calls_at_once(
    state: SharedState,
) -> None:
    groups = frozenset({"students"})
    await state.apply(
        [
            Usage("dan", groups, 10, {"input": 4, "output": 6, "calls": 1}),
            Usage("dan", groups, 5, {"input": 2, "output": 3, "calls": 1}),
            Usage("eve", groups, 0, {"limit:rate_limited": 1}),
        ]
    )
    assert (await state.used("dan"))["daily_tokens"] == 15
    today = periods()["daily_tokens"][0]
    day = (await state.history([today]))[today]
    assert day["dan"] == {"input": 6, "output": 9, "calls": 2}
    assert day["eve"] == {"limit:rate_limited": 1}
    assert (await state.groups_of())["dan"] == groups


@pytest.mark.asyncio
async def test_redis_down_is_state_unavailable() -> None:
    from servers import free_port

    down = SharedState(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    try:
        with pytest.raises(StateUnavailable):
            await down.admit("alice", "0", {}, RateLimit(1, 60))
        with pytest.raises(StateUnavailable):
            await down.apply([Usage("alice", frozenset(), 5)])
    finally:
        await down.close()


@pytest.mark.asyncio
async def test_the_recorder_writes_concurrent_calls_in_few_batches_and_loses_none(
    tmp_path: Path, redis_url: str
) -> None:
    store = Store(str(tmp_path / "broker.sqlite"))
    audit = AuditLog(store, Redactor(["sk-secret"]))
    state = SharedState(redis_url)
    recorder = Recorder(state, audit)
    try:
        before = (await state.used("fay"))["daily_tokens"]
        await asyncio.gather(
            *(
                recorder.record(
                    [Usage("fay", frozenset({"students"}), 3, {"calls": 1})],
                    [Event("fay", "model.used", f"model:m{i}", "ok", {"key": "sk-secret"})],
                )
                for i in range(50)
            )
        )
        # Every record returned after its write: all 50 are stored now.
        assert (await state.used("fay"))["daily_tokens"] == before + 150
        events = await audit.query(AuditQuery(actor="fay", action="model.used", limit=100))
        assert len(events) == 50
        assert all("sk-secret" not in str(e) for e in events)
        assert recorder.items == 50 and recorder.batches < 50  # batched, not one by one
        assert store.read(audit.verify) is None  # the hash chain holds across batches
        # Closing writes what is queued; later records still land (written directly).
        pending = asyncio.ensure_future(recorder.record([], [Event("fay", "x.last", "t", "ok")]))
        await asyncio.sleep(0)
        await recorder.close()
        await pending
        await recorder.record([], [Event("fay", "x.after", "t", "ok")])
        actions = [e["action"] for e in await audit.query(AuditQuery(actor="fay", limit=100))]
        assert actions[-2:] == ["x.last", "x.after"]
    finally:
        await recorder.close()
        await state.close()
        store.close()


@pytest.mark.asyncio
async def test_a_restarted_redis_is_reconnected_on_the_next_call() -> None:
    """Pooled connections to a Redis that restarted are stale: the next call reconnects
    instead of failing (the broker's course API answered 500 here)."""
    require("redis", shutil.which("redis-server") is not None, "redis-server is not installed")
    server = RedisServer()
    server.__enter__()
    try:
        shared = SharedState(server.url)
        await asyncio.gather(*(shared.changes("ds101") for _ in range(5)))  # several in the pool
        server.stop()
        server.__enter__()  # back on the same port, empty
        assert await shared.changes("ds101") == {}
        await shared.close()
    finally:
        server.stop()


@pytest.mark.asyncio
async def test_concurrent_admissions_share_round_trips_and_each_is_decided_alone(
    state: SharedState,
) -> None:
    """A class starting at once: 30 admissions, batched into few pipelines, still each an
    atomic script: exactly the rate limit's 20 are admitted, and budget reservations of
    concurrent calls never promise more than the budget."""
    version, _ = await state.course_changes(["ds101"])
    found = await asyncio.gather(
        *(state.admit("carl", version, {}, RateLimit(20, 60)) for _ in range(30))
    )
    codes = [a.code for a in found if a is not None]
    assert sorted(codes) == ["ok"] * 20 + ["rate_limited"] * 10
    if state.redis_url:  # in memory there is nothing to batch
        admitter = state._admitter
        assert admitter.calls == 30 and admitter.batches < 30
    grants = await asyncio.gather(
        *(state.admit("dora", version, {"daily_tokens": 100}, None, 30) for _ in range(5))
    )
    assert sorted(a.granted for a in grants if a is not None) == [0, 10, 30, 30, 30]
    assert sum(a.granted for a in grants if a is not None) == 100


@pytest.mark.asyncio
async def test_admission_after_redis_restarted_loads_its_script_again() -> None:
    """Redis restarted empty forgets the admission script: it is loaded again, not an
    outage (NOSCRIPT answered to the batched EVALSHA)."""
    require("redis", shutil.which("redis-server") is not None, "redis-server is not installed")
    server = RedisServer()
    server.__enter__()
    try:
        shared = SharedState(server.url)
        version, _ = await shared.course_changes(["ds101"])
        assert (await shared.admit("eve", version, {}, None)) is not None
        server.stop()
        server.__enter__()  # back on the same port, empty: no scripts, no version
        version, _ = await shared.course_changes(["ds101"], refresh=True)
        admission = await shared.admit("eve", version, {}, RateLimit(5, 60))
        assert admission is not None and admission.code == "ok"
        await shared.close()
    finally:
        server.stop()
