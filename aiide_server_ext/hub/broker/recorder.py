"""Usage and audit writes of the broker, batched: one Redis round trip and one database
transaction for every call that finishes at about the same time (group commit).

A handler hands its usage figures and audit events to ``Recorder.record`` and awaits it
before its response finishes: the stream itself never waits for a write, and nothing a
student has been answered is lost if the broker dies (the response is not complete
until its usage and audit are stored). A single background task writes: while one batch
is being written the next one gathers, so under load the cost per call shrinks instead
of queueing 50 sqlite transactions behind one thread. ``close`` writes what is queued.

Failures are logged, as before batching: Redis down means usage not counted there (the
broker fails closed on the next call anyway; the database still has it, and Redis is
rebuilt from the database when it comes back empty), a database error means events not
audited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .durable import StateUnavailable
from .state import SharedState, Usage

log = logging.getLogger("aiide.broker")


@dataclass(frozen=True)
class Event:
    """One audit record (``AuditLog.append``'s arguments)."""

    actor: str | None
    action: str
    target: str
    outcome: str
    detail: Any = None


class Recorder:
    def __init__(self, state: SharedState, audit: Any, max_batch: int = 500) -> None:
        self.state = state
        self.audit = audit  # gateway.audit.AuditLog
        self.max_batch = max_batch
        self._queue: list[tuple[Sequence[Usage], Sequence[Event], asyncio.Future[None]]] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        #: Batches written and items in them (for tests and the log).
        self.batches = 0
        self.items = 0

    async def record(self, usage: Sequence[Usage] = (), events: Sequence[Event] = ()) -> None:
        """Returns once written (or the write failed and was logged)."""
        if not usage and not events:
            return
        if self._closed:  # shutting down: write directly rather than drop
            await self._write([(usage, events, None)])
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((usage, events, future))
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="aiide-broker-recorder")
        assert self._wake is not None
        self._wake.set()
        await asyncio.shield(future)  # a client hanging up must not cancel its own record

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._queue[: self.max_batch]
                del self._queue[: len(batch)]
                try:
                    await self._write(batch)
                except Exception:  # never let one bad batch stop every later response
                    log.exception("aiide broker: usage and audit batch not written")
                finally:
                    for _, _, future in batch:
                        if future is not None and not future.done():
                            future.set_result(None)
            if self._closed:
                return

    async def _write(self, batch: Sequence[tuple[Sequence[Usage], Sequence[Event], Any]]) -> None:
        usage = [u for entry in batch for u in entry[0]]
        events = [e for entry in batch for e in entry[1]]
        self.batches += 1
        self.items += len(batch)
        await asyncio.gather(self._write_usage(usage), self._write_db(usage, events))

    async def _write_usage(self, usage: list[Usage]) -> None:
        if not usage:
            return
        try:
            await self.state.apply(usage)
        except StateUnavailable as e:
            users = sorted({u.user for u in usage})
            log.warning("aiide broker: usage of %s not counted: %s", ", ".join(users), e)

    async def _write_db(self, usage: list[Usage], events: list[Event]) -> None:
        """Audit events and the usage figures the state is rebuilt from (``durable``), in
        one transaction: a call is in both records or in neither."""
        from aiide_server_ext.gateway.errors import GatewayError
        from aiide_server_ext.stores.errors import StoreError

        durable = self.state.durable
        if not events and not (usage and durable is not None):
            return

        def write(conn: Any) -> None:
            for e in events:
                self.audit.append(conn, e.actor, e.action, e.target, e.outcome, e.detail)
            if durable is not None and usage:
                durable.record(conn, usage)

        try:
            await self.audit.store.awrite(write)
        except (GatewayError, StoreError) as e:
            actions = sorted({ev.action for ev in events})
            log.warning("aiide broker: %s not audited: %s", ", ".join(actions), e)

    async def close(self) -> None:
        """Write everything queued, then stop; later records are written directly."""
        self._closed = True
        if self._task is not None and self._wake is not None:
            self._wake.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
