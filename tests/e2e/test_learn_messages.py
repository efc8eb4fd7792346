"""`/learn` on a server without the embedding model (issue 19, finding 9), in a narrow
sidebar: Enter on the fully typed command sends it; the failure is a readable message
in the conversation (no server path), not a developer error squeezed beside Send, and
no status stays beside Send afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import LabPage
from conftest import LabServer, _finish, make_lab, model_env

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("aiide-agent-browser")]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("no-models-here")


@pytest.fixture(scope="module")
def modelless_lab(
    tmp_path_factory: pytest.TempPathFactory, fake_model: Any, models_dir: Path
) -> Iterator[LabServer]:
    """The agent (fake model), and knowledge with no embedding model and no auto-install."""
    config = {
        "Knowledge": {
            "models_dir": str(models_dir),
            "auto_install_model": False,
            "warm_up_delay": 0.0,
        }
    }
    server = make_lab(
        tmp_path_factory, env=model_env(fake_model), config=config, name="modelless-lab"
    )
    (server.root_dir / "notes.md").write_text("# Notes\n\nSome text.\n")
    try:
        yield server
    finally:
        _finish(server, "modelless-lab.log")


def test_learn_without_the_model_says_so_in_the_conversation(
    modelless_lab: LabServer,
    browser_context: Any,
    artifacts_dir: Path,
    models_dir: Path,
    screenshot: Any,
) -> None:
    from playwright.sync_api import expect

    page = LabPage.open(browser_context, modelless_lab.lab_url(workspace="learn-no-model"))
    try:
        page.open_chat()  # the sidebar as it comes: narrow
        chat = page.chat
        expect(chat.locator(".aiide-Connection")).to_have_attribute(
            "data-state", "open", timeout=60_000
        )
        box = chat.locator(".aiide-Composer-input")
        box.click()
        box.press_sequentially("/learn")
        expect(chat.locator(".aiide-Popup [role=option]")).to_have_count(1)
        box.press("Enter")  # the command is complete: sent, not completed to "/learn "
        expect(box).to_have_value("")
        report = chat.locator(".aiide-Report")
        expect(report).to_have_count(1, timeout=60_000)
        expect(report).to_have_class("aiide-Report aiide-mod-failed")
        expect(report).to_contain_text("Could not learn the workspace")
        expect(report).to_contain_text("embedding model")
        text = report.inner_text()
        for developer in (str(models_dir), "Traceback", "missing model", "failed:"):
            assert developer not in text, text
        # Nothing beside Send, which stays inside the sidebar; no status stays behind.
        expect(chat.locator(".aiide-Composer-hint")).to_be_hidden()
        send = chat.get_by_role("button", name="Send")
        expect(send).to_be_visible()
        panel, button = chat.bounding_box(), send.bounding_box()
        assert panel and button
        assert button["x"] + button["width"] <= panel["x"] + panel["width"] + 1
        expect(chat.locator(".aiide-Learning-job")).to_have_count(0)
        screenshot(chat, "learn-without-model")
        page.check()
    finally:
        page.close(artifacts_dir, "test_learn_messages")
