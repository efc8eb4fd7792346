"""One headless run: the agent engine of the UI (same tools, policy, limits), a sandboxed
kernel, the notebook applied to a file, and the trace and provenance written beside it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from traitlets.config import Config

from .._version import __version__
from ..agent.errors import AgentError, ToolError
from ..agent.notebooks import Route
from ..agent.patches import source_of
from ..agent.runs import Run
from ..seams import Caller
from .notebook import (
    add_provenance,
    assigned_names,
    inject_parameters,
    mark_cells,
    parameters_cell,
    read_notebook,
    write_notebook,
)
from .policy_file import PolicyFile
from .trace import Trace

log = logging.getLogger("aiide.headless")
OK, INTERNAL, BAD_INPUT, POLICY_STOP, MODEL_FAILURE, KERNEL_FAILURE, INTERRUPTED = (
    0,
    1,
    2,
    3,
    4,
    5,
    130,
)
MODEL_CODES = ("provider_", "no_model", "unknown_model")

#: Answers an approval: (run, event) -> (approve | reject | stop, reason).
Approver = Callable[["Job", dict[str, Any]], Awaitable[tuple[str, str]]]
#: Told of every event of the run (progress display).
Listener = Callable[["Job", dict[str, Any], Run | None], None]


@dataclass
class Job:
    notebook: str
    output: str
    goal: str
    params: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    label: str = ""
    #: Carry on from the output an earlier run of this job left unfinished (``--resume``).
    resume: bool = False

    @property
    def inplace(self) -> bool:
        return os.path.realpath(self.output) == os.path.realpath(self.notebook)

    @property
    def folder(self) -> str:
        """The input's folder: the tool root and the kernel's working directory."""
        return os.path.dirname(os.path.abspath(self.notebook))


@dataclass
class Outcome:
    job: Job
    status: str
    exit_code: int
    message: str = ""
    run_id: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    trace: str = ""
    #: The agent's final answer (its last text).
    answer: str = ""

    def summary(self) -> dict[str, Any]:
        """The run for ``--json``."""
        return {
            "notebook": self.job.notebook,
            "output": self.job.output,
            "parameters": self.job.params,
            "status": self.status,
            "exit_code": self.exit_code,
            "message": self.message,
            "answer": self.answer,
            "run_id": self.run_id,
            "usage": self.usage,
            "trace": self.trace,
        }


class _Listener:
    """The run's only 'connection': events go to the trace, the display and the driver."""

    def __init__(self, username: str, on_event: Callable[[dict[str, Any]], None]) -> None:
        self.username = username
        self.open_notebooks: set[str] = set()
        self.on_event = on_event

    def send(self, text: str) -> None:
        import json

        self.on_event(json.loads(text))


class StoppedEarly(Exception):
    """Ctrl-C while the notebook ran, before the agent started."""


@dataclass
class Prepared:
    """What ran before the agent started (papermill's order: the whole notebook)."""

    ran: list[str] = field(default_factory=list)
    failed: str | None = None
    error: str = ""
    #: Why nothing ran (a kernel that is not sandboxed).
    not_run: str = ""


@dataclass
class Session:
    """A run once its notebook has been prepared: what ``HeadlessRunner._drive`` works with.
    ``converse(text)`` is one turn of the agent, awaited to its end."""

    job: Job
    engine: Any
    bridge: Any
    rel: str
    trace: Trace
    state: dict[str, Any]
    prepared: Prepared
    converse: Callable[[str], Awaitable[Run]]
    interrupted: Callable[[], bool] = lambda: False


