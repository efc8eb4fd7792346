"""``jupyter aiide token create``: tokens that the running server accepts."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from aiide_server_ext.gateway.cli import register_cli

from .helpers import Call


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="jupyter aiide")
    register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out.strip(), err.strip()


@pytest.mark.gateway_config(signing_secret="")
async def test_cli_token_is_accepted_by_the_server(
    call: Call, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIIDE_JWT_SECRET", raising=False)
    code, token, _ = run(
        capsys, "token", "create", "--user", "wendy", "--scopes", "chat,usage:read", "--ttl", "120"
    )
    assert code == 0
    me = (await call("GET", "/aiide/api/auth/me", token=token)).json()
    assert (me["user"], me["scopes"]) == ("wendy", ["chat", "usage:read"])
    events = (await call("GET", "/aiide/api/audit?action=token.issued", jupyter=True)).json()
    assert events["events"][0]["actor"].startswith("cli:")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scopes", "chat sudo"], "unknown scope 'sudo'"),
        (["--ttl", "-5"], "'ttl' must be positive"),
        (["--ttl", "99999999"], "'ttl' may be at most"),
    ],
)
def test_cli_refuses_bad_input_clearly(
    capsys: pytest.CaptureFixture[str], jp_environ: Any, argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, "token", "create", "--user", "x", *argv)
    assert (code, out) == (2, "")
    assert message in err


def test_cli_can_print_a_refresh_token_too(
    capsys: pytest.CaptureFixture[str], jp_environ: Any
) -> None:
    import json

    code, out, _ = run(capsys, "token", "create", "--user", "x", "--refresh", "--json")
    assert code == 0
    assert {"access_token", "refresh_token"} <= set(json.loads(out))
