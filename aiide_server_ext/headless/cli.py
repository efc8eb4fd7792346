"""``jupyter aiide run`` (one notebook or a batch), ``fix`` (the fix loop), ``replay``,
``diff`` and ``export``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any

from .startup import defer_slow_imports

defer_slow_imports()  # before anything below loads jsonschema

from rich.markup import escape  # noqa: E402

from .config import load_config, local_user  # noqa: E402
from .notebook import BadInput, output_path, parse_param  # noqa: E402
from .policy_file import PolicyFile, PolicyFileError  # noqa: E402
from .record import diff_command as diff  # noqa: E402
from .record import export_run  # noqa: E402
from .replay import replay  # noqa: E402
from .runner import BAD_INPUT, INTERRUPTED, HeadlessRunner, Job, Outcome  # noqa: E402

SEVERITY = [INTERRUPTED, 5, 4, 3, BAD_INPUT, 1, 0]


def register_cli(sub: Any) -> None:
    run = sub.add_parser("run", help="let the agent work on notebooks, headless")
    run.add_argument("notebooks", nargs="+", metavar="NOTEBOOK")
    run.add_argument("--goal", required=True, help="what the agent should achieve")
    run.add_argument(
        "--model",
        help="model name (c.Agent.models); only this model answers (see --allow-fallback); "
        "default: the router's pick, with its fallbacks",
    )
    run.add_argument(
        "--allow-fallback",
        action="store_true",
        help="with --model: when it fails, let the next configured model answer",
    )
    run.add_argument("--temperature", type=float, help="sampling temperature of every model call")
    run.add_argument("--policy", help="policy file (TOML or JSON; see docs/headless.md)")
    run.add_argument("--max-steps", type=int, help="model calls per run (c.ToolPolicy.max_steps)")
    run.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE")
    run.add_argument("--param-sets", metavar="FILE", help="JSON list (or JSON lines) of params")
    run.add_argument("--jobs", "-j", type=int, default=2, help="runs at a time (batch)")
    out = run.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", help="output notebook, or folder for a batch")
    out.add_argument("--inplace", action="store_true", help="overwrite the input notebook")
    run.add_argument("--config", help="a Jupyter config file (.py or .json) to load as well")
    run.add_argument(
        "--kernel",
        help="kernel name (default: c.Agent.kernel_name); the agent runs code only in a "
        "sandboxed one unless c.ToolPolicy.allow_unsandboxed_kernels",
    )
    run.add_argument(
        "--execute-timeout",
        type=float,
        metavar="SECONDS",
        help="longest a cell may run (c.Agent.execute_timeout, 120 s); past it the kernel "
        "is interrupted (restarted if it does not answer) and the partial outputs kept",
    )
    again = run.add_mutually_exclusive_group()
    again.add_argument(
        "--skip-existing",
        action="store_true",
        help="skip runs whose output exists and completed (others run again from the input)",
    )
    again.add_argument(
        "--resume",
        action="store_true",
        help="skip completed runs; carry on from the output of runs that did not complete",
    )
    run.add_argument(
        "--json",
        action="store_true",
        help="print a JSON summary (status, exit code, final answer... per run) on stdout",
    )
    run.add_argument("--store-prompts", action="store_true", help="whole prompts in the trace")
    run.add_argument("--yes", action="store_true", help="approve every 'approve' call")
    run.add_argument("--no-input", action="store_true", help="never ask at the terminal")
    run.set_defaults(func=run_command)

    fix = sub.add_parser(
        "fix",
        help="fix a notebook's error and verify the fix (exit 0 only when verified)",
    )
    fix.add_argument("notebooks", nargs="+", metavar="NOTEBOOK")
    fix.add_argument("--cell", help="the cell whose error to fix (default: the first error)")
    fix.add_argument(
        "--max-attempts", type=int, default=3, help="patches tried before giving up (3)"
    )
    fix.add_argument(
        "--token-budget",
        type=int,
        default=0,
        help="input+output tokens the loop may spend (default 0: no limit)",
    )
    fix.add_argument("--policy", help="policy file (TOML or JSON; see docs/headless.md)")
    fix.add_argument("--model", help="model name (c.Agent.models)")
    fix.add_argument("--max-steps", type=int, help="model calls per attempt")
    fix.add_argument("--jobs", "-j", type=int, default=2, help="notebooks at a time")
    fix_out = fix.add_mutually_exclusive_group()
    fix_out.add_argument("-o", "--output", help="output notebook, or folder for several")
    fix_out.add_argument("--inplace", action="store_true", help="overwrite the input notebook")
    fix.add_argument("--config", help="a Jupyter config file (.py or .json) to load as well")
    fix.add_argument("--kernel", help="kernel name (default: c.Agent.kernel_name)")
    fix.add_argument(
        "--execute-timeout",
        type=float,
        metavar="SECONDS",
        help="longest a cell may run (c.Agent.execute_timeout); past it the kernel is "
        "interrupted and the timeout is the error the loop fixes",
    )
    fix.add_argument("--json", action="store_true", help="a JSON summary with every attempt")
    fix.add_argument("--yes", action="store_true", help="approve every 'approve' call")
    fix.add_argument("--no-input", action="store_true", help="never ask at the terminal")
    fix.set_defaults(func=fix_command)

    replay = sub.add_parser("replay", help="re-execute a run's cells from its trace, no model")
    replay.add_argument("trace")
    replay.add_argument("-o", "--output", help="write the notebook with the replayed outputs")
    replay.add_argument("--config", help="a Jupyter config file (.py or .json) to load as well")
    replay.add_argument("--kernel", help="kernel name (default: the one recorded)")
    replay.set_defaults(func=replay_command)

    diff = sub.add_parser("diff", help="compare two runs: parameters, models, cells, outputs")
    diff.add_argument("run_a", metavar="RUN_A", help="a run's output notebook (or its trace)")
    diff.add_argument("run_b", metavar="RUN_B")
    diff.add_argument("--json", action="store_true", help="the differences as JSON")
    diff.set_defaults(func=diff_command)

    export = sub.add_parser(
        "export", help="one archive to cite: the notebook, its trace and its record"
    )
    export.add_argument("run", metavar="RUN", help="a run's output notebook (or its trace)")
    export.add_argument("-o", "--output", help="the archive (default: RUN.zip)")
    export.set_defaults(func=export_command)


def _param_sets(args: argparse.Namespace) -> list[dict[str, Any]]:
    base = dict(parse_param(p) for p in args.param)
    if not args.param_sets:
        return [base]
    try:
        with open(args.param_sets, encoding="utf-8") as f:
            text = f.read()
        data = (
            json.loads(text)
            if text.lstrip().startswith("[")
            else [json.loads(line) for line in text.splitlines() if line.strip()]
        )
    except (OSError, ValueError) as e:
        raise BadInput(f"--param-sets {args.param_sets!r}: {e}") from None
    if not data or not all(isinstance(d, dict) for d in data):
        raise BadInput("--param-sets must hold a non-empty list of JSON objects")
    return [{**base, **d} for d in data]


def _jobs(args: argparse.Namespace) -> list[Job]:
    sets = _param_sets(args)
    many = len(args.notebooks) * len(sets) > 1
    if many and args.output and not os.path.isdir(args.output):
        raise BadInput("-o must be an existing folder when running several notebooks or sets")
    jobs: list[Job] = []
    for nb in args.notebooks:
        if not os.path.isfile(nb):
            raise BadInput(f"no notebook {nb!r}")
        for i, params in enumerate(sets):
            index = i if len(sets) > 1 else None
            again = args.skip_existing or args.resume
            out = output_path(nb, args.output, args.inplace, index, existing_ok=again)
            label = os.path.basename(nb) + (f" #{i}" if index is not None else "")
            jobs.append(Job(nb, out, args.goal, params, args.model, label))
    outputs = [j.output for j in jobs]
    if len(set(outputs)) != len(outputs):
        raise BadInput("two runs would write the same output: use -o FOLDER")
    return jobs


def _already_done(job: Job, skip: bool) -> Outcome | None:
    """With --skip-existing/--resume: the outcome of an earlier run that completed."""
    if not skip or not os.path.isfile(job.output):
        return None
    try:
        with open(job.output, encoding="utf-8") as f:
            record = json.load(f).get("metadata", {}).get("aiide") or {}
    except (OSError, ValueError, AttributeError):
        return None
    if record.get("exit_code") != 0 or record.get("parameters") != job.params:
        return None
    return Outcome(
        job,
        "skipped",
        0,
        "completed earlier",
        run_id=record.get("run_id"),
        usage=record.get("usage") or {},
        answer=str(record.get("answer") or ""),
    )


def run_command(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(stderr=True)
    try:
        return asyncio.run(_run(args, console))
    except BadInput as e:
        console.print(f"[red]error:[/] {escape(str(e))}")
        return BAD_INPUT


async def _run(args: argparse.Namespace, console: Any) -> int:
    from .display import Display, summary  # lazy: rich's live display, for a run only

    try:
        policy = PolicyFile.load(args.policy)
    except PolicyFileError as e:
        raise BadInput(str(e)) from None
    if args.yes:
        policy.approvals.setdefault("default", "approve")
    if args.max_steps is not None and args.max_steps < 1:
        raise BadInput("--max-steps must be at least 1")
    jobs = _jobs(args)
    config = load_config(args.config)
    if args.execute_timeout is not None:
        if args.execute_timeout <= 0:
            raise BadInput("--execute-timeout must be a positive number of seconds")
        config.Agent.execute_timeout = args.execute_timeout
    interactive = sys.stdin.isatty() and not args.no_input
    max_steps = args.max_steps or policy.limits.get("max_steps") or 20
    with Display(console, max_steps, policy, interactive) as display:
        runner = HeadlessRunner(
            config,
            policy,
            approver=display.approve,
            listener=display.event,
            max_steps=args.max_steps,
            store_prompts=args.store_prompts,
            kernel_name=args.kernel,
            username=local_user(),
            allow_fallback=args.allow_fallback,
            temperature=args.temperature,
        )
        _on_interrupt(runner, console)
        limit = asyncio.Semaphore(max(1, args.jobs))

        async def one(job: Job) -> Outcome:
            done = _already_done(job, args.skip_existing or args.resume)
            if done is not None:
                return done
            job.resume = args.resume and os.path.isfile(job.output)
            async with limit:
                if runner.stopping:  # Ctrl-C: queued runs do not start
                    return Outcome(job, "not_started", INTERRUPTED, "stopped (Ctrl-C)")
                display.add(job)
                outcome = await runner.run(job)
                display.done(job, outcome)
            if outcome.answer:
                console.print(f"[bold]{escape(job.label)}:[/] {escape(outcome.answer[:4000])}")
            return outcome

        outcomes = await asyncio.gather(*(one(j) for j in jobs))
    for o in outcomes:
        if o.exit_code:
            console.print(f"[red]{escape(o.job.label)}:[/] {escape(f'{o.status}: {o.message}')}")
    if len(outcomes) > 1 or console.is_terminal:
        summary(console, list(outcomes))
    if args.json:
        print(json.dumps([o.summary() for o in outcomes], indent=1, default=str))
    else:
        for o in outcomes:
            print(o.job.output)
    return next(c for c in SEVERITY if any(o.exit_code == c for o in outcomes) or c == 0)


def _on_interrupt(runner: Any, console: Any) -> None:
    loop = asyncio.get_running_loop()
    pressed = 0

    def handler() -> None:
        nonlocal pressed
        pressed += 1
        if pressed > 1:
            os._exit(INTERRUPTED)
        console.print("[yellow]stopping: saving what was done (Ctrl-C again to quit now)")
        runner.stop_all()

    loop.add_signal_handler(signal.SIGINT, handler)
    loop.add_signal_handler(signal.SIGTERM, handler)


def fix_command(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .fix import fix_notebooks  # lazy: the fix loop, for this command only

    console = Console(stderr=True)
    try:
        return asyncio.run(fix_notebooks(args, console, _on_interrupt))
    except BadInput as e:
        console.print(f"[red]error:[/] {escape(str(e))}")
        return BAD_INPUT


def replay_command(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(stderr=True)
    try:
        return asyncio.run(replay(args.trace, args.output, args.config, args.kernel, console))
    except BadInput as e:
        console.print(f"[red]error:[/] {escape(str(e))}")
        return BAD_INPUT


def diff_command(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(stderr=True)
    try:
        return diff(args.run_a, args.run_b, args.json, console)
    except BadInput as e:
        console.print(f"[red]error:[/] {escape(str(e))}")
        return BAD_INPUT


def export_command(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(stderr=True)
    archive = args.output or os.path.splitext(args.run)[0] + ".zip"
    try:
        digest = export_run(args.run, archive)
    except BadInput as e:
        console.print(f"[red]error:[/] {escape(str(e))}")
        return BAD_INPUT
    print(f"{digest}  {archive}")
    return 0
