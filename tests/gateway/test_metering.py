"""Usage metering, prices, quotas and the usage report (JSON and CSV)."""

from __future__ import annotations

import csv
import io
import sqlite3
from typing import Any

import pytest

from aiide_server_ext.gateway.errors import GatewayError
from aiide_server_ext.gateway.metering import Prices
from aiide_server_ext.gateway.migrations import MIGRATIONS
from aiide_server_ext.gateway.store import Store
from aiide_server_ext.seams import Caller
from aiide_server_ext.stores.errors import StoreError

from .helpers import Call, claims, forge

PRICES = {"claude-sonnet-4": {"input_per_mtok": 3.0, "output_per_mtok": 15.0}}


def caller(name: str, *groups: str) -> Caller:
    return Caller(name, frozenset({"chat", "usage:read"}), frozenset(groups), frozenset({"user"}))


async def use(gate: Any, who: Caller, inp: int, out: int, model: str = "claude-sonnet-4") -> None:
    await gate.record_model_usage(
        who, provider="anthropic", model=model, feature="chat", input_tokens=inp, output_tokens=out
    )


def test_prices_by_exact_name_prefix_and_default() -> None:
    prices = Prices.from_config({**PRICES, "default": {"input_per_mtok": 1.0}}, 0.0, 0.0, [], "USD")
    assert prices.model_cost("claude-sonnet-4", 1_000_000, 0, 0) == 3.0
    assert prices.model_cost("claude-sonnet-4-20250514", 0, 1_000_000, 0) == 15.0
    assert prices.model_cost("gpt-x", 1_000_000, 0, 0) == 1.0


def test_volume_tiers_discount_the_marginal_price() -> None:
    tiers = [{"above_tokens": 1000, "multiplier": 0.5}]
    prices = Prices.from_config(PRICES, 0.0, 0.0, tiers, "USD")
    assert prices.model_cost("claude-sonnet-4", 1_000_000, 0, 999) == 3.0
    assert prices.model_cost("claude-sonnet-4", 1_000_000, 0, 1000) == 1.5


def test_negative_prices_are_a_config_error() -> None:
    with pytest.raises(ValueError, match="model_prices"):
        Prices.from_config({"m": {"input_per_mtok": -1}}, 0.0, 0.0, [], "USD")


@pytest.mark.gateway_config(model_prices=PRICES)
async def test_model_usage_is_reported_per_model_with_cost(call: Call, gate: Any) -> None:
    olga = caller("olga")
    await use(gate, olga, 1000, 200)
    await use(gate, olga, 500, 100)
    await use(gate, olga, 10, 10, model="other")
    r = await call("GET", "/aiide/api/usage", token=forge(claims("olga", scopes=["usage:read"])))
    assert r.status == 200, r.body
    body = r.json()
    assert body["user"] == "olga"
    by_model = {row["model"]: row for row in body["rows"]}
    assert by_model["claude-sonnet-4"]["input_tokens"] == 1500
    assert by_model["claude-sonnet-4"]["output_tokens"] == 300
    assert by_model["claude-sonnet-4"]["cost"] == pytest.approx((1500 * 3 + 300 * 15) / 1e6)
    assert body["totals"]["input_tokens"] == 1510
    assert body["quotas"] == []


async def test_the_built_in_models_cost_their_list_price_without_configuration(
    call: Call, gate: Any
) -> None:
    """No c.Gateway.model_prices: the usage panel still shows what chat and completion
    cost (it showed 0.0 for every model), split by feature."""
    olga = caller("olga")
    await use(gate, olga, 1_000_000, 0, model="claude-haiku-4-5")
    await gate.record_model_usage(
        olga, provider="openai", model="gpt-4o-mini", feature="complete",
        input_tokens=0, output_tokens=1_000_000,
    )  # fmt: skip
    r = await call("GET", "/aiide/api/usage?by=feature", token=forge(claims("olga")))
    by_feature = {row["feature"]: row["cost"] for row in r.json()["rows"]}
    assert by_feature == {"chat": pytest.approx(1.0), "complete": pytest.approx(0.6)}
    assert r.json()["currency"] == "USD"


