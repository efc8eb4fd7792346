"""Kept fresh on save: only changed chunks reach the model; renames move, deletes remove."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytest_asyncio

from .conftest import ALICE, Factory, index_and_wait

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("knowledge")]


@pytest_asyncio.fixture
async def indexed(corpus: dict[str, Path], workspace: Path, minilm, make_service: Factory):
    service = make_service(workspace, minilm)
    await index_and_wait(service, ALICE)
    return service


def edit_cell(path: Path, index: int, source: str) -> None:
    nb = json.loads(path.read_text())
    nb["cells"][index]["source"] = source
    path.write_text(json.dumps(nb))


async def test_editing_a_cell_and_saving_reembeds_only_that_cell(
    indexed, corpus: dict[str, Path], minilm
) -> None:
    before = minilm.texts
    edit_cell(
        corpus["analysis/sensors.ipynb"],
        6,
        "hourly = clean.set_index('time').resample('1h').median()\n"
        "daily_rainfall = hourly.precipitation.resample('1D').sum()",
    )
    indexed.file_saved(str(corpus["analysis/sensors.ipynb"]))
    await indexed.settle()
    assert minilm.texts - before == 1
    [top] = await indexed.search(ALICE, "total rain per day", k=1)
    assert top["cell_id"] == "cell-6" and "daily_rainfall" in top["text"]
    job = indexed.list_jobs(ALICE)[-1]
    assert job["trigger"] == "save"
    assert job["chunks"] == {"added": 1, "updated": 0, "removed": 1, "unchanged": 4}


async def test_saving_an_unchanged_file_embeds_nothing(
    indexed, corpus: dict[str, Path], minilm
) -> None:
    before = minilm.texts
    indexed.file_saved(str(corpus["lib/billing.py"]))
    await indexed.settle()
    assert minilm.texts == before
    assert indexed.list_jobs(ALICE)[-1]["chunks"]["added"] == 0


async def test_new_function_above_others_moves_their_lines_without_reembedding(
    indexed, corpus: dict[str, Path], minilm
) -> None:
    path = corpus["lib/billing.py"]
    old = (await indexed.search(ALICE, "send_reminder_email", k=1))[0]
    text = path.read_text().replace(
        "class CustomerRegistry:",
        "def apply_discount(total, percent):\n    return total * (1 - percent / 100)\n\n\n"
        "class CustomerRegistry:",
    )
    path.write_text(text)
    before = minilm.texts
    indexed.file_saved(str(path))
    await indexed.settle()
    assert minilm.texts - before == 1
    new = (await indexed.search(ALICE, "send_reminder_email", k=1))[0]
    assert new["line_start"] == old["line_start"] + 4
    assert text.split("\n")[new["line_start"] - 1].startswith("def send_reminder_email")


async def test_renaming_a_folder_moves_its_chunks_without_the_model(
    indexed, workspace: Path, minilm
) -> None:
    before = minilm.texts
    (workspace / "analysis").rename(workspace / "reports")
    indexed.file_renamed("analysis", "reports")
    await indexed.settle()
    assert minilm.texts == before
    [top] = await indexed.search(ALICE, "where do we clean the sensor data?", k=1)
    assert top["path"] == "reports/sensors.ipynb"
    assert not [
        r for r in await indexed.search(ALICE, "revenue", k=20) if r["path"].startswith("analysis/")
    ]


async def test_renaming_a_file_reindexes_it_under_its_new_name(
    indexed, workspace: Path, minilm
) -> None:
    (workspace / "lib" / "billing.py").rename(workspace / "lib" / "invoices.py")
    indexed.file_renamed("lib/billing.py", "lib/invoices.py")
    await indexed.settle()
    [top] = await indexed.search(ALICE, "compute_invoice_total", k=1)
    assert top["path"] == "lib/invoices.py" and top["text"].startswith("invoices.py")


async def test_deleted_file_disappears_from_results(indexed, corpus: dict[str, Path]) -> None:
    corpus["ml/train.ipynb"].unlink()
    indexed.file_deleted("ml/train.ipynb")
    await indexed.settle()
    results = await indexed.search(ALICE, "how is the model evaluated?", k=10)
    assert all(r["path"] != "ml/train.ipynb" for r in results)


async def test_reindexing_the_root_drops_files_deleted_meanwhile(
    indexed, corpus: dict[str, Path], minilm
) -> None:
    corpus["README.md"].unlink()
    before = minilm.texts
    report = await index_and_wait(indexed, ALICE)
    assert minilm.texts == before
    assert report["chunks"]["removed"] == 3 and report["chunks"]["added"] == 0
    assert all(r["path"] != "README.md" for r in await indexed.search(ALICE, "install", k=10))


async def test_saves_outside_what_the_user_indexed_are_ignored(
    corpus: dict[str, Path], workspace: Path, minilm, make_service: Factory
) -> None:
    service = make_service(workspace, minilm)
    await index_and_wait(service, ALICE, "lib")
    jobs = len(service.list_jobs(ALICE))
    service.file_saved(str(corpus["README.md"]))
    await service.settle()
    assert len(service.list_jobs(ALICE)) == jobs
    assert (await service.status(ALICE))["roots"] == ["lib"]
