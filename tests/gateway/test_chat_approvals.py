"""The agent's own approvals over the chat socket: a client on an API key or token cannot
approve the calls of a run it started; another of the user's credentials can, with
``agent:approve``. (The browser's socket, on Jupyter's login, is tested in tests/agent.)"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from agent.chat import Chat
from agent.conftest import (  # noqa: F401  (the agent suite's fakes)
    aiide_kernelspec,
    fake_anthropic,
    fake_openai,
    server_config,
)
from fakes import FakeAnthropic, FakeOpenAI, Reply, ToolUse
from traitlets.config import Config

from .conftest import AUTHORIZER, IDP
from .helpers import SECRET, claims, forge

INSERT = ToolUse("insert_cell", {"path": "nb.ipynb", "after_id": "c1", "source": "y = 2"})


def write_notebook(root: Any) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.id = "c1"
    nb.cells.append(cell)
    nbformat.write(nb, str(root / "nb.ipynb"))


def read_notebook(root: Any) -> Any:
    import nbformat

    return nbformat.read(str(root / "nb.ipynb"), as_version=4)


GATEWAY = {
    "ServerApp": {
        "jpserver_extensions": {"aiide_server_ext": True},
        "identity_provider_class": IDP,
        "authorizer_class": AUTHORIZER,
    },
    "Gateway": {"signing_secret": SECRET, "owner": "owner"},
}


@pytest.fixture
def jp_server_config(
    jp_root_dir: Any,
    fake_anthropic: FakeAnthropic,  # noqa: F811
    fake_openai: FakeOpenAI,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Config:
    """The agent suite's server on the fakes, with the gateway's identity and authorizer."""
    return server_config(jp_root_dir, fake_anthropic, fake_openai, monkeypatch, GATEWAY)


async def _socket(jp_ws_fetch: Any, *scopes: str) -> Chat:
    token = forge(claims("carol", scopes=list(scopes), jti=uuid.uuid4().hex))
    ws = await jp_ws_fetch(
        "aiide", "api", "chat", "ws", headers={"Authorization": f"Bearer {token}"}
    )
    chat = Chat(ws)
    assert (await chat.recv())["type"] == "hello"
    return chat


async def test_a_token_cannot_approve_the_run_it_started(
    jp_ws_fetch: Any,
    jp_root_dir: Any,
    fake_anthropic: FakeAnthropic,  # noqa: F811
) -> None:
    write_notebook(jp_root_dir)
    fake_anthropic.push(Reply(tools=[INSERT]), Reply(text="done"))
    agent = await _socket(jp_ws_fetch, "chat", "agent:run")
    await agent.send(type="chat", text="add a cell", context={"notebook": "nb.ipynb"})
    ask = await agent.until("approval_required")

    await agent.decide(ask, id="self")
    assert (await agent.until("error", reply_to="self"))["code"] == "self_approval"
    other = await _socket(jp_ws_fetch, "chat", "agent:run")
    await other.decide(ask, id="noscope")
    assert (await other.until("error", reply_to="noscope"))["code"] == "approval_scope_required"
    assert [c.id for c in read_notebook(jp_root_dir).cells] == ["c1"]

    approver = await _socket(jp_ws_fetch, "chat", "agent:run", "agent:approve")
    await approver.decide(ask, id="ok")
    resolved = await agent.until("approval_resolved")
    assert (resolved["decision"], resolved["by"]) == ("approve", "carol")
    assert (await agent.until("run_finished"))["status"] == "completed"
    assert len(read_notebook(jp_root_dir).cells) == 2
