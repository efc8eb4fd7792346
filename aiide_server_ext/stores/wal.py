"""Checkpoint a busy sqlite file's write-ahead log from a thread of its own.

sqlite checkpoints automatically inside the commit that crosses 1,000 WAL pages: that
commit copies the log into the database file and syncs it, 5 to 15 ms on the committing
thread. For the agent store that thread is the event loop, committing every iteration
while hundreds of chats stream, so every few hundred milliseconds all of them stalled.
Here the store turns automatic checkpoints off and this thread runs a PASSIVE one (it
waits for no reader or writer) on its own connection when commits happened since the
last; sqlite releases the GIL while it copies and syncs, so the loop keeps serving.

Durability is unchanged: a committed transaction is in the log (``synchronous=NORMAL``
survives a killed process), whether or not it was copied into the database file yet.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger("aiide.stores")

#: Bytes the log file is cut back to after a checkpoint lets sqlite start it over.
LOG_SIZE_LIMIT = 64 << 20


def hand_off_checkpoints(raw: sqlite3.Connection) -> None:
    """Turn off the checkpoints ``raw``'s commits would run (a ``WalCheckpointer`` runs
    them instead) and keep the log file from staying at its largest size."""
    raw.execute("PRAGMA wal_autocheckpoint = 0")
    raw.execute(f"PRAGMA journal_size_limit = {LOG_SIZE_LIMIT}")


class WalCheckpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on ``path`` after ``note_commit`` calls, at
    most every ``interval`` seconds. Started on the first commit; ``close`` stops it."""

    def __init__(self, path: str, interval: float = 0.25) -> None:
        self.path = path
        self.interval = interval
        self._dirty = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: Checkpoints run, and the last one's (busy, log frames, frames copied).
        self.runs = 0
        self.last: tuple[int, int, int] | None = None

    def note_commit(self) -> None:
        """Called after each commit; cheap (sets a flag) once the thread runs."""
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._closing.is_set():
                    self._thread = threading.Thread(
                        target=self._run, name="aiide-wal-checkpoint", daemon=True
                    )
                    self._thread.start()
        self._dirty.set()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            while not self._closing.is_set():
                self._dirty.wait()
                if self._closing.is_set():
                    break
                self._dirty.clear()
                self.checkpoint(conn)
                self._closing.wait(self.interval)  # commits meanwhile wait for the next one
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as e:  # e.g. the file is gone (a test's tmp dir): try later
            log.debug("aiide: checkpoint of %s failed: %s", self.path, e)
            return
        self.runs += 1
        self.last = (int(row[0]), int(row[1]), int(row[2]))

    def close(self) -> None:
        """Stop the thread; closing the store's own connection then checkpoints the rest."""
        self._closing.set()
        self._dirty.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()
