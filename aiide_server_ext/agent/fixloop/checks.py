"""The notebook's own checks, which a fix must pass: cells with top-level ``assert``s, a
cell tagged or headed ``tests``, nbgrader's autograder test cells, and a pytest file next to
the notebook (``test_<stem>.py``). A fix that silences an error but fails a check is not
verified."""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from typing import Any

from ..patches import source_of


@dataclass(frozen=True)
class Check:
    cell_id: str
    #: assert | tests | nbgrader
    kind: str


def _nbgrader_test(cell: dict[str, Any]) -> bool:
    meta = (cell.get("metadata") or {}).get("nbgrader")
    if not isinstance(meta, dict):
        return False
    return bool(meta.get("grade")) and not meta.get("solution")


def _tests_cell(cell: dict[str, Any]) -> bool:
    tags = (cell.get("metadata") or {}).get("tags") or []
    if isinstance(tags, list) and "tests" in tags:
        return True
    first = source_of(cell).lstrip().split("\n", 1)[0].strip().lower()
    return first in ("# tests", "#tests", "# test", "# tests:")


def _asserts(cell: dict[str, Any]) -> bool:
    try:
        tree = ast.parse(source_of(cell))
    except SyntaxError:
        return False
    return any(isinstance(s, ast.Assert) for s in tree.body)


def check_of(cell: dict[str, Any]) -> Check | None:
    if cell.get("cell_type") != "code":
        return None
    if _nbgrader_test(cell):
        return Check(cell["id"], "nbgrader")
    if _tests_cell(cell):
        return Check(cell["id"], "tests")
    if _asserts(cell):
        return Check(cell["id"], "assert")
    return None


def checks_of(nb: dict[str, Any]) -> dict[str, Check]:
    found = (check_of(c) for c in nb.get("cells", []))
    return {c.cell_id: c for c in found if c is not None}


def pytest_file(notebook: str) -> str | None:
    """``test_<stem>.py`` beside the notebook, if there is one (its name, relative)."""
    stem = os.path.splitext(os.path.basename(notebook))[0]
    name = f"test_{stem}.py"
    return name if os.path.isfile(os.path.join(os.path.dirname(notebook), name)) else None


def pytest_code(name: str) -> str:
    """Run in the sandboxed kernel (its working directory is the notebook's folder): the
    test file under pytest, in a child process of the kernel, inside the sandbox."""
    return (
        "import subprocess as _sp, sys as _sys\n"
        f"_r = _sp.run([_sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', {name!r}],"
        " capture_output=True, text=True)\n"
        "print(_r.stdout[-3000:], _r.stderr[-1000:])\n"
        f"assert _r.returncode == 0, 'pytest {name} failed (exit %d)' % _r.returncode\n"
    )
