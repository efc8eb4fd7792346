"""Retention of conversations and events on a real server: a resume replays what is kept,
and a conversation retention removed says so (``conversation_expired``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fakes import FakeAnthropic, Reply

from .chat import connect

pytestmark = pytest.mark.xdist_group("agent")


@pytest.mark.agent_config(event_retention_days=3 / 86400)  # three seconds
async def test_a_resume_replays_the_events_retention_kept(
    jp_ws_fetch: Any, jp_serverapp: Any, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.push(Reply(text="first"), Reply(text="second"), Reply(text="third"))
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="one", task="chat")
    first = await chat.until("run_finished")
    cid = first["conversation_id"]
    await asyncio.sleep(3.5)  # the first run's events are older than the retention now
    await chat.send(type="chat", text="two", task="chat", conversation_id=cid)
    second = await chat.until("run_finished")

    service = jp_serverapp.web_app.settings["aiide_agent"]
    assert service.retention.run() == {"conversations": 0, "events": first["seq"]}

    again = await connect(jp_ws_fetch)
    await again.send(type="resume", id="r", conversation_id=cid, after_seq=0)
    resumed = await again.until("resumed", reply_to="r")
    replayed = [e for e in again.received if e.get("seq")]
    assert [e["seq"] for e in replayed] == list(range(first["seq"] + 1, second["seq"] + 1))
    assert {e["run_id"] for e in replayed} == {second["run_id"]}
    assert resumed["replayed"] == len(replayed) and resumed["last_seq"] == second["seq"]
    await again.send(type="chat", text="three", task="chat", conversation_id=cid)
    started = await again.until("run_started")
    assert started["seq"] == second["seq"] + 1  # numbering goes on after the pruned events
    await again.until("run_finished")


@pytest.mark.agent_config(max_conversations_per_user=1, retention_interval=1.0)
async def test_a_conversation_retention_removed_answers_conversation_expired(
    jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any, fake_anthropic: FakeAnthropic
) -> None:
    # As the running server does after start (pytest-jupyter's server skips that step):
    # the parts start, and with them the retention passes.
    await jp_serverapp.extension_manager.start_all_extensions()
    fake_anthropic.push(Reply(text="a"), Reply(text="b"))
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="older", task="chat")
    older = (await chat.until("run_finished"))["conversation_id"]
    await chat.send(type="chat", text="newer", task="chat")
    newer = (await chat.until("run_finished"))["conversation_id"]
    assert older != newer

    for _ in range(60):  # the periodic pass removes the older one
        r = await jp_fetch("aiide", "api", "agent", "conversations", older, raise_error=False)
        if r.code != 200:
            break
        await asyncio.sleep(0.1)
    assert (r.code, json.loads(r.body)["code"]) == (410, "conversation_expired")

    await chat.send(type="resume", id="r", conversation_id=older, after_seq=0)
    assert (await chat.until("error", reply_to="r"))["code"] == "conversation_expired"
    await chat.send(type="chat", id="c", text="more", task="chat", conversation_id=older)
    assert (await chat.until("error", reply_to="c"))["code"] == "conversation_expired"
    listing = json.loads((await jp_fetch("aiide", "api", "agent", "conversations")).body)
    assert [c["id"] for c in listing["conversations"]] == [newer]
