"""Retention on sqlite and PostgreSQL: what is pruned, what is kept, what a pruned id says."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from aiide_server_ext.agent.errors import AgentError
from aiide_server_ext.agent.store import Store

from .conftest import Db

DAY = 86400.0


@pytest.fixture
def store(db: Db) -> Iterator[Store]:
    opened = Store(db.agent_path(), url=db.url)
    yield opened
    opened.close()


def _events(store: Store, cid: str, count: int) -> None:
    for _ in range(count):
        seq = store.next_seq(cid)
        store.append_event(cid, seq, json.dumps({"type": "token", "seq": seq}))
    store.flush()


def _expired(store: Store, cid: str, owner: str) -> str:
    with pytest.raises(AgentError) as e:
        store.owned(cid, owner)
    return f"{e.value.status} {e.value.code}"


def test_old_and_surplus_conversations_go_and_answer_conversation_expired(store: Store) -> None:
    now = time.time()
    # ann's, newest first: a2, a3, a1 (its run waits for an approval), old (ten days)
    ages = {"a2": 1.0, "a3": 2.0, "a1": 3.0, "old": 10 * DAY, "b1": 10.0}
    for cid, age in ages.items():
        store.create_conversation(cid, "bob" if cid == "b1" else "ann", cid)
        store.append_turn(cid, "user", "hi", None)
        _events(store, cid, 3)
        store._q("UPDATE conversations SET updated = ? WHERE id = ?", (now - age, cid))
    store.put_run("r1", "a1", "awaiting_approval", {"id": "r1"})
    store.flush()

    pruned = store.prune(conversation_age=5 * DAY, max_conversations=1, now=now)

    assert pruned == {"conversations": 2, "events": 0}  # 'old' by age, 'a3' by count
    assert _expired(store, "old", "ann") == "410 conversation_expired"
    assert _expired(store, "a3", "ann") == "410 conversation_expired"
    assert _expired(store, "a3", "bob") == "404 unknown_conversation"  # not bob's
    assert store.owned("a1", "ann")["id"] == "a1"  # over the count, but its run waits
    assert store.owned("a2", "ann")["id"] == "a2"
    assert store.owned("b1", "bob")["id"] == "b1"
    assert store.turns("a3") == [] and store.events_after("a3", 0) == []
    store.create_conversation("a3", "ann", "again")  # an id reused is a new conversation
    assert store.owned("a3", "ann")["title"] == "again"


def test_old_events_go_but_the_newest_stays_and_sequence_numbers_go_on(store: Store) -> None:
    store.create_conversation("c", "ann", "c")
    _events(store, "c", 4)
    later = time.time() + 2 * DAY

    pruned = store.prune(event_age=DAY, now=later)

    assert pruned == {"conversations": 0, "events": 3}
    kept = [json.loads(e)["seq"] for e in store.events_after("c", 0)]
    assert kept == [4] and store.last_seq("c") == 4
    store._seq.clear()  # as after a restart: the next number comes from the table
    assert store.next_seq("c") == 5


def test_nothing_is_pruned_when_retention_is_off(store: Store) -> None:
    store.create_conversation("c", "ann", "c")
    _events(store, "c", 2)
    assert store.prune(now=time.time() + 1000 * DAY) == {"conversations": 0, "events": 0}
    assert len(store.events_after("c", 0)) == 2
