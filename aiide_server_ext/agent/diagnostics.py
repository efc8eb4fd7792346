"""Static diagnostics of a notebook's code cells for the prompt: what the editor underlines
(pyflakes, the checker behind python-lsp-server's squiggles), so the model sees "undefined
name 'df2' in cell c4" without running anything.

The cells are checked as one module in notebook order, as the language server sees a
notebook: a name defined in an earlier cell is not "undefined" in a later one. IPython
syntax (`%magic`, `!shell`, `?help`) is blanked first. pyflakes comes with the `lsp` extra;
without it there are no diagnostics, and nothing else changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: Lines pyflakes cannot parse: IPython's own syntax.
_IPYTHON_LINE = re.compile(r"^\s*(%|!|\?)|\?\s*$")


@dataclass(frozen=True)
class Diagnostic:
    cell_id: str
    line: int  # 1-based, within the cell
    message: str

    def render(self) -> str:
        return f"[{self.cell_id}] line {self.line}: {self.message}"


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def check_cells(cells: list[dict[str, Any]], limit: int = 20) -> list[Diagnostic]:
    """Up to `limit` diagnostics of the code cells, in notebook order."""
    try:
        from pyflakes import checker  # lazy: only when a prompt is built
    except ImportError:
        return []
    import ast

    lines: list[str] = []
    owners: list[tuple[str, int]] = []  # (cell id, line in cell) of each module line
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        cell_lines = _source(cell).splitlines() or [""]
        for number, text in enumerate(cell_lines, start=1):
            lines.append("" if _IPYTHON_LINE.search(text) else text)
            owners.append((str(cell.get("id", "")), number))
    if not lines:
        return []
    module = "\n".join(lines) + "\n"
    try:
        tree = ast.parse(module)
    except SyntaxError as e:  # say where, as the editor would; pyflakes needs a tree
        if e.lineno and 0 < e.lineno <= len(owners):
            cell_id, line = owners[e.lineno - 1]
            return [Diagnostic(cell_id, line, f"syntax error: {e.msg}")]
        return []
    found = []
    for message in sorted(checker.Checker(tree).messages, key=lambda m: m.lineno):
        if not 0 < message.lineno <= len(owners):
            continue
        cell_id, line = owners[message.lineno - 1]
        text = message.message % message.message_args
        found.append(Diagnostic(cell_id, line, text))
        if len(found) >= limit:
            break
    return found


def render(found: list[Diagnostic]) -> str:
    if not found:
        return ""
    body = "\n".join(d.render() for d in found)
    return f'<diagnostics source="pyflakes">\n{body}\n</diagnostics>'
