"""The fix loop: reproduce → diagnose → patch → re-run → verify, until verified or a
reason to stop. It is not a second agent: each attempt is one turn of the agent's own run
engine (same model calls, tools, policy and approvals) behind ``FixHost.ask``; the loop
only decides what to ask, checks what came back and re-runs the cells.

It stops on: verified; ``max_attempts`` turns; the token budget; a patch already tried (the
same edit again, or the notebook back in a state it was in); a turn that changed nothing;
an edit rejected by the policy or a person; a model or kernel failure; cancel (the model's
turn stopped, the kernel interrupted, within one step).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import ToolError
from ..kernels import ExecResult
from ..patches import source_of
from .checks import pytest_file as find_pytest
from .deps import Graph
from .prompt import diagnosis
from .result import NOT_VERIFIED, REASONS, VERIFIED, Attempt, Failure, FixResult
from .verify import CellHost, Runs, verify

log = logging.getLogger("aiide.fixloop")


@dataclass
class Turn:
    """What one agent turn did: its end, its tokens, and its edit calls."""

    status: str
    tokens: int = 0
    #: One per edit tool call: tool, cell_id, decision, by, ok (applied or not), error.
    edits: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""


class FixHost(CellHost, Protocol):
    """What the loop needs from where it runs (headless: a file; the lab: a browser)."""

    #: The notebook as the model names it.
    path: str
    #: The notebook's file on disk, for a pytest file next to it (None: not on disk).
    file: str | None

    async def load(self) -> dict[str, Any]: ...

    async def ask(self, text: str) -> Turn: ...

    async def state(self) -> list[tuple[str, dict[str, Any]]] | None: ...

    async def stop(self) -> None: ...

    def audit(self, attempt: Attempt) -> None: ...


@dataclass
class Limits:
    max_attempts: int = 3
    #: Input + output tokens of all turns; 0: no limit.
    token_budget: int = 0


def _sources(nb: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["id"]: (c.get("cell_type", ""), source_of(c)) for c in nb.get("cells", [])}


def _fingerprint(nb: dict[str, Any]) -> str:
    h = hashlib.sha256()
    for c in nb.get("cells", []):
        h.update(f"{c.get('cell_type')}\0{source_of(c)}\0\0".encode())
    return h.hexdigest()


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """The attempt's patch, cell by cell: what was replaced, inserted, deleted."""
    a, b = _sources(before), _sources(after)
    out: list[dict[str, Any]] = []
    for cid, (kind, src) in b.items():
        if cid not in a:
            out.append({"cell_id": cid, "op": "insert", "before": None, "after": src})
        elif a[cid] != (kind, src):
            out.append({"cell_id": cid, "op": "replace", "before": a[cid][1], "after": src})
    for cid, (_, src) in a.items():
        if cid not in b:
            out.append({"cell_id": cid, "op": "delete", "before": src, "after": None})
    return out


class Guarded:
    """The host's cells, stopped by cancel: a cell still running when the loop is
    cancelled is interrupted, again each second until it ends (a cancel that came while
    the kernel was still starting found nothing to interrupt yet)."""

    def __init__(self, host: FixHost, cancelled: asyncio.Event) -> None:
        self.host = host
        self.cancelled = cancelled

    async def _guard(self, work: Any) -> ExecResult:
        task: asyncio.Future[ExecResult] = asyncio.ensure_future(work)
        waiter = asyncio.ensure_future(self.cancelled.wait())
        try:
            either: set[asyncio.Future[Any]] = {task, waiter}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            while not task.done():
                await self.host.stop()
                await asyncio.wait({task}, timeout=INTERRUPT_EVERY)
        finally:
            waiter.cancel()
        return task.result()

    async def run_cell(self, cell_id: str) -> ExecResult:
        return await self._guard(self.host.run_cell(cell_id))

    async def execute(self, code: str) -> ExecResult:
        return await self._guard(self.host.execute(code))


#: Seconds between interrupts of a cell that goes on running after a cancel.
INTERRUPT_EVERY = 1.0


