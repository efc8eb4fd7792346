"""An outside agent (an MCP client, the official ``mcp`` SDK) edits an open notebook
through aiide's MCP server, in a real ``jupyter lab`` and a real Chromium: its call waits
for a person, shows in the chat sidebar as the agent's own approval card (with the cell
diff, pushed over the chat socket), and the person's answer there decides it.

The agent authenticates with Jupyter's own token, as a single-user setup configures it.
The page holds that token too; the card's answer goes on the browser session alone, so
the server tells the person from the agent (else it would be ``self_approval``).
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from browser_support import LabPage, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("aiide-agent-browser")]

#: Seconds the agent's call may wait for the person (the server's default is 60).
CALL_TIMEOUT = 90


class OutsideAgent:
    """One ``tools/call`` of an MCP client in a thread of its own (playwright's sync API
    owns the test's thread); ``result()`` waits for the server's answer."""

    def __init__(self, lab: Any, name: str, arguments: dict[str, Any]) -> None:
        self._url = f"{lab.url}aiide/api/mcp"
        self._headers = {"Authorization": f"token {lab.token}"}
        self._call = (name, arguments)
        self._answer: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._answer = asyncio.run(self._session())
        except BaseException as e:  # reported in result()
            self._error = e

    async def _session(self) -> Any:
        from mcp import ClientSession
        from mcp.client.streamable_http import streamablehttp_client

        async with (
            streamablehttp_client(self._url, headers=self._headers, timeout=CALL_TIMEOUT) as (
                read,
                write,
                _,
            ),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await session.call_tool(*self._call)

    def result(self, timeout: float = 30) -> tuple[bool, str]:
        """(is_error, text) of the call's answer."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the outside agent got no answer"
        if self._error is not None:
            raise self._error
        return bool(self._answer.isError), str(self._answer.content[0].text)


def cell_sources(notebook: Any) -> list[str]:
    return [
        cell.locator(".jp-InputArea-editor").inner_text().strip()
        for cell in notebook.locator(".jp-Cell").all()
    ]


def test_the_person_approves_an_outside_agents_edit_on_its_card(
    chat: LabPage, agent_lab: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    path = write_notebook(agent_lab.root_dir, "outside.ipynb", [("c1", "x = 6")])
    notebook = chat.open_notebook(path, kernel=False)
    agent = OutsideAgent(
        agent_lab, "insert_cell", {"path": path, "after_id": "c1", "source": "print(x * 7)"}
    )

    card = chat.awaiting_card()  # pushed: the page asked for nothing
    expect(card.locator(".aiide-Call-what")).to_have_text(
        f"Insert a code cell into {path} after cell 1 “x = 6”"  # as the user sees the cell
    )
    expect(card.locator(".aiide-Diff-add")).to_have_text("+added: print(x * 7)")
    expect(chat.chat.locator(".aiide-Notice").last).to_contain_text("An outside agent")
    # Shown at once (nothing else was on screen): no toast on top of the card.
    expect(chat.page.locator(".jp-Notification-Toast")).to_have_count(0)
    expect(card.get_by_role("button", name="Edit")).to_have_count(0)
    screenshot(chat.page, "outside-agent-approval")
    card.get_by_role("button", name="Approve").click()

    expect(notebook.locator(".jp-Cell")).to_have_count(2, timeout=15_000)
    assert cell_sources(notebook) == ["x = 6", "print(x * 7)"]
    is_error, text = agent.result()
    assert not is_error, text
    assert "applied in the open notebook" in text
    done = chat.chat.locator(".aiide-Call").last
    expect(done.locator(".aiide-Call-status")).to_have_text("Done")
    expect(done.locator(".aiide-Call-request")).to_contain_text(f"Applied to {path}")
    # The page answered on its session: an approval POST without Jupyter's token.
    assert not any(f.get("type") == "approve" for f in chat.sent)


def test_a_card_answered_elsewhere_updates_and_a_rejection_reaches_the_agent(
    chat: LabPage, agent_lab: Any
) -> None:
    from playwright.sync_api import expect

    path = write_notebook(agent_lab.root_dir, "outside2.ipynb", [("c1", "y = 1")])
    notebook = chat.open_notebook(path, kernel=False)
    # Another credential of the same person, allowed to answer (agent:approve).
    phone = {"name": "phone", "scopes": ["agent:approve"]}
    key = agent_lab.request("aiide/api/keys", "POST", phone)

    insert = {"path": path, "after_id": "c1", "source": "y += 1"}
    agent = OutsideAgent(agent_lab, "insert_cell", insert)
    card = chat.awaiting_card()
    pending = agent_lab.get_json("aiide/api/mcp/approvals")["pending"]
    assert [p["tool"] for p in pending] == ["insert_cell"]
    _answer_with_key(agent_lab, key["key"], pending[0]["id"], {"decision": "approve"})
    status = chat.chat.locator(".aiide-Call").last.locator(".aiide-Call-status")
    expect(status).to_have_text("Done", timeout=15_000)
    expect(card.get_by_role("button", name="Approve")).to_have_count(0)
    assert not agent.result()[0]
    expect(notebook.locator(".jp-Cell")).to_have_count(2, timeout=15_000)

    agent = OutsideAgent(agent_lab, "insert_cell", {"path": path, "source": "import os"})
    card = chat.awaiting_card()
    card.get_by_role("button", name="Reject").click()
    card.get_by_label("Reason for rejecting").fill("no os here")
    card.get_by_label("Reason for rejecting").press("Enter")
    is_error, text = agent.result()
    assert is_error and "rejected insert_cell: no os here" in text, text
    status = chat.chat.locator(".aiide-Call").last.locator(".aiide-Call-status")
    expect(status).to_have_text("You rejected this: no os here")
    assert cell_sources(notebook) == ["y = 1", "y += 1"]


def _answer_with_key(lab: Any, key: str, pending_id: str, body: dict[str, Any]) -> None:
    import urllib.request

    req = urllib.request.Request(
        f"{lab.url}aiide/api/mcp/approvals/{pending_id}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 204
