"""The guided start as a new user sees it after `make lab`: the lab opens on the example
notebook, on the sandboxed kernel, which runs it; with no model key the chat says how to
configure one. Screenshot: docs/screenshots/getting-started.png."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import LOAD_TIMEOUT_MS, LabPage, widen_sidebar
from conftest import LabServer, _finish, make_lab
from optional import require

# One lab and one page for the module, in this order (xdist would otherwise spread the
# tests over workers, each with a fresh page that has not opened the notebook yet).
pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("guide-lab")]

EXAMPLE = Path(__file__).parents[2] / "examples" / "getting-started"
GUIDE = "getting-started/getting-started.ipynb"
RUN_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def guide_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """A lab started as `make lab` starts it (same default URL), no model key, with the
    example copied into its root as `make lab` copies it."""
    before = os.environ.get("AIIDE_E2E_LAB_ARGS")
    os.environ["AIIDE_E2E_LAB_ARGS"] = f"{before or ''} --LabApp.default_url=/lab/tree/{GUIDE}"
    try:
        server = make_lab(tmp_path_factory, name="guide-lab")
    finally:
        if before is None:
            os.environ.pop("AIIDE_E2E_LAB_ARGS")
        else:
            os.environ["AIIDE_E2E_LAB_ARGS"] = before
    shutil.copytree(EXAMPLE, server.root_dir / "getting-started")
    try:
        yield server
    finally:
        _finish(server, "guide-lab.log")


@pytest.fixture(scope="module")
def guide_page(
    guide_lab: LabServer, browser_context: Any, artifacts_dir: Path
) -> Iterator[LabPage]:
    # The login link `make lab` prints: the server's default URL, with the token.
    page = LabPage.open(browser_context, f"{guide_lab.url}lab/tree/{GUIDE}?token={guide_lab.token}")
    try:
        yield page
    finally:
        page.close(artifacts_dir, "getting_started")


def _wait_for_the_guide(page: Any) -> None:
    """The example notebook is the current widget and its kernel is idle."""
    panel = page.locator(".jp-NotebookPanel:visible")
    panel.locator(".jp-Cell").first.wait_for(timeout=LOAD_TIMEOUT_MS)
    page.wait_for_function(
        """() => {
          const w = window.jupyterapp?.shell.currentWidget;
          return w?.context?.path?.endsWith('getting-started.ipynb')
            && w.sessionContext?.session?.kernel?.status === 'idle';
        }""",
        timeout=LOAD_TIMEOUT_MS,
    )


def test_the_lab_opens_on_the_example_with_the_sandboxed_kernel(guide_page: LabPage) -> None:
    from playwright.sync_api import expect

    page = guide_page.page
    tab = page.locator(".lm-TabBar-tab.lm-mod-current", has_text="getting-started.ipynb")
    expect(tab).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    _wait_for_the_guide(page)
    name = page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.kernelDisplayName"
    )
    assert name == "Python 3 (sandboxed)"


def test_run_all_shows_the_sandbox_and_stops_only_at_the_deliberate_error(
    guide_page: LabPage,
) -> None:
    from playwright.sync_api import expect

    page = guide_page.page
    _wait_for_the_guide(page)
    guide_page.run_command("notebook:run-all-cells")
    page.wait_for_function(
        """() => {
          const w = window.jupyterapp.shell.currentWidget;
          const cells = w.content.widgets.filter(c => c.model.type === 'code');
          return w.sessionContext.session?.kernel?.status === 'idle'
            && cells.every(c => c.model.executionCount !== null);
        }""",
        timeout=RUN_TIMEOUT_MS,
    )
    errors = page.evaluate(
        """() => window.jupyterapp.shell.currentWidget.content.model.toJSON().cells
          .flatMap(c => (c.outputs || []).filter(o => o.output_type === 'error'))
          .map(o => o.ename)"""
    )
    assert errors == ["KeyError"]  # the deliberate one, and only it
    panel = page.locator(".jp-NotebookPanel:visible")
    probes = panel.locator(".jp-OutputArea-output", has_text="connect to pypi.org")
    expect(probes).to_contain_text(re.compile(r"blocked\s+connect to pypi\.org"))
    expect(probes).not_to_contain_text(re.compile(r"ALLOWED\s+list"))


def test_the_chat_says_how_to_add_a_model_key(guide_page: LabPage, screenshot: Any) -> None:
    from playwright.sync_api import expect

    page = guide_page.page
    guide_page.open_chat()
    widen_sidebar(page, 400)
    card = guide_page.chat.locator(".aiide-Setup")
    expect(card).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    expect(card).to_contain_text("ANTHROPIC_API_KEY")
    # The sandbox probes in view, next to the chat's setup card.
    panel = page.locator(".jp-NotebookPanel:visible")
    panel.locator(".jp-Cell").nth(2).locator(".jp-OutputArea").scroll_into_view_if_needed()
    screenshot(page, "getting-started")
    guide_page.check(frames=False)


def test_learn_installs_the_model_on_first_use_then_finds_the_notes(
    guide_lab: LabServer, guide_page: LabPage
) -> None:
    """Step 5 of the tour on a lab whose models dir is empty (a fresh ``pip install``):
    `/learn` waits for the background install, then the notes are searchable."""
    from playwright.sync_api import expect

    from aiide_server_ext.knowledge import model_install as mi

    cached = (mi.cache_root() / f"{mi.MODEL_NAME}-{mi.inputs_key()}" / mi.STAMP).exists()
    require("embedding-model", cached, "no cached model build (a cold one takes minutes)")
    status = guide_lab.get_json("aiide/api/knowledge/index")
    assert status["model_install"]["state"] == "idle", status  # nothing before a use

    guide_page.open_chat()
    guide_page.ask("/learn getting-started")
    # What it came to is said in the conversation; the progress row goes then.
    report = guide_page.chat.locator(".aiide-Report")
    expect(report).to_contain_text("Learned getting-started", timeout=RUN_TIMEOUT_MS)
    expect(report).not_to_have_class(re.compile("aiide-mod-failed"))
    expect(guide_page.chat.locator(".aiide-Learning-job")).to_have_count(0)
    status = guide_lab.get_json("aiide/api/knowledge/index")
    assert status["model_install"]["state"] == "ready" and status["model_problem"] is None

    found = guide_lab.get_json("aiide/api/knowledge/search?q=refund%20for%20a%20returned%20device")
    assert found["results"][0]["path"] == "getting-started/notes/returns-policy.md", found
