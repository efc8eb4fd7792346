"""The plain classes, without a server: scopes, resources, redaction, logs, secrets, quotas."""

from __future__ import annotations

import datetime
import json
import logging
import os
import stat
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from aiide_server_ext.gateway.authorizer import ResourceScopes
from aiide_server_ext.gateway.errors import GatewayError
from aiide_server_ext.gateway.identity import gateway_credential
from aiide_server_ext.gateway.quotas import Quotas, period_bounds
from aiide_server_ext.gateway.redaction import JsonFormatter, RedactingFilter, Redactor
from aiide_server_ext.gateway.scopes import ALL, Policy, intersect, parse_scopes
from aiide_server_ext.gateway.signing import load_secret


def policy(**kw: object) -> Policy:
    base: dict[str, object] = {
        "roles": {"student": ["chat", "usage:read"]},
        "user_roles": {"bob": ["student"]},
        "group_roles": {"staff": ["admin"]},
        "user_groups": {"carl": ["staff"]},
        "default_roles": ["user"],
        "owner": "owner",
        "owner_scopes": ["*"],
    }
    return Policy.from_config(**{**base, **kw})  # type: ignore[arg-type]


def test_scopes_parse_from_lists_and_strings() -> None:
    assert parse_scopes("chat, complete kernels") == {"chat", "complete", "kernels"}
    assert parse_scopes(["*"]) == {ALL}
    with pytest.raises(GatewayError) as e:
        parse_scopes(["chat", "rm-rf"])
    assert e.value.code == "unknown_scope"


def test_intersection_treats_star_as_everything() -> None:
    assert intersect(frozenset({ALL}), frozenset({"chat"})) == {"chat"}
    assert intersect(frozenset({"chat", "kernels"}), frozenset({ALL})) == {"chat", "kernels"}
    assert intersect(frozenset({"chat", "kernels"}), frozenset({"chat"})) == {"chat"}


def test_roles_come_from_name_groups_or_the_default() -> None:
    p = policy()
    assert p.roles_for("bob", ()) == {"student"}
    assert p.roles_for("carl", p.groups_for("carl")) == {"admin"}
    assert p.roles_for("dora", ()) == {"user"}
    assert p.roles_for("owner", ()) == {"owner"}
    assert p.scopes_for("carl", {"admin"}) == {ALL}
    assert "admin" not in p.scopes_for("dora", {"user"})


def test_policy_typos_are_config_errors() -> None:
    with pytest.raises(ValueError, match="unknown scopes"):
        policy(roles={"ta": ["chatt"]})
    with pytest.raises(ValueError, match="unknown role"):
        policy(user_roles={"x": ["wizard"]})


def test_policy_fingerprint_follows_the_policy() -> None:
    assert policy().fingerprint() == policy().fingerprint()
    assert policy().fingerprint() != policy(default_roles=[]).fingerprint()


def test_resources_map_actions_to_scopes_and_fail_closed() -> None:
    r = ResourceScopes({"myext": {"read": "contents:read"}})
    assert r.required("contents", "write") == "contents:write"
    assert r.required("aiide:chat", "read") == "chat"
    assert r.required("aiide:agent:run", "write") == "agent:run"
    assert r.required("aiide", "read") is None
    assert r.required("myext", "read") == "contents:read"
    assert r.required("myext", "write") == "admin"
    assert r.required("something-new", "read") == "admin"
    with pytest.raises(ValueError, match="bad scope"):
        ResourceScopes({"x": {"read": "everything"}})


def test_credentials_are_recognised_by_shape() -> None:
    assert gateway_credential("Bearer aiide_0123456789ab_x") == ("apikey", "aiide_0123456789ab_x")
    assert gateway_credential("bearer a.b.c") == ("jwt", "a.b.c")
    assert gateway_credential("token 0123abcd") is None  # Jupyter's own token
    assert gateway_credential("Basic dXNlcjpwdw==") is None


def test_redaction_by_shape_and_by_value() -> None:
    r = Redactor(["my-provider-secret-value"])
    text = (
        "key aiide_0123456789ab_abcdefghijklmnopqrstuvwxyz012345678901234 "
        "jwt eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl "
        '"Authorization": "Bearer abc.def.ghi" '
        "anthropic sk-ant-api03-xyzxyzxyz "
        "url /x?token=abc&y=1 "
        "env my-provider-secret-value"
    )
    out = r.text(text)
    for secret in (
        "abcdefghijklmnop",
        "eyJzdWIiOi",
        "abc.def.ghi",
        "xyzxyzxyz",
        "token=abc",
        "my-provider-secret-value",
    ):
        assert secret not in out
    assert r.text("the token has expired") == "the token has expired"
    assert r.obj({"a": ["sk-ant-api03-xyzxyzxyz"]}) == {"a": ["sk-ant-[REDACTED]"]}


def test_log_records_are_redacted_with_their_tracebacks() -> None:
    filt = RedactingFilter(Redactor())
    try:
        raise ValueError("bad key sk-ant-api03-secretsecret")
    except ValueError:
        record = logging.LogRecord(
            "aiide",
            logging.ERROR,
            __file__,
            1,
            "failed %s",
            ("sk-ant-api03-secretsecret",),
            sys.exc_info(),
        )
    assert filt.filter(record)
    rendered = logging.Formatter().format(record)
    assert "secretsecret" not in rendered
    assert "ValueError" in rendered


