"""What the editor underlines goes to the model: pyflakes over the notebook's code cells
in order (as the language server sees a notebook), mapped back to cells and lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeAnthropic, Reply

from aiide_server_ext.agent.diagnostics import check_cells

from .chat import connect
from .test_agent_chat import write_notebook

pytestmark = pytest.mark.xdist_group("agent")


def code(cell_id: str, source: str) -> dict[str, Any]:
    return {"id": cell_id, "cell_type": "code", "source": source}


def test_names_from_earlier_cells_are_defined_and_lines_map_to_cells() -> None:
    cells = [
        code("c1", "import pandas as pd\ndf = 1\n"),
        {"id": "m1", "cell_type": "markdown", "source": "undefined_in_markdown"},
        code("c2", "%matplotlib inline\n!ls\nprint(df)\ntotal = df2 + 1\n"),
    ]
    found = check_cells(cells)
    messages = [(d.cell_id, d.line, d.message) for d in found]
    assert ("c2", 4, "undefined name 'df2'") in messages
    assert ("c1", 1, "'pandas as pd' imported but unused") in messages
    assert all("df'" not in m for _, _, m in messages)  # defined in c1
    assert all(cell != "m1" for cell, _, _ in messages)  # Markdown is not code


def test_a_syntax_error_is_reported_where_it_is() -> None:
    found = check_cells([code("c1", "x = 1\n"), code("c2", "y = (\n")])
    assert [(d.cell_id, d.line) for d in found] == [("c2", 1)]
    assert found[0].message.startswith("syntax error")


async def test_the_model_sees_the_diagnostics_of_the_cells_in_context(
    jp_ws_fetch: Any, jp_root_dir: Path, fake_anthropic: FakeAnthropic
) -> None:
    write_notebook(jp_root_dir, cells=[("c1", "x = 6 * 7"), ("c2", "y = x + undefined_name")])
    fake_anthropic.push(Reply(text="ok"))
    chat = await connect(jp_ws_fetch)
    context = {"notebook": "nb.ipynb", "cell_id": "c2"}
    await chat.send(type="chat", text="why does this fail?", task="chat", context=context)
    await chat.until("run_finished")
    sent = json.dumps(fake_anthropic.requests[-1].body["messages"])
    assert "[c2] line 1: undefined name 'undefined_name'" in sent
    (event,) = chat.of("context")
    assert any(item["kind"] == "diagnostics" for item in event["items"])
