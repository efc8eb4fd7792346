"""Routes with the real local model: edit a cell, save it, find it (the acceptance path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

from .conftest import INSTALL_HINT, MODELS_DIR, require_model
from .corpus import write_corpus
from .routes import call, finished, server_config

pytestmark = pytest.mark.xdist_group("knowledge")


@pytest.fixture
def jp_server_config(jp_root_dir: Path, tmp_path: Path) -> Config:
    write_corpus(jp_root_dir)
    return server_config(tmp_path / "knowledge", models_dir=str(MODELS_DIR))


async def test_edit_a_cell_save_and_find_it_reembedding_one_chunk(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    require_model()
    _, job = await call(jp_fetch, "index", method="POST", body=json.dumps({"path": "analysis"}))
    assert (await finished(jp_fetch, job["id"]))["status"] == "done"
    service = jp_serverapp.web_app.settings["aiide_knowledge"]
    before = service.embedder.texts

    r = await jp_fetch("api", "contents", "analysis", "sensors.ipynb")
    nb = json.loads(r.body)
    nb["content"]["cells"][8]["source"] = (
        "ax = hourly.plot(y='wind_speed')\nax.figure.savefig('wind.png')"
    )
    await jp_fetch(
        "api",
        "contents",
        "analysis",
        "sensors.ipynb",
        method="PUT",
        body=json.dumps({"type": "notebook", "content": nb["content"]}),
    )
    await service.settle()

    assert service.embedder.texts - before == 1
    _, body = await call(jp_fetch, "search", params={"q": "save a picture of the wind plot"})
    top = body["results"][0]
    assert (top["path"], top["cell_id"]) == ("analysis/sensors.ipynb", "cell-8")


async def test_missing_model_is_a_503_that_says_how_to_install_it(
    jp_fetch: Any, jp_serverapp: Any, tmp_path: Path
) -> None:
    from aiide_server_ext.knowledge.embeddings import OnnxMiniLMEmbedder

    service = jp_serverapp.web_app.settings["aiide_knowledge"]
    service.embedder.inner = OnnxMiniLMEmbedder(tmp_path / "no-models-here")
    code, body = await call(jp_fetch, "search", params={"q": "anything"})
    assert code == 503 and body["code"] == "model_unavailable"
    assert "jupyter aiide models install" in body["message"]
    _, job = await call(jp_fetch, "index", method="POST", body="{}")
    report = await finished(jp_fetch, job["id"])
    assert report["status"] == "failed"
    assert "jupyter aiide models install" in report["detail"], INSTALL_HINT
    # The UI words the failure by its code: the detail names server paths.
    assert report["code"] == "model_unavailable"
    code, status = await call(jp_fetch, "index")
    assert "jupyter aiide models install" in status["model_problem"]