class CountingRedactor(Redactor):
    calls = 0

    def text(self, value: str, keep: Iterable[str] = ()) -> str:
        self.calls += 1
        return super().text(value, keep)


def test_records_are_redacted_once_and_only_when_a_handler_writes_them() -> None:
    """Jupyter's logger is at DEBUG with an INFO handler: its per-request debug records
    are dropped unwritten, so redacting them was wasted work on every request."""
    import io

    secret = "sk-ant-api03-secretsecret"
    redactor = CountingRedactor()
    filt = RedactingFilter(redactor)
    parent = logging.getLogger("aiide-test-redaction")
    child = logging.getLogger("aiide-test-redaction.child")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setLevel(logging.INFO)
    parent.setLevel(logging.DEBUG)
    parent.propagate = False
    parent.addHandler(handler)
    try:
        for logger in (parent, child):
            logger.addFilter(filt)
        handler.addFilter(filt)
        parent.debug("dropped %s", secret)
        child.debug("dropped too %s", secret)
        assert redactor.calls == 0
        parent.info("written %s", secret)
        child.warning("written through the parent %s", secret)
        assert redactor.calls == 2  # once each, though two filters saw each record
        assert secret not in out.getvalue() and "written through" in out.getvalue()
        handler.setLevel(logging.DEBUG)  # now debug records are written: redacted
        child.debug("kept %s", secret)
        assert secret not in out.getvalue() and "kept" in out.getvalue()
    finally:
        parent.removeHandler(handler)
        for logger in (parent, child):
            logger.removeFilter(filt)


def test_the_servers_own_login_link_passes_and_other_tokens_do_not() -> None:
    link = "http://127.0.0.1:8888/lab?token=0123456789abcdef0123456789abcdef"
    filt = RedactingFilter(Redactor(), own_urls=lambda: [link])

    def shown(message: str) -> str:
        record = logging.LogRecord("ServerApp", logging.INFO, __file__, 1, message, None, None)
        assert filt.filter(record)
        return record.getMessage()

    assert shown(f"    {link}") == f"    {link}"
    assert shown(f"Jupyter Server is running at:\n{link}\n    {link}").count(link) == 2
    other = "http://evil.example/lab?token=0123456789abcdef0123456789abcdef"
    assert "0123456789abcdef" not in shown(f"fetched {other}")
    assert "0123456789abcdef" not in shown("GET /lab?token=0123456789abcdef0123456789abcdef")
    # A link next to a secret: the link stays, the secret goes.
    mixed = shown(f"{link} with key sk-ant-api03-secretsecret")
    assert link in mixed and "secretsecret" not in mixed


def test_json_logs_are_one_object_per_line() -> None:
    record = logging.LogRecord("aiide.gateway", logging.WARNING, __file__, 1, "hi %s", ("x",), None)
    record.user = "alice"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "hi x"
    assert (entry["level"], entry["logger"], entry["user"]) == ("warning", "aiide.gateway", "alice")
    assert entry["time"].endswith("Z")


def test_a_generated_secret_is_private_and_stable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIIDE_JWT_SECRET", raising=False)
    path = tmp_path / "aiide" / "jwt_secret"
    first = load_secret("", str(path))
    assert len(first) >= 64
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert load_secret("", str(path)) == first
    os.chmod(path, 0o644)
    assert load_secret("", str(path)) == first
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_config_and_environment_win_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIIDE_JWT_SECRET", "from-env")
    assert load_secret("from-config", str(tmp_path / "s")) == b"from-config"
    assert load_secret("", str(tmp_path / "s")) == b"from-env"
    assert not (tmp_path / "s").exists()


def test_quota_limits_resolve_user_over_group_over_default() -> None:
    q = Quotas(
        None,  # type: ignore[arg-type]
        default={"monthly_tokens": 100},
        users={"vip": {"monthly_tokens": None}},
        groups={"a": {"monthly_tokens": 200}, "b": {"monthly_tokens": 300}},
        budgets={},
    )
    assert q.limits_for("x", ()) == {"monthly_tokens": 100}
    assert q.limits_for("x", ("a", "b")) == {"monthly_tokens": 300}
    assert q.limits_for("vip", ("a",)) == {"monthly_tokens": 200}
    with pytest.raises(ValueError, match="unknown quota"):
        Quotas(None, default={"tokens": 1}, users={}, groups={}, budgets={})  # type: ignore[arg-type]


def test_quota_periods_are_utc_calendar_days_and_months() -> None:
    t = datetime.datetime(2025, 12, 31, 23, 0, tzinfo=datetime.timezone.utc).timestamp()
    day = period_bounds("day", t)
    month = period_bounds("month", t)
    utc = datetime.timezone.utc
    assert datetime.datetime.fromtimestamp(day[1], utc).isoformat() == "2026-01-01T00:00:00+00:00"
    assert datetime.datetime.fromtimestamp(month[0], utc).isoformat() == "2025-12-01T00:00:00+00:00"
    assert datetime.datetime.fromtimestamp(month[1], utc).isoformat() == "2026-01-01T00:00:00+00:00"