def goal_text(
    job: Job, rel: str, bridge: Any, prepared: Prepared, earlier: dict[str, Any] | None = None
) -> str:
    text = f"Work in the notebook {rel}. Goal: {job.goal}"
    if earlier:
        why = earlier.get("message") or earlier.get("status")
        text += f"\nAn earlier run for this goal stopped ({why}); its work is in the notebook."
    if prepared.ran:
        text += f"\nIts code cells {', '.join(prepared.ran)} have run, in order, in your kernel."
    if prepared.not_run:
        text += f"\nThe notebook has not run: {prepared.not_run}"
    if prepared.failed:
        text += f"\nCell {prepared.failed} failed ({prepared.error}); later cells have not run."
    if bridge.injected_id:
        names = ", ".join(f"{k}={v!r}" for k, v in job.params.items())
        text += f"\nParameters ({names}) are set by cell {bridge.injected_id}"
        if bridge.parameters_id:
            text += (
                f", after the defaults in cell {bridge.parameters_id}; running that cell "
                f"runs {bridge.injected_id} again after it"
            )
        text += "."
    return text


class HeadlessRunner:
    def __init__(
        self,
        config: Config,
        policy: PolicyFile,
        *,
        approver: Approver,
        listener: Listener | None = None,
        max_steps: int | None = None,
        store_prompts: bool = False,
        kernel_name: str | None = None,
        username: str = "owner",
        execute: bool = True,
        allow_fallback: bool = False,
        temperature: float | None = None,
    ) -> None:
        self.config = config
        self.policy_file = policy
        self.approver = approver
        self.listener = listener
        self.max_steps = max_steps
        self.store_prompts = store_prompts
        self.kernel_name = kernel_name
        self.caller = Caller(username=username)
        #: Run the whole notebook before the agent starts (else only its parameters).
        self.execute = execute
        #: With --model: another model may answer when it fails (else the run fails).
        self.allow_fallback = allow_fallback
        self.temperature = temperature
        self.stops: dict[str, Callable[[], None]] = {}
        #: Ctrl-C was pressed: runs not yet started do not start.
        self.stopping = False
        from .magic import MagicDesk  # lazy: the kernel channel's server, for a run only

        #: ``%ai`` in the runs' kernels, answered by each run (no server here).
        self.desk = MagicDesk()
        self.desk.install()

    def stop_all(self) -> None:
        self.stopping = True
        for stop in list(self.stops.values()):
            stop()

    async def run(self, job: Job) -> Outcome:
        trace_path = job.output[: -len(".ipynb")] + ".trace.jsonl"
        try:
            before = read_notebook(job.output if job.resume else job.notebook)
        except ValueError as e:
            return Outcome(job, "bad_input", BAD_INPUT, str(e))
        earlier = (before.get("metadata") or {}).pop("aiide", None) if job.resume else None
        nb = dict(before)
        ids = (parameters_cell(nb), inject_parameters(nb, job.params))
        overwritten = await self._checkpoint_output(job)
        write_notebook(job.output, nb)
        if earlier and os.path.exists(trace_path):  # the unfinished run's trace is kept
            kept = f"{trace_path[: -len('.trace.jsonl')]}.{earlier.get('run_id')}.trace.jsonl"
            os.replace(trace_path, kept)
            earlier["trace"] = os.path.basename(kept)
        trace = Trace(trace_path, store_prompts=self.store_prompts)
        state = _fresh_state(job, overwritten, earlier)
        with tempfile.TemporaryDirectory(prefix="aiide-run-") as tmp:
            try:
                return await self._run(job, before, ids, trace, tmp, state)
            except Exception as e:  # one run's failure is its own, never its batch's
                log.exception("aiide: run of %s failed", job.label)
                outcome = Outcome(job, "failed", INTERNAL, f"internal error: {e!r}"[:500])
                outcome.trace = trace.path
                with contextlib.suppress(Exception):
                    self._finalise(job, before, outcome, state, time.time(), trace)
                return outcome
            finally:
                trace.close()

    async def _checkpoint_output(self, job: Job) -> str | None:
        """A checkpoint of the file the output replaces (``-o`` onto a file, ``--inplace``)."""
        if not os.path.isfile(job.output):
            return None
        from .files import checkpoint  # lazy: the agent's steps, for a run only

        folder, name = os.path.split(job.output)
        return await asyncio.to_thread(checkpoint, folder, name, allow_hidden=True)

    def _build(self, job: Job, tmp: str) -> tuple[Any, Any]:
        # lazy: jupyter_server and the whole agent, for a run, not every `jupyter aiide` command
        from functools import partial

        from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

        from ..agent.assembly import Kinds, build_standalone
        from .bridge import RunBridge, RunKernels, model_name
        from .files import RunSteps
        from .policy_file import FilePolicy
        from .trace import TracingRouter

        workdir = job.folder
        config = self.policy_file.config(self.config, self.max_steps)
        if not config.SandboxPolicy.get("workspace_root"):
            config.SandboxPolicy.workspace_root = workdir
        if not job.inplace:  # the kernel sees the input empty and read-only
            masked = list(config.SandboxPolicy.get("masked_paths") or [])
            config.SandboxPolicy.masked_paths = [*masked, os.path.abspath(job.notebook)]
        out_folder, out_name = os.path.split(job.output)
        kinds = Kinds(
            router=TracingRouter,
            policy=FilePolicy,
            kernels=RunKernels,
            notebooks=partial(
                RunBridge,
                output_manager=AsyncLargeFileManager(root_dir=out_folder, config=config),
                output_name=out_name,
                name=model_name(job.output, workdir),
            ),
            steps=RunSteps,
        )
        parts = build_standalone(
            config,
            workdir,
            tmp,
            kinds=kinds,
            kernel_name=self.kernel_name,
            allow_user_keys=False,
            approval_timeout=365 * 86400.0,  # the terminal (or policy) answers, not a clock
            network=False,
            mcp_refresh_seconds=0,  # the MCP servers' tools are listed once for the run
        )
        router = parts.router
        assert isinstance(router, TracingRouter)
        assert isinstance(parts.policy, FilePolicy)
        router.answers, router.prices = [], _prices(config)
        router.strict = job.model is not None and not self.allow_fallback
        router.temperature = self.temperature
        parts.policy.tool_actions = dict(self.policy_file.tools)
        return parts.engine, parts.store

    async def _run(
        self,
        job: Job,
        before: dict[str, Any],
        ids: tuple[str | None, str | None],
        trace: Trace,
        tmp: str,
        state: dict[str, Any],
    ) -> Outcome:
        from .files import snapshot  # lazy (both): for a run only, as in _build
        from .magic import run_responder

        engine, store = self._build(job, tmp)
        bridge, router = engine.notebooks, engine.router
        # The model SDK loads while the kernel starts and the notebook runs (a second of
        # CPU that would otherwise come after, before the first model call).
        warm = asyncio.ensure_future(asyncio.to_thread(_import_all, _sdks_of(router)))
        tool_source = engine.tool_source
        if tool_source is not None:  # MCP servers start while the notebook runs
            tool_source.start()
        reported: set[str] = set()
        bridge.set_trace(trace)
        router.trace = trace
        bridge.parameters_id, bridge.injected_id = ids
        answer_magic = run_responder(router, self.caller)
        bridge.kernels.on_start = lambda kid: self.desk.add(kid, answer_magic, trace)
        state_steps = engine.steps
        rel = bridge.name
        files_before = snapshot(job.folder)
        started = time.time()
        trace.write(
            "header",
            aiide_version=__version__,
            goal=job.goal,
            notebook=os.path.abspath(job.notebook),
            output=os.path.basename(job.output),
            cwd=job.folder,
            params=job.params,
            model=job.model,
            policy=self.policy_file.describe(),
            kernel=bridge.kernels.kernel_name,
            started=started,
        )
        finished = asyncio.Event()
        state.update(files_before=files_before, steps=state_steps)

        def on_event(body: dict[str, Any]) -> None:
            trace.event(body)
            if body["type"] == "run_started":
                state["model"], state["provider"] = body.get("model"), body.get("provider")
            if self.listener is not None:
                self.listener(job, body, state["run"])
            if body["type"] == "approval_required":
                task = asyncio.ensure_future(answer(body))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            elif body["type"] == "run_finished":
                state["final"] = body
                finished.set()
            for hook in state["hooks"]:
                hook(body)

        async def answer(body: dict[str, Any]) -> None:
            decision, reason = await self.approver(job, body)
            trace.write("approval", call_id=body["call_id"], decision=decision, reason=reason)
            ids = {"conversation_id": body["conversation_id"], "run_id": body["run_id"]}
            with contextlib.suppress(AgentError):
                if decision == "stop":
                    state["stop"] = reason
                    engine.cancel(self.caller, ids)
                else:
                    msg = {**ids, "call_id": body["call_id"], "decision": decision}
                    await engine.approve(self.caller, {**msg, "reason": reason})

        tasks: set[asyncio.Future[None]] = set()
        conn = _Listener(self.caller.username, on_event)
        engine.fanout.connect(conn)
        interrupted = False

        def stop() -> None:
            nonlocal interrupted
            interrupted = True
            run = state["run"]
            if run is not None:
                with contextlib.suppress(AgentError):
                    engine.cancel(
                        self.caller, {"conversation_id": run.conversation_id, "run_id": run.id}
                    )
            elif setup is not None:  # still running the notebook: stop that
                setup.cancel()
            for also in state["on_stop"]:
                also()
            finished.set()

        async def set_up() -> Prepared:
            prepared = await self._prepare(bridge, rel)
            state["parameters_used"] = await self._values(bridge, rel)
            # read while the model thinks (the agent's first execution queues behind it)
            state["environment_task"] = asyncio.ensure_future(self._environment(bridge, rel))
            return prepared

        setup: asyncio.Future[Prepared] | None = None
        self.stops[job.output] = stop
        outcome = Outcome(job, "failed", MODEL_FAILURE, trace=trace.path)
        try:
            setup = asyncio.ensure_future(set_up())
            if self.stopping:
                stop()
            try:
                prepared = await setup
            except asyncio.CancelledError:
                if not interrupted:
                    raise
                raise StoppedEarly from None
            trace.write(
                "prepared",
                ran=prepared.ran,
                failed=prepared.failed,
                not_run=prepared.not_run,
                parameters_used=state["parameters_used"],
            )
            msg = {
                "type": "chat",
                "text": goal_text(job, rel, bridge, prepared, state["earlier"]),
                "task": "agent",
                "model": job.model,
                "context": {"notebook": rel},
            }
            await asyncio.wait({warm})  # never two threads in one import
            if tool_source is not None:
                # at most the servers' timeout: one that hangs is reported, not waited for
                await tool_source.ready()
                for name, problem in tool_source.unavailable().items():
                    reported.add(name)
                    self._notice(job, trace, "mcp_unavailable", problem)

            async def converse(text: str) -> Run:
                """One turn of the agent (in the run's conversation, after the first)."""
                finished.clear()
                state["final"] = None
                turn = {**msg, "text": text}
                if state["run"] is not None:
                    turn["conversation_id"] = state["run"].conversation_id
                state["run"] = await engine.start(conn, self.caller, turn)
                await finished.wait()
                for _ in range(50):  # let a cancelled run record its end
                    if state["final"] is not None or state["run"].id not in engine.tasks:
                        break
                    await asyncio.sleep(0.02)
                run: Run = state["run"]
                return run

            session = Session(job, engine, bridge, rel, trace, state, prepared, converse)
            session.interrupted = lambda: interrupted
            outcome = await self._drive(session)
            if not bridge.failure:
                with contextlib.suppress(Exception):
                    state["parameters_at_end"] = await self._values(bridge, rel)
        except AgentError as e:
            code = KERNEL_FAILURE if bridge.failure else _code_for(e.code)
            status = "kernel_failed" if code == KERNEL_FAILURE else "failed"
            outcome = Outcome(job, status, code, e.message, trace=trace.path)
        except ToolError as e:  # the kernel failed before the agent started
            outcome = Outcome(job, "kernel_failed", KERNEL_FAILURE, e.message, trace=trace.path)
        except StoppedEarly:
            outcome = Outcome(job, "interrupted", INTERRUPTED, "stopped (Ctrl-C)", trace=trace.path)
        finally:
            self.stops.pop(job.output, None)
            await engine.close()
            state["environment"] = await _result_of(state.get("environment_task"), 10.0)
            state["stopped"] = bridge.output.stopped or bridge.stopped
            state["answers"] = router.answers
            if tool_source is not None:
                for problem in tool_source.problems(told=reported):
                    trace.write("notice", code="mcp_unavailable", message=problem)
                await tool_source.close()
            for kid in bridge.kernels.own.values():
                self.desk.remove(kid)
            with contextlib.suppress(Exception):
                await bridge.kernels.shutdown()
            await router.aclose()
            engine.fanout.flush()
            store.close()
        self._finalise(job, before, outcome, state, started, trace)
        return outcome

    async def _drive(self, session: Session) -> Outcome:
        """The agent's work once the notebook has run: here, one turn towards the goal
        (``jupyter aiide fix`` drives several, see ``fix.py``)."""
        job, state = session.job, session.state
        text = goal_text(job, session.rel, session.bridge, session.prepared, state["earlier"])
        await session.converse(text)
        failure = session.bridge.failure
        return self._outcome(job, state, session.interrupted(), failure, session.trace)

    def _notice(self, job: Job, trace: Trace, code: str, message: str) -> None:
        """Something the run's user should know, in the trace and on the terminal."""
        trace.write("notice", code=code, message=message)
        if self.listener is not None:
            self.listener(job, {"type": "notice", "code": code, "message": message}, None)

    async def _prepare(self, bridge: Any, rel: str) -> Prepared:
        """Run the notebook as papermill does before the agent starts: every code cell in
        order (the defaults, the injected parameters, the rest), stopping at an error."""
        nb = await bridge.load(rel)
        wanted = {bridge.parameters_id, bridge.injected_id}
        cells = [
            c["id"]
            for c in nb["cells"]
            if c.get("cell_type") == "code" and (self.execute or c["id"] in wanted)
        ]
        route = Route("headless", "prepare", self.caller.username)
        prepared = Prepared()
        for cell_id in cells:
            try:
                result = await bridge.run_as_is(cell_id, route)
            except ToolError as e:
                if e.code != "kernel_not_sandboxed":
                    raise
                # the notebook's own code is not run outside the sandbox either
                prepared.not_run = e.message
                break
            prepared.ran.append(cell_id)
            if result.status != "ok":
                errors = [o for o in result.outputs if o.get("output_type") == "error"]
                error: dict[str, Any] = errors[0] if errors else {}
                prepared.failed = cell_id
                prepared.error = f"{error.get('ename', 'error')}: {error.get('evalue', '')}"
                break
        return prepared

    async def _environment(self, bridge: Any, rel: str) -> dict[str, Any]:
        """Python, platform and every installed distribution as the kernel sees them."""
        kid = await bridge.kernels.kernel_for(rel)
        try:
            result = await bridge.kernels.execute(
                kid, "", timeout=30, silent=True, user_expressions={"env": ENVIRONMENT}
            )
        except ToolError as e:
            if e.code == "kernel_not_sandboxed":
                return {}
            raise
        reply = result.user_expressions.get("env") or {}
        with contextlib.suppress(ValueError, TypeError, SyntaxError):
            import ast

            env: dict[str, Any] = ast.literal_eval(reply.get("data", {}).get("text/plain", ""))
            return env
        return {}

    async def _values(self, bridge: Any, rel: str) -> dict[str, str]:
        """The parameters as the kernel holds them (repr), for the provenance."""
        nb = await bridge.load(rel)
        names: list[str] = []
        for cell in nb["cells"]:
            if cell["id"] in (bridge.parameters_id, bridge.injected_id):
                names += [n for n in assigned_names(source_of(cell)) if n not in names]
        if not names:
            return {}
        kid = await bridge.kernels.kernel_for(rel)
        try:
            result = await bridge.kernels.execute(
                kid, "", timeout=30, silent=True, user_expressions={n: n for n in names}
            )
        except ToolError as e:
            if e.code == "kernel_not_sandboxed":
                return {}
            raise
        values = {}
        for name, reply in result.user_expressions.items():
            if reply.get("status") == "ok":
                values[name] = str(reply.get("data", {}).get("text/plain", ""))
        return values

    def _outcome(
        self,
        job: Job,
        state: dict[str, Any],
        interrupted: bool,
        kernel_failed: str | None,
        trace: Trace,
    ) -> Outcome:
        run: Run = state["run"]
        final = state["final"] or {}
        status = final.get("status", run.state)
        error = run.error or {}
        out = Outcome(job, status, OK, run_id=run.id, usage=run.usage(), trace=trace.path)
        out.answer = str(final.get("text") or run.text or "")
        if interrupted:
            out.status, out.exit_code, out.message = "interrupted", INTERRUPTED, "stopped (Ctrl-C)"
        elif kernel_failed:  # whatever the model said after, the run did not complete
            out.status, out.exit_code, out.message = "kernel_failed", KERNEL_FAILURE, kernel_failed
        elif state["stop"]:
            out.status, out.exit_code, out.message = "policy_stop", POLICY_STOP, state["stop"]
        elif status != "completed":
            out.exit_code = _code_for(error.get("code", ""))
            out.message = error.get("message", status)
        return out

    def _finalise(
        self,
        job: Job,
        before: dict[str, Any],
        outcome: Outcome,
        state: dict[str, Any],
        started: float,
        trace: Trace,
    ) -> None:
        """Provenance into the saved notebook, whatever happened (partial work is kept)."""
        from .files import changed_files, sha256_of  # lazy: for a run only, as in _build

        nb = read_notebook(job.output)
        keep_partial_outputs(nb, state.get("stopped"))
        run_id = outcome.run_id or "none"
        marked = mark_cells(before, nb, run_id)
        ignore = {
            os.path.relpath(p, job.folder).replace(os.sep, "/") for p in (job.output, trace.path)
        }
        checkpoints = getattr(state.get("steps"), "checkpoints", {})
        written = changed_files(job.folder, state["files_before"], ignore, checkpoints)
        used = state.get("parameters_used") or {}
        extra: dict[str, Any] = {}
        if state.get("parameters_at_end", used) != used:
            extra["parameters_at_end"] = state["parameters_at_end"]
        if state.get("overwritten"):
            extra["replaced_checkpoint"] = state["overwritten"]
        if state.get("earlier"):
            extra["resumed_from"] = {
                k: state["earlier"].get(k) for k in ("run_id", "status", "exit_code", "trace")
            }
        add_provenance(
            nb,
            {
                "run_id": run_id,
                "goal": job.goal,
                **_model_record(job, state, self),
                "aiide_version": __version__,
                "policy": self.policy_file.describe(),
                "parameters": job.params,
                "parameters_used": used,
                **extra,
                **state.get("record", {}),
                "input": os.path.abspath(job.notebook),
                "input_sha256": sha256_of(job.notebook),
                "cwd": job.folder,
                "files_written": written,
                "started": _iso(started),
                "finished": _iso(time.time()),
                "usage": outcome.usage,
                "status": outcome.status,
                "exit_code": outcome.exit_code,
                "message": outcome.message,
                "answer": outcome.answer,
                "cells_written": marked,
                "trace": os.path.basename(trace.path),
            },
        )
        write_notebook(job.output, nb)
        trace.write(
            "end",
            # the saved notebook without its outputs: replay -o needs nothing beside the trace
            notebook={**nb, "cells": [_without_outputs(c) for c in nb["cells"]]},
            output_sha256=sha256_of(job.output),
            files_written=written,
            status=outcome.status,
            exit_code=outcome.exit_code,
            message=outcome.message,
            usage=outcome.usage,
            run_id=outcome.run_id,
        )


