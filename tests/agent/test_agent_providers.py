"""Providers and router against the fakes, reached through base_url like real services."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fakes import FakeAnthropic, FakeOpenAI, Reply, ToolUse

from aiide_server_ext.agent.errors import AgentError
from aiide_server_ext.agent.providers import (
    ModelRequest,
    ProviderError,
    RetryPolicy,
    stream_with_retries,
)
from aiide_server_ext.agent.providers.anthropic import (
    AnthropicProvider,
    _AiohttpChunks,
    _chunks,
    _events,
)
from aiide_server_ext.agent.providers.base import (
    Stop,
    TextDelta,
    ToolRequest,
    Usage,
    parse_retry_after,
)
from aiide_server_ext.agent.providers.openai_compat import OpenAICompatProvider, to_openai_messages
from aiide_server_ext.agent.router import Router
from aiide_server_ext.seams import Caller, OpenGate

from .conftest import KEY, OAI_KEY

pytestmark = pytest.mark.asyncio
FAST = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05, max_wait=5)


def request(**kw: Any) -> ModelRequest:
    return ModelRequest(
        model="m", system="be brief", messages=[{"role": "user", "content": "hi"}], **kw
    )


async def events(provider: Any, key: str | None = KEY, policy: RetryPolicy = FAST) -> list[Any]:
    try:
        return [e async for e in stream_with_retries(provider, request(), key, policy)]
    finally:
        await provider.aclose()


async def test_anthropic_streams_text_usage_and_stop(afake_anthropic: FakeAnthropic) -> None:
    afake_anthropic.push(Reply(text="one two three", input_tokens=42, output_tokens=7))
    got = await events(AnthropicProvider("a", afake_anthropic.url))
    assert "".join(e.text for e in got if isinstance(e, TextDelta)) == "one two three"
    assert Usage(42, 7) in got and got[-1] == Stop("end_turn")


async def test_anthropic_tool_use_and_invalid_tool_json(afake_anthropic: FakeAnthropic) -> None:
    afake_anthropic.push(
        Reply(
            tools=[
                ToolUse("read_cell", {"cell_id": "c"}, id="t1"),
                ToolUse("x", raw='{"a": ', id="t2"),
            ]
        )
    )
    got = [
        e
        for e in await events(AnthropicProvider("a", afake_anthropic.url))
        if isinstance(e, ToolRequest)
    ]
    assert got[0] == ToolRequest("t1", "read_cell", {"cell_id": "c"}, '{"cell_id": "c"}')
    assert got[1].arguments is None and "not valid JSON" in (got[1].error or "")


async def test_429_is_retried_after_retry_after(afake_anthropic: FakeAnthropic) -> None:
    afake_anthropic.push(
        Reply(status=429, error_type="rate_limit_error", retry_after=0.05), Reply(text="fine")
    )
    got = await events(AnthropicProvider("a", afake_anthropic.url))
    assert [e.text for e in got if isinstance(e, TextDelta)] == ["fine"]
    assert len(afake_anthropic.requests) == 2


async def test_529_until_retries_run_out(afake_anthropic: FakeAnthropic) -> None:
    afake_anthropic.push(*[Reply(status=529, error_type="overloaded_error", retry_after=0)] * 3)
    with pytest.raises(ProviderError) as e:
        await events(AnthropicProvider("a", afake_anthropic.url))
    assert e.value.code == "provider_overloaded" and len(afake_anthropic.requests) == 3


async def test_bad_key_is_provider_auth_and_not_retried(afake_anthropic: FakeAnthropic) -> None:
    with pytest.raises(ProviderError) as e:
        await events(AnthropicProvider("a", afake_anthropic.url), key="sk-wrong-000000")
    assert e.value.code == "provider_auth" and len(afake_anthropic.requests) == 1


async def test_stall_is_a_timeout(afake_anthropic: FakeAnthropic) -> None:
    afake_anthropic.push(Reply(text="a b c", stall_after=1))
    with pytest.raises(ProviderError) as e:
        await events(AnthropicProvider("a", afake_anthropic.url, idle_timeout=0.3))
    assert e.value.code == "provider_timeout"
    assert len(afake_anthropic.requests) == 1  # text had streamed: never retried


async def test_drop_mid_stream_is_not_retried(afake_anthropic: FakeAnthropic) -> None:
    afake_anthropic.push(Reply(text="a b c d", drop_after=2))
    with pytest.raises(ProviderError) as e:
        await events(AnthropicProvider("a", afake_anthropic.url))
    assert e.value.code in ("provider_error", "provider_unavailable")
    assert len(afake_anthropic.requests) == 1


async def test_anthropic_body_is_read_straight_from_aiohttp(
    afake_anthropic: FakeAnthropic,
) -> None:
    """The SDK's aiohttp transport is read without its generator layers (an SDK that moves
    it fails here rather than silently streaming slower), and the bytes are the same."""
    afake_anthropic.push(Reply(text="one two"))
    provider = AnthropicProvider("a", afake_anthropic.url)
    body = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    try:
        messages = provider._client(KEY).messages.with_streaming_response
        async with messages.create(**body, stream=True) as response:
            raw = _chunks(response.http_response)
            assert isinstance(raw, _AiohttpChunks)
            data = b"".join([chunk async for chunk in raw])
    finally:
        await provider.aclose()
    got = [e async for e in _events(chunks(data))]
    assert "".join(e.text for e in got if isinstance(e, TextDelta)) == "one two"
    assert got[-1] == Stop("end_turn")


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def text_delta(text: str) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": text},
    }


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_text_deltas_of_one_read_become_one_event_in_order() -> None:
    """A server that falls behind reads several deltas at once and passes them on as one;
    a tool call between texts keeps its place, and an event split across reads is whole."""
    tool = {"type": "tool_use", "id": "t1", "name": "read_cell", "input": {}}
    stream = sse(text_delta("a"), text_delta("b"), text_delta("c"))
    stream += sse({"type": "content_block_start", "index": 1, "content_block": tool})
    stream += sse(
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"cell_id": "c1"}'},
        },
        {"type": "content_block_stop", "index": 1},
        text_delta("d"),
    )
    tail = sse(text_delta("e"), {"type": "message_delta", "delta": {"stop_reason": "tool_use"}})
    got = [e async for e in _events(chunks(stream, tail[:20], tail[20:]))]
    assert got == [
        TextDelta("abc"),
        ToolRequest("t1", "read_cell", {"cell_id": "c1"}, '{"cell_id": "c1"}'),
        TextDelta("d"),
        TextDelta("e"),
        Usage(0, 0),
        Stop("tool_use"),
    ]


async def test_text_read_with_an_in_stream_error_is_delivered_first() -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    got: list[Any] = []

    async def read() -> None:
        async for event in _events(chunks(sse(text_delta("a"), text_delta("b"), error))):
            got.append(event)

    with pytest.raises(ProviderError) as e:
        await read()
    assert got == [TextDelta("ab")] and e.value.code == "provider_overloaded"


async def test_in_stream_overload_after_text_is_not_retried(
    afake_anthropic: FakeAnthropic,
) -> None:
    afake_anthropic.push(Reply(text="partial answer", stream_error="overloaded_error"))
    provider = AnthropicProvider("a", afake_anthropic.url)
    got: list[Any] = []

    async def read() -> None:
        try:
            async for event in stream_with_retries(provider, request(), KEY, FAST):
                got.append(event)
        finally:
            await provider.aclose()

    with pytest.raises(ProviderError) as e:
        await read()
    assert e.value.code == "provider_overloaded"
    assert "".join(x.text for x in got if isinstance(x, TextDelta)) == "partial answer"
    assert len(afake_anthropic.requests) == 1


async def test_unreachable_provider_is_unavailable() -> None:
    with pytest.raises(ProviderError) as e:
        await events(AnthropicProvider("a", "http://127.0.0.1:9"), policy=RetryPolicy(0))
    assert e.value.code == "provider_unavailable"


async def test_openai_compat_streams_text_tools_usage(afake_openai: FakeOpenAI) -> None:
    afake_openai.push(
        Reply(text="hello there", tools=[ToolUse("list_cells", {"path": "a.ipynb"}, id="c1")])
    )
    got = await events(OpenAICompatProvider("o", afake_openai.url + "/v1"), key=OAI_KEY)
    assert "".join(e.text for e in got if isinstance(e, TextDelta)) == "hello there"
    assert ToolRequest("c1", "list_cells", {"path": "a.ipynb"}, '{"path": "a.ipynb"}') in got
    assert any(isinstance(e, Usage) and e.input_tokens > 0 for e in got) and got[-1] == Stop(
        "tool_use"
    )


async def test_openai_compat_429_retried(afake_openai: FakeOpenAI) -> None:
    afake_openai.push(Reply(status=429, retry_after=0.01), Reply(text="ok"))
    got = await events(OpenAICompatProvider("o", afake_openai.url + "/v1"), key=OAI_KEY)
    assert [e.text for e in got if isinstance(e, TextDelta)] == ["ok"]


async def test_messages_translate_to_openai_with_tool_results() -> None:
    msgs = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "x"},
                {"type": "tool_use", "id": "t", "name": "n", "input": {"a": 1}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r"}]},
    ]
    out = to_openai_messages("sys", msgs)
    assert out[0] == {"role": "system", "content": "sys"}
    assert out[2]["tool_calls"][0]["function"] == {"name": "n", "arguments": '{"a": 1}'}
    assert out[3] == {"role": "tool", "tool_call_id": "t", "content": "r"}


async def test_retry_after_forms() -> None:
    assert parse_retry_after({"Retry-After": "3"}) == 3
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({}) is None


class Values:
    def __init__(self, data: dict[tuple[str, str], str] | None = None) -> None:
        self.data = data or {}

    def user_value(self, username: str, name: str) -> str | None:
        return self.data.get((username, name))


class MeterGate(OpenGate):
    def __init__(self) -> None:
        self.usage: list[dict[str, Any]] = []

    async def record_model_usage(self, caller: Caller, **kw: Any) -> None:  # type: ignore[override]
        self.usage.append(kw)


def make_router(
    monkeypatch: pytest.MonkeyPatch, anthropic_url: str, openai_url: str, **cfg: Any
) -> Router:
    monkeypatch.setenv("T_ANTHROPIC_KEY", KEY)
    monkeypatch.setenv("T_OAI_KEY", OAI_KEY)
    router = Router(**cfg)
    router.retry_base_delay = 0.01
    providers = {
        "anthropic": {
            "kind": "anthropic",
            "base_url": anthropic_url,
            "api_key_env": "T_ANTHROPIC_KEY",
        },
        "local": {
            "kind": "openai",
            "base_url": openai_url + "/v1",
            "api_key_env": "T_OAI_KEY",
            "headers": {"x-team": "${TEAM:-none}"},
        },
    }
    models = [
        {
            "name": "big",
            "provider": "anthropic",
            "capabilities": ["chat", "tools"],
            "cost": 3,
            "latency": 3,
        },
        {
            "name": "small",
            "provider": "local",
            "capabilities": ["chat", "tools", "complete"],
            "cost": 1,
            "latency": 1,
        },
    ]
    router.setup(models, providers, Values(), allow_user_keys=False)
    return router


async def test_router_falls_back_and_says_so(
    afake_anthropic: FakeAnthropic, afake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    router = make_router(monkeypatch, afake_anthropic.url, afake_openai.url)
    afake_anthropic.push(*[Reply(status=529, error_type="overloaded_error", retry_after=0)] * 3)
    afake_openai.push(Reply(text="from the fallback"))
    gate, notices = MeterGate(), []

    async def note(code: str, message: str) -> None:
        notices.append((code, message))

    caller = Caller("ada")
    got = [
        x
        async for x in router.stream(
            router.candidates("agent", caller),
            caller,
            lambda s: request(),
            gate=gate,
            feature="agent",
            on_notice=note,
        )
    ]
    assert {spec.name for spec, _ in got} == {"small"}
    assert [c for c, _ in notices] == ["retry", "retry", "fallback"]
    assert "big is unavailable (provider_overloaded); using small" in notices[-1][1]
    await router.aclose()
    assert gate.usage[0]["provider"] == "local" and gate.usage[0]["feature"] == "agent"
    assert afake_openai.requests[0].headers["x-team"] == "none"


async def test_router_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    router = make_router(
        monkeypatch,
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        group_models={"students": ["small"]},
    )
    assert [m.name for m in router.candidates("agent", Caller("a"))] == ["big", "small"]
    assert [m.name for m in router.candidates("complete", Caller("a"))] == ["small"]
    assert [
        m.name for m in router.candidates("agent", Caller("s", groups=frozenset({"students"})))
    ] == ["small"]
    with pytest.raises(AgentError) as e:
        router.candidates("agent", Caller("s", groups=frozenset({"students"})), requested="big")
    assert e.value.code == "unknown_model"
    monkeypatch.delenv("T_ANTHROPIC_KEY")
    monkeypatch.delenv("T_OAI_KEY")
    with pytest.raises(AgentError) as e:
        router.candidates("agent", Caller("a"))
    assert e.value.code == "no_model"


async def test_router_calibrates_token_counts_from_reported_usage(
    monkeypatch: pytest.MonkeyPatch, afake_anthropic: FakeAnthropic, afake_openai: FakeOpenAI
) -> None:
    router = make_router(monkeypatch, afake_anthropic.url, afake_openai.url)
    big = ModelRequest(
        model="claude-x", system="be brief", messages=[{"role": "user", "content": "y" * 6000}]
    )
    chars = len(big.system) + len(json.dumps(big.messages, separators=(",", ":")))
    afake_anthropic.push(Reply(text="ok", input_tokens=chars // 2))
    caller = Caller("ada")
    [spec] = [m for m in router.models if m.name == "big"]
    async for _ in router.stream([spec], caller, lambda s: big, gate=MeterGate(), feature="chat"):
        pass
    await router.aclose()
    key = router.tokenizer_of("big")
    assert key == f"anthropic/{spec.model}"
    assert router.calibration.chars_per_token(key) == pytest.approx(2.0, rel=0.01)
    assert router.calibration.to_estimate(key, 6000) == pytest.approx(3000, rel=0.01)
    assert router.calibration.chars_per_token(router.tokenizer_of("small")) == 4.0


async def test_a_stream_stopped_mid_answer_is_metered(
    monkeypatch: pytest.MonkeyPatch, afake_anthropic: FakeAnthropic, afake_openai: FakeOpenAI
) -> None:
    """The provider bills what it was sent and what it streamed, even when the user
    stops the answer before its usage arrives (issue 19, finding 10)."""
    router = make_router(monkeypatch, afake_anthropic.url, afake_openai.url)
    afake_anthropic.push(Reply(chunks=["first words ", "and more ", "never sent"], delay=0.5))
    request = ModelRequest(
        model="claude-x", system="be brief", messages=[{"role": "user", "content": "q" * 4000}]
    )
    [spec] = [m for m in router.models if m.name == "big"]
    gate = MeterGate()
    stream = router.stream([spec], Caller("ada"), lambda s: request, gate=gate, feature="chat")
    async for _, event in stream:
        if isinstance(event, TextDelta):
            break  # the user pressed Stop
    await stream.aclose()  # type: ignore[attr-defined]
    await router.aclose()
    [usage] = gate.usage
    assert usage["feature"] == "chat" and usage["model"] == spec.model
    assert usage["input_tokens"] == pytest.approx(1000, rel=0.05)  # 4,000+ characters sent
    assert usage["output_tokens"] >= 1


async def _metered_failure(router: Router, reply: Reply, fake: FakeAnthropic) -> MeterGate:
    """What the gate metered for a call that ends in a provider error."""
    fake.push(reply)
    request = ModelRequest(
        model="claude-x", system="s", messages=[{"role": "user", "content": "q"}]
    )
    [spec] = [m for m in router.models if m.name == "big"]
    gate = MeterGate()
    with pytest.raises(ProviderError):
        async for _ in router.stream(
            [spec], Caller("ada"), lambda s: request, gate=gate, feature="chat"
        ):
            pass
    await router.aclose()
    return gate


async def test_a_stream_failing_mid_answer_is_metered_once(
    monkeypatch: pytest.MonkeyPatch, afake_anthropic: FakeAnthropic, afake_openai: FakeOpenAI
) -> None:
    router = make_router(monkeypatch, afake_anthropic.url, afake_openai.url)
    failing = Reply(text="part of an answer", stream_error="overloaded_error")
    [usage] = (await _metered_failure(router, failing, afake_anthropic)).usage
    assert usage["input_tokens"] >= 1 and usage["output_tokens"] >= 4  # 17 characters


async def test_a_refused_call_is_not_metered(
    monkeypatch: pytest.MonkeyPatch, afake_anthropic: FakeAnthropic, afake_openai: FakeOpenAI
) -> None:
    router = make_router(monkeypatch, afake_anthropic.url, afake_openai.url)
    refused = Reply(status=400, error_type="invalid_request_error")
    assert (await _metered_failure(router, refused, afake_anthropic)).usage == []
