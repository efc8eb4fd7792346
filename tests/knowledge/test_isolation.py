"""A user's index is theirs alone: a collection per user and workspace, no shared filter."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_asyncio

from aiide_server_ext.knowledge.index import Store, collection_name
from aiide_server_ext.knowledge.service import KnowledgeService

from .conftest import ALICE, BOB, Factory, index_and_wait, openai_embedder
from .fake_embeddings import FakeEmbeddings

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("knowledge")]


@pytest.fixture
def two_users_files(workspace: Path) -> Path:
    (workspace / "alice").mkdir()
    (workspace / "bob").mkdir()
    (workspace / "alice" / "plan.md").write_text("# Plan\n\nThe launch codeword is BLUEHERON.\n")
    (workspace / "bob" / "diary.md").write_text("# Diary\n\nMy locker combination is 31-07-12.\n")
    return workspace


@pytest_asyncio.fixture
async def both_indexed(
    two_users_files: Path, endpoint: FakeEmbeddings, make_service: Factory
) -> KnowledgeService:
    """Alice indexed her folder, Bob his, in the same workspace and store."""
    service = make_service(two_users_files, openai_embedder(endpoint.url))
    await index_and_wait(service, ALICE, "alice")
    await index_and_wait(service, BOB, "bob")
    return service


async def test_user_never_sees_another_users_chunks(both_indexed: KnowledgeService) -> None:
    service = both_indexed
    for query in ("BLUEHERON launch codeword", "locker combination", "plan diary"):
        alice = await service.search(ALICE, query, k=20)
        bob = await service.search(BOB, query, k=20)
        assert alice and all(r["path"].startswith("alice/") for r in alice)
        assert bob and all(r["path"].startswith("bob/") for r in bob)


async def test_each_user_and_workspace_has_its_own_collection(tmp_path: Path) -> None:
    names = {
        collection_name(user, workspace)
        for user in ("alice", "bob")
        for workspace in (str(tmp_path / "a"), str(tmp_path / "b"))
    }
    assert len(names) == 4


async def test_same_user_in_another_workspace_sees_nothing_of_the_first(
    two_users_files: Path, tmp_path: Path, endpoint: FakeEmbeddings, make_service: Factory
) -> None:
    embedder = openai_embedder(endpoint.url)
    store = Store(embedder, path=str(tmp_path / "shared-index"))
    first = make_service(two_users_files, embedder, store)
    await index_and_wait(first, ALICE)
    other = tmp_path / "other"
    other.mkdir()
    second = make_service(other, embedder, store)
    assert await second.search(ALICE, "BLUEHERON", k=5) == []


async def test_jobs_of_another_user_are_not_found(
    two_users_files: Path, endpoint: FakeEmbeddings, make_service: Factory
) -> None:
    service = make_service(two_users_files, openai_embedder(endpoint.url))
    report = await index_and_wait(service, ALICE, "alice")
    assert service.job(BOB, report["id"]) is None
    assert service.list_jobs(BOB) == []
    with pytest.raises(KeyError):
        await service.wait(BOB, report["id"])


async def test_a_save_updates_only_the_indexes_that_cover_the_file(
    both_indexed: KnowledgeService, two_users_files: Path
) -> None:
    service = both_indexed
    (two_users_files / "bob" / "diary.md").write_text("# Diary\n\nNew locker: 99-11-04.\n")
    service.file_saved(str(two_users_files / "bob" / "diary.md"))
    await service.settle()
    assert [j["trigger"] for j in service.list_jobs(BOB)] == ["request", "save"]
    assert [j["trigger"] for j in service.list_jobs(ALICE)] == ["request"]
    assert "99-11-04" in (await service.search(BOB, "locker", k=1))[0]["text"]
    assert all("99-11-04" not in r["text"] for r in await service.search(ALICE, "locker", k=9))


async def test_dropping_an_index_leaves_the_other_users_alone(
    both_indexed: KnowledgeService,
) -> None:
    service = both_indexed
    assert await service.drop(ALICE) is True
    assert await service.search(ALICE, "plan", k=5) == []
    assert await service.search(BOB, "diary", k=5)
    assert await service.drop(ALICE) is False
