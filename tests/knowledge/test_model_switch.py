"""Changing the embedding model rebuilds the index with it; vectors are never mixed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aiide_server_ext.knowledge.index import Store, collection_name

from .conftest import ALICE, Factory, index_and_wait, openai_embedder
from .fake_embeddings import DIMENSIONS, FakeEmbeddings

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("knowledge")]


def stored(store: Store, workspace: Path) -> dict[str, Any]:
    col = store.client().get_collection(collection_name("alice", str(workspace)))
    got = col.get(include=["embeddings"])
    assert col.metadata["aiide_dim"] == len(got["embeddings"][0])
    return {
        "model": col.metadata["aiide_model"],
        "dims": {len(e) for e in got["embeddings"]},
        "count": len(got["ids"]),
    }


async def restart_with(make_service: Factory, workspace: Path, tmp_path: Path, embedder: Any):
    return make_service(workspace, embedder, Store(embedder, path=str(tmp_path / "index")))


async def test_switching_model_reindexes_everything_with_the_new_one(
    corpus: dict[str, Path],
    workspace: Path,
    tmp_path: Path,
    endpoint: FakeEmbeddings,
    make_service: Factory,
) -> None:
    small = openai_embedder(endpoint.url, "fake-small")
    first = await restart_with(make_service, workspace, tmp_path, small)
    await index_and_wait(first, ALICE)
    before = stored(first.store, workspace)
    assert before["dims"] == {DIMENSIONS["fake-small"]}

    large = openai_embedder(endpoint.url, "fake-large")
    second = await restart_with(make_service, workspace, tmp_path, large)
    await second.check_models()  # what the server does a few seconds after it starts
    await second.settle()
    [job] = second.list_jobs(ALICE)
    assert job["trigger"] == "model-change" and job["status"] == "done"
    assert "fake-small" in job["detail"]
    after = stored(second.store, workspace)
    assert after == {
        "model": large.model_id,
        "dims": {DIMENSIONS["fake-large"]},
        "count": before["count"],
    }
    assert large.texts == before["count"]
    assert (await second.status(ALICE))["roots"] == [""]
    [top] = await second.search(ALICE, "compute_invoice_total", k=1)
    assert top["path"] == "lib/billing.py"


async def test_first_use_after_a_switch_also_triggers_the_rebuild(
    corpus: dict[str, Path],
    workspace: Path,
    tmp_path: Path,
    endpoint: FakeEmbeddings,
    make_service: Factory,
) -> None:
    first = await restart_with(
        make_service, workspace, tmp_path, openai_embedder(endpoint.url, "fake-small")
    )
    await index_and_wait(first, ALICE, "lib")
    second = await restart_with(
        make_service, workspace, tmp_path, openai_embedder(endpoint.url, "fake-large")
    )
    await second.search(ALICE, "invoice", k=3)  # never mixes: the old vectors are gone
    await second.settle()
    assert [j["trigger"] for j in second.list_jobs(ALICE)] == ["model-change"]
    assert (await second.search(ALICE, "invoice", k=1))[0]["path"] == "lib/billing.py"


async def test_switching_from_the_local_model_to_an_endpoint(
    corpus: dict[str, Path],
    workspace: Path,
    tmp_path: Path,
    endpoint: FakeEmbeddings,
    minilm,
    make_service: Factory,
) -> None:
    first = await restart_with(make_service, workspace, tmp_path, minilm)
    await index_and_wait(first, ALICE, "lib")
    assert stored(first.store, workspace)["dims"] == {384}
    remote = openai_embedder(endpoint.url, "fake-small")
    second = await restart_with(make_service, workspace, tmp_path, remote)
    await second.check_models()
    await second.settle()
    assert stored(second.store, workspace)["dims"] == {DIMENSIONS["fake-small"]}


class FillingCollection:
    """A collection chromadb is filling for the first time: it counts chunks, but its
    vector segment is not on disk yet (what a rebuild's first search met, at random)."""

    def count(self) -> int:
        return 3

    def query(self, **_: Any) -> dict[str, Any]:
        raise RuntimeError(
            "Error executing plan: Internal error: Error creating hnsw segment reader: "
            "Nothing found on disk"
        )


class BrokenCollection(FillingCollection):
    def query(self, **_: Any) -> dict[str, Any]:
        raise RuntimeError("disk I/O error")


class EmptyCollection(BrokenCollection):
    def count(self) -> int:
        return 0


async def test_a_search_while_a_collection_is_first_filled_does_not_fail() -> None:
    from aiide_server_ext.knowledge import index

    assert index.search(FillingCollection(), [0.1, 0.2], "invoice total", 3) == []
    assert index.search(EmptyCollection(), [0.1, 0.2], "invoice total", 3) == []  # no query
    with pytest.raises(RuntimeError, match="disk I/O error"):  # other errors still say so
        index.search(BrokenCollection(), [0.1, 0.2], "invoice total", 3)