#: Evaluated in the kernel (a user expression: no history, no output).
ENVIRONMENT = (
    "{'python': __import__('sys').version, 'platform': __import__('platform').platform(), "
    "'packages': dict(sorted((d.metadata['Name'], d.version) for d in "
    "__import__('importlib.metadata').metadata.distributions() if d.metadata['Name']))}"
)


async def _result_of(task: asyncio.Future[Any] | None, wait: float) -> Any:
    """A side task's result if it finishes in time (else None: cancelled)."""
    if task is None:
        return None
    await asyncio.wait({task}, timeout=wait)
    if not task.done():
        task.cancel()
        return None
    return None if task.cancelled() or task.exception() else task.result()


def _sdks_of(router: Any) -> list[str]:
    """The heavy provider SDKs the run's models use (the OpenAI-compatible one is httpx)."""
    kinds = {str(router.provider_specs.get(m.provider, {}).get("kind", "")) for m in router.models}
    return ["anthropic"] if "anthropic" in kinds else []


def _import_all(modules: list[str]) -> None:
    import importlib

    for name in modules:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _prices(config: Config) -> Any:
    """The gateway's price table (``c.Gateway.model_prices``), for the run's cost."""
    from ..gateway.metering import Prices  # lazy: the gateway's price table, for a run only

    try:
        return Prices.from_config(
            dict(config.Gateway.get("model_prices") or {}),
            0.0,
            0.0,
            [],
            str(config.Gateway.get("currency") or "USD"),
        )
    except (ValueError, TypeError):
        return None


