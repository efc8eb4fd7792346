"""Fixtures of the knowledge tests: the real model, a fake endpoint, services, a corpus.

Tests that need the real embedding model skip when it is not installed, saying how
to install it, except under CI (CI=true), where they fail: CI must prove the model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from optional import require

from aiide_server_ext.knowledge.chunking import Limits
from aiide_server_ext.knowledge.embeddings import (
    MODEL_NAME,
    CountingEmbedder,
    Embedder,
    OnnxMiniLMEmbedder,
    OpenAICompatEmbedder,
    default_models_dir,
    model_problem,
)
from aiide_server_ext.knowledge.files import Workspace
from aiide_server_ext.knowledge.index import Store
from aiide_server_ext.knowledge.service import KnowledgeService
from aiide_server_ext.seams import Caller

from .corpus import write_corpus
from .fake_embeddings import FakeEmbeddings

# Read now: pytest-jupyter points the Jupyter data dir at a temporary folder per test.
MODELS_DIR = default_models_dir()
INSTALL_HINT = (
    "run `jupyter aiide models install` (python -m aiide_server_ext.knowledge.model_install)"
)

ALICE = Caller("alice")
BOB = Caller("bob")


def require_model() -> None:
    problem = model_problem(MODELS_DIR / MODEL_NAME)
    require("embedding-model", not problem, problem or "")


@pytest.fixture(scope="session")
def minilm() -> CountingEmbedder:
    """The real model, loaded once per worker (counting is per test: take differences)."""
    require_model()
    return CountingEmbedder(OnnxMiniLMEmbedder(MODELS_DIR))


@pytest.fixture
def endpoint() -> Iterator[FakeEmbeddings]:
    fake = FakeEmbeddings()
    yield fake
    fake.stop()


def openai_embedder(url: str, model: str = "fake-small") -> CountingEmbedder:
    return CountingEmbedder(OpenAICompatEmbedder(url, model, timeout=5.0))


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "work"
    root.mkdir()
    return root


@pytest.fixture
def corpus(workspace: Path) -> dict[str, Path]:
    return write_corpus(workspace)


Factory = Callable[..., KnowledgeService]


@pytest_asyncio.fixture
async def make_service(tmp_path: Path) -> AsyncIterator[Factory]:
    """Services over one index folder; a second call with another model is a restart."""
    made: list[KnowledgeService] = []

    def make(
        root: Path,
        embedder: Embedder | CountingEmbedder,
        store: Store | None = None,
        limits: Limits | None = None,
    ) -> KnowledgeService:
        counting = (
            embedder if isinstance(embedder, CountingEmbedder) else CountingEmbedder(embedder)
        )
        store = store or Store(counting, path=str(tmp_path / "index"))
        service = KnowledgeService(Workspace(str(root)), store, counting, limits)
        made.append(service)
        return service

    yield make
    for service in made:
        await service.stop()


async def index_and_wait(
    service: KnowledgeService, caller: Caller, path: str = ""
) -> dict[str, Any]:
    job = await service.index(caller, path)
    return await service.wait(caller, job["id"], timeout=60)