def test_cached_input_has_its_own_prices() -> None:
    cached = {"input_per_mtok": 3.0, "output_per_mtok": 15.0}
    prices = Prices.from_config(
        {"c": {**cached, "cache_read_per_mtok": 0.3, "cache_write_per_mtok": 3.75}, "p": cached},
        0.0, 0.0, [], "USD",
    )  # fmt: skip
    # 1M input of which 600k read from the cache and 200k written to it
    assert prices.model_cost("c", 1_000_000, 0, 0, 600_000, 200_000) == pytest.approx(
        (200_000 * 3.0 + 600_000 * 0.3 + 200_000 * 3.75) / 1e6
    )
    # A price table without cache prices: cached tokens cost the input price, as before.
    assert prices.model_cost("p", 1_000_000, 0, 0, 600_000, 200_000) == pytest.approx(3.0)
    with pytest.raises(ValueError, match=r"unknown: cached_per_mtok"):
        Prices.from_config({"m": {"cached_per_mtok": 1.0}}, 0.0, 0.0, [], "USD")


async def test_cache_reads_and_writes_are_recorded_and_priced_at_list_price(
    call: Call, gate: Any
) -> None:
    """The built-in list prices know Anthropic's cache tiers: a read at a tenth, a write
    at 1.25x the input price; the report shows the cached tokens apart."""
    await gate.record_model_usage(
        caller("olga"), provider="anthropic", model="claude-sonnet-4-5", feature="agent",
        input_tokens=1_000_000, output_tokens=0,
        cache_read_tokens=800_000, cache_write_tokens=100_000,
    )  # fmt: skip
    r = await call("GET", "/aiide/api/usage?by=model", token=forge(claims("olga")))
    (row,) = r.json()["rows"]
    assert (row["input_tokens"], row["cache_read_tokens"], row["cache_write_tokens"]) == (
        1_000_000, 800_000, 100_000,
    )  # fmt: skip
    assert row["cost"] == pytest.approx(0.1 * 3.0 + 0.8 * 0.3 + 0.1 * 3.75)
    csv_body = await call(
        "GET", "/aiide/api/usage?by=model&format=csv", token=forge(claims("olga"))
    )
    assert "cache_read_tokens" in csv_body.body.decode().splitlines()[0]


async def test_admin_exports_everyones_usage_as_csv(call: Call, gate: Any) -> None:
    await use(gate, caller("olga"), 100, 1)
    await use(gate, caller("=HYPERLINK()"), 5, 5)
    r = await call("GET", "/aiide/api/usage?user=*&by=user&format=csv", jupyter=True)
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.body.decode())))
    assert {row["user"] for row in rows} == {"olga", "'=HYPERLINK()"}


async def test_admin_aggregates_by_group_and_day(call: Call, gate: Any) -> None:
    await use(gate, caller("olga", "cs101"), 100, 0)
    await use(gate, caller("pat", "cs101", "lab"), 50, 0)
    await use(gate, caller("zed"), 7, 0)
    by_user = (await call("GET", "/aiide/api/usage?group=cs101&by=user", jupyter=True)).json()
    assert {r["user"]: r["input_tokens"] for r in by_user["rows"]} == {"olga": 100, "pat": 50}
    by_group = (await call("GET", "/aiide/api/usage?user=*&by=group", jupyter=True)).json()
    assert {r["group"]: r["input_tokens"] for r in by_group["rows"]} == {"cs101": 150, "lab": 50}
    by_day = (await call("GET", "/aiide/api/usage?user=*&by=day", jupyter=True)).json()
    assert sum(r["input_tokens"] for r in by_day["rows"]) == 157


