"""Why kernels died, kept for the UI: an OOM-killed kernel sends nothing itself."""

from __future__ import annotations

import collections
import datetime
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger("aiide.kernel")

#: Receives lifecycle facts: {"event": "started"|"stopped", "kernel_id", "backend",
#: "memory_bytes", and for "stopped" "wall_seconds" and "exit_code"}. Used by metering.
LifecycleListener = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class KernelEvent:
    time: str
    kind: str
    message: str


class KernelEvents:
    """In-process record of kernel deaths, per kernel id (bounded)."""

    _instance: KernelEvents | None = None
    max_events_per_kernel = 20
    max_kernels = 1000

    def __init__(self) -> None:
        self._events: collections.OrderedDict[str, list[KernelEvent]] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._listeners: list[LifecycleListener] = []

    def subscribe(self, listener: LifecycleListener) -> Callable[[], None]:
        """Listen to kernel starts and stops; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def lifecycle(self, fact: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            try:
                listener(fact)
            except Exception:  # a broken listener must not break kernels
                log.exception("aiide: kernel lifecycle listener failed")

    @classmethod
    def instance(cls) -> KernelEvents:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def record(self, kernel_id: str, kind: str, message: str) -> KernelEvent:
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
        event = KernelEvent(now, kind, message)
        with self._lock:
            events = self._events.setdefault(kernel_id, [])
            events.append(event)
            del events[: -self.max_events_per_kernel]
            self._events.move_to_end(kernel_id)
            while len(self._events) > self.max_kernels:
                self._events.popitem(last=False)
        return event

    def for_kernel(self, kernel_id: str) -> list[dict[str, str]]:
        with self._lock:
            return [asdict(e) for e in self._events.get(kernel_id, [])]
