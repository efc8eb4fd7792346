"""Indexing jobs: what the progress bar shows and what the job report says.

Embedding runs at tens of chunks per second on a laptop CPU, so indexing is always a
background job with a report (files done/total, chunks, per-file reasons), never a
request the UI waits on. Two lanes: bulk indexing, and quick single-file updates
(saves, renames) that must not wait behind a whole-workspace job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

MAX_LISTED = 200  # per-file reasons kept in a report; totals count all

log = logging.getLogger(__name__)


@dataclass
class Job:
    user: str
    path: str
    trigger: str  # request | save | rename | delete | model-change
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    status: str = "queued"  # queued | running | done | failed
    files_total: int = 0
    files_done: int = 0
    chunks_added: int = 0
    chunks_updated: int = 0
    chunks_removed: int = 0
    chunks_unchanged: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    errors_total: int = 0
    skipped_total: int = 0
    ignored: int = 0
    detail: str = ""
    #: Why a failed job failed, for the UI to put in words (``detail`` is for admins:
    #: it may name server paths): model_unavailable | model_install_failed | internal.
    code: str = ""
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def error(self, path: str, reason: str) -> None:
        self.errors_total += 1
        if len(self.errors) < MAX_LISTED:
            self.errors.append({"path": path, "reason": reason})

    def skip(self, path: str, reason: str) -> None:
        self.skipped_total += 1
        if len(self.skipped) < MAX_LISTED:
            self.skipped.append({"path": path, "reason": reason})

    def as_dict(self) -> dict[str, Any]:
        seconds = None
        if self.started is not None:
            seconds = round((self.finished or time.time()) - self.started, 3)
        return {
            "id": self.id,
            "path": self.path,
            "trigger": self.trigger,
            "status": self.status,
            "progress": {"files_done": self.files_done, "files_total": self.files_total},
            "chunks": {
                "added": self.chunks_added,
                "updated": self.chunks_updated,
                "removed": self.chunks_removed,
                "unchanged": self.chunks_unchanged,
            },
            "errors": self.errors,
            "errors_total": self.errors_total,
            "skipped": self.skipped,
            "skipped_total": self.skipped_total,
            "ignored": self.ignored,
            "detail": self.detail,
            "code": self.code,
            "created": self.created,
            "seconds": seconds,
        }


Work = Callable[[Job], Awaitable[None]]


class JobQueue:
    """Runs jobs one at a time per lane, keeps the last reports, and tells listeners."""

    LANES = ("bulk", "quick")

    def __init__(self, keep: int = 100, on_progress: Callable[[Job], None] | None = None):
        self.keep = keep
        self.on_progress = on_progress
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queues: dict[str, asyncio.Queue[tuple[Job, Work]]] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._last_emit: dict[str, float] = {}

    def submit(self, job: Job, work: Work, lane: str = "bulk") -> Job:
        if lane not in self._queues:
            self._queues[lane] = asyncio.Queue()
            task = asyncio.get_running_loop().create_task(self._worker(lane))
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)
        self._jobs[job.id] = job
        while len(self._jobs) > self.keep:
            oldest = next(iter(self._jobs.values()))
            if oldest.status in ("queued", "running"):
                break
            self._jobs.popitem(last=False)
        self._queues[lane].put_nowait((job, work))
        self.progress(job, force=True)
        return job

    def pending(self, user: str, path: str, trigger: str) -> Job | None:
        """A queued job doing the same thing (two saves in a row index once)."""
        for job in self._jobs.values():
            if (job.status, job.user, job.path, job.trigger) == ("queued", user, path, trigger):
                return job
        return None

    def active(self) -> bool:
        return any(j.status in ("queued", "running") for j in self._jobs.values())

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def of(self, user: str) -> list[Job]:
        return [j for j in self._jobs.values() if j.user == user]

    def progress(self, job: Job, force: bool = False) -> None:
        """Throttled to a few updates a second: enough for a progress bar."""
        now = time.monotonic()
        if self.on_progress is None:
            return
        if force or now - self._last_emit.get(job.id, 0.0) >= 0.25:
            self._last_emit[job.id] = now
            with contextlib.suppress(Exception):
                self.on_progress(job)

    async def _worker(self, lane: str) -> None:
        queue = self._queues[lane]
        while True:
            job, work = await queue.get()
            job.status, job.started = "running", time.time()
            self.progress(job, force=True)
            try:
                await work(job)
                job.status = "failed" if job.detail.startswith("failed") else "done"
            except asyncio.CancelledError:
                job.status, job.detail = "failed", "failed: server stopping"
                raise
            except Exception as e:  # a job never takes the worker down with it
                job.status, job.detail = "failed", f"failed: {type(e).__name__}: {e}"
                job.code = "internal"
                log.exception("knowledge: job %s (%s) failed", job.id, job.path or "/")
            finally:
                job.finished = time.time()
                job.done.set()
                self._last_emit.pop(job.id, None)
                self.progress(job, force=True)
                queue.task_done()

    async def stop(self) -> None:
        for task in list(self._workers):
            task.cancel()
        for task in list(self._workers):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
