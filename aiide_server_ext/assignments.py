"""Assignment notebooks: which cells a student writes, which are locked, what is hidden.

nbgrader (the grading tool most Jupyter courses use) marks cells in their metadata,
``cell.metadata.nbgrader = {solution, grade, locked, task, points, grade_id, ...}``, and
regions in their source: ``### BEGIN SOLUTION`` … ``### END SOLUTION`` in the
instructor's version, ``### BEGIN HIDDEN TESTS`` … ``### END HIDDEN TESTS`` in test cells
(removed from the students' copies when all goes well), ``=== BEGIN MARK SCHEME ===`` …
in markdown. A course may add markers of its own (``Markers``).

This module reads those marks and nothing else (no nbgrader import, no I/O), so the
prompt builder, inline completion, the tool policy and the knowledge indexer all agree on
one reading. It fails safe: a cell whose nbgrader metadata is not what nbgrader writes is
treated as locked and hidden (its text is withheld from the model) and a notice says
which cell and why; nothing here raises on a malformed notebook.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Default regions whose text never reaches a model (begin, end).
HIDDEN_REGIONS: tuple[tuple[str, str], ...] = (
    ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"),
    ("=== BEGIN MARK SCHEME ===", "=== END MARK SCHEME ==="),
)
#: Default regions a student writes (the instructor's solution in the source version).
SOLUTION_REGIONS: tuple[tuple[str, str], ...] = (("### BEGIN SOLUTION", "### END SOLUTION"),)
#: What nbgrader puts in a released solution cell in place of the solution.
RELEASED_STUBS = ("# YOUR CODE HERE", "raise NotImplementedError()", "YOUR ANSWER HERE")
#: What the model reads in place of a hidden region or cell.
WITHHELD = "[withheld from the assistant: {why}]"
NBGRADER_KEYS = frozenset(
    {"solution", "grade", "locked", "task", "points", "grade_id", "schema_version", "checksum",
     "cell_type"}
)  # fmt: skip


@dataclass(frozen=True)
class Markers:
    """The marks a course recognises: nbgrader's by default, plus its own."""

    hidden: tuple[tuple[str, str], ...] = HIDDEN_REGIONS
    solution: tuple[tuple[str, str], ...] = SOLUTION_REGIONS
    #: Cell tags (``metadata.tags``) marking a whole cell instructor-only / solution / locked.
    hidden_tags: tuple[str, ...] = ("instructor", "instructor-only")
    solution_tags: tuple[str, ...] = ()
    locked_tags: tuple[str, ...] = ()

    def plus(self, extra: Mapping[str, Any]) -> Markers:
        """These markers and a course's (``help.markers``, already validated)."""

        def pairs(key: str) -> tuple[tuple[str, str], ...]:
            return tuple((str(b), str(e)) for b, e in extra.get(key) or ())

        def tags(key: str) -> tuple[str, ...]:
            return tuple(str(t) for t in extra.get(key) or ())

        return Markers(
            self.hidden + pairs("hidden"),
            self.solution + pairs("solution"),
            self.hidden_tags + tags("hidden_tags"),
            self.solution_tags + tags("solution_tags"),
            self.locked_tags + tags("locked_tags"),
        )


DEFAULT_MARKERS = Markers()


@dataclass
class CellRole:
    """One cell as the assignment sees it."""

    index: int
    cell_id: str
    #: The student writes it (nbgrader ``solution``, a solution tag or region).
    solution: bool = False
    #: Never changed by the agent (nbgrader ``locked``, tests, broken metadata).
    locked: bool = False
    #: Autograder tests (nbgrader ``grade`` without ``solution``).
    tests: bool = False
    #: The whole cell is withheld from the model (instructor-only, broken metadata).
    hidden: bool = False
    #: Holds hidden regions (withheld line spans) but is otherwise shown.
    hidden_regions: bool = False
    #: Holds ``### BEGIN SOLUTION`` regions (the instructor's source version).
    solution_regions: bool = False
    grade_id: str = ""
    points: float | None = None
    notice: str = ""


@dataclass
class Assignment:
    """A notebook's cells, read as an assignment; ``graded``: it has any assignment mark."""

    cells: list[CellRole] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    graded: bool = False

    def cell(self, cell_id: str) -> CellRole | None:
        return next((c for c in self.cells if c.cell_id == cell_id), None)


