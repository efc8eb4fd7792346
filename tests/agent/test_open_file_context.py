"""A question asked while a `.py` file is open in the editor carries that file, around the
cursor, instead of the last notebook (issue 19, finding 7)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from aiide_server_ext.agent.context import ContextBuilder, around_line
from aiide_server_ext.agent.errors import AgentError
from aiide_server_ext.agent.protocol import check_context

#: No notebook is open: the bridge's course guard is all a file question touches.
NO_NOTEBOOKS = SimpleNamespace(guard=None)


async def test_the_open_file_goes_to_the_model_with_the_cursor_line(tmp_path: Path) -> None:
    (tmp_path / "etl.py").write_text(
        "import pandas as pd\n\ndef load():\n    return pd.read_csv('x')\n"
    )
    built = await ContextBuilder().build(
        {"file": "etl.py", "line": 3, "selection": "load"},
        str(tmp_path),
        NO_NOTEBOOKS,  # type: ignore[arg-type]
    )
    assert '<open_file path="etl.py" line="3" first_line="1">' in built.text
    assert "def load():" in built.text
    assert "<selection>\nload\n</selection>" in built.text
    assert [i["kind"] for i in built.items][-2:] == ["selection", "file"]


async def test_a_long_open_file_is_shown_around_the_cursor(tmp_path: Path) -> None:
    lines = [f"value_{i} = {i}" for i in range(5000)]
    (tmp_path / "big.py").write_text("\n".join(lines))
    built = await ContextBuilder().build(
        {"file": "big.py", "line": 4000}, str(tmp_path), NO_NOTEBOOKS
    )  # type: ignore[arg-type]
    assert "value_4000 = 4000" in built.text and "value_1 = 1\n" not in built.text


async def test_an_open_file_outside_the_root_is_not_read(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.py").write_text("KEY = 'x'")
    built = await ContextBuilder().build({"file": "../secret.py"}, str(root), NO_NOTEBOOKS)  # type: ignore[arg-type]
    assert "KEY" not in built.text


def test_around_line_keeps_whole_lines_within_the_limit() -> None:
    text = "\n".join(f"line {i:03d}" for i in range(1, 201))  # 8 characters + newline each
    shown, first = around_line(text, 100, 90)
    assert len(shown) <= 90
    assert "line 100" in shown and first <= 100
    assert all(row.startswith("line ") and len(row) == 8 for row in shown.split("\n"))
    assert around_line("short", 50, 90) == ("short", 1)


def test_the_protocol_takes_a_file_and_a_line() -> None:
    check_context({"file": "etl.py", "line": 3})
    for bad in ({"file": 3}, {"line": 0}, {"line": "3"}, {"line": True}):
        with pytest.raises(AgentError):
            check_context(bad)
