"""``Conn``: what a store's SQL runs against, whichever database is underneath.

Statements are written once in the subset sqlite and PostgreSQL share, with ``?``
placeholders; the PostgreSQL side rewrites them for psycopg. Schema versions, the
statement splitter for migrations and cross-process locks differ per dialect and live
behind the same methods, so the stores above never branch on the dialect.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class Cursor(Protocol):
    """The part of a DB-API cursor the stores use (sqlite3 and psycopg both have it)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Conn(ABC):
    """One connection, used by one thread at a time."""

    dialect: str

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    @abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    @abstractmethod
    def insert(self, sql: str, params: Sequence[Any]) -> int:
        """Run an INSERT into a table with an ``id`` key; the new row's id."""

    @abstractmethod
    def script(self, script: str) -> None:
        """Several statements without parameters (a migration), inside the transaction."""

    @abstractmethod
    def begin(self) -> None:
        """Start a write transaction (sqlite: takes the file's write lock at once)."""

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def rollback(self) -> None: ...

    @property
    @abstractmethod
    def in_transaction(self) -> bool: ...

    @property
    def broken(self) -> bool:
        """The connection is lost; the store opens a new one for the next call."""
        return False

    @abstractmethod
    def lock(self, name: str) -> None:
        """Serialise the writers of ``name`` until this transaction ends, across processes."""

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[None]:
        """Serialise ``name`` across processes for longer than one transaction (migrations:
        a transaction begun while holding it sees everything the previous holder did)."""
        yield

    @abstractmethod
    def schema_version(self, component: str) -> int: ...

    @abstractmethod
    def set_schema_version(self, component: str, version: int) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


class SqliteConn(Conn):
    dialect = "sqlite"

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self.raw.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.raw.executemany(sql, rows)

    def insert(self, sql: str, params: Sequence[Any]) -> int:
        # lastrowid, not RETURNING: that needs sqlite 3.35, older systems still ship 3.31+
        rowid = self.raw.execute(sql, params).lastrowid
        assert rowid is not None
        return rowid

    def script(self, script: str) -> None:
        # executescript would COMMIT first; one statement at a time stays in the transaction
        for statement in split_statements(script):
            self.raw.execute(statement)

    def begin(self) -> None:
        self.raw.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.raw.commit()

    def rollback(self) -> None:
        self.raw.rollback()

    def lock(self, name: str) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already holds the whole file for writing."""

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    def schema_version(self, component: str) -> int:
        # One file per store: the file's own version counter is the component's.
        return int(self.raw.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, component: str, version: int) -> None:
        self.raw.execute(f"PRAGMA user_version = {int(version)}")

    def close(self) -> None:
        self.raw.close()


def split_statements(script: str) -> list[str]:
    """Split a sqlite script into statements (triggers contain ``;`` inside BEGIN…END)."""
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


@functools.lru_cache(maxsize=1024)
def to_pyformat(sql: str) -> str:
    """``?`` placeholders (outside quotes) as psycopg's ``%s``; a literal ``%`` as ``%%``."""
    out: list[str] = []
    quote = ""
    for ch in sql:
        if ch == "%":
            out.append("%%")  # psycopg reads % everywhere in the text, quoted or not
        elif quote:
            out.append(ch)
            if ch == quote:
                quote = ""
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        else:
            out.append(ch)
    return "".join(out)


def is_database_url(url: str) -> bool:
    return url.startswith(POSTGRES_SCHEMES)


def check_database_url(url: str, trait: str) -> None:
    """Fail at start, naming the setting, rather than at the first request."""
    if url and not is_database_url(url):
        raise ValueError(
            f"{trait}: expected a postgresql:// URL (e.g. postgresql://aiide@db/aiide), "
            "or empty for the sqlite file"
        )
