"""How long conversations and their events are kept (``c.Agent.*_retention_*``).

Events are what ``resume`` replays; every token is one, so a busy server's events table
grows without end unless something removes them. ``Retention`` asks the store to prune
(``Store.prune``) once at start and then every ``interval`` seconds, on the event loop
(the deletes are indexed and batched in one commit). A failing store is logged and tried
again at the next interval: retention never stops the server.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3

from ..stores.errors import StoreError
from .store import Store

log = logging.getLogger("aiide.agent")
DAY = 86400.0


class Retention:
    def __init__(
        self,
        store: Store,
        *,
        conversation_days: float = 0,
        max_conversations: int = 0,
        event_days: float = 0,
        interval: float = 3600.0,
    ) -> None:
        self.store = store
        self.conversation_age = max(0.0, conversation_days) * DAY
        self.max_conversations = max(0, max_conversations)
        self.event_age = max(0.0, event_days) * DAY
        self.interval = max(1.0, interval)
        self._timer: asyncio.Handle | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.conversation_age or self.max_conversations or self.event_age)

    def run(self, now: float | None = None) -> dict[str, int]:
        """Prune once; the counts of conversations and events removed."""
        pruned = self.store.prune(
            conversation_age=self.conversation_age,
            max_conversations=self.max_conversations,
            event_age=self.event_age,
            now=now,
        )
        if any(pruned.values()):
            log.info(
                "aiide: retention removed %d conversations and %d events",
                pruned["conversations"],
                pruned["events"],
            )
        return pruned

    def start(self) -> None:
        if self.enabled:
            self._timer = asyncio.get_running_loop().call_soon(self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        if self.store.closed:
            return
        try:
            self.run()
        except (StoreError, sqlite3.Error) as e:
            log.warning("aiide: retention could not prune (%s); trying again later", e)
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)
