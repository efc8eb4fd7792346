"""The gateway's sqlite file: one connection, one worker thread, whole transactions.

Every write runs inside ``BEGIN IMMEDIATE … COMMIT`` and is rolled back on any
error, so a refusal never leaves half a change behind. sqlite failures become a
``StoreError`` with a stable code (locked, read-only, unavailable) for a clear 503,
and the file is created 0600 in a 0700 directory: it holds key hashes and audit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .errors import StoreError
from .migrations import MIGRATIONS

T = TypeVar("T")
log = logging.getLogger("aiide.gateway")


def store_error(e: sqlite3.Error, path: str) -> StoreError:
    """A sqlite failure as a refusal the client can act on; the path goes to the log only."""
    name = getattr(e, "sqlite_errorname", "") or ""
    text = str(e).lower()
    status = 503
    if isinstance(e, sqlite3.IntegrityError):
        status, code, message = 500, "store_conflict", "the change conflicts with stored data"
    elif name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        code, message = "store_busy", "the gateway database is locked by another process; retry"
    elif name.startswith("SQLITE_READONLY") or "readonly" in text or "read-only" in text:
        code, message = "store_read_only", "the gateway database is read-only; nothing was written"
    elif name.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM")) and os.path.exists(path):
        code, message = "store_read_only", "the gateway database cannot be opened for writing"
    elif name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        code, message = "store_corrupt", "the gateway database file is damaged"
    else:
        code, message = "store_unavailable", "the gateway database is unavailable"
    log.warning("aiide gateway: database %s: %s (%s)", path, e, name or type(e).__name__)
    return StoreError(status, code, message)


class Store:
    """Lazily opened (no cost at server start), migrated on first use."""

    def __init__(self, path: str, busy_timeout: float = 5.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._executor: ThreadPoolExecutor | None = None

    # -- connection ------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            if not os.path.exists(self.path):
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        except OSError as e:
            log.warning("aiide gateway: cannot create %s: %s", self.path, e)
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def version(self) -> int:
        return self.read(lambda c: int(c.execute("PRAGMA user_version").fetchone()[0]))

    # -- sync API (CLI, worker thread) ------------------------------------------

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                return fn(self._connect())
            except sqlite3.Error as e:
                raise store_error(e, self.path) from None

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` runs in one transaction; any exception rolls all of it back."""
        with self._lock:
            try:
                conn = self._connect()
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                raise store_error(e, self.path) from None
            try:
                result = fn(conn)
                conn.execute("COMMIT")
                return result
            except BaseException as e:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        log.warning("aiide gateway: rollback failed", exc_info=True)
                if isinstance(e, sqlite3.Error):
                    raise store_error(e, self.path) from None
                raise

    # -- async API (server) -------------------------------------------------------

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="aiide-gateway-db")
        return self._executor

    async def aread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool(), self.read, fn)

    async def awrite(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool(), self.write, fn)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def migrate(conn: sqlite3.Connection) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise StoreError(
            503,
            "store_too_new",
            f"the gateway database has schema {version}, newer than this release "
            f"knows ({len(MIGRATIONS)}); upgrade aiide",
        )
    for number in range(version + 1, len(MIGRATIONS) + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[number - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        log.info("aiide gateway: database schema migrated to %d", number)


def _statements(script: str) -> list[str]:
    """Split a migration into statements (triggers contain ``;`` inside BEGIN…END)."""
    out: list[str] = []
    current = ""
    for line in script.strip().splitlines():
        current += line + "\n"
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out
