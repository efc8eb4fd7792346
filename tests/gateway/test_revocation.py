"""Revocation cascades: ending a key (or a user) ends everything that came from it.

The issue-14 reproduction: a key with a 1-hour expiry is exchanged for an access +
refresh pair, the access token mints a key; then the original key is deleted. Each
step below failed on the old code (30-day refresh family, a key that never expires,
a refresh and an access token that kept working).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from aiide_server_ext.gateway.build import build_gate
from aiide_server_ext.gateway.errors import GatewayError
from aiide_server_ext.gateway.part import Gateway

from .helpers import Call, error

ME = "/aiide/api/auth/me"
TOKEN = "/aiide/api/auth/token"
REFRESH = "/aiide/api/auth/refresh"
HOUR = 3600


async def exchange(call: Call, key: str, **body: Any) -> dict[str, Any]:
    r = await call("POST", TOKEN, token=key, body=body)
    assert r.status == 201, r.body
    return dict(r.json())


async def mint(call: Call, token: str, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "minted")
    r = await call("POST", "/aiide/api/keys", token=token, body=body)
    assert r.status == 201, r.body
    return dict(r.json())


async def revoke_key(call: Call, key_id: str) -> None:
    r = await call("DELETE", f"/aiide/api/keys/{key_id}", jupyter=True)
    assert r.status == 200, r.body


async def test_a_family_never_outlives_its_source_key(call: Call, new_key: Any) -> None:
    key = await new_key(scopes=["tokens", "usage:read"], expires_in=HOUR)
    pair = await exchange(call, key["key"])
    assert pair["refresh_expires_in"] <= HOUR
    assert pair["expires_in"] <= HOUR
    rotated = (await call("POST", REFRESH, body={"refresh_token": pair["refresh_token"]})).json()
    assert rotated["refresh_expires_in"] <= HOUR


async def test_a_key_minted_with_a_token_expires_with_the_tokens_source(
    call: Call, new_key: Any
) -> None:
    key = await new_key(scopes=["tokens", "usage:read"], expires_in=HOUR)
    pair = await exchange(call, key["key"])
    minted = await mint(call, pair["access_token"], scopes=["usage:read"])
    assert minted["expires_at"] is not None
    assert minted["expires_at"] <= key["expires_at"] + 1


async def test_a_key_minted_with_a_session_token_expires_with_the_token(
    call: Call, issue: Any
) -> None:
    pair = await issue(scopes=["tokens", "usage:read"], ttl=600, refresh=False)
    minted = await mint(call, pair["access_token"], scopes=["usage:read"], expires_in=10 * HOUR)
    assert minted["expires_at"] is not None
    assert minted["expires_at"] <= time.time() + 601


async def test_deleting_a_key_ends_its_tokens_family_and_minted_keys(
    call: Call, new_key: Any
) -> None:
    key = await new_key(scopes=["tokens", "usage:read"], expires_in=HOUR)
    pair = await exchange(call, key["key"])
    minted = await mint(call, pair["access_token"], scopes=["usage:read"])
    assert (await call("GET", ME, token=minted["key"])).status == 200
    await revoke_key(call, key["id"])
    error(await call("GET", ME, token=pair["access_token"]), 401, "source_revoked")
    r = await call("POST", REFRESH, body={"refresh_token": pair["refresh_token"]})
    assert r.status == 401, r.body
    error(await call("GET", ME, token=minted["key"]), 401, "api_key_revoked")


async def test_a_key_minted_from_a_minted_key_is_revoked_with_the_root(
    call: Call, new_key: Any
) -> None:
    root = await new_key(scopes=["tokens", "usage:read"])
    child = await mint(call, (await exchange(call, root["key"]))["access_token"])
    grandchild = await mint(call, (await exchange(call, child["key"]))["access_token"])
    await revoke_key(call, root["id"])
    error(await call("GET", ME, token=grandchild["key"]), 401, "api_key_revoked")


async def test_a_key_used_concurrently_with_its_revocation(call: Call, new_key: Any) -> None:
    key = await new_key(scopes=["tokens", "usage:read"])
    token = (await exchange(call, key["key"], refresh=False))["access_token"]
    for credential in (key["key"], token):  # warm every cache first
        assert (await call("GET", ME, token=credential)).status == 200
    uses = [call("GET", ME, token=c) for c in (key["key"], token) * 4]
    await asyncio.gather(revoke_key(call, key["id"]), *uses)
    after = await asyncio.gather(*[call("GET", ME, token=c) for c in (key["key"], token) * 4])
    assert [r.status for r in after] == [401] * 8


@pytest.mark.gateway_config(revocation_refresh=0.2)
async def test_revoking_on_one_server_ends_access_on_another(
    call: Call, new_key: Any, jp_serverapp: Any, gate: Any
) -> None:
    key = await new_key(scopes=["tokens", "usage:read"])
    pair = await exchange(call, key["key"])
    other = build_gate(Gateway(config=jp_serverapp.config), gate.store.path.rsplit("/", 1)[0])
    try:
        await other.tokens.verify_access(pair["access_token"])  # cached there
        await other.keys.verify(key["key"])
        await revoke_key(call, key["id"])
        await asyncio.sleep(0.3)
        with pytest.raises(GatewayError) as e:
            await other.tokens.verify_access(pair["access_token"])
        assert e.value.code == "source_revoked"
        with pytest.raises(GatewayError) as e:
            await other.keys.verify(key["key"])
        assert e.value.code == "api_key_revoked"
        with pytest.raises(GatewayError) as e:
            await other.tokens.rotate(pair["refresh_token"])
        assert e.value.status == 401
    finally:
        await other.close()


async def test_an_admin_revokes_everything_of_a_user(call: Call, new_key: Any, issue: Any) -> None:
    key = await new_key(user="bob", scopes=["usage:read"])
    session = await issue(user="bob", scopes=["usage:read"])
    from_key = await exchange(call, key["key"])
    r = await call("DELETE", "/aiide/api/users/bob/credentials", jupyter=True)
    assert r.status == 200, r.body
    assert r.json()["revoked_keys"] == [key["id"]]
    error(await call("GET", ME, token=key["key"]), 401, "api_key_revoked")
    for token in (session["access_token"], from_key["access_token"]):
        assert (await call("GET", ME, token=token)).status == 401
    for refresh in (session["refresh_token"], from_key["refresh_token"]):
        assert (await call("POST", REFRESH, body={"refresh_token": refresh})).status == 401
    audit = await call("GET", "/aiide/api/audit?action=user.credentials_revoked", jupyter=True)
    assert [e["target"] for e in audit.json()["events"]] == ["user:bob"]


async def test_a_user_may_not_revoke_another_users_credentials(call: Call, new_key: Any) -> None:
    mine = await new_key(user="carol", scopes=["tokens", "usage:read"])
    r = await call("DELETE", "/aiide/api/users/dave/credentials", token=mine["key"])
    assert r.status == 403, r.body
    assert r.json()["code"]


async def test_tokens_issued_after_a_user_revocation_work(call: Call, issue: Any) -> None:
    await call("DELETE", "/aiide/api/users/erin/credentials", jupyter=True)
    await asyncio.sleep(1.1)  # a revocation covers tokens issued up to its second
    fresh = await issue(user="erin", scopes=["usage:read"])
    assert (await call("GET", ME, token=fresh["access_token"])).status == 200


async def test_a_key_minted_with_a_key_is_bound_to_it(call: Call, new_key: Any) -> None:
    key = await new_key(scopes=["tokens", "usage:read"], expires_in=HOUR)
    minted = await mint(call, key["key"], scopes=["usage:read"])
    assert minted["expires_at"] is not None
    assert minted["expires_at"] <= key["expires_at"] + 1
    await revoke_key(call, key["id"])
    error(await call("GET", ME, token=minted["key"]), 401, "api_key_revoked")
