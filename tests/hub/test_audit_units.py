"""The broker's audit search against a real database: bounded per request, scoped."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiide_server_ext.gateway.audit import AuditLog
from aiide_server_ext.gateway.redaction import Redactor
from aiide_server_ext.gateway.store import Store
from aiide_server_ext.hub.broker.audit import AuditFilter, AuditScope, search

ROWS = 3000


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path = Path(tmp_path_factory.mktemp("audit")) / "broker.sqlite"
    store = Store(str(path))
    audit = AuditLog(store, Redactor())

    def fill(conn: object) -> None:
        for i in range(ROWS):
            student = "alice" if i % 2 else "erin"
            target = "course:ds101" if i % 3 == 0 else "model:claude-haiku-4-5"
            detail = {"n": i, "note": "needle" if i == 2500 else "hay"}
            audit.append(conn, student, "model.used", target, "ok", detail)  # type: ignore[arg-type]

    store.write(fill)
    yield store
    store.close()


def _scanned(store: Store, f: AuditFilter, scope: AuditScope | None, rows: int) -> int:
    """Rows the database stepped through for one search (sqlite's VM step counter)."""
    from aiide_server_ext.hub.broker import audit as module

    steps = 0

    def run(conn: object) -> None:
        nonlocal steps
        raw: sqlite3.Connection = conn.raw  # type: ignore[attr-defined]
        counter = [0]

        def tick() -> int:
            counter[0] += 1
            return 0

        raw.set_progress_handler(tick, 100)
        try:
            module.search(conn, f, scope, rows)  # type: ignore[arg-type]
        finally:
            raw.set_progress_handler(None, 100)
        steps = counter[0]

    store.read(run)
    return steps


def test_a_search_with_no_match_examines_one_bounded_range(store: Store) -> None:
    f = AuditFilter(text="no-such-text-anywhere", limit=500)
    page = store.read(lambda c: search(c, f, None, 1000))
    assert (page.events, page.next_after, page.more) == ([], 1000, True)
    # Continuing from next_after walks the rest a range at a time, then says it is done.
    pages = [page]
    while pages[-1].more:
        more = AuditFilter(text="x-none", after=pages[-1].next_after)
        pages.append(store.read(lambda c, f=more: search(c, f, None, 1000)))  # type: ignore[misc]
    assert [p.next_after for p in pages] == [1000, 2000, 3000]
    assert pages[-1].more is False


def test_the_work_of_a_search_is_bounded_by_the_range_not_the_table(store: Store) -> None:
    small = _scanned(store, AuditFilter(text="no-such-text"), None, 200)
    large = _scanned(store, AuditFilter(text="no-such-text"), None, ROWS)
    assert small * 5 < large  # 200 rows cost a fraction of 3000


def test_a_match_is_found_on_the_page_that_holds_it(store: Store) -> None:
    f = AuditFilter(text="needle", after=2000)
    page = store.read(lambda c: search(c, f, None, 1000))
    assert [e["detail"]["n"] for e in page.events] == [2500]


def test_since_starts_at_the_first_event_of_that_time(store: Store) -> None:
    ts = store.read(lambda c: c.execute("SELECT ts FROM audit WHERE id = 2801").fetchone()[0])
    page = store.read(lambda c: search(c, AuditFilter(since=ts, limit=1000), None, 1000))
    assert page.events[0]["id"] == 2801 and page.more is False


def test_a_scope_keeps_to_its_users_and_course_targets(store: Store) -> None:
    scope = AuditScope(frozenset({"erin"}), frozenset({"course:ds101"}))
    page = store.read(lambda c: search(c, AuditFilter(limit=1000), scope, ROWS))
    assert page.events
    for e in page.events:
        assert e["actor"] == "erin" or e["target"] == "course:ds101", e
    nothing = AuditScope(frozenset(), frozenset())
    assert store.read(lambda c: search(c, AuditFilter(), nothing, ROWS)).events == []


def test_filters_take_their_values_literally(store: Store) -> None:
    f = AuditFilter(target="ds%", limit=10)
    assert store.read(lambda c: search(c, f, None, ROWS)).events == []
    f = AuditFilter(target="ds101", actor="erin", limit=10)
    events = store.read(lambda c: search(c, f, None, ROWS)).events
    assert events and all(e["target"] == "course:ds101" for e in events)
