"""A planted API key and provider key never appear in logs, audit, error bodies or sqlite files."""

from __future__ import annotations

import glob
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from .helpers import Call

PROVIDER_KEY = "sk-ant-api03-canary-" + "Q" * 40


@pytest.fixture(autouse=True)
def provider_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", PROVIDER_KEY)


async def test_canary_never_leaks(
    call: Call, new_key: Any, gate: Any, jp_data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    created = await new_key(scopes=["chat"], name="canary")
    canary = created["key"]
    secret_part = canary.split("_", 2)[2]
    bodies: list[bytes] = []

    async def send(*args: Any, **kwargs: Any) -> None:
        bodies.append((await call(*args, **kwargs)).body)

    await send("GET", "/aiide/api/auth/me", token=canary)
    await send("POST", "/aiide/api/auth/token", jupyter=True, raw=b'{"key": "' + canary.encode())
    await send("POST", "/aiide/api/auth/token", jupyter=True, body={canary: canary})
    await send("POST", "/aiide/api/auth/refresh", body={"refresh_token": canary})
    await send("POST", "/aiide/api/auth/revoke", jupyter=True, body={"token": canary})
    await send("PUT", "/api/contents/x.txt", jupyter=True, raw=b"{oops " + canary.encode())
    await send("GET", f"/api/contents?token={canary}")
    await send("GET", f"/aiide/api/usage?user={canary}", jupyter=True)
    await send("DELETE", f"/aiide/api/keys/{created['id']}", jupyter=True)
    await send("GET", "/aiide/api/auth/me", token=canary)
    await send("GET", "/aiide/api/auth/me", headers={"Authorization": f"token {canary}"})
    await gate.audit(
        gate.owner,
        "agent.tool_call",
        f"shell: echo {canary}",
        "ok",
        {"argv": ["curl", "-H", f"x-api-key: {PROVIDER_KEY}"], "key": canary},
    )
    try:
        raise RuntimeError(f"provider said no to {PROVIDER_KEY} with {canary}")
    except RuntimeError:
        logging.getLogger("aiide.gateway").exception("model call failed for %s", canary)
    logging.getLogger("ServerApp").warning("Authorization: Bearer %s", canary)
    await gate.keys.drain()

    audit = (await call("GET", "/aiide/api/audit?format=jsonl", jupyter=True)).body
    sqlite_files = b"".join(
        Path(p).read_bytes() for p in glob.glob(f"{jp_data_dir}/aiide/gateway.sqlite*")
    )
    places = {
        "logs": caplog.text.encode(),
        "audit": audit,
        "error bodies": b"\n".join(bodies),
        "sqlite files": sqlite_files,
    }
    assert b"token.refused" in audit and b"agent.tool_call" in audit
    assert b"REDACTED" in places["logs"]
    for where, data in places.items():
        for secret in (canary, secret_part, PROVIDER_KEY):
            assert secret.encode() not in data, f"{secret[:12]}… leaked into {where}"
    assert json.loads(bodies[1])["code"] == "invalid_json"
