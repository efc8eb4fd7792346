"""The HTTP routes in a real Jupyter server (pytest-jupyter), over an embeddings endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

from .corpus import write_corpus
from .fake_embeddings import FakeEmbeddings
from .routes import call, finished, server_config

pytestmark = pytest.mark.xdist_group("knowledge")


@pytest.fixture
def jp_server_config(jp_root_dir: Path, tmp_path: Path, endpoint: FakeEmbeddings) -> Config:
    write_corpus(jp_root_dir)
    return server_config(
        tmp_path / "knowledge",
        embedding_backend="openai",
        embedding_base_url=endpoint.url,
        embedding_model="fake-small",
    )


async def test_index_a_folder_then_search_it(jp_fetch: Any) -> None:
    code, job = await call(jp_fetch, "index", method="POST", body=json.dumps({"path": "lib"}))
    assert code == 202 and job["status"] in ("queued", "running") and job["path"] == "lib"
    report = await finished(jp_fetch, job["id"])
    assert report["status"] == "done"
    assert report["progress"] == {"files_done": 1, "files_total": 1}
    assert report["chunks"]["added"] == 4
    code, body = await call(jp_fetch, "search", params={"q": "compute_invoice_total", "k": "2"})
    assert code == 200 and body["query"] == "compute_invoice_total"
    top = body["results"][0]
    assert top["path"] == "lib/billing.py" and top["citation"].startswith("lib/billing.py:")
    assert {"cell_id", "cell_index", "line_start", "line_end", "kind", "score", "text"} <= set(top)


async def test_index_status_lists_roots_and_counts(jp_fetch: Any) -> None:
    code, job = await call(jp_fetch, "index", method="POST", body="{}")
    await finished(jp_fetch, job["id"])
    code, status = await call(jp_fetch, "index")
    assert code == 200 and status["indexed"] is True and status["roots"] == [""]
    assert status["chunks"] > 10 and status["model"].startswith("openai:fake-small@")
    assert status["dimension"] == 64


async def test_saving_through_the_contents_api_updates_results(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    _, job = await call(jp_fetch, "index", method="POST", body=json.dumps({"path": "lib"}))
    await finished(jp_fetch, job["id"])
    model = {
        "type": "file",
        "format": "text",
        "content": "def forecast_energy_demand(hours):\n    return hours * 2\n",
    }
    r = await jp_fetch("api", "contents", "lib", "energy.py", method="PUT", body=json.dumps(model))
    assert r.code == 201
    await jp_serverapp.web_app.settings["aiide_knowledge"].settle()
    _, body = await call(jp_fetch, "search", params={"q": "forecast_energy_demand"})
    assert body["results"][0]["path"] == "lib/energy.py"
    _, jobs = await call(jp_fetch, "jobs")
    assert [j["trigger"] for j in jobs["jobs"]] == ["request", "save"]


async def test_renaming_and_deleting_through_the_contents_api(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    _, job = await call(jp_fetch, "index", method="POST", body="{}")
    await finished(jp_fetch, job["id"])
    service = jp_serverapp.web_app.settings["aiide_knowledge"]
    await jp_fetch(
        "api", "contents", "analysis", method="PATCH", body=json.dumps({"path": "reports"})
    )
    await service.settle()
    await jp_fetch("api", "contents", "lib", "billing.py", method="DELETE")
    await service.settle()
    _, body = await call(jp_fetch, "search", params={"q": "revenue by region invoice", "k": "30"})
    paths = {r["path"] for r in body["results"]}
    assert "reports/revenue.ipynb" in paths
    assert not {p for p in paths if p.startswith("analysis/") or p == "lib/billing.py"}


async def test_drop_the_index(jp_fetch: Any) -> None:
    _, job = await call(jp_fetch, "index", method="POST", body="{}")
    await finished(jp_fetch, job["id"])
    code, body = await call(jp_fetch, "index", method="DELETE")
    assert code == 200 and body == {"dropped": True}
    code, body = await call(jp_fetch, "search", params={"q": "invoice"})
    assert (code, body["code"]) == (409, "not_indexed"), body


async def test_path_outside_the_root_is_a_400(jp_fetch: Any) -> None:
    code, body = await call(jp_fetch, "index", method="POST", body=json.dumps({"path": "../"}))
    assert code == 400 and body["code"] == "path_refused"


async def test_unknown_job_is_a_404(jp_fetch: Any) -> None:
    code, body = await call(jp_fetch, "jobs", "0123456789abcdef")
    assert code == 404 and body["code"] == "not_found"


async def test_routes_require_authentication(jp_fetch: Any) -> None:
    for path in (("search",), ("index",), ("jobs",)):
        code, _ = await call(jp_fetch, *path, headers={"Authorization": "token wrong"})
        assert code in (401, 403)


async def test_progress_is_pushed_as_jupyter_events(jp_fetch: Any, jp_serverapp: Any) -> None:
    from aiide_server_ext.knowledge.part import JOB_EVENTS

    seen: list[dict[str, Any]] = []

    async def listener(logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        seen.append(data)

    jp_serverapp.event_logger.add_listener(schema_id=JOB_EVENTS, listener=listener)
    _, job = await call(jp_fetch, "index", method="POST", body="{}")
    await finished(jp_fetch, job["id"])
    await jp_serverapp.web_app.settings["aiide_knowledge"].settle()
    mine = [e for e in seen if e["job_id"] == job["id"]]
    assert mine[0]["status"] == "queued" and mine[-1]["status"] == "done"
    assert mine[-1]["files_done"] == mine[-1]["files_total"] == 5