def models_summary(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Which models answered, as reported, and how many steps each."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for a in answers:
        key = (a["name"], a["provider"], a["model"], a["reported_model"], a["fingerprint"])
        row = rows.setdefault(key, {**{k: a[k] for k in ("name", "provider", "model")}, "steps": 0})
        row.update(reported_model=a["reported_model"], fingerprint=a["fingerprint"])
        row["steps"] += 1
    return list(rows.values())


def _fresh_state(job: Job, overwritten: str | None, earlier: Any) -> dict[str, Any]:
    """What a run gathers for its record, before it starts."""
    return {
        "run": None,
        "final": None,
        "stop": None,
        "model": job.model,
        "overwritten": overwritten,
        "earlier": earlier if isinstance(earlier, dict) else None,
        "files_before": {},
        #: Told of every event of the run, and of Ctrl-C (what ``_drive`` adds).
        "hooks": [],
        "on_stop": [],
    }


def _without_outputs(cell: dict[str, Any]) -> dict[str, Any]:
    if cell.get("cell_type") != "code":
        return cell
    return {**cell, "outputs": [], "execution_count": None}


def keep_partial_outputs(nb: dict[str, Any], stopped: Any) -> None:
    """The outputs a cell printed before Ctrl-C stopped it, into that cell (unless it
    changed meanwhile)."""
    if not stopped or not stopped[0]:
        return
    cell_id, source, outputs = stopped
    for cell in nb["cells"]:
        if cell.get("id") == cell_id and source_of(cell) == source:
            note = "[stopped (Ctrl-C) while running: the outputs above are partial]\n"
            cell["outputs"] = [*outputs, {"output_type": "stream", "name": "stderr", "text": note}]


def _model_record(job: Job, state: dict[str, Any], runner: HeadlessRunner) -> dict[str, Any]:
    """The models of the run as they answered (a fallback shows), the settings asked for,
    and what the steps cost."""
    answers: list[dict[str, Any]] = state.get("answers") or []
    models = models_summary(answers)
    main = max(models, key=lambda m: m["steps"]) if models else None
    costs = [a["cost"] for a in answers if "cost" in a]
    return {
        "model": main["name"] if main else state["model"],
        "provider": main["provider"] if main else state.get("provider"),
        "model_requested": job.model,
        "fallback_allowed": job.model is None or runner.allow_fallback,
        "models": models,
        "model_steps": answers,
        "temperature": runner.temperature,
        "cost": round(sum(costs), 6) if costs else None,
        "environment": state.get("environment") or {},
        "seeds": {k: v for k, v in (state.get("parameters_used") or {}).items() if "seed" in k},
    }


def _code_for(code: str) -> int:
    if code.startswith(MODEL_CODES):
        return MODEL_FAILURE
    if code in ("kernel_died", "kernel_failed"):
        return KERNEL_FAILURE
    if code in ("limit_exceeded", "approval_expired"):
        return POLICY_STOP
    return MODEL_FAILURE if code in ("internal", "interrupted") else POLICY_STOP


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
