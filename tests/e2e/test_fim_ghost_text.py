"""Fill-in-the-middle ghost text: a lab whose completion model is a local OpenAI-compatible
server with FIM (the fake, in its own process). Typing in a cell shows the model's middle,
trimmed to the block; the model was sent prefix and suffix, not a chat prompt. The server
needs no key, as Ollama or llama.cpp on the same machine: the status bar counts it as a
model all the same."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from browser_support import LabPage, write_notebook
from conftest import FakeModel, LabServer, make_lab, require_agent, running_fake
from ghost_text import accept, type_to_the_middle

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("aiide-agent-browser")]

MIDDLE = "sum(xs) / len(xs)"


@pytest.fixture(scope="module")
def fim_model() -> Iterator[FakeModel]:
    require_agent()
    with running_fake("fake_openai") as fake:  # no key: any request is served
        yield fake


@pytest.fixture(scope="module")
def fim_lab(tmp_path_factory: pytest.TempPathFactory, fim_model: FakeModel) -> Iterator[LabServer]:
    config = {
        "Agent": {
            # The streaming test's model takes ~8 s on purpose (the default allows 5 s).
            "complete_timeout": 30.0,
            "providers": {
                "local": {
                    "kind": "openai",
                    "base_url": fim_model.url + "/v1",
                }
            },
            "models": [
                {
                    "name": "coder",
                    "provider": "local",
                    "model": "coder-e2e",
                    "capabilities": ["chat", "complete", "fim"],
                }
            ],
        },
    }
    server = make_lab(tmp_path_factory, config=config, name="fim-lab")
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def ghost_text(
    fim_lab: LabServer,
    fim_model: FakeModel,
    browser_context: Any,
    artifacts_dir: Path,
    name: str,
    reply: dict[str, Any],
) -> Iterator[tuple[LabPage, Any]]:
    """A page of its own (workspace ``name``) with ``name.ipynb`` open, typed to the middle
    while the model answers every request with ``reply``: the page and the ghost text. The
    page's console is checked when the block passes."""
    fim_model.reset()
    fim_model.script(*[reply for _ in range(20)])
    path = write_notebook(fim_lab.root_dir, f"{name}.ipynb", [("c1", "")])
    lab = LabPage.open(browser_context, fim_lab.lab_url(workspace=name))
    try:
        notebook = lab.open_notebook(path, kernel=False)
        yield lab, type_to_the_middle(lab, notebook)
        lab.check()
    finally:
        lab.close(artifacts_dir, name)


def test_fim_ghost_text_is_the_middle_trimmed_to_the_block(
    fim_lab: LabServer,
    fim_model: FakeModel,
    browser_context: Any,
    artifacts_dir: Path,
    screenshot: Any,
) -> None:
    from playwright.sync_api import expect

    # The model goes on past the block (a blank line, then the next def): not shown.
    answer = {"text": f"{MIDDLE}\n\n\ndef other():\n    pass\n"}
    with ghost_text(
        fim_lab, fim_model, browser_context, artifacts_dir, "fim-ghost-text", answer
    ) as (lab, ghost):
        expect(ghost).to_have_text(MIDDLE, timeout=15_000)
        screenshot(lab.page, "fim-ghost-text")
        source = accept(lab, MIDDLE)
        assert source.startswith("def mean(xs):\n") and "other" not in source
        sent = [r for r in fim_model.requests() if r["path"] == "/v1/completions"]
        # The request behind the ghost text (accepting it may ask again, after it).
        asked = [r for r in sent if r["body"]["prompt"].endswith("return ")]
        assert asked, f"no FIM request for the cursor after 'return ': {sent}"
        assert "messages" not in asked[-1]["body"] and "suffix" in asked[-1]["body"]
        # A local model without a key is a model: the status item does not say "no model".
        status = lab.page.locator("#aiide-status")
        expect(status).not_to_have_attribute("data-aiide-status", "loading", timeout=15_000)
        assert "no-model" not in (status.get_attribute("data-aiide-status") or "").split()
        assert "no model" not in status.inner_text()


def test_ghost_text_grows_while_the_model_is_still_writing(
    fim_lab: LabServer,
    fim_model: FakeModel,
    browser_context: Any,
    artifacts_dir: Path,
    screenshot: Any,
) -> None:
    from playwright.sync_api import expect

    # Two seconds between chunks: the first words must be on screen long before the last
    # (a loaded machine still has seconds to show them).
    slow = {"chunks": ["sum(xs) ", "/ len", "(xs)"], "delay": 2.0}
    with ghost_text(
        fim_lab, fim_model, browser_context, artifacts_dir, "fim-ghost-text-streaming", slow
    ) as (lab, ghost):
        expect(ghost).to_contain_text("sum(xs)", timeout=30_000)
        assert "len(xs)" not in ghost.inner_text(), "shown only once the model had finished"
        screenshot(lab.page, "fim-ghost-text-streaming")
        expect(ghost).to_have_text(MIDDLE, timeout=30_000)
