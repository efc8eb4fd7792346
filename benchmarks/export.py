"""Exporting a 2,000-message conversation, against the obvious way in the same run.

    .venv/bin/python benchmarks/export.py [--messages 2000] [--rounds 5]

aiide's export (``agent/export.py``: cells as plain dicts, one validation by nbformat's
fastjsonschema validator) against the same notebook built with nbformat's ``new_*_cell``
helpers and written with ``nbformat.writes`` (jsonschema validation), the way one would
write it first. The Markdown export is shown beside them. Medians of ``--rounds``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from aiide_server_ext.agent.export import render, split_blocks

ANSWER = (
    "Load it with pandas:\n\n```python\nimport pandas as pd\ndf = pd.read_csv('x.csv')\n```"
    "\n\nThen `df.head()`."
)


def conversation(messages: int) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for i in range(messages // 2):
        turns.append({"role": "user", "text": f"question {i}: how do I plot column {i}?"})
        turns.append({"role": "assistant", "text": f"Like this:\n{ANSWER}\n{i}"})
    return turns


def obvious_notebook(title: str, turns: list[dict[str, Any]]) -> str:
    cells = [new_markdown_cell(f"# {title}")]  # type: ignore[no-untyped-call]
    for t in turns:
        if t["role"] == "user":
            cells.append(new_markdown_cell("**Question**\n\n> " + t["text"]))  # type: ignore[no-untyped-call]
            continue
        for kind, text in split_blocks(t["text"]):
            make = new_code_cell if kind == "code" else new_markdown_cell
            cells.append(make(text))
    nb = new_notebook(cells=cells)  # type: ignore[no-untyped-call]
    return str(nbformat.writes(nb))  # type: ignore[no-untyped-call]


def median_ms(work: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    turns = conversation(args.messages)
    render("ipynb", "warm-up", turns[:2], "c")  # the validator compiles once per process
    title = "A long day"
    ours = median_ms(lambda: render("ipynb", title, turns, "c"), args.rounds)
    obvious = median_ms(lambda: obvious_notebook(title, turns), args.rounds)
    markdown = median_ms(lambda: render("markdown", title, turns, "c"), args.rounds)
    print(f"load average {os.getloadavg()[0]:.2f}; {args.messages} messages")
    print(f"  notebook, aiide (one fastjsonschema validation): {ours:8.1f} ms")
    print(f"  notebook, nbformat helpers + writes (baseline):  {obvious:8.1f} ms")
    print(f"  ratio baseline/aiide: {obvious / ours:.1f}x")
    print(f"  Markdown, aiide:                                 {markdown:8.1f} ms")


if __name__ == "__main__":
    main()
