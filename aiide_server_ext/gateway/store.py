"""The gateway's database: one connection, one worker thread, whole transactions.

sqlite by default (a file created 0600 in a 0700 directory: it holds key hashes and
audit); PostgreSQL when ``url`` is a database URL, so several servers or brokers share
audit, usage, keys and revocations. Every write runs inside one transaction (sqlite:
``BEGIN IMMEDIATE``) and is rolled back on any error, so a refusal never leaves half a
change behind. Database failures become a ``StoreError`` with a stable code (busy,
read-only, unavailable, ...) for a clear 503. Callers write their SQL once, against
``aiide_server_ext.stores.Conn``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from aiide_server_ext.stores.conn import Conn, SqliteConn, check_database_url
from aiide_server_ext.stores.schema import migrate as migrate_steps

from ..stores.errors import StoreError
from .migrations import STEPS

if TYPE_CHECKING:
    from aiide_server_ext.stores.postgres import PgOpener

T = TypeVar("T")
log = logging.getLogger("aiide.gateway")
LABEL = "the gateway database"


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


def _use_wal(raw: sqlite3.Connection, busy_timeout: float) -> None:
    """Switch the file to WAL. A fresh connection reports the default mode before it has
    read the file, and the switch fails at once (busy handler or not) while another
    connection is writing: a second server opening the same new file just retries."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            if raw.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal":
                return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e).lower() or time.monotonic() > deadline:
                raise
        time.sleep(0.02)


class Store:
    """Lazily opened (no cost at server start), migrated on first use.

    ``path`` is the sqlite file; with ``url`` (``postgresql://...``) the store lives in
    that database instead and ``path`` is only its name in logs (no password)."""

    def __init__(
        self,
        path: str,
        busy_timeout: float = 5.0,
        url: str = "",
        connect_timeout: float = 5.0,
        label: str = LABEL,
    ) -> None:
        check_database_url(url, "database_url")
        self.url = url
        self.busy_timeout = busy_timeout
        self.label = label
        self._conn: Conn | None = None
        self._lock = threading.RLock()
        self._executor: ThreadPoolExecutor | None = None
        self._opener: PgOpener | None = None
        if url:
            from aiide_server_ext.stores.postgres import PgOpener

            self._opener = PgOpener(url, label, busy_timeout, connect_timeout)
            self.path = self._opener.where
        else:
            self.path = path

    @property
    def dialect(self) -> str:
        return "postgresql" if self.url else "sqlite"

    # -- connection ------------------------------------------------------------

    def _connect(self) -> Conn:
        if self._conn is not None:
            if not self._conn.broken:
                return self._conn
            self._discard()
        conn = self._opener.open() if self._opener is not None else self._open_sqlite()
        try:
            migrate_steps(conn, "gateway", STEPS, self.label)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _open_sqlite(self) -> Conn:
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            if not os.path.exists(self.path):
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        except OSError as e:
            log.warning("aiide gateway: cannot create %s: %s", self.path, e)
        raw = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            raw.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            _use_wal(raw, self.busy_timeout)
            raw.execute("PRAGMA synchronous = NORMAL")
            raw.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            raw.close()
            raise
        return SqliteConn(raw)

    def _discard(self) -> None:
        """Drop a lost connection; the next call opens a new one."""
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                log.debug("aiide gateway: closing a lost connection failed", exc_info=True)
            self._conn = None

    def version(self) -> int:
        return self.read(lambda c: c.schema_version("gateway"))

    # -- sync API (CLI, worker thread) ------------------------------------------

    def read(self, fn: Callable[[Conn], T]) -> T:
        with self._lock:
            return self._again_if_lost(lambda: fn(self._connect()))  # reads are safe to redo

    def write(self, fn: Callable[[Conn], T]) -> T:
        """``fn`` runs in one transaction; any exception rolls all of it back."""
        with self._lock:
            conn = self._begin()
            try:
                result = fn(conn)
                conn.commit()
                return result
            except BaseException as e:
                if conn.broken:
                    self._discard()  # the server rolled back; nothing was written
                elif conn.in_transaction:
                    try:
                        conn.rollback()
                    except (sqlite3.Error, StoreError):
                        log.warning("aiide gateway: rollback failed", exc_info=True)
                if isinstance(e, sqlite3.Error):
                    raise store_error(e, self.path) from None
                raise

    def _begin(self) -> Conn:
        def begin() -> Conn:
            conn = self._connect()
            conn.begin()
            return conn

        return self._again_if_lost(begin)  # nothing of the change ran yet: safe to redo

    def _again_if_lost(self, step: Callable[[], T]) -> T:
        """``step``, and once more on a new connection if the one it used was lost while
        idle (the database restarted). Only for what is safe to redo."""
        for attempt in (1, 2):
            try:
                return step()
            except sqlite3.Error as e:
                raise store_error(e, self.path) from None
            except StoreError:
                if not self._lost() or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _lost(self) -> bool:
        if self._conn is not None and self._conn.broken:
            self._discard()
            return True
        return False

    # -- async API (server) -------------------------------------------------------

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="aiide-gateway-db")
        return self._executor

    async def aread(self, fn: Callable[[Conn], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool(), self.read, fn)

    async def awrite(self, fn: Callable[[Conn], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool(), self.write, fn)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
