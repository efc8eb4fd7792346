"""The gateway's store on sqlite and on a real PostgreSQL: one behaviour, two databases.

Two ``Store`` instances on one database stand for two servers (or brokers) sharing it:
each has its own connection and worker thread, so their writes really interleave.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from aiide_server_ext.gateway.audit import AuditLog, AuditQuery
from aiide_server_ext.gateway.errors import GatewayError
from aiide_server_ext.gateway.metering import Prices, UsageMeter, UsageQuery
from aiide_server_ext.gateway.migrations import MIGRATIONS, PG_MIGRATIONS
from aiide_server_ext.gateway.redaction import Redactor
from aiide_server_ext.gateway.store import Store
from aiide_server_ext.stores.conn import Conn, to_pyformat
from aiide_server_ext.stores.errors import StoreError
from aiide_server_ext.stores.postgres import advisory_key

from .conftest import Db, token_service

pytestmark = pytest.mark.asyncio
TABLES = ("meta", "revoked_tokens", "revoked_families", "refresh_tokens", "api_keys", "audit")


class Stores:
    """Opens stores on the test's database and closes them all at the end."""

    def __init__(self, db: Db) -> None:
        self.db = db
        self.opened: list[Store] = []

    def __call__(self, **kw: Any) -> Store:
        store = Store(self.db.gateway_path(), url=self.db.url, **kw)
        self.opened.append(store)
        return store

    def close(self) -> None:
        for store in self.opened:
            store.close()


@pytest.fixture
def stores(db: Db) -> Iterator[Stores]:
    opened = Stores(db)
    yield opened
    opened.close()


def count(store: Store, table: str) -> int:
    return int(store.read(lambda c: c.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]))


async def test_both_dialects_have_every_step() -> None:
    assert len(MIGRATIONS) == len(PG_MIGRATIONS) >= 2


async def test_migrates_from_empty_and_reopening_changes_nothing(stores: Stores) -> None:
    store = stores()
    assert store.version() == len(MIGRATIONS)
    for table in (*TABLES, "usage", "usage_groups"):
        assert count(store, table) == 0
    store.write(lambda c: c.execute("INSERT INTO meta VALUES ('kept', 'yes')"))
    store.close()
    again = stores()
    assert again.version() == len(MIGRATIONS)
    assert again.read(lambda c: c.execute("SELECT value FROM meta").fetchall()) == [("yes",)]


async def test_a_schema_from_a_newer_release_is_refused(stores: Stores) -> None:
    store = stores()
    store.write(lambda c: c.set_schema_version("gateway", len(MIGRATIONS) + 1))
    store.close()
    with pytest.raises(StoreError) as e:
        stores().version()
    assert (e.value.status, e.value.code) == (503, "store_too_new")


async def test_two_servers_migrating_at_once_migrate_once(stores: Stores) -> None:
    first, second = stores(), stores()
    versions = await asyncio.gather(
        asyncio.to_thread(first.version), asyncio.to_thread(second.version)
    )
    assert versions == [len(MIGRATIONS)] * 2


async def test_audit_chain_holds_with_two_servers_writing_at_once(stores: Stores) -> None:
    one, two = stores(), stores()
    logs = [AuditLog(one, Redactor()), AuditLog(two, Redactor())]
    await asyncio.gather(
        *(logs[n % 2].record(f"user{n % 2}", "test.event", f"t{n}", "ok") for n in range(60))
    )
    assert count(one, "audit") == 60
    assert one.read(logs[0].verify) is None
    assert two.read(logs[1].verify) is None
    seen = await logs[1].query(AuditQuery(limit=100))
    assert sorted(e["target"] for e in seen) == sorted(f"t{n}" for n in range(60))
    assert {e["actor"] for e in seen} == {"user0", "user1"}


