"""What the model is told in each attempt: the error (traceback), the failing cell, the
cells it depends on (found by names, not position), the live state of the names involved,
what the fix must keep working, and what earlier attempts did."""

from __future__ import annotations

import re
from typing import Any

from ..introspect import render
from ..patches import index_of, source_of
from .checks import checks_of
from .deps import Graph
from .result import Failure

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: Characters of traceback and of each cell shown (a flood of frames says little more).
MAX_TRACEBACK = 4000
MAX_CELL = 3000

WHY = {
    "error": "fails",
    "timeout": "did not finish in time (the kernel was interrupted)",
    "broke_downstream": "ran before your last change and fails now: your change broke it",
    "check_failed": "is a check of the notebook and fails",
}


def _cell(nb: dict[str, Any], cell_id: str) -> str:
    try:
        src = source_of(nb["cells"][index_of(nb, cell_id)])
    except Exception:
        return ""
    return src if len(src) <= MAX_CELL else src[:MAX_CELL] + "\n# …(cut)"


def traceback_text(failure: Failure) -> str:
    text = ANSI.sub("", failure.traceback)
    return text if len(text) <= MAX_TRACEBACK else "…" + text[-MAX_TRACEBACK:]


def diagnosis(
    nb: dict[str, Any],
    path: str,
    failure: Failure,
    state: list[tuple[str, dict[str, Any]]] | None,
    *,
    attempt: int,
    max_attempts: int,
    earlier_note: str = "",
    pytest_file: str | None = None,
) -> str:
    graph = Graph.of(nb)
    lines = [
        f"Fix loop, attempt {attempt} of {max_attempts}, notebook {path}.",
    ]
    if earlier_note:
        lines.append(earlier_note)
    if failure.cell_id in graph.names:
        lines += [
            f"Cell {failure.cell_id} {WHY.get(failure.kind, 'fails')}: "
            f"{failure.ename}: {failure.evalue}",
            f"[cell {failure.cell_id}]\n{_cell(nb, failure.cell_id)}",
        ]
        tb = traceback_text(failure)
        if tb:
            lines.append(f"[traceback]\n{tb}")
        ups = graph.upstream(failure.cell_id)
        for cid in ups:
            lines.append(f"[cell {cid}, defines what it uses]\n{_cell(nb, cid)}")
        names = graph.names[failure.cell_id].uses
        for cid in ups:
            names = names | graph.names[cid].defines
        if state:
            known = [(n, d) for n, d in state if n in names]
            if known:
                lines.append("[live state of those names in the kernel]\n" + render(known))
        down = graph.downstream({failure.cell_id})
        if down:
            lines.append(
                "These later cells use what it defines and must still run: " + ", ".join(down)
            )
    else:  # the pytest file next to the notebook
        lines += [
            f"The tests in {pytest_file} fail: {failure.ename}: {failure.evalue}",
            f"[output]\n{traceback_text(failure)}",
        ]
    checks = list(checks_of(nb))
    if checks:
        lines.append("Checks that must pass: cells " + ", ".join(checks))
    lines.append(
        "Change the notebook's cells with replace_cell (or insert_cell) so that this cell "
        "and every later cell run without error. Do not run cells: the fix loop re-runs "
        "them and verifies. Do not change the checks to make them pass. Say in one line "
        "what you changed."
    )
    return "\n\n".join(lines)
