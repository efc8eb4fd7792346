"""The server and kernel halves of output isolation: the lab's Content-Security-Policy,
and ``%ai`` answers sent as model text (never as trusted Markdown or HTML)."""

from __future__ import annotations

from typing import Any

from traitlets.config import Config

from aiide_kernel.magics import MODEL_TEXT_MIME, model_text_bundle
from aiide_server_ext.csp import HEADER, apply_csp


def test_the_policy_is_added_to_the_servers_headers() -> None:
    settings: dict[str, Any] = {"base_url": "/user/ada/", "headers": {"X-Frame": "x"}}
    original = settings["headers"]
    policy = apply_csp(settings, Config())
    assert policy is not None
    for directive in ("object-src 'none'", "base-uri 'self'", "form-action 'self'",
                      "frame-ancestors 'self'", "connect-src 'self'"):  # fmt: skip
        assert directive in policy
    assert "report-uri /user/ada/api/security/csp-report" in policy
    assert settings["headers"] == {"X-Frame": "x", HEADER: policy}
    assert original == {"X-Frame": "x"}  # the server's own dict is left alone


def test_an_admins_policy_wins_and_the_policy_can_be_turned_off() -> None:
    settings: dict[str, Any] = {"headers": {HEADER: "default-src 'self'"}}
    assert apply_csp(settings, Config()) == "default-src 'self'"
    assert settings["headers"] == {HEADER: "default-src 'self'"}
    off = Config({"LabSecurityPolicy": {"enabled": False}})
    bare: dict[str, Any] = {}
    assert apply_csp(bare, off) is None
    assert "headers" not in bare


def test_ai_answers_are_model_text_with_a_plain_text_fallback() -> None:
    text = '<img src=x onerror="alert(1)"> **hi**'
    bundle = model_text_bundle(text)
    assert bundle == {MODEL_TEXT_MIME: text, "text/plain": text}
    assert "text/markdown" not in bundle and "text/html" not in bundle
