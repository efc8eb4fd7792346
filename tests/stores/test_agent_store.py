"""The agent's store (conversations, turns, runs, events) on sqlite and PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from aiide_server_ext.agent.store import STEPS, Store
from aiide_server_ext.stores.errors import StoreError
from aiide_server_ext.stores.sealing import Sealer

from .conftest import Db


class Stores:
    def __init__(self, db: Db) -> None:
        self.db = db
        self.opened: list[Store] = []

    def __call__(self, server: str = "") -> Store:
        sealer = Sealer(b"k" * 32, "the test's key")  # servers sharing a database share it
        store = Store(self.db.agent_path(), url=self.db.url, server=server, sealer=sealer)
        self.opened.append(store)
        return store

    def close(self) -> None:
        for store in self.opened:
            if store.db is not None:
                store.db.close()


@pytest.fixture
def stores(db: Db) -> Iterator[Stores]:
    opened = Stores(db)
    yield opened
    opened.close()


def fill(store: Store) -> None:
    store.create_conversation("cv", "ada", "hello")
    for _ in range(3):
        seq = store.next_seq("cv")
        store.append_event("cv", seq, json.dumps({"seq": seq}))
    store.append_turn("cv", "user", {"text": "hi"}, "run1")
    store.append_turn("cv", "assistant", "hello", "run1")
    store.put_run("run1", "cv", "awaiting_approval", {"id": "run1", "created": 1})
    store.put_run("run1", "cv", "awaiting_approval", {"id": "run1", "created": 1, "step": 2})
    store.set_summary("cv", "greeting", 1)
    store.set_user_value("ada", "key", "v1")
    store.set_user_value("ada", "key", "v2")
    store.flush()


def test_both_dialects_have_every_step() -> None:
    assert len(STEPS["sqlite"]) == len(STEPS["postgresql"])


def test_everything_survives_a_reopen(stores: Stores) -> None:
    store = stores()
    assert store.version() == len(STEPS["sqlite"])
    fill(store)
    assert store.db is not None
    store.db.close()  # no clean close: as after a kill
    again = stores()
    assert again.version() == len(STEPS["sqlite"])
    assert again.next_seq("cv") == 4
    assert [json.loads(e)["seq"] for e in again.events_after("cv", 1)] == [2, 3]
    assert [t["content"] for t in again.turns("cv")] == [{"text": "hi"}, "hello"]
    assert again.runs_in(("awaiting_approval",)) == [{"id": "run1", "created": 1, "step": 2}]
    conversation = again.conversation("cv", "ada")
    assert conversation is not None and conversation["summary"] == "greeting"
    assert again.conversation("cv", "bob") is None
    assert again.user_value("ada", "key") == "v2"


def test_a_second_server_sees_what_the_first_flushed(stores: Stores) -> None:
    first, second = stores("server-a"), stores("server-b")
    fill(first)
    assert [c["id"] for c in second.conversations("ada")] == ["cv"]
    assert len(second.events_after("cv", 0)) == 3
    assert second.run("run1") == {"id": "run1", "created": 1, "step": 2}
    assert [r["id"] for r in second.runs_of("cv")] == ["run1"]
    # A server starting up recovers only its own runs, never another's live ones.
    assert second.runs_in(("awaiting_approval",)) == []
    assert [r["id"] for r in first.runs_in(("awaiting_approval",))] == ["run1"]
    second.delete_conversation("cv")
    assert first.conversation("cv") is None and first.events_after("cv", 0) == []


def test_a_schema_from_a_newer_release_is_refused(stores: Stores) -> None:
    store = stores()
    assert store.db is not None
    store.db.begin()
    store.db.set_schema_version("agent", len(STEPS["sqlite"]) + 1)
    store.db.commit()
    store.db.close()
    with pytest.raises(StoreError) as e:
        stores().version()
    assert e.value.code == "store_too_new"


def test_an_old_sqlite_file_is_brought_forward(tmp_path: Any) -> None:
    """Files written before versioning: tables exist, user_version 0, runs without owner."""
    path = str(tmp_path / "old.sqlite")
    with sqlite3.connect(path) as raw:
        raw.executescript(STEPS["sqlite"][0])
        raw.execute("INSERT INTO runs VALUES ('r', 'cv', 'running', 1, '{\"id\": \"r\"}')")
        raw.execute("INSERT INTO events VALUES ('cv', 1, '{\"seq\": 1}')")
    store = Store(path)
    assert store.version() == len(STEPS["sqlite"])
    assert store.runs_in(("running",)) == [{"id": "r"}]
    assert store.events_after("cv", 0) == ['{"seq": 1}']
    assert store.next_seq("cv") == 2
    store.close()
    with sqlite3.connect(path) as raw:
        (ddl,) = raw.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()
    assert "WITHOUT ROWID" not in ddl  # events moved to a rowid table (cheaper commits)


def test_commits_leave_checkpoints_to_the_store_thread(tmp_path: Any) -> None:
    """The loop's commits never copy the log into the file; the checkpoint thread does."""
    path = str(tmp_path / "agent.sqlite")
    store = Store(path)
    assert store.db is not None and store._checkpointer is not None
    assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    store.create_conversation("cv", "ada", "hello")
    for _ in range(200):
        seq = store.next_seq("cv")
        store.append_event("cv", seq, json.dumps({"seq": seq, "text": "x" * 500}))
        store.flush()
    checkpointer = store._checkpointer
    for _ in range(500):  # the thread runs soon after a commit; wait for it, bounded
        if checkpointer.last is not None and checkpointer.last[2] == checkpointer.last[1] > 0:
            break
        threading.Event().wait(0.01)
    assert checkpointer.last is not None
    busy, frames, copied = checkpointer.last
    assert busy == 0 and frames > 0 and copied == frames
    thread = checkpointer._thread
    store.close()
    assert thread is not None and not thread.is_alive()
    again = Store(path)
    assert len(again.events_after("cv", 0)) == 200
    again.close()


def test_postgresql_down_is_store_unavailable_and_the_server_still_starts(tmp_path: Any) -> None:
    pytest.importorskip("psycopg")
    store = Store("", url=f"postgresql://aiide@/aiide?host={tmp_path}")  # does not raise
    with pytest.raises(StoreError) as e:
        store.conversations("ada")
    assert (e.value.status, e.value.code) == (503, "store_unavailable")


def test_a_lost_connection_is_replaced(pg_url: str) -> None:
    import psycopg

    store = Store("", url=pg_url)
    store.create_conversation("cv", "ada", "hello")
    with psycopg.connect(pg_url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'aiide' AND datname = current_database()"
        ).fetchall()
    assert killed == [(True,)]
    assert [c["id"] for c in store.conversations("ada")] == ["cv"]
    store.close()
