"""A plain single-user server: with the gateway's hooks installed nothing changes for its owner."""

from __future__ import annotations

from typing import Any

import pytest

from aiide_server_ext.seams import OpenGate

from .helpers import Call, claims, forge


async def test_the_owner_uses_every_jupyter_api_with_the_jupyter_token(call: Call) -> None:
    for method, path, body in [
        ("GET", "/api/me", None),
        ("GET", "/api/status", None),
        ("GET", "/api/contents", None),
        ("PUT", "/api/contents/n.txt", {"type": "file", "format": "text", "content": "hi"}),
        ("GET", "/api/kernelspecs", None),
        ("GET", "/api/terminals", None),
        ("GET", "/aiide/api/status", None),
        ("GET", "/aiide/api/usage", None),
        ("GET", "/aiide/api/audit", None),
    ]:
        r = await call(method, path, jupyter=True, body=body)
        assert r.status in (200, 201), (path, r.body)


async def test_the_owner_holds_every_scope_and_no_limits(call: Call, gate: Any) -> None:
    me = (await call("GET", "/aiide/api/auth/me", jupyter=True)).json()
    assert (me["scopes"], me["via"], me["rate_limits"]) == (["*"], "jupyter", {})
    for _ in range(100):  # above the default 60/minute for completions
        await gate.admit(gate.owner, "complete", "complete")


async def test_api_me_keeps_jupyters_shape(call: Call) -> None:
    identity = (await call("GET", "/api/me", token=forge(claims("vera")))).json()["identity"]
    assert identity["username"] == "vera"
    assert "caller" not in identity


async def test_a_browser_session_still_logs_in_with_a_cookie(call: Call) -> None:
    login = await call("GET", "/api/me", jupyter=True)
    cookie = "; ".join(c.split(";")[0] for c in login.headers.get_list("Set-Cookie"))
    r = await call("GET", "/aiide/api/auth/me", headers={"Cookie": cookie})
    assert (r.status, r.json()["via"]) == (200, "jupyter")


@pytest.mark.gateway_config(enabled=False)
async def test_without_the_gateway_the_hooks_behave_like_jupyters_own(
    call: Call, jp_serverapp: Any
) -> None:
    assert "aiide_gate" not in jp_serverapp.web_app.settings
    assert (await call("GET", "/api/contents", jupyter=True)).status == 200
    assert (await call("GET", "/aiide/api/status", jupyter=True)).status == 200
    assert (await call("GET", "/api/contents", token=forge(claims()))).status == 403
    assert (await call("GET", "/aiide/api/auth/me", jupyter=True)).status == 404
    caller = OpenGate().caller(type("H", (), {"current_user": None})())
    assert caller.has_scope("admin")
