"""The sandbox is the default path, in a real lab (issue 13, item 2): the launcher offers
the sandboxed kernel first and labels the plain one; in a notebook on the plain kernel the
agent's code is refused, and the chat's one click switches the notebook to the sandboxed
kernel, after which the agent's code runs there."""

from __future__ import annotations

import json
from typing import Any

import pytest
from browser_support import LabPage, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("aiide-agent-browser")]

KERNEL_NAME = "() => window.jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel?.name"


def execute(call_id: str, path: str, code: str) -> dict[str, Any]:
    args = {"path": path, "code": code}
    return {
        "text": "Running it.",
        "tools": [{"name": "execute_code", "id": call_id, "input": args}],
    }


def test_the_launcher_offers_the_sandboxed_kernel_first(chat: LabPage, screenshot: Any) -> None:
    from playwright.sync_api import expect

    chat.run_command("launcher:create")
    cards = chat.page.locator(".jp-Launcher-section").first.locator(".jp-LauncherCard")
    expect(cards.first).to_contain_text("Python 3 (sandboxed)", timeout=15_000)
    labels = [c.inner_text() for c in cards.all()]
    assert any("(not sandboxed)" in label for label in labels), labels
    screenshot(chat.page, "launcher-sandboxed-first")


def test_the_switch_moves_the_notebook_to_the_sandboxed_kernel(
    chat: LabPage, agent_lab: Any, fake_model: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    path = write_notebook(agent_lab.root_dir, "plain.ipynb", [("c1", "x = 6")])
    nb = json.loads((agent_lab.root_dir / path).read_text())
    nb["metadata"]["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    (agent_lab.root_dir / path).write_text(json.dumps(nb))
    chat.open_notebook(path)
    assert chat.page.evaluate(KERNEL_NAME) == "python3"
    fake_model.script(
        execute("toolu_e2eplain1", path, "print(6 * 7)"),
        {"text": "Please switch the kernel."},
        execute("toolu_e2eplain2", path, "print(6 * 7)"),
        {"text": "It printed 42."},
    )
    chat.ask("Compute 6 times 7 in the kernel")
    card = chat.chat.locator(".aiide-Call").first
    expect(card.locator(".aiide-Call-status")).to_have_text(
        "Failed (kernel_not_sandboxed)", timeout=30_000
    )
    chat.finished()
    switch = card.get_by_role("button", name="Switch this notebook to the sandboxed kernel")
    screenshot(chat.page, "switch-to-sandboxed-kernel")
    switch.click()
    expect(card.locator(".aiide-Call-switch")).to_contain_text("Switched", timeout=60_000)
    chat.page.wait_for_function(
        "() => { const s = window.jupyterapp.shell.currentWidget?.sessionContext;"
        " return s?.session?.kernel?.name === 'aiide-python'"
        " && s.kernelDisplayStatus === 'idle'; }",
        timeout=60_000,
    )

    chat.ask("Try again")
    approval = chat.awaiting_card()
    expect(approval.locator(".aiide-Call-risk")).to_have_text("run")
    expect(approval.locator(".aiide-Call-warning")).to_have_count(0)
    approval.get_by_role("button", name="Approve").click()
    chat.finished(2)
    expect(chat.answers().last).to_contain_text("It printed 42.")
    tool_results = json.dumps(fake_model.requests()[-1]["body"]["messages"])
    assert "42" in tool_results
