"""What the broker reads on the way through (usage) and how it names callers, no hub."""

from __future__ import annotations

import json

import pytest

from aiide_server_ext.hub.broker.identity import HubIdentity
from aiide_server_ext.hub.broker.relay import OpenAIUsageCounter, UsageCounter
from aiide_server_ext.hub.singleuser.providers import broker_specs

pytestmark = pytest.mark.xdist_group("hub")

BODY = {"model": "m", "messages": [{"role": "user", "content": "x" * 400}]}


def _sse(*events: object) -> bytes:
    return b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events) + b"data: [DONE]\n\n"


def _feed_in_pieces(counter: UsageCounter, data: bytes, size: int = 7) -> None:
    for i in range(0, len(data), size):  # lines split across chunks, as on the wire
        counter.feed(data[i : i + size])


def test_openai_usage_is_read_from_the_last_stream_chunk() -> None:
    stream = _sse(
        {"choices": [{"index": 0, "delta": {"content": "Hello"}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3}},
    )
    counter = OpenAIUsageCounter({**BODY, "stream": True})
    _feed_in_pieces(counter, stream)
    counter.settle()
    assert (counter.input_tokens, counter.output_tokens, counter.estimated) == (12, 3, False)


def test_openai_usage_of_a_json_answer_over_several_lines() -> None:
    answer = {"choices": [{"message": {"content": "Hi"}}], "usage": {"prompt_tokens": 5,
              "completion_tokens": 2, "total_tokens": 7}}  # fmt: skip
    counter = OpenAIUsageCounter(BODY)  # not streaming
    _feed_in_pieces(counter, json.dumps(answer, indent=2).encode())  # as OpenAI sends it
    counter.settle()
    assert (counter.input_tokens, counter.output_tokens) == (5, 2)


def test_a_provider_without_usage_is_metered_by_an_estimate() -> None:
    content = {"choices": [{"index": 0, "delta": {"content": "y" * 80}}]}
    call = {"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "function": {"name": "f", "arguments": "z" * 40}}]}}]}  # fmt: skip
    counter = OpenAIUsageCounter({**BODY, "stream": True})
    _feed_in_pieces(counter, _sse(content, call))
    counter.settle()
    assert counter.estimated
    assert counter.output_tokens == 30  # (80 + 40) characters / 4
    assert counter.input_tokens >= 100  # the 400-character prompt


def test_anthropic_usage_from_message_start_and_delta() -> None:
    stream = (
        b'event: message_start\ndata: {"type": "message_start", "message": {"usage": '
        b'{"input_tokens": 9, "output_tokens": 1}}}\n\n'
        b'event: message_delta\ndata: {"type": "message_delta", "usage": {"output_tokens": 4}}\n\n'
    )
    counter = UsageCounter()
    _feed_in_pieces(counter, stream)
    assert (counter.input_tokens, counter.output_tokens) == (9, 4)
    answer = {"type": "message", "content": [], "usage": {"input_tokens": 6, "output_tokens": 2}}
    whole = UsageCounter(streaming=False)
    _feed_in_pieces(whole, json.dumps(answer, indent=1).encode())
    whole.settle()
    assert (whole.input_tokens, whole.output_tokens) == (6, 2)


def test_hub_roles_count_as_the_groups_they_map_to() -> None:
    identity = HubIdentity("http://hub/api", "t", role_groups={"instructor": ["instructors"]})
    caller = identity.caller_from(
        {"name": "rita", "groups": [], "roles": ["user", "instructor"], "admin": False}
    )
    assert caller.groups == {"instructors"} and caller.roles == {"user", "instructor"}
    student = identity.caller_from({"name": "al", "groups": ["students"], "roles": ["user"]})
    assert student.groups == {"students"} and not student.admin


def test_providers_are_pointed_at_the_broker_unless_told_not_to() -> None:
    local = {"kind": "openai", "base_url": "http://127.0.0.1:11434/v1", "via_broker": False}
    configured = {
        "anthropic": {"kind": "anthropic", "api_key_env": "ANTHROPIC_API_KEY"},
        "openai": {"kind": "openai", "base_url": "https://api.openai.com/v1"},
        "local": local,
    }
    specs = broker_specs(configured, "http://broker:8765/services/aiide-broker/")
    assert specs["anthropic"]["base_url"] == "http://broker:8765/services/aiide-broker/anthropic"
    assert specs["openai"]["base_url"] == "http://broker:8765/services/aiide-broker/openai/v1"
    assert {specs[n]["api_key_env"] for n in ("anthropic", "openai")} == {"JUPYTERHUB_API_TOKEN"}
    assert specs["local"]["base_url"] == "http://127.0.0.1:11434/v1"
    assert "api_key_env" not in specs["local"]
