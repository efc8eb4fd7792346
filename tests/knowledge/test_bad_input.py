"""Bad input is reported file by file, and the index stays whole."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from aiide_server_ext.knowledge.files import PathRefused, ScanLimits, Workspace

from .conftest import ALICE, Factory, index_and_wait, openai_embedder
from .corpus import notebook
from .fake_embeddings import FakeEmbeddings

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("knowledge")]


@pytest.fixture
def messy(workspace: Path) -> Path:
    w = workspace
    (w / "good.py").write_text("def healthy_function():\n    return 42\n")
    (w / "ok.ipynb").write_text(notebook([("code", "print('fine')")]))
    (w / "truncated.ipynb").write_text('{"cells": [{"cell_type": "code", "sou')
    (w / "nocells.ipynb").write_text(json.dumps({"nbformat": 4, "worksheets": []}))
    (w / "latin1.md").write_bytes("# Café\n\nCrème brûlée".encode("latin-1"))
    (w / "binary.py").write_bytes(b"\x00\x01\x02 not really python")
    (w / "huge.txt").write_text("x" * 2_000_000)
    (w / "image.png").write_bytes(b"\x89PNG\r\n")
    os.symlink("self_loop", w / "self_loop")
    (w / "sub").mkdir()
    os.symlink("..", w / "sub" / "up")
    os.symlink("/etc", w / "etc_link")
    os.symlink("/etc/hostname", w / "hostname.txt")
    os.symlink("missing.md", w / "dangling.md")
    (w / ".gitignore").write_text("ignored/\n")
    (w / "ignored").mkdir()
    (w / "ignored" / "secret.py").write_text("TOKEN = 'never indexed'\n")
    return w


async def test_bad_files_are_reported_with_reasons_and_good_ones_indexed(
    messy: Path, endpoint: FakeEmbeddings, make_service: Factory
) -> None:
    service = make_service(messy, openai_embedder(endpoint.url))
    report = await index_and_wait(service, ALICE)
    assert report["status"] == "done"
    errors = {e["path"]: e["reason"] for e in report["errors"]}
    skipped = {s["path"]: s["reason"] for s in report["skipped"]}
    assert errors["truncated.ipynb"].startswith("malformed notebook: not JSON")
    assert errors["nocells.ipynb"].startswith("malformed notebook: no list of cells")
    assert errors["latin1.md"].startswith("not UTF-8 text")
    assert errors["self_loop"] == "symlink loop"
    assert errors["sub/up"].startswith("symlink loop")
    assert errors["etc_link"] == errors["hostname.txt"] == "symlink to outside the root directory"
    assert errors["dangling.md"] == "broken symlink"
    assert skipped["binary.py"] == "binary file"
    assert skipped["huge.txt"].startswith("too large")
    assert skipped["image.png"].startswith("not a text format")
    assert report["ignored"] >= 1  # the .gitignore'd folder
    assert report["progress"]["files_total"] == 6  # read; some then fail (malformed, binary)
    paths = {r["path"] for r in await service.search(ALICE, "healthy_function fine", k=20)}
    assert paths == {"good.py", "ok.ipynb"}
    assert all(r["path"] in paths for r in await service.search(ALICE, "TOKEN never", k=20))


async def test_a_path_outside_the_root_is_refused(
    messy: Path, endpoint: FakeEmbeddings, make_service: Factory
) -> None:
    service = make_service(messy, openai_embedder(endpoint.url))
    for bad in ("../", "../../etc", "sub/../../x", "etc_link", "/etc/passwd", "no/such.md"):
        with pytest.raises(PathRefused):
            await service.index(ALICE, bad)
    assert service.list_jobs(ALICE) == []


async def test_paths_are_normalised_like_the_contents_api(tmp_path: Path) -> None:
    ws = Workspace(str(tmp_path), ScanLimits())
    assert ws.api_path("/a//b/./c.py") == "a/b/c.py"
    assert ws.api_path("") == ws.api_path("/") == ""
    assert ws.api_path(str(tmp_path / "x.md")) == "x.md"


async def test_a_file_that_turns_malformed_keeps_its_last_good_chunks(
    messy: Path, endpoint: FakeEmbeddings, make_service: Factory
) -> None:
    service = make_service(messy, openai_embedder(endpoint.url))
    await index_and_wait(service, ALICE, "ok.ipynb")
    (messy / "ok.ipynb").write_text("{ half a notebook")
    service.file_saved(str(messy / "ok.ipynb"))
    await service.settle()
    report = service.list_jobs(ALICE)[-1]
    assert report["errors"][0]["reason"].startswith("malformed notebook")
    assert (await service.search(ALICE, "print fine", k=1))[0]["path"] == "ok.ipynb"


async def test_endpoint_down_reports_each_file_and_keeps_the_index_consistent(
    messy: Path, endpoint: FakeEmbeddings, make_service: Factory
) -> None:
    service = make_service(messy, openai_embedder(endpoint.url))
    await index_and_wait(service, ALICE, "good.py")
    for i in range(5):
        (messy / f"new_{i}.py").write_text(f"def added_later_{i}():\n    pass\n")
    (messy / "good.py").write_text("def healthy_function():\n    return 43\n")
    endpoint.stop()
    report = await index_and_wait(service, ALICE)
    assert report["status"] == "failed" and "embedding model is unavailable" in report["detail"]
    assert report["code"] == "model_unavailable"
    failed = [e for e in report["errors"] if e["reason"].startswith("embedding failed")]
    assert len(failed) == 3 and "unreachable" in failed[0]["reason"]
    assert any(e["reason"].startswith("not attempted") for e in report["errors"])
    col = service.store.collection("alice", service.workspace_id)
    got = col.get(include=["documents"])
    assert got["documents"] and all("return 42" in d for d in got["documents"])
    assert len(got["ids"]) == 1  # nothing half-written, nothing lost


async def test_search_with_the_endpoint_down_says_why(
    messy: Path, endpoint: FakeEmbeddings, make_service: Factory
) -> None:
    from aiide_server_ext.knowledge.embeddings import EmbeddingError

    service = make_service(messy, openai_embedder(endpoint.url))
    await index_and_wait(service, ALICE, "good.py")
    endpoint.stop()
    with pytest.raises(EmbeddingError, match="unreachable"):
        await service.search(ALICE, "healthy", k=3)
