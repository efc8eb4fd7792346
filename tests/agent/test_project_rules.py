"""Project rules (`.aiide/rules.md` or `AGENTS.md`, nearest up from the notebook) go into
every prompt, within the budget; a rules file that is a link is not read."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeAnthropic, Reply

from aiide_server_ext.agent.rules import find_rules

from .chat import connect
from .test_agent_chat import write_notebook

pytestmark = pytest.mark.xdist_group("agent")


def rules_item(context: dict[str, Any]) -> dict[str, Any]:
    (item,) = [i for i in context["items"] if i["kind"] == "rules"]
    return item


def sent(fake: FakeAnthropic, index: int = -1) -> str:
    """What the model was sent; the rules follow the system prompt (a cached prefix)."""
    body = fake.requests[index].body
    return json.dumps([body.get("system"), body["messages"]])


async def ask(jp_ws_fetch: Any, fake: FakeAnthropic, notebook: str, *texts: str) -> list[Any]:
    fake.push(*(Reply(text="ok") for _ in texts))
    chat = await connect(jp_ws_fetch)
    for text in texts:
        await chat.send(type="chat", text=text, task="chat", context={"notebook": notebook})
        await chat.until("run_finished")
    return chat.of("context")


async def test_the_nearest_rules_file_goes_into_every_prompt(
    jp_ws_fetch: Any, jp_root_dir: Path, fake_anthropic: FakeAnthropic
) -> None:
    (jp_root_dir / "AGENTS.md").write_text("Root rule: answer in French.")
    project = jp_root_dir / "projects" / "sales"
    project.mkdir(parents=True)
    (project / ".aiide").mkdir()
    (project / ".aiide" / "rules.md").write_text("Use polars, never pandas.")
    write_notebook(project, "nb.ipynb")
    contexts = await ask(
        jp_ws_fetch, fake_anthropic, "projects/sales/nb.ipynb", "first question", "second"
    )
    for index in (0, 1):
        assert "Use polars, never pandas." in sent(fake_anthropic, index)
        assert "Root rule" not in sent(fake_anthropic, index)  # the nearest one only
    for context in contexts:
        assert rules_item(context)["ref"] == "projects/sales/.aiide/rules.md"


async def test_without_a_nearer_file_the_roots_rules_apply(
    jp_ws_fetch: Any, jp_root_dir: Path, fake_anthropic: FakeAnthropic
) -> None:
    (jp_root_dir / "AGENTS.md").write_text("Root rule: answer in French.")
    (jp_root_dir / "sub").mkdir()
    write_notebook(jp_root_dir / "sub", "nb.ipynb")
    await ask(jp_ws_fetch, fake_anthropic, "sub/nb.ipynb", "hello")
    assert "Root rule: answer in French." in sent(fake_anthropic)


async def test_a_5_mb_rules_file_is_cut_and_the_prompt_says_so(
    jp_ws_fetch: Any, jp_root_dir: Path, fake_anthropic: FakeAnthropic
) -> None:
    (jp_root_dir / "AGENTS.md").write_text("Start here. " + "x" * 5_000_000 + " TAIL-MARKER")
    write_notebook(jp_root_dir)
    (context,) = await ask(jp_ws_fetch, fake_anthropic, "nb.ipynb", "hello")
    prompt = sent(fake_anthropic)
    assert "Start here." in prompt and "TAIL-MARKER" not in prompt
    assert "truncated=" in prompt and "5,000,024 bytes" in prompt
    assert rules_item(context)["tokens"] <= 2100  # 8,000 characters and a tag
    assert context["tokens"] <= context["budget"]


async def test_a_rules_file_that_links_to_a_secret_is_not_read(
    jp_ws_fetch: Any, jp_root_dir: Path, fake_anthropic: FakeAnthropic
) -> None:
    (jp_root_dir / ".env").write_text("API_KEY=sk-secret-from-dotenv")
    os.symlink(".env", jp_root_dir / "AGENTS.md")
    write_notebook(jp_root_dir)
    (context,) = await ask(jp_ws_fetch, fake_anthropic, "nb.ipynb", "hello")
    assert "sk-secret-from-dotenv" not in sent(fake_anthropic)
    assert all(item["kind"] != "rules" for item in context["items"])


def test_rules_never_come_from_above_the_root(tmp_path: Path) -> None:
    (tmp_path / "AGENTS.md").write_text("outside the workspace")
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    assert find_rules(str(root), "a/nb.ipynb", (".aiide/rules.md", "AGENTS.md"), 100) is None
    (root / "AGENTS.md").write_text("inside")
    found = find_rules(str(root), "a/nb.ipynb", ("AGENTS.md",), 100)
    assert found is not None and found.path == "AGENTS.md" and found.text == "inside"
    assert find_rules(str(root), "a/nb.ipynb", (), 100) is None  # turned off
