"""What the terminal shows: a live progress line per run (steps, tokens, current tool),
approvals asked interactively, and the summary table of a batch."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn
from rich.table import Table

from ..agent.runs import Run
from .policy_file import PolicyFile
from .runner import Job, Outcome

EXIT_NAMES = {
    0: "ok",
    2: "bad input",
    3: "policy stop",
    4: "model failure",
    5: "kernel failure",
    6: "not verified",
    130: "interrupted",
}


class Display:
    def __init__(self, console: Console, max_steps: int, policy: PolicyFile, interactive: bool):
        self.console = console
        self.policy = policy
        self.interactive = interactive
        self.max_steps = max_steps
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            TextColumn("step {task.completed:.0f}/{task.total:.0f}"),
            TextColumn("{task.fields[tokens]} tokens"),
            TextColumn("[cyan]{task.fields[tool]}"),
            console=console,
        )
        self.tasks: dict[str, TaskID] = {}
        self._ask = asyncio.Lock()

    def __enter__(self) -> Display:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def add(self, job: Job) -> None:
        self.tasks[job.output] = self.progress.add_task(
            escape(job.label), total=self.max_steps, tokens=0, tool=""
        )

    def event(self, job: Job, body: dict[str, Any], run: Run | None) -> None:
        task = self.tasks.get(job.output)
        if task is None:
            return
        kind = body["type"]
        tool = None
        if kind == "tool_call":
            tool = f"{body['name']} ({body.get('decision')})"
        elif kind == "approval_required":
            tool = f"{body['name']}: waiting for approval"
        elif kind == "tool_result":
            tool = f"{body['name']} {'ok' if body.get('ok') else 'failed'}"
        elif kind == "run_finished":
            tool = body.get("status", "")
        elif kind == "notice":
            self._say("yellow", f"{job.label}: {body.get('message')}")
        elif kind == "error":
            self._say("red", f"{job.label}: {body.get('message')}")
        fields: dict[str, Any] = {}
        if tool is not None:
            fields["tool"] = escape(tool)
        if run is not None:
            fields["tokens"] = run.input_tokens + run.output_tokens
            fields["completed"] = run.steps
        self.progress.update(task, **fields)

    def done(self, job: Job, outcome: Outcome) -> None:
        """The run's line ends on its outcome, not on the model's last word (a model that
        says it completed after its kernel died did not complete)."""
        task = self.tasks.get(job.output)
        if task is not None:
            end = outcome.status + (f" (exit {outcome.exit_code})" if outcome.exit_code else "")
            self.progress.update(task, tool=escape(end))

    def _say(self, colour: str, text: str) -> None:
        """Text from a run (a model's message, a policy error): brackets are its own."""
        self.progress.console.print(f"[{colour}]{escape(text)}")

    async def approve(self, job: Job, body: dict[str, Any]) -> tuple[str, str]:
        answer = self.policy.answer_for(body["name"])
        if answer in ("approve", "reject"):
            return answer, "pre-answered by the policy file"
        if answer == "stop" or not self.interactive:
            why = "the policy file says stop" if answer == "stop" else "no terminal to ask"
            return "stop", f"{body['name']} needs approval and {why}"
        async with self._ask:
            return await self._prompt(job, body)

    async def _prompt(self, job: Job, body: dict[str, Any]) -> tuple[str, str]:
        self.progress.stop()
        try:
            args = json.dumps(body.get("arguments") or {}, indent=1)[:2000]
            self.console.print(
                f"[bold]{escape(job.label)}[/]: the agent wants [bold]{escape(body['name'])}[/] "
                f"({escape(str(body.get('risk')))} risk)\n{escape(args)}"
            )
            prompt = escape("approve? [y]es / [n]o / [q]uit: ")
            reply = (await _input(self.console, prompt)).strip()
        finally:
            self.progress.start()
        if reply.lower() in ("y", "yes"):
            return "approve", "approved at the terminal"
        if reply.lower() in ("q", "quit"):
            return "stop", "stopped at the terminal"
        return "reject", reply if reply and reply.lower() not in ("n", "no") else "rejected"


async def _input(console: Console, prompt: str) -> str:
    """Read a line without blocking the loop, in a daemon thread (Ctrl-C must not wait)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def read() -> None:
        try:
            line = console.input(prompt)
        except (EOFError, KeyboardInterrupt):
            line = "q"

        def deliver() -> None:
            if not future.done():
                future.set_result(line)

        loop.call_soon_threadsafe(deliver)

    threading.Thread(target=read, daemon=True).start()
    return await future


def summary(console: Console, outcomes: list[Outcome]) -> None:
    table = Table(title="aiide run")
    for name in ("notebook", "parameters", "status", "steps", "tokens", "exit", "output"):
        table.add_column(name)
    table.add_column("answer", overflow="fold")
    for o in outcomes:
        u = o.usage
        row = (
            o.job.notebook,
            ", ".join(f"{k}={v!r}" for k, v in o.job.params.items()),
            o.status + (f": {o.message}" if o.message else ""),
            str(u.get("steps", 0)),
            str(u.get("input_tokens", 0) + u.get("output_tokens", 0)),
            f"{o.exit_code} ({EXIT_NAMES.get(o.exit_code, '?')})",
            o.job.output,
            _first_line(o.answer, 80),
        )
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)


def _first_line(text: str, width: int) -> str:
    """The answer's first line, cut to fit a table cell (the whole is printed above)."""
    line = text.strip().split("\n", 1)[0]
    return line if len(line) <= width else line[: width - 1] + "…"
