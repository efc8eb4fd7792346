"""Issue 21, finding 10: the roster, the gradebook export, the audit newest first and the
store of shared conversations, without a hub (a real sqlite database where one is used)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aiide_server_ext.gateway.audit import AuditLog
from aiide_server_ext.gateway.redaction import Redactor
from aiide_server_ext.gateway.store import Store
from aiide_server_ext.hub.broker.audit import AuditFilter, search
from aiide_server_ext.hub.broker.identity import HubCaller
from aiide_server_ext.hub.broker.roster import EXPORT_COLUMNS, export_rows, figures, students_of
from aiide_server_ext.hub.broker.sharing import (
    MAX_SHARES_PER_STUDENT,
    MAX_TRANSCRIPT_CHARS,
    ShareError,
    Shares,
    parse_share,
)
from aiide_server_ext.hub.course import Course

COURSE = Course.parse(
    "ds101",
    {
        "groups": ["students"],
        "instructors": ["instructors"],
        "budget": {"daily_tokens": 1000},
        "student_budgets": {"bob": {"daily_tokens": 5000}},
    },
)
HISTORY = {
    "2026-12-06": {"alice": {"input": 10, "output": 5, "calls": 1}},
    "2026-12-07": {"alice": {"input": 1, "output": 2, "calls": 1, "limit:budget_exceeded": 2}},
}


def _member(name: str, *groups: str, admin: bool = False) -> HubCaller:
    return HubCaller(name, frozenset(groups), admin)


def test_the_roster_lists_students_who_have_not_started_and_not_the_staff() -> None:
    members = {
        "alice": _member("alice", "students"),
        "dana": _member("dana", "students"),  # never used the assistant
        "ian": _member("ian", "instructors", "students"),
        "root": _member("root", "students", admin=True),
        "zed": _member("zed", "other"),
    }
    assert students_of(COURSE, members, {"erin"}) == ["alice", "dana", "erin"]


def test_a_students_figures_over_the_window() -> None:
    assert figures(HISTORY, "alice") == (2, "2026-12-07", 18, 2, 2)
    assert figures(HISTORY, "dana") == (0, "", 0, 0, 0)


def test_the_export_has_one_row_per_student_and_day_keyed_by_the_hub_name() -> None:
    days = ["2026-12-06", "2026-12-07"]
    rows = export_rows(COURSE, ["alice", "bob"], days, HISTORY)
    assert [(r["user"], r["day"]) for r in rows] == [
        ("alice", "2026-12-06"), ("alice", "2026-12-07"),
        ("bob", "2026-12-06"), ("bob", "2026-12-07"),
    ]  # fmt: skip
    assert set(rows[0]) == set(EXPORT_COLUMNS) and EXPORT_COLUMNS[0] == "user"
    assert rows[1]["total_tokens"] == 3 and rows[1]["limit_hits"] == 2
    assert rows[2]["total_tokens"] == 0 and rows[2]["daily_budget"] == 5000  # bob's own
    assert rows[0]["daily_budget"] == 1000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = Store(str(tmp_path / "broker.sqlite"), label="the broker database")
    yield db
    db.close()


def test_the_audit_reads_newest_first_page_by_page(store: Store) -> None:
    audit = AuditLog(store, Redactor())

    def fill(conn: object) -> None:
        for i in range(30):
            audit.append(conn, "alice", "model.used", "model:x", "ok", {"n": i})  # type: ignore[arg-type]

    store.write(fill)
    first = store.read(lambda c: search(c, AuditFilter(limit=10, newest_first=True), None, 100))
    ns = [e["detail"]["n"] for e in first.events]
    assert ns == list(range(29, 19, -1)) and first.more
    second = store.read(
        lambda c: search(
            c, AuditFilter(limit=10, newest_first=True, before=first.next_before), None, 100
        )
    )
    assert [e["detail"]["n"] for e in second.events] == list(range(19, 9, -1))
    # bounded: a scan of 5 rows examines only the newest 5, and says where to go on
    small = store.read(lambda c: search(c, AuditFilter(newest_first=True), None, 5))
    assert [e["detail"]["n"] for e in small.events] == [29, 28, 27, 26, 25] and small.more
    oldest = store.read(lambda c: search(c, AuditFilter(limit=3), None, 100))
    assert [e["detail"]["n"] for e in oldest.events] == [0, 1, 2]


def test_a_share_request_is_checked() -> None:
    ok = {"conversation": "c1", "title": "Help", "transcript": "# Help\n\nq"}
    assert parse_share(ok) == ("c1", "Help", "", "# Help\n\nq")
    for bad, code in (
        ({**ok, "conversation": ""}, "invalid_share"),
        ({**ok, "transcript": "  "}, "invalid_share"),
        ({**ok, "note": 3}, "invalid_share"),
        ([], "invalid_share"),
        ({**ok, "transcript": "x" * (MAX_TRANSCRIPT_CHARS + 1)}, "share_too_large"),
    ):
        with pytest.raises(ShareError) as e:
            parse_share(bad)
        assert e.value.code == code


async def test_sharing_again_replaces_the_copy_and_stopping_deletes_it(store: Store) -> None:
    shares = Shares(store)
    first, again = await shares.put("alice", ["ds101"], "c1", "Help", "", "v1")
    assert not again
    second, again = await shares.put("alice", ["ds101"], "c1", "Help", "now", "v2")
    assert again and second.id == first.id
    got = await shares.get(first.id)
    assert got is not None and got.transcript == "v2" and got.note == "now"
    assert [s.id for s in await shares.in_courses({"ds101"})] == [first.id]
    assert await shares.in_courses({"other"}) == []
    await shares.delete(first.id)
    assert await shares.get(first.id) is None and await shares.of_user("alice") == []


async def test_a_student_shares_a_bounded_number_of_conversations(store: Store) -> None:
    shares = Shares(store)
    for i in range(MAX_SHARES_PER_STUDENT):
        await shares.put("bob", ["ds101"], f"c{i}", "t", "", "x")
    with pytest.raises(ShareError) as e:
        await shares.put("bob", ["ds101"], "one-more", "t", "", "x")
    assert e.value.code == "too_many_shares"
    await shares.put("bob", ["ds101"], "c0", "t", "", "y")  # sharing one again is fine
