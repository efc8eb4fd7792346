"""Client/server mode: the index lives in a real ``chroma run`` server on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from optional import require

from aiide_server_ext.knowledge.index import Store, collection_name

from .conftest import ALICE, BOB, Factory, index_and_wait, openai_embedder
from .fake_embeddings import FakeEmbeddings

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("knowledge")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    binary = shutil.which("chroma", path=os.path.dirname(sys.executable)) or shutil.which("chroma")
    require("chromadb-server", binary is not None, "chromadb's `chroma` command is not installed")
    port = _free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    log = open(data / "server.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [binary, "run", "--path", str(data / "db"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90  # its first start imports a lot; CI is loaded
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("chroma server did not start: " + (data / "server.log").read_text())
                time.sleep(0.05)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


async def test_index_and_search_through_a_chroma_server(
    chroma_server: tuple[str, int],
    corpus: dict[str, Path],
    workspace: Path,
    endpoint: FakeEmbeddings,
    make_service: Factory,
) -> None:
    host, port = chroma_server
    embedder = openai_embedder(endpoint.url)
    service = make_service(workspace, embedder, Store(embedder, host=host, port=port))
    report = await index_and_wait(service, ALICE)
    assert report["status"] == "done" and report["chunks"]["added"] > 10
    [top] = await service.search(ALICE, "compute_invoice_total", k=1)
    assert top["path"] == "lib/billing.py"
    assert await service.search(BOB, "compute_invoice_total", k=1) == []

    # A second server process (another Jupyter server) sees the same index.
    other = make_service(workspace, embedder, Store(embedder, host=host, port=port))
    [again] = await other.search(ALICE, "compute_invoice_total", k=1)
    assert again["path"] == "lib/billing.py"
    names = {c.name for c in other.store.client().list_collections()}
    assert collection_name("alice", str(workspace.resolve())) in names
