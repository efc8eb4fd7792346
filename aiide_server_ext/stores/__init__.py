"""The SQL stores' common ground: one connection type over sqlite and PostgreSQL.

sqlite is the default (a file per server, nothing to run). Given a database URL the
same stores live in PostgreSQL, so several servers or brokers share usage, audit,
conversations and runs. Callers write SQL once, in sqlite's spelling with ``?``
placeholders and the portable subset both speak (``ON CONFLICT``, ``RETURNING``);
``conn.Conn`` translates placeholders and ``schema.migrate`` applies each store's
migrations, written once per dialect.
"""

from __future__ import annotations

from .conn import Conn, Cursor, SqliteConn, is_database_url

__all__ = ["Conn", "Cursor", "SqliteConn", "is_database_url"]
