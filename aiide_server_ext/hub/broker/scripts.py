"""One Lua script run for many callers at once: their calls share one Redis round trip.

When a class starts streaming together, 50 admissions (``state._ADMIT``) arrive within
milliseconds. Sent one by one, each took a pooled connection (the pool grew to 50 under
the burst), a write and a read, and redis-py's per-command machinery, all on the event
loop the streams need. Here every call made while a batch is in flight waits for the next
one, and each batch is one pipeline (not a transaction) of ``EVALSHA``: one write, one
read. Each script still runs atomically on its own, exactly as when sent alone, so every
admission is still one Redis round trip (a shared one) and decides on what the previous
scripts left. A script Redis has forgotten (it restarted) is loaded again and the calls
that hit ``NOSCRIPT`` are resent once.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

#: Calls sent in one pipeline at most (the rest go in the next).
MAX_BATCH = 200


class BatchedScript:
    """``await run(keys, args)`` as ``Script(keys, args)``, with concurrent calls batched.

    ``client`` returns the Redis client (``redis.asyncio.Redis``); ``unreachable`` turns
    a Redis error into the caller's exception."""

    def __init__(
        self, source: str, client: Callable[[], Any], unreachable: Callable[[Exception], Exception]
    ) -> None:
        self.source = source
        # Redis names a script by its SHA-1 (EVALSHA); not a security use.
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
        self.client = client
        self.unreachable = unreachable
        self._queue: list[tuple[list[str], list[Any], asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None
        #: Batches sent and calls in them (for tests and the log).
        self.batches = 0
        self.calls = 0

    async def run(self, keys: list[str], args: list[Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((keys, args, future))
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        """Send what is queued, one batch at a time, until nothing is."""
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                results = await self._send(batch)
            except Exception as e:
                error = self.unreachable(e)
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, _, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(self.unreachable(result))
                else:
                    future.set_result(result)

    async def _send(self, batch: list[tuple[list[str], list[Any], Any]]) -> list[Any]:
        from redis.exceptions import NoScriptError

        self.batches += 1
        self.calls += len(batch)
        results = await self._pipeline(batch)
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:  # Redis restarted and forgot the script: load it, resend those calls
            await self.client().script_load(self.source)
            again = await self._pipeline([batch[i] for i in missing])
            for i, result in zip(missing, again, strict=True):
                results[i] = result
        return results

    async def _pipeline(self, batch: list[tuple[list[str], list[Any], Any]]) -> list[Any]:
        pipe = self.client().pipeline(transaction=False)
        for keys, args, _ in batch:
            pipe.evalsha(self.sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))
