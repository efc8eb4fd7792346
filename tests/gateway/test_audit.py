"""The audit log: what is recorded, who may read it, and that it cannot be rewritten."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from aiide_server_ext.gateway.build import build_gate
from aiide_server_ext.gateway.part import Gateway

from .helpers import Call, claims, forge


async def actions(call: Call, **query: str) -> list[dict[str, Any]]:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    r = await call("GET", f"/aiide/api/audit?{qs}", jupyter=True)
    assert r.status == 200, r.body
    return list(r.json()["events"])


async def test_security_events_are_recorded(call: Call, issue: Any, new_key: Any) -> None:
    token = (await issue(scopes=["chat"], refresh=False))["access_token"]
    await call("POST", "/aiide/api/auth/revoke", jupyter=True, body={"token": token})
    await call("GET", "/aiide/api/auth/me", token=token)
    key = await new_key(scopes=["chat"])
    await call("DELETE", f"/aiide/api/keys/{key['id']}", jupyter=True)
    events = await actions(call)
    assert [e["action"] for e in events] == [
        "token.issued",
        "token.revoked",
        "token.refused",
        "apikey.created",
        "apikey.revoked",
    ]
    refused = events[2]
    assert (refused["actor"], refused["outcome"]) == (None, "token_revoked")
    assert set(events[0]) == {"id", "time", "actor", "action", "target", "outcome", "detail"}
    assert events[0]["actor"] == "owner"


async def test_the_audit_log_is_for_admins_only(call: Call) -> None:
    r = await call("GET", "/aiide/api/audit", token=forge(claims("sam", scopes=["*"])))
    assert (r.status, r.json()["code"]) == (403, "insufficient_scope")


async def test_audit_exports_as_json_lines_and_filters(call: Call, issue: Any) -> None:
    await issue(scopes=["chat"], user="tess")
    await issue(scopes=["chat"], user="uma")
    r = await call("GET", "/aiide/api/audit?format=jsonl&action=token.issued", jupyter=True)
    assert r.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.body.decode().splitlines()]
    assert [e["target"] for e in lines] == ["user:tess", "user:uma"]
    page = await actions(call, after_id=str(lines[0]["id"]), limit="1")
    assert [e["id"] for e in page] == [lines[1]["id"]]


async def test_consumers_audit_through_the_gate_with_secrets_redacted(
    call: Call, gate: Any
) -> None:
    detail = {"cell": "x = 1", "env": {"ANTHROPIC_API_KEY": "sk-ant-api03-abcdefghijklmnop"}}
    await gate.audit(gate.owner, "agent.patch_applied", "notebook:a.ipynb", "approved", detail)
    event = (await actions(call, action="agent.patch_applied"))[0]
    assert event["detail"]["cell"] == "x = 1"
    assert "abcdefghijklmnop" not in json.dumps(event)


async def test_rows_cannot_be_changed_or_deleted(gate: Any) -> None:
    await gate.audit(None, "test.event", "t", "ok")
    with sqlite3.connect(gate.store.path) as db:
        for sql in ("UPDATE audit SET outcome = 'forged'", "DELETE FROM audit"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute(sql)


async def test_edits_behind_sqlites_back_break_the_hash_chain(gate: Any) -> None:
    for n in range(3):
        await gate.audit(None, "test.event", f"t{n}", "ok")
    assert gate.store.read(gate.audit_log.verify) is None

    def tamper(c: sqlite3.Connection) -> None:
        c.execute("DROP TRIGGER audit_no_update")
        c.execute("UPDATE audit SET target = 'rewritten' WHERE target = 't1'")

    gate.store.read(tamper)
    broken = gate.store.read(gate.audit_log.verify)
    events = gate.store.read(lambda c: c.execute("SELECT id, target FROM audit").fetchall())
    assert broken == next(i for i, target in events if target == "rewritten")


@pytest.mark.gateway_config(roles={"ta": ["chat"]})
async def test_policy_changes_between_starts_are_audited(
    jp_serverapp: Any, gate: Any, call: Call
) -> None:
    await gate.audit_policy()
    await gate.audit_policy()  # unchanged: nothing new
    jp_serverapp.config.Gateway.roles = {"ta": ["chat", "complete"]}
    changed = build_gate(Gateway(config=jp_serverapp.config), gate.store.path.rsplit("/", 1)[0])
    try:
        await changed.audit_policy()
    finally:
        await changed.close()
    events = await actions(call)
    assert [e["action"] for e in events] == ["policy.loaded", "policy.changed"]
    assert events[1]["detail"]["roles"]["ta"] == ["chat", "complete"]
