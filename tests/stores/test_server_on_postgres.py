"""A real Jupyter server with the gateway and the agent on PostgreSQL, end to end.

A chat through the fake Anthropic server lands its conversation, events and run in
PostgreSQL, the gateway meters and audits it there, and a second "server" (plain stores
on the same database, as another server would open them) sees all of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from agent.chat import connect
from agent.conftest import server_config
from fakes import FakeAnthropic, FakeOpenAI, Reply
from traitlets.config import Config

from aiide_server_ext.agent.store import Store as AgentStore
from aiide_server_ext.gateway.audit import AuditLog, AuditQuery
from aiide_server_ext.gateway.redaction import Redactor
from aiide_server_ext.gateway.store import Store as GatewayStore

pytestmark = pytest.mark.xdist_group("agent")


@pytest.fixture
def jp_server_config(
    jp_root_dir: Path,
    fake_anthropic: FakeAnthropic,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    pg_url: str,
) -> Config:
    return server_config(
        jp_root_dir,
        fake_anthropic,
        fake_openai,
        monkeypatch,
        {"Gateway": {"database_url": pg_url}},
        database_url=pg_url,
        server_id="server-a",
    )


async def test_a_chat_is_stored_metered_and_audited_in_postgresql(
    jp_serverapp: Any,
    jp_ws_fetch: Any,
    jp_fetch: Any,
    fake_anthropic: FakeAnthropic,
    pg_url: str,
) -> None:
    fake_anthropic.push(Reply(text="Stored in PostgreSQL", input_tokens=40, output_tokens=4))
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", id="m1", text="hi", task="chat")
    started = await chat.until("run_started")
    done = await chat.until("run_finished")
    assert done["status"] == "completed"
    cid = started["conversation_id"]

    created = await jp_fetch("aiide", "api", "keys", method="POST", body=json.dumps({"name": "k"}))
    assert created.code in (200, 201)

    # Another server on the same database sees the conversation, its events and its run.
    other = AgentStore("", url=pg_url, server="server-b")
    try:
        owner = other.conversation(cid)
        assert owner is not None
        assert [c["id"] for c in other.conversations(owner["owner"])] == [cid]
        events = [json.loads(e) for e in other.events_after(cid, 0)]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert events[-1]["type"] == "run_finished"
        run = other.run(started["run_id"])
        assert run is not None and run["id"] == started["run_id"]
        assert [t["role"] for t in other.turns(cid)] == ["user", "assistant"]
        assert other.runs_in(("running", "awaiting_approval")) == []
    finally:
        other.close()

    # ... and the gateway's usage and audit, with the hash chain intact.
    gateway = GatewayStore("", url=pg_url)
    try:
        tokens = gateway.read(
            lambda c: c.execute(
                "SELECT SUM(input_tokens), SUM(output_tokens) FROM usage WHERE kind = 'model'"
            ).fetchone()
        )
        assert (int(tokens[0]), int(tokens[1])) == (40, 4)
        log = AuditLog(gateway, Redactor())
        actions = [e["action"] for e in await log.query(AuditQuery())]
        assert "apikey.created" in actions
        assert gateway.read(log.verify) is None
    finally:
        gateway.close()
