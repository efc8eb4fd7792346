"""Indexing progress on Jupyter's event bus: the schema ships in the package and is
registered, events carry files, chunks and errors, they reach a browser's
``/api/events/subscribe`` socket, and each embedding request is metered by the gate."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from traitlets.config import Config

from aiide_server_ext.knowledge.part import JOB_EVENT_SCHEMA, JOB_EVENTS
from aiide_server_ext.seams import Caller, gate_of

from .corpus import write_corpus
from .fake_embeddings import FakeEmbeddings
from .routes import call, finished, server_config

pytestmark = pytest.mark.xdist_group("knowledge")


@pytest.fixture
def jp_server_config(jp_root_dir: Path, tmp_path: Path, endpoint: FakeEmbeddings) -> Config:
    write_corpus(jp_root_dir)
    (jp_root_dir / "analysis" / "broken.ipynb").write_text("{ not json")
    return server_config(
        tmp_path / "knowledge",
        embedding_backend="openai",
        embedding_base_url=endpoint.url,
        embedding_model="fake-small",
    )


def test_the_event_schema_is_a_file_of_the_package() -> None:
    import aiide_server_ext

    package = Path(aiide_server_ext.__file__).parent
    assert JOB_EVENT_SCHEMA.is_file() and package in JOB_EVENT_SCHEMA.parents
    schema = json.loads(JOB_EVENT_SCHEMA.read_text())
    assert schema["$id"] == JOB_EVENTS and str(schema["version"]) == "1"
    Draft202012Validator.check_schema(schema)


async def test_the_extension_registers_the_schema(jp_fetch: Any, jp_serverapp: Any) -> None:
    await call(jp_fetch, "jobs")  # the server and its extension are up
    assert JOB_EVENTS in jp_serverapp.event_logger.schemas.schema_ids


async def test_progress_events_count_files_chunks_and_errors(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    seen: list[dict[str, Any]] = []

    async def listener(logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        seen.append(data)

    jp_serverapp.event_logger.add_listener(schema_id=JOB_EVENTS, listener=listener)
    _, job = await call(jp_fetch, "index", method="POST", body=json.dumps({"path": "analysis"}))
    report = await finished(jp_fetch, job["id"])
    await jp_serverapp.web_app.settings["aiide_knowledge"].settle()
    mine = [e for e in seen if e["job_id"] == job["id"]]
    assert [e["status"] for e in mine][:2] == ["queued", "running"]
    last = mine[-1]
    assert last["status"] == "done" and last["trigger"] == "request"
    assert last["path"] == "analysis"
    assert last["files_done"] == last["files_total"] == report["progress"]["files_total"] == 3
    assert last["chunks_added"] == report["chunks"]["added"] > 0
    assert last["errors_total"] == report["errors_total"] == 1  # broken.ipynb
    validator = Draft202012Validator(json.loads(JOB_EVENT_SCHEMA.read_text()))
    for event in mine:
        assert not list(validator.iter_errors(event)), event


async def test_events_reach_a_browser_subscribed_to_the_event_bus(
    jp_fetch: Any, jp_ws_fetch: Any
) -> None:
    socket = await jp_ws_fetch("api", "events", "subscribe")
    try:
        _, job = await call(jp_fetch, "index", method="POST", body=json.dumps({"path": "lib"}))
        received: list[dict[str, Any]] = []
        while not received or received[-1]["status"] not in ("done", "failed"):
            message = json.loads(await asyncio.wait_for(socket.read_message(), 30))
            if message.get("schema_id") == JOB_EVENTS and message["job_id"] == job["id"]:
                received.append(message)
    finally:
        socket.close()
    assert received[-1]["status"] == "done"
    assert received[-1]["files_done"] == received[-1]["files_total"] == 1
    assert received[-1]["chunks_added"] == 4


class RecordingGate:
    """The server's gate, recording the usage it is given on the way."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.usage: list[tuple[str, dict[str, Any]]] = []

    def caller(self, handler: Any) -> Caller:
        caller: Caller = self.inner.caller(handler)
        return caller

    async def admit(self, caller: Caller, route_class: str, scope: str | None = None) -> None:
        await self.inner.admit(caller, route_class, scope=scope)

    async def record_model_usage(self, caller: Caller, **usage: Any) -> None:
        self.usage.append((caller.username, usage))
        await self.inner.record_model_usage(caller, **usage)

    async def audit(self, *args: Any, **kwargs: Any) -> None:
        await self.inner.audit(*args, **kwargs)


async def test_the_gate_meters_each_embedding_request(
    jp_fetch: Any, jp_serverapp: Any, endpoint: FakeEmbeddings
) -> None:
    settings = jp_serverapp.web_app.settings
    gate = RecordingGate(gate_of(settings))
    settings["aiide_gate"] = gate  # looked up per call: the gateway may load after knowledge
    _, job = await call(jp_fetch, "index", method="POST", body=json.dumps({"path": "lib"}))
    await finished(jp_fetch, job["id"])
    code, _ = await call(jp_fetch, "search", params={"q": "invoice totals"})
    assert code == 200
    assert len(gate.usage) == endpoint.calls == 2
    users = {user for user, _ in gate.usage}
    assert len(users) == 1 and users != {""}
    index, search = (u for _, u in gate.usage)
    assert index == {
        "provider": "openai",
        "model": "fake-small",
        "feature": "knowledge-index",
        "input_tokens": endpoint.tokens[0],
        "output_tokens": 0,
    }
    assert search["feature"] == "knowledge-search" and search["input_tokens"] == 2
