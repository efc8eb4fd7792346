"""Kill the server in the middle of a streamed answer, start it again, and watch the
chat reconnect and resume: nothing shown twice, the interruption said plainly, and the
conversation goes on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import LabPage, widen_sidebar, words
from conftest import LabServer, make_lab, model_env

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("aiide-agent-browser")]

SCRIPT = " ".join(f"w{i}" for i in range(1, 61))


@pytest.fixture(scope="module")
def restart_lab(tmp_path_factory: pytest.TempPathFactory, fake_model: Any) -> Iterator[LabServer]:
    server = make_lab(tmp_path_factory, env=model_env(fake_model), name="restart-lab")
    try:
        yield server
    finally:
        server.stop()


def test_server_restart_mid_stream_resumes_the_chat(
    restart_lab: LabServer,
    fake_model: Any,
    browser_context: Any,
    artifacts_dir: Path,
    screenshot: Any,
) -> None:
    from playwright.sync_api import expect

    lab = LabPage.open(browser_context, restart_lab.lab_url())
    try:
        lab.open_chat()
        widen_sidebar(lab.page)
        fake_model.reset()
        fake_model.script({"text": SCRIPT, "delay": 0.1})
        lab.ask("Count slowly")
        answer = lab.answers().last
        expect(answer).to_contain_text("w8", timeout=20_000)

        restart_lab.kill()
        badge = lab.chat.locator(".aiide-Connection")
        expect(badge).to_have_attribute("data-state", "reconnecting", timeout=20_000)
        banner = lab.chat.locator(".aiide-Banner-message[data-kind=connection]")
        expect(banner).to_contain_text("Lost the connection")
        expect(lab.chat.locator(".aiide-Composer .aiide-Button-accept")).to_be_disabled()
        screenshot(lab.chat, "chat-reconnecting")
        seen_before = words(answer.inner_text())

        restart_lab.start()
        expect(badge).to_have_attribute("data-state", "open", timeout=30_000)
        expect(banner).to_have_count(0)
        expect(lab.chat.locator(".aiide-Error[data-code=interrupted]")).to_have_count(
            1, timeout=15_000
        )
        expect(lab.chat.locator(".aiide-Finished[data-status=failed]")).to_have_count(1)
        shown = words(lab.answers().last.inner_text())
        assert shown == SCRIPT.split()[: len(shown)], "tokens lost, reordered or repeated"
        assert len(shown) >= len(seen_before)
        assert lab.page.locator(".aiide-Error", has_text="does not understand").count() == 0

        # The chat said what happened; JupyterLab may also have opened its own modal
        # dialog about the lost server, which holds the focus until dismissed.
        lab.dismiss_connection_error()
        fake_model.script({"text": "Picking up again."})
        lab.ask("Go on")
        lab.finished(2)
        expect(lab.answers().last).to_have_text("Picking up again.")
        screenshot(lab.chat, "chat-resumed")
        lab.check()
    finally:
        lab.close(artifacts_dir, "resume")
