"""API keys: shown once, stored hashed, masked in lists, scoped, expiring, revocable."""

from __future__ import annotations

import asyncio
import glob
import hashlib
import sqlite3
from typing import Any

import pytest

from .helpers import Call, claims, forge

ME = "/aiide/api/auth/me"


async def test_a_key_authenticates_with_its_scopes(call: Call, new_key: Any) -> None:
    created = await new_key(scopes=["chat", "usage:read"], name="laptop")
    assert created["key"].startswith("aiide_")
    assert created["masked"].endswith("_…")
    me = (await call("GET", ME, token=created["key"])).json()
    assert (me["user"], me["via"], me["scopes"]) == ("owner", "apikey", ["chat", "usage:read"])


async def test_the_jupyter_token_scheme_works_for_keys_too(call: Call, new_key: Any) -> None:
    key = (await new_key())["key"]
    assert (await call("GET", ME, headers={"Authorization": f"token {key}"})).status == 200


async def test_listing_is_masked(call: Call, new_key: Any) -> None:
    key = (await new_key(name="ci"))["key"]
    r = await call("GET", "/aiide/api/keys", jupyter=True)
    assert r.status == 200
    assert key.encode() not in r.body
    assert key.split("_", 2)[2].encode() not in r.body  # the secret may itself hold "_"
    assert [k["name"] for k in r.json()["keys"]] == ["ci"]


async def test_only_a_salted_hash_is_stored(new_key: Any, jp_data_dir: Any) -> None:
    key = (await new_key())["key"]
    secret = key.split("_", 2)[2]
    path = f"{jp_data_dir}/aiide/gateway.sqlite"
    with sqlite3.connect(path) as db:
        salt, digest = db.execute("SELECT salt, hash FROM api_keys").fetchone()
    assert len(salt) == 16
    assert digest != hashlib.sha256(secret.encode()).digest()
    for name in glob.glob(path + "*"):
        with open(name, "rb") as f:
            data = f.read()
        assert secret.encode() not in data


async def test_revoked_key_is_refused(call: Call, new_key: Any) -> None:
    created = await new_key()
    r = await call("DELETE", f"/aiide/api/keys/{created['id']}", jupyter=True)
    assert (r.status, r.json()["revoked"]) == (200, True)
    r = await call("GET", ME, token=created["key"])
    assert (r.status, r.json()["code"]) == (401, "api_key_revoked")


async def test_expired_key_is_refused(call: Call, new_key: Any) -> None:
    created = await new_key(expires_in=0.5)
    assert (await call("GET", ME, token=created["key"])).status == 200
    await asyncio.sleep(0.6)
    r = await call("GET", ME, token=created["key"])
    assert (r.status, r.json()["code"]) == (401, "api_key_expired")


async def test_a_wrong_secret_for_a_real_key_id_is_refused(call: Call, new_key: Any) -> None:
    key = (await new_key())["key"]
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    r = await call("GET", ME, token=forged)
    assert (r.status, r.json()["code"]) == (401, "invalid_api_key")


async def test_last_used_at_is_recorded(call: Call, new_key: Any, gate: Any) -> None:
    created = await new_key()
    await call("GET", ME, token=created["key"])
    await gate.keys.drain()
    keys = (await call("GET", "/aiide/api/keys", jupyter=True)).json()["keys"]
    assert keys[0]["last_used_at"] is not None


async def test_keys_carry_no_more_than_their_creators_scopes(call: Call) -> None:
    token = forge(claims("ivan", scopes=["tokens", "chat"]))
    ok = await call("POST", "/aiide/api/keys", token=token, body={"name": "k", "scopes": ["chat"]})
    assert ok.status == 201, ok.body
    r = await call(
        "POST", "/aiide/api/keys", token=token, body={"name": "k", "scopes": ["kernels"]}
    )
    assert (r.status, r.json()["code"]) == (403, "scope_escalation")


async def test_users_see_and_revoke_only_their_own_keys(call: Call, new_key: Any) -> None:
    others = await new_key(user="judy", scopes=["chat"])
    token = forge(claims("ivan", scopes=["tokens"]))
    r = await call("GET", "/aiide/api/keys", token=token)
    assert r.json()["keys"] == []
    r = await call("GET", "/aiide/api/keys?user=judy", token=token)
    assert (r.status, r.json()["code"]) == (403, "admin_required")
    r = await call("DELETE", f"/aiide/api/keys/{others['id']}", token=token)
    assert (r.status, r.json()["code"]) == (404, "unknown_key")


async def test_admin_manages_everyones_keys(call: Call, new_key: Any) -> None:
    created = await new_key(user="judy", scopes=["chat"])
    assert created["user"] == "judy"
    everyone = (await call("GET", "/aiide/api/keys?all=1", jupyter=True)).json()["keys"]
    assert [k["user"] for k in everyone] == ["judy"]
    r = await call("DELETE", f"/aiide/api/keys/{created['id']}", jupyter=True)
    assert r.status == 200


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": ""}, "invalid_field"),
        ({"name": "x" * 101}, "invalid_name"),
        ({"name": "k", "expires_in": -1}, "invalid_expiry"),
        ({"name": "k", "expires_in": "soon"}, "invalid_expiry"),
        ({"name": "k", "scopes": ["root"]}, "unknown_scope"),
        ({"name": "k", "colour": "red"}, "unknown_field"),
    ],
)
async def test_bad_key_requests_are_400s(call: Call, body: dict[str, Any], code: str) -> None:
    r = await call("POST", "/aiide/api/keys", jupyter=True, body=body)
    assert (r.status, r.json()["code"]) == (400, code)
