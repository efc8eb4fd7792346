"""The broker's request screening, key files and client addresses, without a hub."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from aiide_server_ext.agent.complete import SYSTEM
from aiide_server_ext.agent.providers.anthropic import AnthropicProvider
from aiide_server_ext.agent.providers.base import ModelRequest
from aiide_server_ext.agent.providers.openai_compat import OpenAICompatProvider
from aiide_server_ext.hub.broker.identity import client_ip, trusted_networks
from aiide_server_ext.hub.broker.screening import completion_refusal, forward_headers, tool_refusal
from aiide_server_ext.hub.broker.service import provider_key
from aiide_server_ext.hub.course import CourseError

LIMITS = {"max_tokens": 1024, "max_prompt_chars": 8000}


def _completer_request() -> ModelRequest:
    """What ``agent/complete.py`` builds for an inline completion."""
    prompt = "```python\nimport <CURSOR>\n```"
    return ModelRequest(
        model="claude-haiku-4-5",
        system=SYSTEM,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=128,
        temperature=0.0,
    )


def _anthropic_wire(request: ModelRequest) -> dict[str, Any]:
    """The Messages API body the SDK sends for the provider's params (streaming)."""
    params = AnthropicProvider("a", None).params(request)
    body = {k: v for k, v in params.items() if k not in ("extra_body", "extra_headers")}
    return {**body, **params.get("extra_body", {}), "stream": True}


def test_the_completers_own_requests_pass_as_completions() -> None:
    request = _completer_request()
    assert completion_refusal("anthropic", _anthropic_wire(request), **LIMITS) is None
    openai = OpenAICompatProvider("o", "http://127.0.0.1:1/v1").body(request)
    assert completion_refusal("openai", openai, **LIMITS) is None


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"system": "You are a helpful tutor."}, "instruction"),
        ({"system": None}, "instruction"),
        ({"tools": [{"name": "run", "input_schema": {}}]}, "'tools'"),
        ({"max_tokens": 4096}, "at most 1024 tokens"),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": "b"},
                    {"role": "user", "content": "c"},
                ]
            },
            "one user message",
        ),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}, "text"),
        ({"messages": [{"role": "user", "content": "x" * 9000}]}, "8000 characters"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2000}}, "'thinking'"),
    ],
)
def test_a_chat_dressed_as_a_completion_is_not_one(change: dict[str, Any], why: str) -> None:
    body = {**_anthropic_wire(_completer_request()), **change}
    body = {k: v for k, v in body.items() if v is not None}
    refusal = completion_refusal("anthropic", body, **LIMITS)
    assert refusal is not None and why in refusal


def test_an_openai_chat_with_another_system_prompt_is_not_a_completion() -> None:
    body = OpenAICompatProvider("o", "http://127.0.0.1:1/v1").body(_completer_request())
    body["messages"][0]["content"] = "Answer the exam questions."
    assert completion_refusal("openai", body, **LIMITS) is not None


def test_provider_headers_are_allow_listed() -> None:
    headers, refused = forward_headers({"anthropic-version": "2023-06-01"}, [])
    assert (headers, refused) == ({"anthropic-version": "2023-06-01"}, None)
    _, refused = forward_headers({"anthropic-beta": "web-search-2025-03-05"}, [])
    assert refused is not None and refused[0] == "header_not_allowed"
    headers, refused = forward_headers(
        {"anthropic-beta": "a-1, b-2"}, ["a-1", "b-2", "c-3"]
    )  # every listed beta passes
    assert refused is None and headers["anthropic-beta"] == "a-1,b-2"
    _, refused = forward_headers({"anthropic-beta": "a-1,evil"}, ["a-1"])
    assert refused is not None and "evil" in refused[1]
    _, refused = forward_headers({"anthropic-version": "2023-06-01\r\nx-evil: 1"}, [])
    assert refused is not None


def test_provider_run_tools_are_refused_unless_listed() -> None:
    client_tool = {"name": "run_cell", "input_schema": {"type": "object"}}
    server_tool = {"type": "web_search_20250305", "name": "web_search"}
    assert tool_refusal("anthropic", {"tools": [client_tool]}, []) is None
    assert tool_refusal("anthropic", {"tools": [{**client_tool, "type": "custom"}]}, []) is None
    refused = tool_refusal("anthropic", {"tools": [client_tool, server_tool]}, [])
    assert refused is not None and refused[0] == "tool_not_allowed"
    assert tool_refusal("anthropic", {"tools": [server_tool]}, ["web_search_20250305"]) is None
    function = {"type": "function", "function": {"name": "f", "parameters": {}}}
    assert tool_refusal("openai", {"tools": [function]}, []) is None
    assert tool_refusal("openai", {"tools": [{"type": "web_search_preview"}]}, []) is not None


def test_a_key_file_must_be_the_brokers_alone(tmp_path: Path) -> None:
    key = tmp_path / "anthropic.key"
    key.write_text("sk-ant-secret-key\n")
    key.chmod(0o600)
    assert provider_key("anthropic", {"api_key_file": str(key)}) == "sk-ant-secret-key"
    key.chmod(0o640)
    with pytest.raises(CourseError, match="readable by other users"):
        provider_key("anthropic", {"api_key_file": str(key)})
    key.chmod(0o600)
    link = tmp_path / "link.key"
    link.symlink_to(key)
    with pytest.raises(CourseError, match="cannot read"):
        provider_key("anthropic", {"api_key_file": str(link)})
    with pytest.raises(CourseError, match="cannot read"):
        provider_key("anthropic", {"api_key_file": str(tmp_path / "missing.key")})


def test_a_key_from_the_environment_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIIDE_TEST_KEY", "sk-from-env")
    assert provider_key("x", {"api_key_env": "AIIDE_TEST_KEY"}) == "sk-from-env"
    assert (
        provider_key("x", {"api_key_env": "AIIDE_NO_SUCH_VARIABLE_" + os.urandom(4).hex()}) is None
    )


def test_forwarded_addresses_count_only_from_trusted_proxies() -> None:
    none = trusted_networks([])
    proxy = trusted_networks(["10.0.0.5", "10.1.0.0/16"])
    assert client_ip("127.0.0.1", "203.0.113.9", none) == "127.0.0.1"
    assert client_ip("192.0.2.1", "203.0.113.9", proxy) == "192.0.2.1"  # not a proxy
    assert client_ip("10.0.0.5", "203.0.113.9", proxy) == "203.0.113.9"
    # The student's own claim (left) is not believed; the proxies' additions are.
    assert client_ip("10.0.0.5", "6.6.6.6, 203.0.113.9, 10.1.2.3", proxy) == "203.0.113.9"
    assert client_ip("10.0.0.5", "not-an-ip", proxy) == "10.0.0.5"
    with pytest.raises(ValueError, match="trusted_proxies"):
        trusted_networks(["proxy.example"])
