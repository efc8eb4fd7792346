"""Every known attack on tokens is refused with a 401 (each request on a fresh client)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .helpers import OWNER, Call, claims, forge

ME = "/aiide/api/auth/me"


def _pem_pair(key: Any) -> tuple[str, str]:
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


RSA_PRIVATE, RSA_PUBLIC = _pem_pair(rsa.generate_private_key(65537, 2048))
WEAK_PRIVATE, WEAK_PUBLIC = _pem_pair(rsa.generate_private_key(65537, 1024))
EC_PRIVATE, EC_PUBLIC = _pem_pair(ec.generate_private_key(ec.SECP256R1()))

SSO = {
    "https://sso.example": {"algorithm": "RS256", "public_key": RSA_PUBLIC, "audience": "aiide"},
    "https://weak.example": {"algorithm": "RS256", "public_key": WEAK_PUBLIC},
    "https://ec.example": {"algorithm": "ES256", "public_key": EC_PUBLIC},
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())


async def _refused(call: Call, token: str, code: str) -> None:
    r = await call("GET", ME, token=token)
    assert r.status == 401, r.body
    assert r.json()["code"] == code
    assert "WWW-Authenticate" in r.headers
    assert b"Traceback" not in r.body


async def test_a_valid_token_is_accepted(call: Call) -> None:
    r = await call("GET", ME, token=forge(claims()))
    assert r.status == 200, r.body
    assert r.json()["user"] == "alice"


async def test_alg_none_is_refused(call: Call) -> None:
    token = _unsigned({"alg": "none", "typ": "JWT"}, claims()) + "."
    await _refused(call, token, "invalid_token")


@pytest.mark.gateway_config(sso_issuers=SSO)
async def test_hs256_signed_with_the_sso_public_key_is_refused(call: Call) -> None:
    """HS/RS confusion: the attacker uses our known RSA public key as an HMAC secret."""
    for issuer in ("https://sso.example", "aiide"):
        signing_input = _unsigned({"alg": "HS256", "typ": "JWT"}, claims(iss=issuer))
        mac = hmac.new(RSA_PUBLIC.encode(), signing_input.encode(), hashlib.sha256).digest()
        await _refused(call, signing_input + "." + _b64(mac), "invalid_token")


async def test_wrong_audience_is_refused(call: Call) -> None:
    await _refused(call, forge(claims(aud="another-service")), "invalid_audience")


async def test_wrong_issuer_is_refused(call: Call) -> None:
    await _refused(call, forge(claims(iss="https://evil.example")), "invalid_issuer")


async def test_expired_token_is_refused(call: Call) -> None:
    past = int(time.time()) - 600
    await _refused(call, forge(claims(iat=past - 60, nbf=past - 60, exp=past)), "token_expired")


async def test_token_not_yet_valid_is_refused(call: Call) -> None:
    future = int(time.time()) + 600
    await _refused(call, forge(claims(nbf=future, exp=future + 300)), "token_not_yet_valid")


async def test_tampered_payload_is_refused(call: Call) -> None:
    header, _, signature = forge(claims()).split(".")
    payload = _b64(json.dumps(claims(scopes=["*"])).encode())
    await _refused(call, f"{header}.{payload}.{signature}", "invalid_token")


async def test_revoked_jti_is_refused(call: Call, issue: Any) -> None:
    token = (await issue(scopes=["chat"], refresh=False))["access_token"]
    assert (await call("GET", ME, token=token)).status == 200
    r = await call("POST", "/aiide/api/auth/revoke", jupyter=True, body={"token": token})
    assert r.status == 200, r.body
    await _refused(call, token, "token_revoked")


async def test_refresh_token_is_not_accepted_as_access_token(call: Call, issue: Any) -> None:
    refresh = (await issue(scopes=["chat"]))["refresh_token"]
    await _refused(call, refresh, "wrong_token_type")


async def test_access_token_is_not_accepted_as_refresh_token(call: Call, issue: Any) -> None:
    access = (await issue(scopes=["chat"]))["access_token"]
    r = await call("POST", "/aiide/api/auth/refresh", body={"refresh_token": access})
    assert (r.status, r.json()["code"]) == (401, "wrong_token_type")


async def test_missing_exp_is_refused(call: Call) -> None:
    await _refused(call, forge(claims(exp=None)), "missing_claim")


async def test_missing_jti_is_refused(call: Call) -> None:
    await _refused(call, forge(claims(jti=None)), "missing_claim")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.gateway_config(sso_issuers=SSO)
async def test_token_signed_with_a_too_short_rsa_key_is_refused(call: Call) -> None:
    token = forge(claims(iss="https://weak.example"), WEAK_PRIVATE, "RS256")
    await _refused(call, token, "invalid_token")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.gateway_config(signing_secret="too-short-secret")
async def test_a_too_short_hmac_secret_is_neither_used_nor_accepted(call: Call) -> None:
    import jwt

    token = jwt.PyJWT().encode(claims(), "too-short-secret", algorithm="HS256")
    await _refused(call, token, "invalid_token")
    r = await call("POST", "/aiide/api/auth/token", jupyter=True, body={})
    assert (r.status, r.json()["code"]) == (503, "signing_key_too_short")


@pytest.mark.gateway_config(sso_issuers=SSO)
async def test_sso_tokens_with_rs256_and_es256_are_accepted(call: Call) -> None:
    rs = forge(claims(iss="https://sso.example", typ=None), RSA_PRIVATE, "RS256")
    es = forge(claims(iss="https://ec.example", typ=None), EC_PRIVATE, "ES256")
    for token in (rs, es):
        r = await call("GET", ME, token=token)
        assert r.status == 200, r.body
        assert r.json()["via"] == "jwt"


@pytest.mark.gateway_config(sso_issuers=SSO)
async def test_sso_tokens_cannot_grant_every_scope(call: Call) -> None:
    token = forge(claims(iss="https://sso.example", scopes=["*"]), RSA_PRIVATE, "RS256")
    r = await call("GET", ME, token=token)
    assert r.status == 200
    assert r.json()["scopes"] == []


@pytest.mark.gateway_config(leeway=30)
async def test_clock_skew_within_the_leeway_is_tolerated(call: Call) -> None:
    now = int(time.time())
    ahead = forge(claims(iat=now + 10, nbf=now + 10, exp=now + 300))
    behind = forge(claims(iat=now - 400, nbf=now - 400, exp=now - 10))
    for token in (ahead, behind):
        assert (await call("GET", ME, token=token)).status == 200


@pytest.mark.gateway_config(leeway=0)
async def test_clock_skew_leeway_is_configurable(call: Call) -> None:
    now = int(time.time())
    await _refused(call, forge(claims(iat=now + 10, nbf=now + 10)), "token_not_yet_valid")


async def test_garbage_bearer_is_refused(call: Call) -> None:
    await _refused(call, "a.b.c", "invalid_token")


async def test_bad_bearer_is_refused_even_with_a_valid_login_cookie(call: Call) -> None:
    login = await call("GET", "/api/me", jupyter=True)
    cookie = "; ".join(c.split(";")[0] for c in login.headers.get_list("Set-Cookie"))
    assert cookie
    assert (await call("GET", "/api/me", headers={"Cookie": cookie})).status == 200
    bad = forge(claims(exp=int(time.time()) - 600, nbf=None, iat=None))
    r = await call("GET", "/api/me", token=bad, headers={"Cookie": cookie})
    assert r.status == 401


async def test_token_in_the_url_is_not_accepted(call: Call) -> None:
    r = await call("GET", f"{ME}?token={forge(claims())}")
    assert r.status in (401, 403)


@pytest.mark.gateway_config(sso_issuers=SSO)
async def test_an_sso_token_naming_the_owner_is_not_the_owner(call: Call) -> None:
    """An outside issuer's ``sub`` that equals the server owner's name is another person:
    namespaced by its issuer, with the roles any SSO user gets, never ``owner`` and ``*``."""
    token = forge(
        claims(OWNER, iss="https://sso.example", typ=None, scopes=["admin", "chat", "usage:read"]),
        RSA_PRIVATE,
        "RS256",
    )
    r = await call("GET", ME, token=token)
    assert r.status == 200, r.body
    me = r.json()
    assert me["user"] == f"{OWNER}@https://sso.example"
    assert me["roles"] == ["user"]
    assert me["scopes"] == ["chat", "usage:read"]  # 'admin' is not the user role's
    assert me["rate_limits"], "the owner's exemption from limits does not carry over"
    r = await call("GET", "/aiide/api/audit", token=token)
    assert r.status == 403, r.body
