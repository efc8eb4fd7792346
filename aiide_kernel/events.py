"""Why kernels died, kept for the UI: an OOM-killed kernel sends nothing itself."""

from __future__ import annotations

import collections
import datetime
import threading
from dataclasses import asdict, dataclass


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
