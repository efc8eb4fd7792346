"""Store tests run against sqlite and a real PostgreSQL the session starts.

``postgres``: one server per test session (per xdist worker), Debian's ``postgresql``
package. Missing binaries skip the PostgreSQL cases, except under CI (CI=true), where
they fail: CI must prove the shared stores. ``pg_url``: a fresh database per test.
``db``: parametrised over both dialects, so one test body covers each.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from agent.conftest import fake_anthropic, fake_openai  # noqa: F401  (the fake models)
from optional import require

from aiide_server_ext.gateway.audit import AuditLog
from aiide_server_ext.gateway.redaction import Redactor
from aiide_server_ext.gateway.store import Store
from aiide_server_ext.gateway.tokens import TokenService

from .pg import PostgresServer, find_bindir

#: The signing secret every token service of a test shares (two servers, one deployment).
SECRET = b"s" * 40


def token_service(store: Store, **extra: Any) -> TokenService:
    """Tokens of a minute (refresh: ten) signed with ``SECRET``, as the gateway tests use."""
    return TokenService(
        store,
        AuditLog(store, Redactor()),
        lambda: SECRET,
        issuer="aiide",
        audience="aiide",
        access_ttl=60,
        refresh_ttl=600,
        max_ttl=600,
        leeway=0,
        **extra,
    )


def need(available: bool, why: str) -> None:
    require("postgresql", available, why)


def postgres_bindir() -> str:
    """The server binaries, once PostgreSQL and psycopg are known to be there."""
    bindir = find_bindir()
    need(bindir is not None, "PostgreSQL server binaries not found (apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        need(False, "psycopg is not installed (pip install 'psycopg[binary]')")
    assert bindir is not None
    return bindir


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer(postgres_bindir())
    try:
        server.start()
    except Exception:
        server.stop()
        raise
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    name = postgres.create_database()
    yield postgres.url(name)
    postgres.drop_database(name)


@dataclass
class Db:
    """Where a test's stores live: a sqlite directory, or a PostgreSQL database URL."""

    dialect: str
    url: str
    dir: Path

    def gateway_path(self) -> str:
        return str(self.dir / "gateway.sqlite")

    def agent_path(self) -> str:
        return str(self.dir / "agent.sqlite")


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Db:
    if request.param == "sqlite":
        return Db("sqlite", "", tmp_path)
    return Db("postgresql", request.getfixturevalue("pg_url"), tmp_path)
