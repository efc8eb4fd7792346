"""Revocation cascades: ending a credential ends everything that came from it.

A token exchanged with an API key carries the key as its source (claim ``src``,
``"apikey:<id>"``), and so does its refresh family and any key a token of that
source mints. Revoking a key therefore writes the key and every key derived from
it to ``revoked_sources`` in one transaction; every server sharing the database
polls that table (``TokenService``), and the server that revoked knows at once.
Revoking a user writes a revocation epoch: any token of theirs issued at or before
it is refused, whatever its source (Jupyter session, SSO, key).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiide_server_ext.stores.conn import Conn

APIKEY = "apikey:"
#: Derived keys form a tree rooted at one key; bound the walk so a cycle (impossible by
#: construction, but the table is data) cannot hold the write transaction forever.
MAX_CASCADE = 10_000


def key_source(key_id: str) -> str:
    return f"{APIKEY}{key_id}"


def revoke_key_in(conn: Conn, key_id: str, now: float, reason: str) -> list[str]:
    """Revoke a key and, transitively, the keys minted from it; their ids, key first."""
    revoked: list[str] = []
    pending = [key_id]
    seen: set[str] = set()
    while pending and len(seen) < MAX_CASCADE:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        conn.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (now, current),
        )
        source = key_source(current)
        conn.execute(
            "INSERT INTO revoked_sources VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (source, now, reason),
        )
        revoked.append(current)
        rows = conn.execute("SELECT id FROM api_keys WHERE source = ?", (source,)).fetchall()
        pending.extend(str(r[0]) for r in rows)
    return revoked


def revoke_user_in(conn: Conn, username: str, now: float, reason: str) -> tuple[list[str], int]:
    """Every key, refresh family and token of a user: (keys ended, families ended)."""
    keys = [
        str(r[0])
        for r in conn.execute(
            "SELECT id FROM api_keys WHERE username = ? AND revoked_at IS NULL", (username,)
        ).fetchall()
    ]
    derived: set[str] = set()
    for key_id in keys:
        derived.update(revoke_key_in(conn, key_id, now, reason))
    families = [
        str(r[0])
        for r in conn.execute(
            "SELECT DISTINCT family FROM refresh_tokens WHERE username = ?", (username,)
        ).fetchall()
    ]
    for family in families:
        revoke_family_in(conn, family, now, reason)
    conn.execute(
        "INSERT INTO revoked_users VALUES (?, ?, ?) ON CONFLICT (username) DO UPDATE"
        " SET revoked_at = excluded.revoked_at, reason = excluded.reason",
        (username, now, reason),
    )
    return sorted(derived), len(families)


def revoke_family_in(conn: Conn, family: str, now: float, reason: str) -> None:
    """Ends a refresh family for good (idempotent: the first reason stays)."""
    conn.execute(
        "INSERT INTO revoked_families VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        (family, now, reason),
    )


def source_alive_in(conn: Conn, source: str, now: float) -> bool:
    """Whether a token's source still holds, read from the store (used at refresh)."""
    if not source.startswith(APIKEY):
        return True
    row = conn.execute(
        "SELECT revoked_at, expires_at FROM api_keys WHERE id = ?", (source[len(APIKEY) :],)
    ).fetchone()
    if row is None or row[0] is not None:
        return False
    return row[1] is None or now < float(row[1])
