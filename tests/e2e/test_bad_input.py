"""Bad input in a real browser: a used-up quota, a refused scope, a frame of unknown type,
a server speaking another protocol version. Each gets a clear message where the user
looks, never a blank panel or an uncaught exception."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import LabPage, widen_sidebar, write_notebook
from conftest import LabServer, make_lab, model_env

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("aiide-agent-browser")]

#: Every scope but inline completion; quotas apply to the owner too.
ALL_BUT_COMPLETE = [
    "chat",
    "agent:run",
    "agent:execute",
    "knowledge",
    "kernels",
    "contents:read",
    "contents:write",
    "usage:read",
    "tokens",
    "admin",
    "course",
]
CHAT_WS = re.compile(r".*/aiide/api/chat/ws.*")


@pytest.fixture(scope="module")
def strict_lab(tmp_path_factory: pytest.TempPathFactory, fake_model: Any) -> Iterator[LabServer]:
    config = {
        "Gateway": {
            "limit_owner": True,
            "default_quota": {"daily_tokens": 1},
            "owner_scopes": ALL_BUT_COMPLETE,
        }
    }
    server = make_lab(tmp_path_factory, env=model_env(fake_model), config=config, name="strict-lab")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(strict_lab: LabServer, browser_context: Any, artifacts_dir: Path) -> Iterator[LabPage]:
    lab = LabPage.open(browser_context, strict_lab.lab_url())
    try:
        yield lab
    finally:
        lab.close(artifacts_dir, "bad-input")


def test_used_up_quota_is_explained_in_the_chat_and_the_status_bar(
    page: LabPage, fake_model: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    page.open_chat()
    widen_sidebar(page.page)
    fake_model.reset()
    fake_model.script({"text": "This answer uses up the daily quota."})
    page.ask("First question")
    page.finished()
    page.ask("Second question")
    failed = page.chat.locator(".aiide-Question-failed")
    expect(failed).to_contain_text("used up your assistant quota")
    expect(failed.get_by_role("button", name="Edit and resend")).to_be_visible()
    expect(page.page.locator("#aiide-assistant-status")).to_contain_text(
        "quota used up", timeout=15_000
    )
    screenshot(page.page, "chat-quota-used-up")
    # The status item opens the usage panel: quota table and per-day charts.
    page.page.locator("#aiide-assistant-status").click()
    usage = page.page.locator(".aiide-Usage")
    expect(usage.locator(".aiide-Usage-quotas")).to_contain_text("daily tokens")
    # What it cost, split by feature and by model (the built-in models' list prices).
    by_feature = usage.locator(".aiide-Usage-breakdown").first
    expect(by_feature).to_contain_text("By feature")
    expect(by_feature.locator("tr", has_text="Chat")).to_contain_text(re.compile(r"\$0\.0\d*[1-9]"))
    expect(usage.locator(".aiide-Usage-breakdown").nth(1)).to_contain_text("claude")
    expect(usage.locator("figure.aiide-Chart")).to_have_count(3)
    expect(usage.locator(".aiide-Chart-xLabel").first).to_have_text("day (UTC)")
    expect(usage.locator("svg[role=img]").first).to_have_attribute(
        "aria-label", re.compile("Tokens")
    )
    screenshot(page.page, "usage-panel")
    page.check()


def test_refused_completion_pauses_with_one_clear_notice(
    page: LabPage, strict_lab: LabServer, fake_model: Any
) -> None:
    from playwright.sync_api import expect

    fake_model.reset()
    path = write_notebook(strict_lab.root_dir, "typing.ipynb", [("c1", "")])
    notebook = page.open_notebook(path, kernel=False)
    notebook.locator(".jp-Cell").first.locator(".cm-content").click()
    page.page.keyboard.type("import numpy as np", delay=30)
    toast = page.page.locator(".jp-Notification-Toast-warning", has_text="Inline completion paused")
    expect(toast).to_have_count(1, timeout=15_000)
    expect(toast).to_contain_text("insufficient_scope")
    page.page.keyboard.type("\nx = np.", delay=30)
    page.page.wait_for_timeout(1000)
    expect(toast).to_have_count(1)
    expect(notebook.locator(".jp-GhostText")).to_have_count(0)
    page.check()


@pytest.fixture
def relayed(strict_lab: LabServer, browser_context: Any, artifacts_dir: Path) -> Iterator[Any]:
    """``relayed(rewrite)``: the lab in a new page whose chat socket runs through the
    test, each server frame passing ``rewrite`` (frame -> frames to deliver) first."""
    opened: list[LabPage] = []

    def open_page(rewrite: Any) -> LabPage:
        def handler(ws: Any) -> None:
            server = ws.connect_to_server()
            server.on_message(lambda message: [ws.send(m) for m in rewrite(json.loads(message))])
            ws.on_message(lambda message: server.send(message))

        lab = LabPage.open(
            browser_context,
            strict_lab.lab_url(),
            lambda p: p.route_web_socket(CHAT_WS, handler),
        )
        opened.append(lab)
        lab.open_chat()
        return lab

    yield open_page
    for lab in opened:
        lab.check(frames=False)  # the test's own frames are off-protocol on purpose
        lab.close(artifacts_dir, "bad-input-relayed")


def test_a_frame_of_unknown_type_is_reported_inline_and_the_chat_goes_on(relayed: Any) -> None:
    from playwright.sync_api import expect

    mystery = {"type": "mystery_event", "run_id": None, "seq": None, "data": 1}
    lab = relayed(
        lambda f: [json.dumps(f), json.dumps(mystery)] if f["type"] == "hello" else [json.dumps(f)]
    )
    error = lab.chat.locator(".aiide-Error[data-code=protocol]")
    expect(error).to_contain_text("does not understand")
    expect(error).to_contain_text("mystery_event")
    expect(lab.chat.locator(".aiide-Connection")).to_have_attribute("data-state", "open")


def test_a_server_of_another_protocol_version_is_named_and_not_retried(
    relayed: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    lab = relayed(lambda f: [json.dumps({**f, "protocol": 2} if f["type"] == "hello" else f)])
    badge = lab.chat.locator(".aiide-Connection")
    expect(badge).to_have_attribute("data-state", "incompatible")
    banner = lab.chat.locator(".aiide-Banner-message[data-kind=connection]")
    expect(banner).to_contain_text("speaks chat protocol 2")
    expect(banner.get_by_role("button", name="Retry now")).to_have_count(0)
    screenshot(lab.chat, "chat-incompatible-server")
