"""``jupyter aiide fix``: the fix loop (``agent/fixloop``) run headless, papermill-style.

The run is a headless run (same engine, sandboxed kernel, policy file, trace, provenance);
only its drive differs: instead of one turn towards a goal, the loop reproduces the error,
asks the agent for a patch in a turn of the run's conversation, re-runs and verifies, and
asks again with what it found, until verified or a reason to stop. The notebook is not run
before the loop (the loop runs it, in order, to find the error).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from typing import Any

from ..agent.errors import AgentError
from ..agent.fixloop.edits import record_edit
from ..agent.fixloop.loop import FixLoop, Limits, Turn
from ..agent.fixloop.result import Attempt, FixResult
from ..agent.kernels import ExecResult
from ..agent.notebooks import Route
from .runner import (
    BAD_INPUT,
    INTERRUPTED,
    KERNEL_FAILURE,
    MODEL_FAILURE,
    OK,
    HeadlessRunner,
    Job,
    Outcome,
    Session,
)

log = logging.getLogger("aiide.headless")
#: The exit code of a loop that ended without a verified fix (distinct from every failure).
NOT_VERIFIED = 6
GOAL = "fix the notebook's error so that it runs clean and its checks pass"


class RunFixHost:
    """The loop's ``FixHost`` over one headless run: cells run in the run's sandboxed kernel
    (traced, so ``jupyter aiide replay`` redoes them), turns are the engine's."""

    def __init__(self, session: Session, runner: FixRunner) -> None:
        self.session = session
        self.runner = runner
        self.path = session.rel
        self.file: str | None = session.job.notebook
        self.route = Route("headless", "fix", runner.caller.username)
        self.edits: list[dict[str, Any]] = []
        self.by_call: dict[str, dict[str, Any]] = {}
        session.state["hooks"].append(self._event)

    def _event(self, body: dict[str, Any]) -> None:
        record_edit(body, self.edits, self.by_call)

    def approved(self, call_id: str, decision: str, reason: str) -> None:
        """Who answered an approval (the terminal or the policy file), for the audit."""
        edit = self.by_call.get(call_id)
        if edit is not None:
            edit["by"] = f"{self.runner.caller.username}: {decision} ({reason})"

    async def load(self) -> dict[str, Any]:
        nb: dict[str, Any] = await self.session.bridge.load(self.path)
        return nb

    async def run_cell(self, cell_id: str) -> ExecResult:
        result: ExecResult = await self.session.bridge.run_as_is(cell_id, self.route)
        return result

    async def execute(self, code: str) -> ExecResult:
        bridge = self.session.bridge
        result: ExecResult = await bridge.output.execute(bridge.out_name, code)
        return result

    async def state(self) -> list[tuple[str, dict[str, Any]]] | None:
        from ..agent import introspect  # lazy: only when a diagnosis is written

        kernels = self.session.bridge.kernels
        try:
            kid = await kernels.kernel_for(self.path)
            reply = await kernels.execute(
                kid, "", timeout=10, silent=True, user_expressions={"s": introspect.expression()}
            )
        except Exception:  # the state is a help, not a need
            return None
        return introspect.parse(reply.user_expressions.get("s") or {})

    async def ask(self, text: str) -> Turn:
        self.edits = []
        state = self.session.state
        run = await self.session.converse(text)
        final = state.get("final") or {}
        usage = run.usage()
        tokens = int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))
        self.runner.usage = _added(self.runner.usage, usage)
        status = str(final.get("status") or run.state)
        if state.get("stop"):  # an approval answered 'stop': nothing more is applied
            for edit in self.edits:
                if not edit["ok"]:
                    edit.setdefault("error", state["stop"])
            return Turn("completed", tokens, self.edits)
        message = str((run.error or {}).get("message") or "")
        return Turn(status, tokens, self.edits, message)

    async def stop(self) -> None:
        kernels = self.session.bridge.kernels
        kid = await kernels.kernel_for(self.path, start=False)
        if kid is not None:
            from jupyter_core.utils import ensure_async

            try:
                await ensure_async(kernels.km.interrupt_kernel(kid))
            except Exception as e:  # gone already: nothing runs there
                log.info("aiide: fix: interrupting kernel %s: %r", kid, e)

    def audit(self, attempt: Attempt) -> None:
        record = asdict(attempt)
        record["overhead"] = round(attempt.overhead, 4)
        self.session.trace.write("fix_attempt", **record)
        self.runner._notice(
            self.session.job,
            self.session.trace,
            "fix_attempt",
            f"attempt {attempt.number}: {attempt.error.get('cell_id')} "
            f"{attempt.error.get('ename')} → {len(attempt.patch)} cell(s) changed → "
            f"{attempt.result}" + (f" ({attempt.detail})" if attempt.detail else ""),
        )


def _added(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in set(a) | set(b)}


