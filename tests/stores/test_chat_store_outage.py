"""The chat's PostgreSQL goes down mid-stream and comes back: nothing is lost or repeated.

A real Jupyter server keeps its conversations in a PostgreSQL server of this test's own
(the session's shared one is not stopped under other tests). The model streams slowly;
the database is stopped during the stream and started again during it, or after it ended
(then the run cannot store its answer and fails with ``store_unavailable``). The
client is told once that events are held, then gets every event exactly once, in seq
order, and the run ends; a ``resume`` from 0 replays the same events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from agent.chat import connect
from agent.conftest import server_config
from fakes import FakeAnthropic, FakeOpenAI, Reply
from traitlets.config import Config

from aiide_server_ext.agent.fanout import HELD_MESSAGE

from .conftest import postgres_bindir
from .pg import PostgresServer

pytestmark = pytest.mark.xdist_group("agent")

WORDS = 50


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    server = PostgresServer(postgres_bindir())
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def jp_server_config(
    jp_root_dir: Path,
    fake_anthropic: FakeAnthropic,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    own_postgres: PostgresServer,
) -> Config:
    url = own_postgres.url(own_postgres.create_database())
    # Only the chat's store is on PostgreSQL: the outage is the chat's.
    return server_config(
        jp_root_dir,
        fake_anthropic,
        fake_openai,
        monkeypatch,
        {"Router": {"retry_base_delay": 0.01, "idle_timeout": 30.0}},
        database_url=url,
    )


async def until(check: Callable[[], bool], timeout: float = 60) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


@pytest.mark.parametrize("back", ["after_the_stream", "during_the_stream"])
async def test_events_held_during_an_outage_arrive_once_in_order(
    back: str,
    jp_serverapp: Any,
    jp_ws_fetch: Any,
    fake_anthropic: FakeAnthropic,
    own_postgres: PostgresServer,
) -> None:
    text = " ".join(f"w{i}" for i in range(WORDS))
    fake_anthropic.push(Reply(text=text, delay=0.1))
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", id="m1", text="hi", task="chat")
    started = await chat.until("run_started")
    cid = started["conversation_id"]
    await chat.until("token")

    await asyncio.to_thread(own_postgres.down)
    notice = await chat.until("error", code="store_unavailable", timeout=60)
    assert notice["seq"] is None and notice["conversation_id"] == cid
    assert notice["message"] == HELD_MESSAGE
    if back == "after_the_stream":
        # The model finishes while the database is down: the run's own writes fail.
        await until(lambda: fake_anthropic.open_streams == 0)
    await asyncio.to_thread(own_postgres.up)

    done = await chat.until("run_finished", timeout=60)
    events = [m for m in chat.received if m["seq"] is not None]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # no gap, no repeat
    assert "".join(e["text"] for e in events if e["type"] == "token") == text
    notices = [m for m in chat.received if m["type"] == "error" and m["seq"] is None]
    assert len(notices) == 1
    if done["status"] == "failed":  # the usual case: the answer could not be stored in time
        errors = [e for e in events if e["type"] == "error"]
        assert [e["code"] for e in errors] == ["store_unavailable"]
        assert errors[0]["message"].startswith("the conversation store was unavailable")
    else:
        assert done["status"] == "completed"
    assert done["text"] == text

    # Everything the client saw is stored, once: a fresh socket replays the same events.
    other = await connect(jp_ws_fetch)
    await other.send(type="resume", id="r1", conversation_id=cid, after_seq=0)
    resumed = await other.until("resumed")
    assert resumed["replayed"] == len(events) and resumed["last_seq"] == len(events)
    assert [m for m in other.received if m["seq"] is not None] == events

    # The conversation goes on: the next chat in it works.
    fake_anthropic.push(Reply(text="back"))
    await chat.send(type="chat", id="m2", conversation_id=cid, text="again", task="chat")
    again = await chat.until("run_finished")
    assert again["status"] == "completed" and again["text"] == "back"