async def test_audit_rows_cannot_be_changed_and_edits_break_the_chain(stores: Stores) -> None:
    store = stores()
    log = AuditLog(store, Redactor())
    for n in range(3):
        await log.record(None, "test.event", f"t{n}", "ok")
    for sql in ("UPDATE audit SET outcome = 'forged'", "DELETE FROM audit"):
        with pytest.raises(StoreError) as e:
            store.write(lambda c, sql=sql: c.execute(sql))
        assert e.value.code == "store_conflict"
    assert count(store, "audit") == 3

    def tamper(c: Conn) -> None:  # what someone with the database's owner rights could do
        if c.dialect == "sqlite":
            c.execute("DROP TRIGGER audit_no_update")
        else:
            c.execute("ALTER TABLE audit DISABLE TRIGGER audit_no_update")
        c.execute("UPDATE audit SET target = 'rewritten' WHERE target = 't1'")

    store.write(tamper)
    rows = store.read(lambda c: c.execute("SELECT id, target FROM audit").fetchall())
    assert store.read(log.verify) == next(i for i, target in rows if target == "rewritten")


async def test_usage_from_two_servers_is_summed_and_priced_in_order(stores: Stores) -> None:
    """Volume tiers price each call by the user's volume before it: with both servers
    writing at once, the total is still what one server writing in turn would charge."""
    prices = Prices.from_config(
        {"default": {"input_per_mtok": 1_000_000, "output_per_mtok": 1_000_000}},
        0,
        0,
        [{"above_tokens": 150, "multiplier": 2}],
        "USD",
    )
    one, two = stores(), stores()
    meters = [UsageMeter(one, prices), UsageMeter(two, prices)]
    await asyncio.gather(
        *(
            meters[n % 2].record_model(
                "ada",
                ["class-a"],
                provider="anthropic",
                model="claude",
                feature="chat",
                input_tokens=10,
                output_tokens=5,
            )
            for n in range(40)
        )
    )
    expected_cost = sum(15 * (2 if 15 * n >= 150 else 1) for n in range(40))
    for meter in meters:
        tokens, _, cost = await meter.used(user="ada", group=None, since=0)
        assert (tokens, cost) == (600, expected_cost)
        tokens, _, _ = await meter.used(user=None, group="class-a", since=0)
        assert tokens == 600
    report = await meters[1].report(UsageQuery(by="user"))
    assert [(r["user"], r["input_tokens"], r["records"]) for r in report] == [("ada", 400, 40)]


async def test_a_refresh_token_rotated_on_two_servers_at_once_works_once(stores: Stores) -> None:
    one, two = token_service(stores()), token_service(stores())
    pair = one.store.write(lambda c: one.issue_in(c, "ada", frozenset({"chat"})))
    results = await asyncio.gather(
        one.rotate(pair["refresh_token"]),
        two.rotate(pair["refresh_token"]),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, dict)]
    losers = [r for r in results if isinstance(r, GatewayError)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert losers[0].code in ("refresh_token_reused", "token_revoked")


async def test_a_writer_held_up_by_another_server_gets_store_busy(stores: Stores, db: Db) -> None:
    store = stores(busy_timeout=0.2)
    store.version()
    log = AuditLog(store, Redactor())
    if db.dialect == "sqlite":
        blocker: Any = sqlite3.connect(db.gateway_path(), isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
    else:
        import psycopg

        blocker = psycopg.connect(db.url, autocommit=True)
        blocker.execute("BEGIN")
        blocker.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key("audit"),))
    try:
        with pytest.raises(StoreError) as e:
            await log.record(None, "test.event", "held", "ok")
        assert (e.value.status, e.value.code) == (503, "store_busy")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await log.record(None, "test.event", "after", "ok")
    assert count(store, "audit") == 1


# -- PostgreSQL down, gone or unreachable ------------------------------------------------


async def test_a_database_that_is_not_there_is_store_unavailable(tmp_path: Any) -> None:
    pytest.importorskip("psycopg")
    store = Store("", url=f"postgresql://aiide@/aiide?host={tmp_path}")
    for _ in range(2):  # the second call is refused without another attempt
        with pytest.raises(StoreError) as e:
            store.version()
        assert (e.value.status, e.value.code) == (503, "store_unavailable")
    with pytest.raises(StoreError) as e:
        await AuditLog(store, Redactor()).record(None, "test.event", "t", "ok")
    assert e.value.code == "store_unavailable"
    store.close()


