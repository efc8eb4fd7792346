"""Kernel time, attributed to whoever started the kernel.

The sandbox provisioner reports starts and stops (``KernelEvents`` lifecycle
facts) without knowing who asked. A start runs inside the request that caused
it, so jupyter_server's ``CallContext`` still holds that request's handler: its
caller owns the kernel. Kernels started with no request around them (the warm
pool, restarts after a crash) belong to their previous owner or the server owner.

The whole caller is kept too (``started_by``): ``%ai`` in that kernel answers as the
identity that started it, with its scopes, roles and limits, not as the server owner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiide_server_ext.seams import Caller

from ..stores.errors import StoreError
from .errors import GatewayError
from .metering import UsageMeter

log = logging.getLogger("aiide.gateway")

Owner = tuple[str, frozenset[str]]


class KernelMeter:
    def __init__(
        self,
        meter: UsageMeter,
        owner_of: Callable[[Any], Owner],
        default_owner: str,
        caller_of: Callable[[Any], Caller] | None = None,
    ) -> None:
        self.meter = meter
        self.owner_of = owner_of
        self.caller_of = caller_of
        self.default_owner = default_owner
        self._owners: OrderedDict[str, Owner] = OrderedDict()
        #: kernel id -> (who started it, when): bounded like ``_owners``.
        self._callers: OrderedDict[str, tuple[Caller, float]] = OrderedDict()
        self._running: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def on_lifecycle(self, fact: dict[str, Any]) -> None:
        kernel_id = str(fact.get("kernel_id", ""))
        if fact.get("event") == "started":
            self._started(kernel_id)
        elif fact.get("event") == "stopped":
            self._stopped(kernel_id, fact)

    def _started(self, kernel_id: str) -> None:
        from jupyter_server.base.call_context import CallContext

        handler = CallContext.get(CallContext.JUPYTER_HANDLER)
        if handler is not None and getattr(handler, "current_user", None):
            try:
                self._owners[kernel_id] = self.owner_of(handler)
                # The first start only: a restart by someone else (an admin) must not
                # lend their identity to the code of the kernel's starter.
                if self.caller_of is not None and kernel_id not in self._callers:
                    self._callers[kernel_id] = (self.caller_of(handler), time.time())
            except Exception:
                log.warning("aiide gateway: kernel %s: owner unknown", kernel_id, exc_info=True)
        self._owners.setdefault(kernel_id, (self.default_owner, frozenset()))
        self._owners.move_to_end(kernel_id)
        while len(self._owners) > 10000:
            self._owners.popitem(last=False)
        if kernel_id in self._callers:
            self._callers.move_to_end(kernel_id)
        while len(self._callers) > 10000:
            self._callers.popitem(last=False)
        self._running[kernel_id] = time.monotonic()

    def _stopped(self, kernel_id: str, fact: dict[str, Any]) -> None:
        self._running.pop(kernel_id, None)
        username, groups = self._owners.get(kernel_id, (self.default_owner, frozenset()))
        record = self.meter.record_kernel(
            username,
            groups,
            kernel_id=kernel_id,
            backend=str(fact.get("backend", "")),
            wall_seconds=float(fact.get("wall_seconds") or 0.0),
            memory_bytes=int(fact.get("memory_bytes") or 0),
        )

        async def write() -> None:
            try:
                await record
            except (GatewayError, StoreError) as e:
                log.warning("aiide gateway: kernel usage not recorded: %s", e.message)

        try:
            task = asyncio.get_running_loop().create_task(write())
        except RuntimeError:  # no loop (a provisioner used outside the server)
            record.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def started_by(self, kernel_id: str) -> tuple[Caller, float] | None:
        """Who started this kernel through the server, and when (None: no request did)."""
        return self._callers.get(kernel_id)

    def running_seconds(self, username: str) -> float:
        """Wall time of this user's kernels still running (quotas count them too)."""
        now = time.monotonic()
        return sum(
            now - started
            for kernel_id, started in self._running.items()
            if self._owners.get(kernel_id, (self.default_owner,))[0] == username
        )

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