class FixLoop:
    def __init__(self, host: FixHost, limits: Limits | None = None) -> None:
        self.host = host
        self.limits = limits or Limits()
        self.cancelled = asyncio.Event()
        self.cells = Guarded(host, self.cancelled)

    async def cancel(self) -> None:
        """Stop within one step: the model's turn is stopped and the kernel interrupted."""
        self.cancelled.set()
        await self.host.stop()

    def _end(self, status: str, reason: str, message: str, result: FixResult) -> FixResult:
        result.status, result.reason = status, reason
        result.message = message or REASONS.get(reason, reason)
        result.tokens = sum(a.tokens for a in result.attempts)
        return result

    async def _run_in_order(self, runs: Runs, ids: list[str]) -> Failure | None:
        for cid in ids:
            if self.cancelled.is_set():
                return None
            failure = await runs.run(self.cells, cid)
            if failure is not None:
                return failure
        return None

    async def run(self, target: str | None = None) -> FixResult:
        """Fix the error of ``target`` (a cell id; None: the notebook's first error)."""
        result = FixResult(NOT_VERIFIED, "", "", target=target)
        started = time.perf_counter()
        try:
            return await self._run(target, result)
        except ToolError as e:  # the kernel died, the notebook went away...
            if e.code == "validation_error":
                return self._end(NOT_VERIFIED, "bad_input", e.message, result)
            if self.cancelled.is_set():
                return self._end(NOT_VERIFIED, "cancelled", "", result)
            return self._end(NOT_VERIFIED, "kernel_failed", f"{e.code}: {e.message}", result)
        finally:
            result.seconds = time.perf_counter() - started

    async def _run(self, target: str | None, result: FixResult) -> FixResult:
        host = self.host
        nb = await host.load()
        graph = Graph.of(nb)
        if target is not None and target not in graph.names:
            raise ToolError("validation_error", f"no code cell {target!r} in {host.path}")
        pytest_file = find_pytest(host.file) if host.file else None
        runs = Runs.from_saved(nb)
        # reproduce: the cells up to the one asked about, in order (its inputs first)
        upto = graph.order if target is None else graph.order[: graph.index(target) + 1]
        started = time.perf_counter()
        failure = await self._run_in_order(runs, upto)
        result.reproduce_seconds = time.perf_counter() - started
        if self.cancelled.is_set():
            return self._end(NOT_VERIFIED, "cancelled", "", result)
        note = ""
        if failure is None:
            last = upto[-1] if upto else None
            if last is None:
                return self._end(VERIFIED, "no_error", "the notebook has no code cells", result)
            # the cells after the one asked about, the checks, the pytest file
            first = last if target is not None else ""
            verdict = await verify(self.cells, nb, runs, set(), first, pytest_file)
            failure = verdict.failure
            if failure is None:
                return self._end(VERIFIED, "no_error", "", result)
        elif target is not None and failure.cell_id != target:
            note = (
                f"The error is in cell {failure.cell_id}, before cell {target} (asked about): "
                f"{target} needs what {failure.cell_id} defines. Fix cell {failure.cell_id}."
            )
        result.error_cell = failure.cell_id
        seen = {_fingerprint(nb)}
        for number in range(1, self.limits.max_attempts + 1):
            if self.cancelled.is_set():
                return self._end(NOT_VERIFIED, "cancelled", "", result)
            spent = sum(a.tokens for a in result.attempts)
            if self.limits.token_budget and spent >= self.limits.token_budget:
                return self._end(
                    NOT_VERIFIED,
                    "token_budget",
                    f"{spent} tokens used of {self.limits.token_budget}; still failing: "
                    f"{failure.line()}",
                    result,
                )
            attempt = await self._attempt(number, nb, failure, runs, pytest_file, note)
            result.attempts.append(attempt)
            if attempt.failure is not None:  # applied and still failing: tried before?
                nb = await host.load()
                mark = _fingerprint(nb)
                if mark in seen:
                    attempt.result = "repeated_patch"
                    attempt.detail = f"back to a notebook already tried; {attempt.detail}"
                seen.add(mark)
            host.audit(attempt)
            note = ""
            if attempt.result == "verified":
                return self._end(VERIFIED, "fixed", attempt.detail, result)
            if attempt.result in ("cancelled", "model_failed", "no_patch", "patch_rejected"):
                return self._end(NOT_VERIFIED, attempt.result, attempt.detail, result)
            if attempt.result == "repeated_patch":
                return self._end(
                    NOT_VERIFIED,
                    "repeated_patch",
                    f"attempt {number} proposed a patch already tried; still failing: "
                    f"{failure.line()}",
                    result,
                )
            assert attempt.failure is not None
            failure = attempt.failure
            if failure.kind == "broke_downstream":
                note = (
                    f"Your change to {', '.join(p['cell_id'] for p in attempt.patch)} broke "
                    f"cell {failure.cell_id}, which ran before it. Fix so that both run."
                )
        return self._end(
            NOT_VERIFIED,
            "max_attempts",
            f"still failing after {self.limits.max_attempts} attempts: {failure.line()}",
            result,
        )

    async def _attempt(
        self,
        number: int,
        nb: dict[str, Any],
        failure: Failure,
        runs: Runs,
        pytest_file: str | None,
        note: str,
    ) -> Attempt:
        host = self.host
        started = time.perf_counter()
        attempt = Attempt(number, error={**_error(failure)})
        try:
            state = await host.state() if failure.kind != "timeout" else None
            text = diagnosis(
                nb,
                host.path,
                failure,
                state,
                attempt=number,
                max_attempts=self.limits.max_attempts,
                earlier_note=note,
                pytest_file=pytest_file,
            )
            asked = time.perf_counter()
            turn = await host.ask(text)
            attempt.model_seconds = time.perf_counter() - asked
            attempt.tokens = turn.tokens
            attempt.approvals = [
                {k: e.get(k) for k in ("tool", "cell_id", "decision", "by", "ok")}
                for e in turn.edits
            ]
            if self.cancelled.is_set() or turn.status == "cancelled":
                attempt.result, attempt.detail = "cancelled", "cancelled during the model's turn"
                return attempt
            if turn.status != "completed":
                attempt.result = "model_failed"
                attempt.detail = turn.message or f"the model's turn ended {turn.status}"
                return attempt
            after = await host.load()
            attempt.patch = diff(nb, after)
            if not attempt.patch:
                refused = [e for e in turn.edits if not e.get("ok")]
                if refused:
                    attempt.result = "patch_rejected"
                    attempt.detail = "; ".join(str(e.get("error") or "rejected") for e in refused)
                elif turn.edits:
                    attempt.result = "repeated_patch"
                    attempt.detail = "the model proposed the same patch again"
                else:
                    attempt.result, attempt.detail = "no_patch", "the model changed nothing"
                return attempt
            changed = {p["cell_id"] for p in attempt.patch if p["op"] != "delete"}
            verdict = await verify(self.cells, after, runs, changed, failure.cell_id, pytest_file)
            attempt.reran, attempt.changed_outputs = verdict.reran, verdict.changed_outputs
            attempt.kernel_seconds = verdict.kernel_seconds
            if self.cancelled.is_set():
                attempt.result, attempt.detail = "cancelled", "cancelled while verifying"
            elif verdict.failure is None:
                attempt.result = "verified"
                attempt.detail = f"verified: re-ran {', '.join(verdict.reran)}" + (
                    f"; outputs changed in {', '.join(verdict.changed_outputs)}"
                    if verdict.changed_outputs
                    else ""
                )
            else:
                attempt.result = verdict.failure.kind
                attempt.detail = verdict.failure.line()
                attempt.failure = verdict.failure
            return attempt
        finally:
            attempt.seconds = time.perf_counter() - started


def _error(failure: Failure) -> dict[str, Any]:
    return {
        "cell_id": failure.cell_id,
        "ename": failure.ename,
        "evalue": failure.evalue[:500],
        "kind": failure.kind,
    }
