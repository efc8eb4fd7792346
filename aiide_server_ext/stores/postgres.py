"""PostgreSQL behind ``Conn``: psycopg 3 (imported only when a database URL is set).

The connection runs in autocommit mode; ``begin``/``commit`` bracket the stores' write
transactions (READ COMMITTED). Writers that must see each other's rows in order (the
audit hash chain, volume-priced usage) take a transaction-level advisory lock through
``Conn.lock``. Timeouts keep a dead or stalled server from hanging a request: connect
timeout, lock and statement timeouts, TCP keepalives, and a short pause before
reconnecting after a failed attempt so a down database costs one quick refusal.
Failures become ``StoreError`` with the same stable codes as sqlite's.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .conn import Conn, Cursor, to_pyformat
from .errors import StoreError

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("aiide.stores")

#: After a failed connection attempt, calls fail at once for this long.
RETRY_AFTER = 1.0
STATEMENT_TIMEOUT = 60.0
SCHEMA_TABLE = "aiide_schema"


def display(url: str) -> str:
    """The URL without its password, for logs and messages."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            user, host = netloc.rsplit("@", 1)
            netloc = user.split(":", 1)[0] + "@" + host
        query = urlencode([(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)])
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return re.sub(r"//[^@/]*@", "//***@", url)


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_xact_lock``."""
    return int.from_bytes(hashlib.sha256(f"aiide:{name}".encode()).digest()[:8], "big", signed=True)


def pg_error(e: Exception, where: str, label: str) -> StoreError:
    """A PostgreSQL failure as the refusal a sqlite one would give; details go to the log."""
    import psycopg

    state = getattr(e, "sqlstate", None) or ""
    status = 503
    if isinstance(e, psycopg.IntegrityError) or state == "P0001":  # P0001: a trigger refused
        status, code, message = 500, "store_conflict", "the change conflicts with stored data"
    elif state in ("55P03", "40001", "40P01"):  # lock timeout, serialization, deadlock
        code, message = "store_busy", f"{label} is busy with other writers; retry"
    elif state in ("25006", "42501"):  # read-only transaction, insufficient privilege
        code, message = "store_read_only", f"{label} is read-only; nothing was written"
    elif state in ("XX001", "XX002"):
        code, message = "store_corrupt", f"{label} reports damaged data"
    else:
        code, message = "store_unavailable", f"{label} is unavailable"
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    log.warning("aiide: database %s: %s (%s)", where, text, state or type(e).__name__)
    return StoreError(status, code, message)


class PgConn(Conn):
    dialect = "postgresql"

    def __init__(self, raw: psycopg.Connection[Any], where: str, label: str) -> None:
        self.raw = raw
        self.where = where
        self.label = label

    def _fail(self, e: Exception) -> StoreError:
        return pg_error(e, self.where, self.label)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        import psycopg

        try:
            if params:
                return self.raw.execute(to_pyformat(sql), tuple(params))
            return self.raw.execute(sql)
        except psycopg.Error as e:
            raise self._fail(e) from None

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        import psycopg

        batch = [tuple(r) for r in rows]
        if not batch:
            return
        try:
            with self.raw.cursor() as cur:
                cur.executemany(to_pyformat(sql), batch)
        except psycopg.Error as e:
            raise self._fail(e) from None

    def insert(self, sql: str, params: Sequence[Any]) -> int:
        return int(self.execute(sql + " RETURNING id", params).fetchone()[0])

    def script(self, script: str) -> None:
        self.execute(script)  # no parameters: several statements in one round trip

    def begin(self) -> None:
        self.execute("BEGIN")

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        if not self.broken:
            self.execute("ROLLBACK")

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.raw.info.transaction_status != TransactionStatus.IDLE

    @property
    def broken(self) -> bool:
        return bool(self.raw.broken or self.raw.closed)

    def lock(self, name: str) -> None:
        self.execute("SELECT pg_advisory_xact_lock(?)", (advisory_key(name),))

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[None]:
        # A session lock, taken outside any transaction: an advisory lock inside one would
        # leave it with a catalog snapshot from before the previous holder's DDL.
        self.execute("SELECT pg_advisory_lock(?)", (advisory_key(name),))
        try:
            yield
        finally:
            if not self.broken:
                self.execute("SELECT pg_advisory_unlock(?)", (advisory_key(name),))

    def schema_version(self, component: str) -> int:
        if self.execute(f"SELECT to_regclass('{SCHEMA_TABLE}')").fetchone()[0] is None:
            return 0
        row = self.execute(
            f"SELECT version FROM {SCHEMA_TABLE} WHERE component = ?",  # noqa: S608
            (component,),
        ).fetchone()
        return int(row[0]) if row else 0

    def set_schema_version(self, component: str, version: int) -> None:
        self.execute(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE}"
            " (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        self.execute(
            f"INSERT INTO {SCHEMA_TABLE} (component, version) VALUES (?, ?)"  # noqa: S608
            " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
            (component, int(version)),
        )

    def close(self) -> None:
        self.raw.close()


class PgOpener:
    """Opens connections to one database, failing fast for a moment after a failure."""

    def __init__(
        self, url: str, label: str, lock_timeout: float = 5.0, connect_timeout: float = 5.0
    ) -> None:
        self.url = url
        self.where = display(url)
        self.label = label
        self.lock_timeout = lock_timeout
        self.connect_timeout = connect_timeout
        self._failed_at = -math.inf
        self._mutex = threading.Lock()

    def open(self) -> PgConn:
        with self._mutex:
            if time.monotonic() - self._failed_at < RETRY_AFTER:
                raise StoreError(503, "store_unavailable", f"{self.label} is unavailable")
            try:
                return self._open()
            except StoreError:
                self._failed_at = time.monotonic()
                raise

    def _open(self) -> PgConn:
        try:
            import psycopg
        except ImportError:
            log.warning("aiide: a database URL is set but psycopg is not installed")
            raise StoreError(
                503, "store_unavailable", f"{self.label} needs psycopg (pip install psycopg)"
            ) from None
        try:
            raw = psycopg.connect(
                self.url,
                autocommit=True,
                # libpq counts whole seconds and treats 1 as 2
                connect_timeout=max(2, math.ceil(self.connect_timeout)),
                application_name="aiide",
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
            )
        except psycopg.Error as e:
            raise pg_error(e, self.where, self.label) from None
        conn = PgConn(raw, self.where, self.label)
        try:
            conn.execute(
                f"SET lock_timeout = {int(self.lock_timeout * 1000)};"
                f" SET statement_timeout = {int(STATEMENT_TIMEOUT * 1000)}"
            )
        except BaseException:
            raw.close()
            raise
        return conn
