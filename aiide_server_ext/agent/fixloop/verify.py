"""The verify step: after a patch, re-run what it touches, in notebook order, in the
sandboxed kernel; a fix is verified only when every such cell runs, none that ran before
now fails (a change that breaks a downstream cell is not a fix), and the checks pass.

What is re-run: the changed cells, the cell that failed (and the cells before it that
define a name it redefines: ``n += 1`` interrupted half-way), every later cell that uses what
they define (``deps.Graph.downstream``), every later cell that has not run cleanly since the
loop began (cells past the first error never ran), and the check cells after the first
of them; then the pytest file next to the notebook, when there is one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..kernels import ExecResult, ExecTimeout
from .checks import checks_of, pytest_code
from .deps import Graph
from .result import Failure

PYTEST_CELL = "pytest"


class CellHost(Protocol):
    """Where cells run: the notebook's sandboxed kernel (file or browser)."""

    async def run_cell(self, cell_id: str) -> ExecResult: ...

    async def execute(self, code: str) -> ExecResult: ...


def _plain(outputs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Outputs reduced to what a person compares: streams and plain-text results."""
    out = []
    for o in outputs:
        kind = o.get("output_type")
        if kind == "stream":
            text = o.get("text", "")
            out.append(("stream", "".join(text) if isinstance(text, list) else str(text)))
        elif kind in ("execute_result", "display_data"):
            text = o.get("data", {}).get("text/plain", "")
            out.append((kind, "".join(text) if isinstance(text, list) else str(text)))
    return out


def failure_of(cell_id: str, outputs: list[dict[str, Any]], kind: str = "error") -> Failure:
    err = next((o for o in outputs if o.get("output_type") == "error"), {})
    tb = err.get("traceback") or []
    return Failure(
        cell_id,
        str(err.get("ename", "Error")),
        str(err.get("evalue", "")),
        "\n".join(str(line) for line in tb),
        kind,
    )


@dataclass
class Verdict:
    failure: Failure | None = None
    reran: list[str] = field(default_factory=list)
    changed_outputs: list[str] = field(default_factory=list)
    kernel_seconds: float = 0.0


@dataclass
class Runs:
    """What the loop knows of each cell: whether it ran cleanly since the loop began and
    the outputs it had then (or the saved ones, for cells not run yet)."""

    ok: set[str] = field(default_factory=set)
    #: The plain outputs of each cell's last clean run in this loop.
    last: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    baseline: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    kernel_seconds: float = 0.0

    @classmethod
    def from_saved(cls, nb: dict[str, Any]) -> Runs:
        runs = cls()
        for cell in nb.get("cells", []):
            outs = cell.get("outputs") or []
            ran = cell.get("cell_type") == "code" and cell.get("execution_count") is not None
            if ran and not any(o.get("output_type") == "error" for o in outs):
                runs.baseline[cell["id"]] = _plain(outs)
        return runs

    async def run(self, host: CellHost, cell_id: str) -> Failure | None:
        """One cell; its failure (an error or a timeout, the kernel interrupted), if any."""
        started = time.perf_counter()
        try:
            result = await host.run_cell(cell_id)
        except ExecTimeout as e:
            self.ok.discard(cell_id)
            return Failure(cell_id, "Timeout", e.message, "", "timeout")
        finally:
            self.kernel_seconds += time.perf_counter() - started
        if result.status != "ok":
            self.ok.discard(cell_id)
            return failure_of(cell_id, result.outputs)
        self.ok.add(cell_id)
        self.last[cell_id] = _plain(result.outputs)
        return None


async def verify(
    host: CellHost,
    nb: dict[str, Any],
    runs: Runs,
    changed: set[str],
    failed: str,
    pytest_file: str | None,
) -> Verdict:
    """Re-run what the change touches; the first failure, if any (see the module doc)."""
    graph = Graph.of(nb)
    roots = {c for c in changed | {failed} if c in graph.names}
    for cid in list(roots):  # what the failed run may have half-changed is made again
        roots |= set(graph.refresh(cid))
    start = min((graph.index(c) for c in roots), default=len(graph.order))
    downstream = set(graph.downstream(roots))
    checks = set(checks_of(nb))
    todo = [
        cid
        for cid in graph.order[start:]
        if cid in roots or cid in downstream or cid in checks or cid not in runs.ok
    ]
    verdict = Verdict()
    before = runs.kernel_seconds
    try:
        for cid in todo:
            verdict.reran.append(cid)
            had = runs.baseline.get(cid)
            failure = await runs.run(host, cid)
            if failure is not None:
                if cid in checks and failure.kind == "error":
                    failure.kind = "check_failed"
                elif had is not None and cid not in roots and cid in downstream:
                    failure.kind = "broke_downstream"
                verdict.failure = failure
                return verdict
            if had is not None and runs.last.get(cid) != had and cid not in roots:
                verdict.changed_outputs.append(cid)
        if pytest_file:
            verdict.reran.append(PYTEST_CELL)
            started = time.perf_counter()
            result = await host.execute(pytest_code(pytest_file))
            runs.kernel_seconds += time.perf_counter() - started
            if result.status != "ok":
                verdict.failure = failure_of(PYTEST_CELL, result.outputs, "check_failed")
        for cid in verdict.reran:  # what ran cleanly now is the next attempt's baseline
            if cid in runs.last:
                runs.baseline[cid] = runs.last[cid]
        return verdict
    finally:
        verdict.kernel_seconds = runs.kernel_seconds - before
