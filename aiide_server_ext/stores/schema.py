"""Bring a store's schema forward: numbered steps, only ever appended, one list per dialect.

sqlite keeps the number in ``PRAGMA user_version`` of the store's own file; PostgreSQL in
an ``aiide_schema`` row per component, so the gateway's and the agent's tables can share
one database. All pending steps run in one transaction under a lock, so two servers
starting together migrate once; a schema newer than this release is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from .conn import Conn
from .errors import StoreError

log = logging.getLogger("aiide.stores")


def migrate(conn: Conn, component: str, steps: Mapping[str, Sequence[str]], label: str) -> int:
    """Apply the missing steps of ``steps[conn.dialect]``; the version now in force."""
    mine = steps[conn.dialect]
    version = conn.schema_version(component)
    _check(version, len(mine), label)
    if version == len(mine):
        return version
    with conn.hold("schema"):
        conn.begin()
        try:
            version = conn.schema_version(component)  # another server may have just done it
            _check(version, len(mine), label)
            for number in range(version + 1, len(mine) + 1):
                conn.script(mine[number - 1])
                conn.set_schema_version(component, number)
            conn.commit()
        except BaseException:
            if conn.in_transaction and not conn.broken:
                conn.rollback()
            raise
    if version < len(mine):
        log.info("aiide: %s schema migrated from %d to %d", component, version, len(mine))
    return len(mine)


def _check(version: int, known: int, label: str) -> None:
    if version > known:
        raise StoreError(
            503,
            "store_too_new",
            f"{label} has schema {version}, newer than this release knows ({known}); upgrade aiide",
        )
