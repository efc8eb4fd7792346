"""Bad input and broken storage: a clear 4xx/5xx with a stable code, never a partial write."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from .helpers import Call, error

TOKEN = "/aiide/api/auth/token"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"[1, 2]", "invalid_body"),
        (b'"scopes"', "invalid_body"),
    ],
)
async def test_malformed_bodies_are_400s(call: Call, raw: bytes, code: str) -> None:
    error(await call("POST", TOKEN, jupyter=True, raw=raw), 400, code)


async def test_oversized_bodies_are_413s(call: Call) -> None:
    raw = b'{"scopes": "' + b"x" * 70_000 + b'"}'
    error(await call("POST", TOKEN, jupyter=True, raw=raw), 413, "body_too_large")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"scopes": ["chat", "sudo"]}, "unknown_scope"),
        ({"scopes": "chat root"}, "unknown_scope"),
        ({"scopes": [1]}, "invalid_scopes"),
        ({"scopes": {"chat": True}}, "invalid_scopes"),
        ({"ttl": -5}, "invalid_ttl"),
        ({"ttl": 0}, "invalid_ttl"),
        ({"ttl": "60"}, "invalid_ttl"),
        ({"ttl": True}, "invalid_ttl"),
        ({"ttl": 10**9}, "ttl_too_long"),
        ({"refresh": "yes"}, "invalid_field"),
        ({"user": ""}, "invalid_field"),
        ({"expiry": 5}, "unknown_field"),
    ],
)
async def test_bad_token_requests_are_400s(call: Call, body: dict[str, Any], code: str) -> None:
    error(await call("POST", TOKEN, jupyter=True, body=body), 400, code)


@pytest.mark.parametrize(
    ("body", "code"),
    [({}, "missing_field"), ({"refresh_token": 5}, "invalid_field"), ({"x": 1}, "unknown_field")],
)
async def test_bad_refresh_requests_are_400s(call: Call, body: dict[str, Any], code: str) -> None:
    error(await call("POST", "/aiide/api/auth/refresh", body=body), 400, code)


async def test_an_unknown_route_under_the_api_is_a_json_404(call: Call) -> None:
    r = await call("DELETE", "/aiide/api/keys/zzz", jupyter=True)
    assert r.status == 404


@pytest.mark.gateway_config(db_busy_timeout=0.2)
async def test_a_locked_database_is_a_503_and_nothing_is_written(
    call: Call, new_key: Any, gate: Any
) -> None:
    await new_key(name="before")
    locker = sqlite3.connect(gate.store.path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        r = await call("POST", "/aiide/api/keys", jupyter=True, body={"name": "during"})
        error(r, 503, "store_busy")
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    names = [k["name"] for k in (await call("GET", "/aiide/api/keys", jupyter=True)).json()["keys"]]
    assert names == ["before"]


async def test_a_failure_midway_rolls_the_whole_change_back(call: Call, gate: Any) -> None:
    """Key row and audit row are one transaction: if the audit fails, there is no key."""
    await call("GET", "/aiide/api/keys", jupyter=True)  # creates the database
    with sqlite3.connect(gate.store.path) as db:
        db.execute(
            "CREATE TRIGGER fail BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'full'); END"
        )
    r = await call("POST", "/aiide/api/keys", jupyter=True, body={"name": "half"})
    error(r, 500, "store_conflict")
    r = await call("POST", TOKEN, jupyter=True, body={})
    error(r, 500, "store_conflict")
    with sqlite3.connect(gate.store.path) as db:
        assert db.execute("SELECT COUNT(*) FROM api_keys").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM refresh_tokens").fetchone()[0] == 0