class FixRunner(HeadlessRunner):
    """A headless run whose drive is the fix loop."""

    def __init__(
        self,
        *args: Any,
        target: str | None = None,
        max_attempts: int = 3,
        token_budget: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, execute=False, **kwargs)
        self.target = target
        self.limits = Limits(max_attempts=max_attempts, token_budget=token_budget)
        self.results: dict[str, FixResult] = {}
        self.usage: dict[str, int] = {}
        self.hosts: dict[str, RunFixHost] = {}
        answer = self.approver

        async def approver(job: Job, body: dict[str, Any]) -> tuple[str, str]:
            decision, reason = await answer(job, body)
            host = self.hosts.get(job.output)
            if host is not None:
                host.approved(body["call_id"], decision, reason)
            return decision, reason

        self.approver = approver

    async def _drive(self, session: Session) -> Outcome:
        job, trace = session.job, session.trace
        host = RunFixHost(session, self)
        self.hosts[job.output] = host
        self.usage = {}
        loop = FixLoop(host, self.limits)

        pending: set[asyncio.Future[None]] = set()

        def cancel() -> None:
            task = asyncio.ensure_future(loop.cancel())
            pending.add(task)
            task.add_done_callback(pending.discard)

        session.state["on_stop"].append(cancel)
        try:
            result = await loop.run(self.target)
        except AgentError as e:
            result = FixResult("not_verified", "model_failed", e.message, target=self.target)
        finally:
            self.hosts.pop(job.output, None)
        self.results[job.output] = result
        record = result.to_dict()
        for a in record["attempts"]:
            a.pop("failure", None)
        session.state["record"] = {"fix": record}
        trace.write("fix_result", **{k: v for k, v in record.items() if k != "attempts"})
        run = session.state.get("run")
        out = Outcome(job, result.status, OK, result.message, trace=trace.path)
        out.run_id = run.id if run is not None else None
        out.usage = self.usage
        out.answer = _summary(result)
        if session.interrupted() or result.reason == "cancelled":
            out.status, out.exit_code = "interrupted", INTERRUPTED
        elif session.bridge.failure:
            out.status, out.exit_code = "kernel_failed", KERNEL_FAILURE
            out.message = session.bridge.failure
        elif result.reason == "bad_input":
            out.status, out.exit_code = "bad_input", BAD_INPUT
        elif result.reason == "kernel_failed":
            out.exit_code = KERNEL_FAILURE
        elif result.reason == "model_failed":
            out.exit_code = MODEL_FAILURE
        elif not result.verified:
            out.exit_code = NOT_VERIFIED
        return out


def _summary(result: FixResult) -> str:
    head = "verified" if result.verified else f"not verified ({result.reason})"
    where = f" [error in cell {result.error_cell}]" if result.error_cell else ""
    return f"{head}{where}: {result.message}; {len(result.attempts)} attempt(s)"


async def fix_notebooks(args: Any, console: Any, on_interrupt: Any) -> int:
    """``jupyter aiide fix NOTEBOOK... [-o OUT]``: one loop per notebook; the exit code is
    0 only when every notebook was verified."""
    import os

    from .config import load_config, local_user
    from .display import Display, summary
    from .notebook import BadInput, output_path
    from .policy_file import PolicyFile, PolicyFileError

    try:
        policy = PolicyFile.load(args.policy)
    except PolicyFileError as e:
        raise BadInput(str(e)) from None
    if args.yes:
        policy.approvals.setdefault("default", "approve")
    if args.max_attempts < 1:
        raise BadInput("--max-attempts must be at least 1")
    if args.token_budget < 0:
        raise BadInput("--token-budget must be 0 (no limit) or more")
    if args.cell and len(args.notebooks) > 1:
        raise BadInput("--cell names a cell of one notebook: give only one")
    if len(args.notebooks) > 1 and args.output and not os.path.isdir(args.output):
        raise BadInput("-o must be an existing folder when fixing several notebooks")
    jobs = []
    for nb in args.notebooks:
        if not os.path.isfile(nb):
            raise BadInput(f"no notebook {nb!r}")
        out = output_path(nb, args.output, args.inplace, None)
        jobs.append(Job(nb, out, GOAL, {}, args.model, os.path.basename(nb)))
    if len({j.output for j in jobs}) != len(jobs):
        raise BadInput("two notebooks would write the same output: use -o FOLDER")
    config = load_config(args.config)
    if args.execute_timeout is not None:
        if args.execute_timeout <= 0:
            raise BadInput("--execute-timeout must be a positive number of seconds")
        config.Agent.execute_timeout = args.execute_timeout
    interactive = not args.no_input and __import__("sys").stdin.isatty()
    max_steps = args.max_steps or policy.limits.get("max_steps") or 20
    with Display(console, max_steps, policy, interactive) as display:
        runner = FixRunner(
            config,
            policy,
            approver=display.approve,
            listener=display.event,
            max_steps=args.max_steps,
            kernel_name=args.kernel,
            username=local_user(),
            target=args.cell,
            max_attempts=args.max_attempts,
            token_budget=args.token_budget,
        )
        on_interrupt(runner, console)
        limit = asyncio.Semaphore(max(1, args.jobs))

        async def one(job: Job) -> Outcome:
            async with limit:
                if runner.stopping:
                    return Outcome(job, "not_started", INTERRUPTED, "stopped (Ctrl-C)")
                display.add(job)
                outcome = await runner.run(job)
                display.done(job, outcome)
                return outcome

        outcomes = await asyncio.gather(*(one(j) for j in jobs))
    import json

    from rich.markup import escape

    for o in outcomes:
        colour = "green" if o.exit_code == OK else "red"
        console.print(f"[{colour}]{escape(o.job.label)}:[/] {escape(o.answer or o.message)}")
    if len(outcomes) > 1 or console.is_terminal:
        summary(console, list(outcomes))
    if args.json:
        rows = []
        for o in outcomes:
            row = o.summary()
            result = runner.results.get(o.job.output)
            row["fix"] = result.to_dict() if result else None
            if row["fix"]:
                for a in row["fix"]["attempts"]:
                    a.pop("failure", None)
            rows.append(row)
        print(json.dumps(rows, indent=1, default=str))
    else:
        for o in outcomes:
            print(o.job.output)
    codes = [o.exit_code for o in outcomes]
    for worst in (INTERRUPTED, KERNEL_FAILURE, MODEL_FAILURE, 3, BAD_INPUT, NOT_VERIFIED, 1):
        if worst in codes:
            return worst
    return OK
