"""Search quality with the real model: meaning, not only words; identifiers exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_asyncio

from .conftest import ALICE, Factory, index_and_wait

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("knowledge")]

PARAPHRASES = [
    # (question in other words, path, cell index or a line of the answer)
    ("where do we clean the sensor data?", "analysis/sensors.ipynb", 4),
    ("how is the model evaluated?", "ml/train.ipynb", 3),
    ("chart of sales per area for each month", "analysis/revenue.ipynb", 3),
    ("which customers spend the most?", "analysis/revenue.ipynb", 5),
    ("how do I install the project?", "README.md", 7),
]


@pytest_asyncio.fixture
async def indexed(corpus: dict[str, Path], workspace: Path, minilm, make_service: Factory):
    service = make_service(workspace, minilm)
    report = await index_and_wait(service, ALICE)
    assert report["status"] == "done", report
    assert report["errors"] == [] and report["progress"]["files_done"] == 5
    return service


@pytest.mark.parametrize(("question", "path", "where"), PARAPHRASES)
async def test_paraphrased_question_ranks_the_relevant_chunk_first(
    indexed, question: str, path: str, where: int
) -> None:
    results = await indexed.search(ALICE, question, k=5)
    top = results[0]
    assert top["path"] == path, [r["citation"] for r in results]
    if path.endswith(".ipynb"):
        assert top["cell_index"] == where and top["cell_id"] == f"cell-{where}"
    else:
        assert top["line_start"] <= where <= top["line_end"]


async def test_exact_identifier_finds_its_definition_first(indexed) -> None:
    results = await indexed.search(ALICE, "send_reminder_email", k=3)
    top = results[0]
    assert top["path"] == "lib/billing.py"
    assert "def send_reminder_email" in top["text"]
    assert top["exact_matches"] == ["send_reminder_email"]
    assert top["citation"] == f"lib/billing.py:{top['line_start']}-{top['line_end']}"


async def test_identifier_inside_a_sentence_is_matched_exactly(indexed) -> None:
    results = await indexed.search(ALICE, "which notebook calls drop_outliers?", k=3)
    assert results[0]["path"] == "analysis/sensors.ipynb"
    assert "drop_outliers" in results[0]["exact_matches"]


async def test_results_cite_cells_with_their_outputs_and_headings(indexed) -> None:
    [top] = await indexed.search(ALICE, "how many rows were removed when cleaning", k=1)
    assert top["citation"] == "analysis/sensors.ipynb, cell 5 (id cell-4)"
    assert top["kind"] == "code_cell"
    assert "Cleaning" in top["text"] and "412 rows removed" in top["text"]


async def test_empty_index_and_empty_query_return_nothing(
    workspace: Path, minilm, make_service: Factory
) -> None:
    service = make_service(workspace, minilm)
    assert await service.search(ALICE, "anything", k=3) == []
    assert await service.search(ALICE, "   ", k=3) == []
