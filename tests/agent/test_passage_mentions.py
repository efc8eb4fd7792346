"""A knowledge hit picked after `@` (one function of a file) reaches the model as those
lines, once: not the whole file, and not again among the index's passages (issue 19,
finding 7)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiide_server_ext.agent.context import ContextBuilder, mentioned


def billing_module(path: Path) -> None:
    filler = [f"# filler line {i}: {'x' * 60}" for i in range(400)]  # past max_file_chars
    body = ["def total(rows):", "    return sum(r.amount for r in rows)", ""]
    path.write_text("\n".join(filler + body + ["def other():", "    pass", ""]))


async def test_a_passage_mention_sends_its_lines_even_deep_in_a_long_file(tmp_path: Path) -> None:
    billing_module(tmp_path / "billing.py")
    builder = ContextBuilder()
    text = await builder._mention(
        {"kind": "file", "path": "billing.py", "lines": [401, 402]},
        str(tmp_path),
        None,  # type: ignore[arg-type]
    )
    assert text == (
        '<file path="billing.py" lines="401-402">\n'
        "def total(rows):\n    return sum(r.amount for r in rows)\n</file>"
    )


async def test_a_range_past_the_end_sends_what_is_there(tmp_path: Path) -> None:
    (tmp_path / "short.py").write_text("a = 1\nb = 2\n")
    text = await ContextBuilder()._mention(
        {"kind": "file", "path": "short.py", "lines": [2, 90]},
        str(tmp_path),
        None,  # type: ignore[arg-type]
    )
    assert text == '<file path="short.py" lines="2-90">\nb = 2\n\n</file>'


class Index:
    """The knowledge part's one method the context builder calls, answering fixed hits."""

    def __init__(self, hits: list[dict[str, Any]]) -> None:
        self.hits = hits

    async def search(self, caller: Any, query: str, k: int) -> list[dict[str, Any]]:
        return self.hits[:k]


HITS = [
    {"path": "billing.py", "line_start": 401, "line_end": 402, "text": "def total(rows): ..."},
    {"path": "billing.py", "line_start": 404, "line_end": 405, "text": "def other(): ..."},
    {"path": "a.ipynb", "cell_id": "c1", "cell_index": 0, "text": "df = load()"},
    {"path": "a.ipynb", "cell_id": "c2", "cell_index": 1, "text": "df.plot()"},
]


async def test_the_index_does_not_send_again_what_a_mention_sends() -> None:
    builder = ContextBuilder()
    mentions = [
        {"kind": "file", "path": "billing.py", "lines": [401, 402]},
        {"kind": "cell", "path": "a.ipynb", "cell_id": "c1"},
    ]
    text = await builder.knowledge_text(Index(HITS), None, "total", 10_000, None, mentions)
    assert "def total" not in text and "df = load()" not in text
    assert "def other" in text and "df.plot()" in text
    # Without mentions every passage goes.
    everything = await builder.knowledge_text(Index(HITS), None, "total", 10_000)
    assert "def total" in everything and "df = load()" in everything


def test_what_counts_as_already_mentioned() -> None:
    hit = {"path": "billing.py", "line_start": 401, "line_end": 402}
    assert mentioned({"kind": "file", "path": "billing.py"}, hit)  # the whole file goes
    assert mentioned({"kind": "file", "path": "billing.py", "lines": [400, 410]}, hit)
    assert not mentioned({"kind": "file", "path": "billing.py", "lines": [1, 401]}, hit)
    assert not mentioned({"kind": "file", "path": "other.py"}, hit)
    assert not mentioned({"kind": "folder", "path": "billing.py"}, hit)
    cell_hit = {"path": "a.ipynb", "cell_id": "c1"}
    assert mentioned({"kind": "cell", "path": "a.ipynb", "cell_id": "c1"}, cell_hit)
    assert not mentioned({"kind": "cell", "path": "a.ipynb", "cell_id": "c2"}, cell_hit)
    assert not mentioned({"kind": "file", "path": "a.ipynb", "lines": [1, 9]}, cell_hit)