def source_text(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    if isinstance(source, list):
        return "".join(str(s) for s in source)
    return source if isinstance(source, str) else ""


def _in_region(text: str, regions: Iterable[tuple[str, str]]) -> bool:
    return any(begin in text for begin, _ in regions)


def _broken(meta: Any) -> str:
    """Why nbgrader metadata is not what nbgrader writes ('' when it is)."""
    if not isinstance(meta, Mapping):
        return f"its nbgrader metadata is a {type(meta).__name__}, not a mapping"
    for flag in ("solution", "grade", "locked", "task"):
        if flag in meta and not isinstance(meta[flag], bool):
            return f"nbgrader.{flag} is {meta[flag]!r}, not true or false"
    points = meta.get("points")
    if points is not None and (
        isinstance(points, bool) or not isinstance(points, int | float) or points < 0
    ):
        return f"nbgrader.points is {points!r}, not a number of points"
    if (meta.get("grade") or meta.get("task")) and points is None:
        return "a graded cell without nbgrader.points"
    grade_id = meta.get("grade_id")
    graded = any(meta.get(f) for f in ("solution", "grade", "locked", "task"))
    if graded and not (isinstance(grade_id, str) and grade_id):
        return "a graded, solution or locked cell without nbgrader.grade_id"
    return ""


def inspect(nb: Any, markers: Markers = DEFAULT_MARKERS) -> Assignment:
    """Every cell's role; never raises (a notebook that is not one has no cells)."""
    out = Assignment()
    cells = nb.get("cells") if isinstance(nb, Mapping) else None
    if not isinstance(cells, list):
        return out
    for i, cell in enumerate(cells):
        if not isinstance(cell, Mapping):
            out.cells.append(CellRole(i, "", locked=True, hidden=True, notice="not a cell"))
            continue
        role = CellRole(i, str(cell.get("id") or ""))
        meta = cell.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        text = source_text(cell)
        raw_tags = meta.get("tags")
        tags = {str(t) for t in raw_tags} if isinstance(raw_tags, list) else set()
        if "nbgrader" in meta:
            out.graded = True
            why = _broken(meta["nbgrader"])
            if why:
                role.locked = role.hidden = True
                role.notice = (
                    f"cell {i + 1}: {why}; treated as locked and hidden from the assistant "
                    "(ask your instructor to check the notebook)"
                )
                out.notices.append(role.notice)
                out.cells.append(role)
                continue
            nbg = meta["nbgrader"]
            role.solution = bool(nbg.get("solution"))
            role.tests = bool(nbg.get("grade")) and not role.solution
            role.locked = bool(nbg.get("locked")) or role.tests
            role.grade_id = str(nbg.get("grade_id") or "")
            points = nbg.get("points")
            role.points = float(points) if points is not None else None
        if tags & set(markers.hidden_tags):
            role.hidden = role.locked = True
        if tags & set(markers.solution_tags):
            role.solution = True
        if tags & set(markers.locked_tags):
            role.locked = True
        if _in_region(text, markers.hidden):
            role.hidden_regions = role.locked = True
        if _in_region(text, markers.solution):
            role.solution_regions = True
            role.solution = role.solution or not role.locked
        if role.solution or role.locked or role.hidden or role.hidden_regions:
            out.graded = True
        out.cells.append(role)
    return out


def redact_text(text: str, regions: Iterable[tuple[str, str]], why: str = "hidden") -> str:
    """``text`` with each region (begin line through end line) replaced by one withheld
    line; a region never closed is withheld to the end (failing safe)."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    pairs = list(regions)
    closing: str | None = None
    for line in lines:
        if closing is None:
            found = next((end for begin, end in pairs if begin in line), None)
            if found is not None:
                closing = found
                indent = line[: len(line) - len(line.lstrip())]
                out.append(indent + "# " + WITHHELD.format(why=why) + "\n")
                continue
            out.append(line)
        elif closing in line:
            closing = None
    return "".join(out)


def redact(
    nb: Mapping[str, Any], markers: Markers = DEFAULT_MARKERS
) -> tuple[dict[str, Any], list[str]]:
    """A copy of the notebook the model may read: hidden cells' text and outputs and
    hidden regions withheld (outputs of a cell with hidden regions too: a failing hidden
    test's traceback quotes it). Returns (notebook, notices)."""
    found = inspect(nb, markers)
    if not any(r.hidden or r.hidden_regions for r in found.cells):
        return dict(nb), found.notices  # nothing withheld: no copy (most notebooks)
    out = copy.deepcopy(dict(nb))
    cells = out.get("cells")
    if not isinstance(cells, list):
        return out, found.notices
    for role in found.cells:
        cell = cells[role.index]
        if not isinstance(cell, dict):
            cells[role.index] = {"cell_type": "raw", "id": "", "metadata": {}, "source":
                                 WITHHELD.format(why="not a notebook cell")}  # fmt: skip
            continue
        if role.hidden:
            why = "broken nbgrader metadata" if role.notice else "instructor-only cell"
            cell["source"] = WITHHELD.format(why=why)
            if "outputs" in cell:
                cell["outputs"] = []
        elif role.hidden_regions:
            cell["source"] = redact_text(source_text(cell), markers.hidden, "hidden tests")
            if "outputs" in cell:
                cell["outputs"] = []
    return out, found.notices


def redact_source(text: str, markers: Markers = DEFAULT_MARKERS) -> str:
    """Plain text (a completion's prefix, a file) with the hidden regions withheld."""
    return (
        redact_text(text, markers.hidden, "hidden tests")
        if _in_region(text, markers.hidden)
        else text
    )


def cursor_in_solution(prefix: str, suffix: str, markers: Markers = DEFAULT_MARKERS) -> bool:
    """Whether text typed at the cursor is part of a solution: inside an open
    ``### BEGIN SOLUTION`` region, or in a released solution cell (its stub, ``# YOUR
    CODE HERE`` / ``raise NotImplementedError()``, in the cell around the cursor)."""
    for begin, end in markers.solution:
        opened = prefix.rfind(begin)
        if opened >= 0 and prefix.rfind(end) < opened:
            return True
    cell = prefix.rsplit("\n\n", 1)[-1] + suffix.split("\n\n", 1)[0]
    return any(stub in cell for stub in RELEASED_STUBS)


def describe(role: CellRole) -> str:
    """How the prompt names a cell's role (for the model: what it may do there)."""
    kinds = []
    if role.solution:
        kinds.append("solution cell (the student's graded answer)")
    if role.tests:
        kinds.append("autograder tests")
    if role.locked and not role.tests:
        kinds.append("locked")
    if role.hidden:
        kinds.append("withheld")
    head = ", ".join(kinds) or "not graded"
    if role.grade_id:
        head += f", {role.grade_id}"
    if role.points is not None:
        head += f", {role.points:g} points"
    return head
