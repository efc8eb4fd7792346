"""The fan-out when the store fails to commit: events are held in order, each watching socket
is told once, and everything goes out exactly once when the store is back.

``FlakyStore`` is the real store (sqlite in memory) whose commit fails a set number of
times, as PostgreSQL going away does (``StoreError``); the disk-full case uses a real
sqlite file that runs out of pages (``PRAGMA max_page_count``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aiide_server_ext.agent import fanout as fanout_module
from aiide_server_ext.agent.fanout import HELD_MESSAGE, Fanout
from aiide_server_ext.agent.store import Store
from aiide_server_ext.stores.errors import StoreError


class FlakyStore(Store):
    def __init__(self, failures: int) -> None:
        super().__init__(":memory:")
        self.failures = failures
        self.flushes = 0
        self.appended: list[tuple[str, int]] = []

    def append_event(self, cid: str, seq: int, body: str) -> None:
        self.appended.append((cid, seq))
        super().append_event(cid, seq, body)

    def flush(self) -> None:
        if self._pending and self.failures > 0:
            self.failures -= 1
            self.flushes += 1
            raise StoreError(503, "store_unavailable", "the agent database is unavailable")
        super().flush()


class Socket:
    def __init__(self, name: str) -> None:
        self.username = name
        self.open_notebooks: set[str] = set()
        self.frames: list[dict[str, Any]] = []

    def send(self, text: str) -> None:
        self.frames.append(json.loads(text))

    def events(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["seq"] is not None]

    def notices(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == "error" and f["seq"] is None]


async def until(check: Callable[[], bool], timeout: float = 20) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fanout_module, "RETRY_FIRST", 0.01)
    monkeypatch.setattr(fanout_module, "RETRY_MAX", 0.05)


@pytest.mark.asyncio
async def test_held_events_go_out_once_in_order_after_the_store_is_back() -> None:
    store = FlakyStore(failures=3)
    store.create_conversation("cv1", "ada", "one")
    store.create_conversation("cv2", "ada", "two")
    fanout = Fanout(store)
    a, b, other = Socket("ada"), Socket("ada"), Socket("bob")
    for conn in (a, b, other):
        fanout.connect(conn)
    fanout.subscribe(a, "cv1")
    fanout.subscribe(b, "cv1")
    fanout.subscribe(b, "cv2")

    fanout.emit("cv1", "run1", "run_started", reply_to=None, task="chat", model="m", provider="p")
    fanout.emit("cv1", "run1", "token", text="Hel")
    fanout.emit("cv1", "run1", "token", text="lo")  # merges into the previous token
    fanout.emit("cv2", "run2", "token", text="other ")
    await until(lambda: bool(a.notices()) and bool(b.notices()))
    assert a.events() == [] and b.events() == []

    # While held: new events queue behind the held ones (tokens still merge among the
    # new ones), control frames go out at once, and nobody is told twice.
    fanout.emit("cv1", "run1", "token", text=", wor")
    fanout.emit("cv1", "run1", "token", text="ld")
    fanout.emit("cv2", "run2", "token", text="text")
    fanout.control(other, "pong", reply_to="p1", ts=1.0)
    await until(lambda: any(f["type"] == "pong" for f in other.frames))
    assert a.events() == [] and b.events() == []
    fanout.emit("cv1", "run1", "run_finished", status="completed", usage={}, text="Hello, world")

    await until(lambda: any(e["type"] == "run_finished" for e in a.events()))
    await until(lambda: len(b.events()) == len(a.events()) + 2)  # + cv2's two tokens
    assert store.failures == 0 and store.flushes == 3

    for conn in (a, b):
        assert [(n["code"], n["message"], n["seq"]) for n in conn.notices()] == [
            ("store_unavailable", HELD_MESSAGE, None)
        ]
    assert other.notices() == []  # watches nothing that was held
    cv1 = a.events()
    assert [e["seq"] for e in cv1] == list(range(1, len(cv1) + 1))
    # Tokens merged within each batch, never across a held one (it was already stored).
    assert [e["text"] for e in cv1 if e["type"] == "token"] == ["Hello", ", world"]
    assert [e for e in b.events() if e["conversation_id"] == "cv1"] == cv1
    cv2 = [e for e in b.events() if e["conversation_id"] == "cv2"]
    assert [e["seq"] for e in cv2] == [1, 2]
    assert "".join(e["text"] for e in cv2) == "other text"

    # Each event was handed to the store once, and the store has exactly what was sent.
    assert len(store.appended) == len(set(store.appended)) == len(cv1) + len(cv2)
    assert [json.loads(t) for t in store.events_after("cv1", 0)] == cv1
    assert [json.loads(t) for t in store.events_after("cv2", 0)] == cv2

    # A new outage is told again.
    store.failures = 1
    fanout.emit("cv1", "run3", "token", text="again")
    await until(lambda: len(a.notices()) == 2)
    await until(lambda: a.events()[-1]["seq"] == len(cv1) + 1)


@pytest.mark.asyncio
async def test_resume_while_held_is_refused_and_works_after() -> None:
    store = FlakyStore(failures=2)
    store.create_conversation("cv", "ada", "one")
    fanout = Fanout(store)
    watcher, late = Socket("ada"), Socket("ada")
    fanout.subscribe(watcher, "cv")
    fanout.emit("cv", "run", "token", text="held")
    await until(lambda: bool(watcher.notices()))
    store.failures = 10**6  # down until the test says otherwise
    with pytest.raises(StoreError) as refused:
        fanout.replay(late, "cv", 0, "r1")
    assert refused.value.code == "store_unavailable"
    store.failures = 0
    await until(lambda: len(watcher.events()) == 1)
    fanout.replay(late, "cv", 0, "r1")
    await until(lambda: any(f["type"] == "resumed" for f in late.frames))
    assert late.events() == watcher.events()


@pytest.mark.asyncio
async def test_a_full_sqlite_disk_holds_events_and_loses_no_write(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "agent.sqlite"))
    try:
        store.create_conversation("cv", "ada", "title")
        store.flush()
        fanout = Fanout(store)
        sock = Socket("ada")
        fanout.subscribe(sock, "cv")
        raw = store.db.raw  # type: ignore[union-attr]
        pages = raw.execute("PRAGMA page_count").fetchone()[0]
        raw.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full from here on

        # Small writes fit; the events' commit does not, and sqlite undoes the whole
        # transaction, these writes with it.
        store.append_turn("cv", "user", "hi", "run")
        store.put_run("run", "cv", "running", {"id": "run", "created": 1})
        for n in range(40):
            fanout.emit("cv", "run", "notice", code="retry", message=f"{n} " + "x" * 400)
        await until(lambda: bool(sock.notices()))
        assert sock.events() == []

        raw.execute("PRAGMA max_page_count = 1073741823")  # space again
        await until(lambda: len(sock.events()) == 40)
        assert [e["seq"] for e in sock.events()] == list(range(1, 41))
        assert len(sock.notices()) == 1
        assert [json.loads(t) for t in store.events_after("cv", 0)] == sock.events()
        assert [t["content"] for t in store.turns("cv")] == ["hi"]
        assert store.run("run") == {"id": "run", "created": 1}
        assert not raw.in_transaction
    finally:
        store.close()