async def test_a_server_that_accepts_but_never_answers_times_out() -> None:
    """A stalled server (or a black-holed address) is a 503 after the connect timeout."""
    pytest.importorskip("psycopg")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        store = Store("", url=f"postgresql://aiide@127.0.0.1:{port}/aiide", connect_timeout=1)
        with pytest.raises(StoreError) as e:
            await asyncio.to_thread(store.version)
        assert e.value.code == "store_unavailable"
        store.close()


def terminate(url: str) -> int:
    """What a database restart or failover does to the stores' connections."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'aiide' AND datname = current_database()"
        ).fetchall()
    return len(killed)


async def test_a_connection_lost_while_idle_is_replaced_unnoticed(pg_url: str) -> None:
    store = Store("", url=pg_url)
    log = AuditLog(store, Redactor())
    await log.record(None, "test.event", "before", "ok")
    assert terminate(pg_url) == 1
    await log.record(None, "test.event", "after", "ok")  # a write: BEGIN meets the dead link
    assert terminate(pg_url) == 1
    targets = [e["target"] for e in await log.query(AuditQuery())]  # a read
    assert targets == ["before", "after"]
    assert store.read(log.verify) is None
    store.close()


async def test_a_connection_lost_mid_change_is_a_503_and_nothing_is_written(
    pg_url: str,
) -> None:
    store = Store("", url=pg_url)
    log = AuditLog(store, Redactor())

    def change(c: Conn) -> None:
        log.append(c, None, "test.event", "half", "ok")
        c.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    with pytest.raises(StoreError) as e:
        await store.awrite(change)
    assert (e.value.status, e.value.code) == (503, "store_unavailable")
    await log.record(None, "test.event", "next", "ok")
    assert [e["target"] for e in await log.query(AuditQuery())] == ["next"]
    assert store.read(log.verify) is None
    store.close()


async def test_a_role_without_write_rights_is_store_read_only(pg_url: str) -> None:
    import psycopg

    owner = Store("", url=pg_url)
    owner.version()
    owner.close()
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("DROP ROLE IF EXISTS reader")
        admin.execute("CREATE ROLE reader LOGIN")
        admin.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader")
    reader = Store("", url=pg_url.replace("aiide@", "reader@"))
    try:
        assert reader.version() == len(MIGRATIONS)
        with pytest.raises(StoreError) as e:
            await AuditLog(reader, Redactor()).record(None, "test.event", "t", "ok")
        assert (e.value.status, e.value.code) == (503, "store_read_only")
    finally:
        reader.close()
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("DROP OWNED BY reader")
            admin.execute("DROP ROLE reader")


async def test_a_url_that_is_not_postgresql_is_refused_with_the_setting() -> None:
    with pytest.raises(ValueError, match="database_url"):
        Store("", url="mysql://x@y/z")


async def test_the_password_stays_out_of_the_name() -> None:
    store = Store("", url="postgresql://aiide:hunter2@db:5432/aiide?password=x2&sslmode=require")
    assert "hunter2" not in store.path and "x2" not in store.path
    assert store.path.startswith("postgresql://aiide@db:5432/aiide")


async def test_placeholders_are_translated_outside_quotes_only() -> None:
    sql = "SELECT '?', \"a?\" FROM t WHERE x = ? AND y LIKE '%a' AND z = 'it''s ?'"
    assert to_pyformat(sql) == (
        "SELECT '?', \"a?\" FROM t WHERE x = %s AND y LIKE '%%a' AND z = 'it''s ?'"
    )


async def test_literals_with_question_marks_and_percents_mean_the_same(stores: Stores) -> None:
    store = stores()
    store.write(lambda c: c.execute("INSERT INTO meta VALUES ('what?', '100%')"))
    row = store.read(
        lambda c: c.execute(
            "SELECT key, value FROM meta WHERE key = ? AND value LIKE '%\\%' ESCAPE '\\'"
            " AND key LIKE '%?'",
            ("what?",),
        ).fetchone()
    )
    assert tuple(row) == ("what?", "100%")