async def test_users_read_only_their_own_usage(call: Call) -> None:
    token = forge(claims("olga", scopes=["usage:read"]))
    for query in ("?user=pat", "?group=cs101", "?user=*"):
        r = await call("GET", "/aiide/api/usage" + query, token=token)
        assert (r.status, r.json()["code"]) == (403, "admin_required")


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("?by=colour", "invalid_group_by"),
        ("?since=yesterday", "invalid_date"),
        ("?format=xml", "invalid_format"),
    ],
)
async def test_bad_usage_queries_are_400s(call: Call, query: str, code: str) -> None:
    r = await call("GET", "/aiide/api/usage" + query, jupyter=True)
    assert (r.status, r.json()["code"]) == (400, code)


@pytest.mark.gateway_config(default_quota={"monthly_tokens": 1000})
async def test_an_exceeded_token_quota_is_a_clear_429(call: Call, gate: Any) -> None:
    olga = caller("olga")
    await gate.admit(olga, "chat", "chat")
    await use(gate, olga, 900, 100)
    with pytest.raises(GatewayError) as e:
        await gate.admit(olga, "chat", "chat")
    assert (e.value.status, e.value.code) == (429, "quota_exceeded")
    assert "monthly tokens quota of 1000" in e.value.message
    assert int(e.value.headers["Retry-After"]) > 0
    usage = (await call("GET", "/aiide/api/usage", token=forge(claims("olga")))).json()
    assert usage["quotas"][0] | {"resets_at": None} == {
        "scope": "user",
        "metric": "monthly_tokens",
        "limit": 1000.0,
        "used": 1000.0,
        "remaining": 0.0,
        "resets_at": None,
    }
    audit = (await call("GET", "/aiide/api/audit?action=quota.exceeded", jupyter=True)).json()
    assert [e["actor"] for e in audit["events"]] == ["olga"]


@pytest.mark.gateway_config(group_budgets={"cs101": {"monthly_tokens": 500}})
async def test_a_group_budget_is_shared_by_its_members(gate: Any) -> None:
    await use(gate, caller("olga", "cs101"), 300, 0)
    await gate.admit(caller("pat", "cs101"), "complete")
    await use(gate, caller("pat", "cs101"), 200, 0)
    with pytest.raises(GatewayError) as e:
        await gate.admit(caller("pat", "cs101"), "complete")
    assert "group 'cs101'" in e.value.message
    await gate.admit(caller("zed"), "complete")


@pytest.mark.gateway_config(default_quota={"daily_kernel_hours": 0.001})
async def test_no_new_kernel_once_kernel_hours_are_used_up(call: Call, gate: Any) -> None:
    await gate.meter.record_kernel(
        "quinn", (), kernel_id="k1", backend="bwrap", wall_seconds=10, memory_bytes=2**30
    )
    r = await call(
        "POST", "/api/kernels", token=forge(claims("quinn", scopes=["kernels"])), body={}
    )
    assert (r.status, r.code) == (429, "quota_exceeded")
    assert "Retry-After" in r.headers


@pytest.mark.gateway_config(default_quota={"monthly_tokens": 1})
async def test_the_owner_has_no_quota_by_default(gate: Any) -> None:
    await use(gate, gate.owner, 100, 100)
    await gate.admit(gate.owner, "chat", "chat")


def test_an_old_database_is_migrated_and_keeps_its_rows(tmp_path: Any) -> None:
    path = str(tmp_path / "old.sqlite")
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0])
        db.execute("INSERT INTO meta VALUES ('kept', 'yes')")
        db.execute("PRAGMA user_version = 1")
    store = Store(path)
    try:
        assert store.version() == len(MIGRATIONS)
        assert store.read(lambda c: c.execute("SELECT value FROM meta").fetchone()[0]) == "yes"
        store.read(lambda c: c.execute("SELECT COUNT(*) FROM usage").fetchone())
    finally:
        store.close()


def test_a_database_from_a_newer_release_is_refused(tmp_path: Any) -> None:
    path = str(tmp_path / "new.sqlite")
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    store = Store(path)
    with pytest.raises(StoreError) as e:
        store.version()
    assert (e.value.status, e.value.code) == (503, "store_too_new")
