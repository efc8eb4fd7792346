"""Every request to a paid embedding endpoint is metered to the user it served; the
local model is not; the agent's tool tells the model why a search failed and cites."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aiide_server_ext.agent.errors import ToolError
from aiide_server_ext.agent.tools.base import ToolEnv
from aiide_server_ext.agent.tools.knowledge import search_knowledge
from aiide_server_ext.knowledge.embeddings import EmbeddingCall, estimate_tokens

from .conftest import ALICE, BOB, Factory, index_and_wait, openai_embedder
from .fake_embeddings import FakeEmbeddings

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("knowledge")]

Records = list[tuple[str, str, EmbeddingCall]]


def metered(make_service: Factory, workspace: Path, embedder: Any) -> tuple[Any, Records]:
    """A service on ``embedder`` and the list its meter records each call into."""
    records: Records = []

    async def meter(user: str, feature: str, calls: list[EmbeddingCall]) -> None:
        records.extend((user, feature, call) for call in calls)

    service = make_service(workspace, embedder)
    service.meter = meter
    return service, records


async def test_each_endpoint_request_is_metered_to_its_user(
    make_service: Factory, workspace: Path, corpus: Any, endpoint: FakeEmbeddings
) -> None:
    service, records = metered(make_service, workspace, openai_embedder(endpoint.url))
    report = await index_and_wait(service, ALICE)
    assert report["status"] == "done" and report["chunks"]["added"] > 0
    indexing = len(records)
    assert indexing == endpoint.calls > 0  # one record per request, none missed
    assert {(u, f) for u, f, _ in records} == {("alice", "knowledge-index")}
    assert [c.tokens for _, _, c in records] == endpoint.tokens
    assert all(c.model == "fake-small" and c.reported for _, _, c in records)

    await service.search(BOB, "where are invoices totalled?")  # bob has no index: no call
    await service.search(ALICE, "where are invoices totalled?")
    assert [(u, f) for u, f, _ in records[indexing:]] == [("alice", "knowledge-search")]
    assert records[-1][2].tokens == endpoint.tokens[-1] == 4


async def test_an_endpoint_without_usage_is_metered_by_estimate(
    make_service: Factory, workspace: Path, endpoint: FakeEmbeddings
) -> None:
    (workspace / "notes.md").write_text("# Units\n\nPrices are stored in cents.\n")
    endpoint.report_usage = False
    service, records = metered(make_service, workspace, openai_embedder(endpoint.url))
    await index_and_wait(service, ALICE)
    await service.search(ALICE, "price units")
    assert len(records) == endpoint.calls == 2
    _, _, call = records[-1]
    assert not call.reported and call.tokens == estimate_tokens(["price units"]) == 3


async def test_calls_served_before_the_endpoint_went_down_are_metered(
    make_service: Factory, workspace: Path, corpus: Any, endpoint: FakeEmbeddings
) -> None:
    service, records = metered(make_service, workspace, openai_embedder(endpoint.url))
    await index_and_wait(service, ALICE)
    served = endpoint.calls
    endpoint.stop()
    (workspace / "lib" / "billing.py").write_text("def changed():\n    return 1\n")
    report = await index_and_wait(service, ALICE)
    assert report["errors_total"] >= 1
    assert len(records) == served  # nothing invented for the refused requests


async def test_a_failing_meter_never_fails_the_search(
    make_service: Factory, workspace: Path, corpus: Any, endpoint: FakeEmbeddings
) -> None:
    service = make_service(workspace, openai_embedder(endpoint.url))
    await index_and_wait(service, ALICE)

    async def broken(user: str, feature: str, calls: list[EmbeddingCall]) -> None:
        raise RuntimeError("usage store is down")

    service.meter = broken
    results = await service.search(ALICE, "compute_invoice_total")
    assert results[0]["path"] == "lib/billing.py"


async def test_the_local_model_is_not_metered(
    make_service: Factory, workspace: Path, minilm: Any
) -> None:
    (workspace / "notes.md").write_text("# Units\n\nPrices are stored in cents.\n")
    service, records = metered(make_service, workspace, minilm)
    before = minilm.calls
    await index_and_wait(service, ALICE)
    await service.search(ALICE, "price units")
    assert minilm.calls - before == 2 and records == []


def tool_env(service: Any, workspace: Path) -> ToolEnv:
    return ToolEnv(
        root_dir=str(workspace),
        notebooks=None,  # type: ignore[arg-type]  # search_knowledge touches no notebook
        caller=ALICE,
        route=None,  # type: ignore[arg-type]
        call_id="toolu_1",
        knowledge=service,
    )


async def test_the_tool_returns_passages_with_structured_citations(
    make_service: Factory, workspace: Path, corpus: Any, endpoint: FakeEmbeddings
) -> None:
    service = make_service(workspace, openai_embedder(endpoint.url))
    await index_and_wait(service, ALICE)
    result = await search_knowledge(tool_env(service, workspace), {"query": "drop_outliers"})
    assert result.ok and result.citations
    top = result.citations[0]
    assert top == {
        "path": "analysis/sensors.ipynb",
        "cell_id": "cell-4",
        "cell_index": 4,
        "line_start": 1,
        "line_end": top["line_end"],
        "title": "Weather station pipeline > Cleaning",
        "label": "analysis/sensors.ipynb, cell 5 (id cell-4)",
    }
    assert result.content.startswith(f"[{top['label']}]\n")
    assert len({c["label"] for c in result.citations}) == len(result.citations)


async def test_the_tool_tells_why_the_embedding_endpoint_failed(
    make_service: Factory, workspace: Path, corpus: Any, endpoint: FakeEmbeddings
) -> None:
    service = make_service(workspace, openai_embedder(endpoint.url))
    await index_and_wait(service, ALICE)
    endpoint.stop()
    with pytest.raises(ToolError) as failed:
        await search_knowledge(tool_env(service, workspace), {"query": "sensor cleaning"})
    assert failed.value.code == "tool_failed"
    assert "knowledge search failed: embedding endpoint" in failed.value.message
    assert "unreachable" in failed.value.message


async def test_endpoint_credentials_never_reach_the_message(
    make_service: Factory, workspace: Path
) -> None:
    from aiide_server_ext.knowledge.embeddings import EmbeddingError, OpenAICompatEmbedder

    embedder = OpenAICompatEmbedder("http://ada:s3cret@127.0.0.1:9/v1", "m", timeout=2.0)
    with pytest.raises(EmbeddingError) as failed:
        embedder.embed(["x"])
    assert "s3cret" not in str(failed.value) and "127.0.0.1:9" in str(failed.value)
    assert "s3cret" not in embedder.model_id
