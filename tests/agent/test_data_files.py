"""Mentions of what a data scientist mentions most: a data file reaches the model as a
summary (shape, typed columns, first rows), never as its rows; a folder as its names
(issue 19, finding 7)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aiide_server_ext.agent.context import ContextBuilder
from aiide_server_ext.agent.data_files import column_types, summarise
from aiide_server_ext.agent.errors import AgentError
from aiide_server_ext.agent.protocol import check_context

ROWS = 5000


def scores_csv(path: Path) -> None:
    lines = ["student,score,passed,date,note"]
    lines += [
        f"s{i},{i % 100}{'.5' if i % 7 == 0 else ''},{'yes' if i % 3 else 'no'},"
        f"2026-11-{1 + i % 28:02d},{'' if i % 10 else 'late'}"
        for i in range(ROWS)
    ]
    path.write_text("\n".join(lines) + "\n")


async def test_a_mentioned_csv_is_summarised_not_sent_whole(tmp_path: Path) -> None:
    scores_csv(tmp_path / "scores.csv")
    text = await ContextBuilder()._mention(
        {"kind": "file", "path": "scores.csv"},
        str(tmp_path),
        None,  # type: ignore[arg-type]
    )
    assert text is not None
    assert f"{ROWS} rows x 5 columns" in text
    assert (
        "columns: student (text), score (float), passed (bool), date (date), "
        f"note (text, {ROWS - ROWS // 10} missing)"
    ) in text
    assert "s4,4,yes,2026-11-05," in text  # the first rows, header first
    assert "s6," not in text  # and no more
    assert "pandas.read_csv('scores.csv')" in text
    assert len(text) < 1500


def test_a_large_file_is_read_in_part_and_says_so(tmp_path: Path) -> None:
    data = b"a;b\n" + b"".join(b"%d;x\n" % i for i in range(400_000))
    text = summarise("big.csv", data[: 1 << 20], len(data))
    assert "at least " in text and "(the first MB read)" in text
    assert "columns: a (int), b (text)" in text
    assert "sep=';'" in text


def test_tabs_and_odd_rows() -> None:
    text = summarise("t.tsv", b"x\ty\n1\t\n2\t3.5\n", 12)
    assert "2 rows x 2 columns" in text
    assert "y (float, 1 missing)" in text
    assert "sep='\\t'" in text
    assert summarise("e.csv", b"", 0).endswith("(empty)\n</data_file>")
    assert column_types(["a", "b"], [["1"], ["2", "z"]]) == ["a (int)", "b (text, 1 missing)"]


async def test_a_mentioned_folder_is_its_names_and_never_a_way_out(tmp_path: Path) -> None:
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "data" / "scores.csv").write_text("a\n1\n")
    (tmp_path / "data" / ".token").write_text("secret")
    os.symlink("/etc", tmp_path / "etc")
    builder = ContextBuilder()
    text = await builder._mention({"kind": "folder", "path": "data"}, str(tmp_path), None)  # type: ignore[arg-type]
    assert text == '<folder path="data">\nraw/\nscores.csv\n</folder>'
    for outside in ("etc", "../", "data/.token"):
        assert (
            await builder._mention({"kind": "folder", "path": outside}, str(tmp_path), None) is None
        )  # type: ignore[arg-type]


def test_the_protocol_takes_folder_mentions() -> None:
    check_context({"mentions": [{"kind": "folder", "path": "data"}]})
    with pytest.raises(AgentError, match=r"file\|folder\|cell"):
        check_context({"mentions": [{"kind": "url", "path": "x"}]})
