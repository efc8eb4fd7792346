"""Issuing, refreshing and revoking tokens; scopes over aiide's and Jupyter's own routes."""

from __future__ import annotations

from typing import Any

import pytest

from aiide_server_ext.gateway.build import build_gate
from aiide_server_ext.gateway.errors import GatewayError
from aiide_server_ext.gateway.part import Gateway

from .helpers import OWNER, Call, claims, forge

ME = "/aiide/api/auth/me"
STUDENT = {
    "roles": {"student": ["chat", "complete", "contents:read", "usage:read"]},
    "user_roles": {"bob": ["student"]},
}


async def test_owner_session_exchanges_for_scoped_tokens(call: Call, issue: Any) -> None:
    pair = await issue(scopes=["chat", "kernels"], ttl=120)
    assert pair["token_type"] == "Bearer"
    assert pair["expires_in"] == 120
    assert {"access_token", "refresh_token", "refresh_expires_in"} <= set(pair)
    me = (await call("GET", ME, token=pair["access_token"])).json()
    assert me == {
        "user": OWNER,
        "scopes": ["chat", "kernels"],
        "groups": [],
        "roles": ["owner"],
        "via": "jwt",
        "rate_limits": {},
    }


async def test_a_token_cannot_be_exchanged_for_more_tokens(call: Call, issue: Any) -> None:
    token = (await issue(scopes=["chat"]))["access_token"]
    r = await call("POST", "/aiide/api/auth/token", token=token, body={})
    assert (r.status, r.json()["code"]) == (403, "exchange_not_allowed")


async def test_api_key_exchanges_for_tokens_within_its_scopes(call: Call, new_key: Any) -> None:
    key = (await new_key(scopes=["chat", "complete"]))["key"]
    r = await call("POST", "/aiide/api/auth/token", token=key, body={"scopes": ["chat"]})
    assert r.status == 201, r.body
    assert r.json()["scopes"] == ["chat"]
    r = await call("POST", "/aiide/api/auth/token", token=key, body={"scopes": ["kernels"]})
    assert (r.status, r.json()["code"]) == (403, "scope_escalation")


async def test_refresh_rotates_and_the_old_refresh_token_dies(call: Call, issue: Any) -> None:
    first = await issue(scopes=["chat"])
    r = await call(
        "POST", "/aiide/api/auth/refresh", body={"refresh_token": first["refresh_token"]}
    )
    assert r.status == 201, r.body
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await call("GET", ME, token=second["access_token"])).status == 200


async def test_refresh_token_reuse_revokes_the_whole_family(call: Call, issue: Any) -> None:
    first = await issue(scopes=["chat"])
    body = {"refresh_token": first["refresh_token"]}
    second = (await call("POST", "/aiide/api/auth/refresh", body=body)).json()
    reuse = await call("POST", "/aiide/api/auth/refresh", body=body)
    assert (reuse.status, reuse.json()["code"]) == (401, "refresh_token_reused")
    for token in (first["access_token"], second["access_token"]):
        r = await call("GET", ME, token=token)
        assert (r.status, r.json()["code"]) == (401, "token_revoked")
    again = await call(
        "POST", "/aiide/api/auth/refresh", body={"refresh_token": second["refresh_token"]}
    )
    assert again.status == 401


async def test_revocation_survives_a_restart(call: Call, issue: Any, jp_serverapp: Any) -> None:
    token = (await issue(scopes=["chat"], refresh=False))["access_token"]
    await call("POST", "/aiide/api/auth/revoke", jupyter=True, body={"token": token})
    part = Gateway(config=jp_serverapp.config)
    fresh = build_gate(part, str(jp_serverapp.data_dir) + "/aiide")
    try:
        with pytest.raises(GatewayError) as e:
            await fresh.tokens.verify_access(token)
        assert e.value.code == "token_revoked"
    finally:
        await fresh.close()


async def test_users_may_revoke_only_their_own_tokens(call: Call, issue: Any) -> None:
    mine = (await issue(scopes=["chat"], user="carol", refresh=False))["access_token"]
    other = (await issue(scopes=["chat"], user="dave", refresh=False))["access_token"]
    r = await call("POST", "/aiide/api/auth/revoke", token=mine, body={"token": other})
    assert (r.status, r.json()["code"]) == (403, "not_your_token")
    r = await call("POST", "/aiide/api/auth/revoke", token=mine, body={"token": mine})
    assert r.status == 200


@pytest.mark.gateway_config(**STUDENT)
async def test_effective_scopes_are_the_tokens_intersected_with_the_owners(call: Call) -> None:
    token = forge(claims("bob", scopes=["chat", "kernels", "admin"]))
    me = (await call("GET", ME, token=token)).json()
    assert me["scopes"] == ["chat"]
    assert me["roles"] == ["student"]
    r = await call("GET", "/api/kernels", token=token)
    assert r.status == 403


@pytest.mark.gateway_config(**STUDENT)
async def test_insufficient_scope_on_an_aiide_route_is_a_403_with_a_code(call: Call) -> None:
    r = await call("GET", "/aiide/api/audit", token=forge(claims("bob", scopes=["*"])))
    assert (r.status, r.json()["code"]) == (403, "insufficient_scope")
    assert 'scope="admin"' in r.headers["WWW-Authenticate"]


async def test_missing_credentials_on_an_aiide_route_are_a_401(call: Call) -> None:
    r = await call("GET", ME)
    assert (r.status, r.json()["code"]) == (401, "unauthenticated")


async def test_scopes_govern_jupyters_contents_api(call: Call) -> None:
    reader = forge(claims("erin", scopes=["contents:read"]))
    assert (await call("GET", "/api/contents", token=reader)).status == 200
    r = await call(
        "PUT",
        "/api/contents/x.txt",
        token=reader,
        body={"type": "file", "format": "text", "content": "x"},
    )
    assert r.status == 403
    writer = forge(claims("erin", scopes=["contents:read", "contents:write"]))
    r = await call(
        "PUT",
        "/api/contents/x.txt",
        token=writer,
        body={"type": "file", "format": "text", "content": "x"},
    )
    assert r.status == 201, r.body


async def test_scopes_govern_kernels_and_terminals(call: Call) -> None:
    kernels = forge(claims("erin", scopes=["kernels"]))
    assert (await call("GET", "/api/kernels", token=kernels)).status == 200
    assert (await call("GET", "/api/kernelspecs", token=kernels)).status == 200
    assert (await call("GET", "/api/terminals", token=kernels)).status == 403
    assert (await call("GET", "/api/contents", token=kernels)).status == 403


async def test_users_cannot_issue_tokens_for_others(call: Call, new_key: Any) -> None:
    key = (await new_key(scopes=["chat"], user="frank"))["key"]
    r = await call("POST", "/aiide/api/auth/token", token=key, body={"user": "someone"})
    assert (r.status, r.json()["code"]) == (403, "admin_required")


async def test_admins_issue_tokens_for_others(issue: Any, call: Call) -> None:
    token = (await issue(user="grace", scopes=["chat"]))["access_token"]
    assert (await call("GET", ME, token=token)).json()["user"] == "grace"


@pytest.mark.gateway_config(
    user_groups={"hana": ["cs101"]}, group_roles={"cs101": ["student"]}, roles=STUDENT["roles"]
)
async def test_group_roles_apply(call: Call) -> None:
    me = (await call("GET", ME, token=forge(claims("hana", scopes=["*"])))).json()
    assert me["groups"] == ["cs101"]
    assert me["roles"] == ["student"]
    assert me["scopes"] == ["chat", "complete", "contents:read", "usage:read"]
