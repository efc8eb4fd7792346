"""How a build shows its stages: a live ``rich`` display on a terminal, one line per stage
in logs (CI, ``make``), nothing when asked to be quiet.

A first build takes about half a minute; a silent wait that long looks like a hang.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any


def _count(completed: float, total: float | None, unit: str) -> str:
    if unit == "bytes":
        done = f"{completed / 1e6:.0f}"
        return f"{done}/{total / 1e6:.0f} MB" if total else f"{done} MB"
    return f"{completed:.0f}/{total:.0f}" if total else f"{completed:.0f}"


class Reporter:
    """Receives the build's stages. This base class shows nothing (``--quiet``)."""

    def begin(self, title: str) -> None:
        """The build starts (called once, before any stage)."""

    def start(self, key: str, description: str, total: float | None = None, unit: str = "") -> None:
        """A stage starts; ``total`` is None while the amount of work is unknown."""

    def update(
        self, key: str, *, advance: float = 0, total: float | None = None, detail: str | None = None
    ) -> None:
        """Progress within a stage; ``detail`` names the item being worked on."""

    def finish(self, key: str, summary: str = "") -> None:
        """A stage ended; ``summary`` says what it did."""

    def end(self, message: str) -> None:
        """The build succeeded."""

    def close(self) -> None:
        """Release the display, success or not."""


class _Stage:
    def __init__(self, description: str, total: float | None, unit: str) -> None:
        self.description = description
        self.total = total
        self.unit = unit
        self.completed = 0.0
        self.started = time.monotonic()


class PlainReporter(Reporter):
    """One line per finished stage, with its duration: readable in CI logs."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.stages: dict[str, _Stage] = {}
        self.t0 = time.monotonic()

    def _print(self, text: str) -> None:
        print(
            f"[aiide image {time.monotonic() - self.t0:5.1f}s] {text}", file=self.stream, flush=True
        )

    def begin(self, title: str) -> None:
        self.t0 = time.monotonic()
        self._print(title)

    def start(self, key: str, description: str, total: float | None = None, unit: str = "") -> None:
        self.stages[key] = _Stage(description, total, unit)

    def update(
        self, key: str, *, advance: float = 0, total: float | None = None, detail: str | None = None
    ) -> None:
        stage = self.stages.get(key)
        if stage is not None:
            stage.completed += advance
            if total is not None:
                stage.total = total

    def finish(self, key: str, summary: str = "") -> None:
        stage = self.stages.pop(key, None)
        if stage is None:
            return
        took = time.monotonic() - stage.started
        what = summary or _count(stage.completed, stage.total, stage.unit)
        self._print(f"{stage.description}: {what} ({took:.1f} s)")

    def end(self, message: str) -> None:
        self._print(message)


class RichReporter(Reporter):
    """A live progress display: one bar per stage, the current package beside it."""

    def __init__(self, console: Any) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console
        self.progress = Progress(
            SpinnerColumn(finished_text="[green]✓"),
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            TextColumn("{task.fields[count]}", justify="right"),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[detail]}"),
            console=console,
        )
        self.tasks: dict[str, Any] = {}
        self.stages: dict[str, _Stage] = {}

    def begin(self, title: str) -> None:
        self.console.print(f"[bold]{title}")
        self.progress.start()

    def start(self, key: str, description: str, total: float | None = None, unit: str = "") -> None:
        self.stages[key] = _Stage(description, total, unit)
        self.tasks[key] = self.progress.add_task(
            description, total=total, count=_count(0, total, unit), detail=""
        )

    def update(
        self, key: str, *, advance: float = 0, total: float | None = None, detail: str | None = None
    ) -> None:
        stage = self.stages.get(key)
        if stage is None:
            return
        stage.completed += advance
        if total is not None:
            stage.total = total
        fields: dict[str, Any] = {"count": _count(stage.completed, stage.total, stage.unit)}
        if detail is not None:
            fields["detail"] = detail
        self.progress.update(
            self.tasks[key], completed=stage.completed, total=stage.total, **fields
        )

    def finish(self, key: str, summary: str = "") -> None:
        stage = self.stages.pop(key, None)
        if stage is None:
            return
        done = max(stage.completed, stage.total or 0, 1)
        self.progress.update(
            self.tasks[key],
            total=done,
            completed=done,
            count="",
            detail=summary,
        )
        self.progress.stop_task(self.tasks[key])

    def end(self, message: str) -> None:
        self.progress.stop()
        self.console.print(message)

    def close(self) -> None:
        self.progress.stop()


def make_reporter(progress: bool) -> Reporter:
    """A rich display on a terminal, plain lines otherwise, nothing when not wanted."""
    if not progress:
        return Reporter()
    from rich.console import Console

    console = Console(stderr=True)
    if console.is_terminal:
        return RichReporter(console)
    return PlainReporter(sys.stderr)
