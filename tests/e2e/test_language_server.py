"""Language features out of the box: JupyterLab's LSP client is on (aiide's settings
defaults) and python-lsp-server answers, in a notebook on the sandboxed kernel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import LabPage, write_notebook
from conftest import LabServer, make_lab

pytestmark = pytest.mark.browser

DIAGNOSTIC_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def lsp_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    server = make_lab(tmp_path_factory, name="lsp-lab")
    try:
        yield server
    finally:
        server.stop()


def test_the_python_language_server_is_on_by_default(lsp_lab: LabServer) -> None:
    settings = lsp_lab.get_json("lab/api/settings/@jupyterlab/lsp-extension:plugin")
    # An override of the default (the schema the lab receives): users can still turn it off.
    assert settings["schema"]["properties"]["activate"]["default"] == "on"
    assert "activate" not in settings["settings"]
    status = lsp_lab.get_json("lsp/status")
    assert "pylsp" in status["sessions"], sorted(status["sessions"])


def test_a_notebook_shows_the_language_servers_diagnostics(
    lsp_lab: LabServer, browser_context: Any, artifacts_dir: Path, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    write_notebook(
        lsp_lab.root_dir,
        "lsp.ipynb",
        [("c1", "import os\n"), ("c2", "total = undefined_name + 1\n")],
    )
    lab = LabPage.open(browser_context, lsp_lab.lab_url(workspace="lsp"))
    try:
        lab.open_notebook("lsp.ipynb", kernel=False)
        # pyflakes through pylsp: an undefined name is underlined in the cell that has it.
        cell = lab.page.locator(".jp-NotebookPanel:visible .jp-Cell").nth(1)
        flagged = cell.locator(".cm-lintRange-error, .cm-lintRange-warning")
        expect(flagged.first).to_be_visible(timeout=DIAGNOSTIC_TIMEOUT_MS)
        screenshot(lab.page.locator(".jp-NotebookPanel:visible"), "lsp-diagnostics")
    finally:
        lab.close(artifacts_dir, "language-server")
