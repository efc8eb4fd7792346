"""The ``described`` provider kind against fakes speaking each shipped descriptor's real
wire format: streaming and sync, tool calls, usage, errors mapped to aiide's codes."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from fakes import (
    FakeAnthropic,
    FakeAzure,
    FakeBedrock,
    FakeGemini,
    FakeOllama,
    FakeTextApi,
    Reply,
    ToolUse,
)
from fakes.script import FakeServer

from aiide_server_ext.agent.providers import (
    ModelRequest,
    ProviderError,
    RetryPolicy,
    build_provider,
    stream_with_retries,
)
from aiide_server_ext.agent.providers.base import Stop, TextDelta, ToolRequest, Usage

pytestmark = pytest.mark.asyncio
FAST = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05, max_wait=5)
KEY = "described-key-0123456789"
TIMEOUTS = {"connect_timeout": 5.0, "idle_timeout": 5.0}


@dataclass(frozen=True)
class Api:
    descriptor: str
    fake: type[FakeServer]
    model: str
    tools: bool = True
    keyed: bool = True


APIS = [
    Api("azure-openai", FakeAzure, "my-gpt4o-deployment"),
    Api("gemini", FakeGemini, "gemini-2.0-flash"),
    Api("bedrock-converse", FakeBedrock, "anthropic.claude-3-haiku-20240307-v1:0"),
    Api("ollama", FakeOllama, "llama3.2", keyed=False),
    Api("text-api", FakeTextApi, "any", tools=False),
    # What a student's server speaks to the broker's route for a described provider.
    Api("anthropic-messages", FakeAnthropic, "claude-haiku-4-5"),
]
IDS = [a.descriptor for a in APIS]


@pytest_asyncio.fixture(params=APIS, ids=IDS)
async def api(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Api, FakeServer]]:
    chosen: Api = request.param
    fake = chosen.fake(api_key=KEY if chosen.keyed else None)
    await fake.start()
    yield chosen, fake
    await fake.stop()


def provider(api: Api, fake: FakeServer, **overrides: Any) -> Any:
    spec = {"kind": "described", "descriptor": api.descriptor, "base_url": fake.url, **overrides}
    return build_provider("p", spec, TIMEOUTS)


def request(api: Api, **kw: Any) -> ModelRequest:
    return ModelRequest(
        model=api.model,
        system="be brief",
        messages=[{"role": "user", "content": "hi"}],
        user="alice",
        **kw,
    )


async def run(p: Any, req: ModelRequest, key: str | None = KEY) -> list[Any]:
    if p.descriptor.name == "ollama":
        key = None  # Ollama takes no key
    try:
        return [e async for e in stream_with_retries(p, req, key, FAST)]
    finally:
        await p.aclose()


def text(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


@pytest.mark.parametrize("mode", ["stream", "sync"])
async def test_text_usage_and_stop(api: tuple[Api, FakeServer], mode: str) -> None:
    chosen, fake = api
    fake.push(Reply(text="one two three", input_tokens=42, output_tokens=7))
    got = await run(provider(chosen, fake, mode=mode), request(chosen))
    assert text(got) == "one two three"
    usage = next(e for e in got if isinstance(e, Usage))
    assert (usage.input_tokens, usage.output_tokens) == (42, 7)
    assert got[-1] == Stop("end_turn")
    if mode == "stream":  # streamed in pieces, not as one answer
        assert len([e for e in got if isinstance(e, TextDelta)]) == 3
    sent = fake.requests[0]
    assert sent.auth == ("none" if not chosen.keyed else sent.auth)
    assert sent.auth not in (("refused", "none") if chosen.keyed else ("refused",))


@pytest.mark.parametrize("mode", ["stream", "sync"])
async def test_tool_calls(api: tuple[Api, FakeServer], mode: str) -> None:
    chosen, fake = api
    if not chosen.tools:
        pytest.skip("this API has no tool calls (its descriptor declares none)")
    fake.push(
        Reply(
            text="Let me look.",
            tools=[ToolUse("read_cell", {"cell_id": "c1"}), ToolUse("list_files", {"path": "."})],
        )
    )
    tools = [{"name": "read_cell", "description": "d", "input_schema": {"type": "object"}}]
    got = await run(provider(chosen, fake, mode=mode), request(chosen, tools=tools))
    calls = [e for e in got if isinstance(e, ToolRequest)]
    assert [(c.name, c.arguments) for c in calls] == [
        ("read_cell", {"cell_id": "c1"}),
        ("list_files", {"path": "."}),
    ]
    assert len({c.id for c in calls}) == 2
    assert got[-1] == Stop("tool_use")


async def test_a_tool_conversation_is_sent_in_the_apis_shape(
    api: tuple[Api, FakeServer],
) -> None:
    chosen, fake = api
    fake.push(Reply(text="done"))
    png = base64.b64encode(b"\x89PNG fake").decode()
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [
            {"type": "text", "text": "plot it"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": png}},
        ]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "run_cell", "input": {"cell_id": "c"}}
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "42"}
        ]},
    ]  # fmt: skip
    req = ModelRequest(model=chosen.model, system="sys", messages=messages, user="alice")
    got = await run(provider(chosen, fake), req)
    assert text(got) == "done"
    body = fake.requests[0].body
    flat = str(body)
    assert "42" in flat and "sys" in flat
    if chosen.descriptor == "text-api":
        assert "[image]" in body["prompt"] and png not in flat
    else:  # the image went as the API takes it: base64, or a data: URL
        assert png in flat
    if chosen.descriptor == "gemini":
        assert body["contents"][1]["parts"][0]["functionCall"]["name"] == "run_cell"
        assert body["contents"][2]["parts"][0]["functionResponse"]["name"] == "run_cell"
        assert body["contents"][0]["parts"][1]["inlineData"]["data"] == png
    if chosen.descriptor == "bedrock-converse":
        assert body["messages"][2]["content"][0]["toolResult"]["toolUseId"] == "t1"
        assert body["messages"][0]["content"][1]["image"]["source"]["bytes"] == png
    if chosen.descriptor == "ollama":
        assert body["messages"][1]["images"] == [png]
        assert body["messages"][3]["role"] == "tool"
    if chosen.descriptor == "anthropic-messages":
        assert body["messages"] == messages and body["system"] == "sys"
    if chosen.descriptor == "azure-openai":
        parts = body["messages"][1]["content"]
        assert parts[1]["image_url"]["url"] == f"data:image/png;base64,{png}"


@pytest.mark.parametrize(
    ("status", "code"),
    [(429, "provider_rate_limited"), (400, "provider_bad_request"), (401, "provider_auth")],
)
async def test_errors_map_to_aiides_codes(
    api: tuple[Api, FakeServer], status: int, code: str
) -> None:
    chosen, fake = api
    fake.push(*[Reply(status=status, message="scripted failure") for _ in range(3)])
    with pytest.raises(ProviderError) as e:
        await run(provider(chosen, fake), request(chosen))
    assert e.value.code == code and e.value.status == status
    assert "scripted failure" in e.value.message and KEY not in e.value.message


async def test_a_rate_limit_is_retried_after_its_retry_after(
    api: tuple[Api, FakeServer],
) -> None:
    chosen, fake = api
    fake.push(Reply(status=429, retry_after=0.05, message="slow down"), Reply(text="fine"))
    got = await run(provider(chosen, fake), request(chosen))
    assert text(got) == "fine" and len(fake.requests) == 2


async def test_an_error_inside_the_stream_is_a_provider_error(
    api: tuple[Api, FakeServer],
) -> None:
    chosen, fake = api
    if chosen.descriptor == "azure-openai":
        pytest.skip("the OpenAI wire format has no in-stream error event in its fake")
    if chosen.descriptor == "anthropic-messages":  # an error event with its type
        fake.push(Reply(text="partial answer", stream_error="overloaded_error"))
        with pytest.raises(ProviderError) as e:
            await run(provider(chosen, fake), request(chosen))
        assert e.value.code == "provider_overloaded"
        return
    fake.push(Reply(text="partial answer", stream_error="the model fell over"))
    with pytest.raises(ProviderError) as e:
        await run(provider(chosen, fake), request(chosen))
    # Gemini's error says its status (UNAVAILABLE): the descriptor maps it like an answer's.
    code = "provider_overloaded" if chosen.descriptor == "gemini" else "provider_error"
    assert e.value.code == code and "the model fell over" in e.value.message


async def test_a_large_sync_answer_is_read_whole() -> None:
    """A sync answer arrives in many reads; all of it is parsed (and a bigger one than
    ``max_response_bytes`` is refused, not buffered)."""
    fake = FakeTextApi(api_key=KEY)
    await fake.start()
    try:
        big = "word " * 400_000  # 2 MB
        fake.push(Reply(text=big))
        api = Api("text-api", FakeTextApi, "any", tools=False)
        got = await run(provider(api, fake, mode="sync"), request(api))
        assert text(got) == big
        fake.push(Reply(text=big))
        with pytest.raises(ProviderError) as e:
            await run(provider(api, fake, mode="sync", max_response_bytes=1 << 20), request(api))
        assert "larger than 1048576 bytes" in e.value.message
    finally:
        await fake.stop()


async def test_a_descriptor_reads_its_endpoint_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeAzure(api_key=KEY)
    await fake.start()
    try:
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", fake.url)  # ${env.AZURE_OPENAI_ENDPOINT}
        fake.push(Reply(text="from the environment's endpoint"))
        spec = {"kind": "described", "descriptor": "azure-openai",
                "variables": {"api_version": "2025-01-01-preview"}}  # fmt: skip
        api = Api("azure-openai", FakeAzure, "dep")
        got = await run(build_provider("p", spec, TIMEOUTS), request(api))
        assert text(got) == "from the environment's endpoint"
        assert fake.requests[0].path == "/openai/deployments/dep/chat/completions"
    finally:
        await fake.stop()


def _mapped(descriptor: str, chunks: list[dict[str, Any]]) -> list[Any]:
    from aiide_server_ext.agent.providers import describe
    from aiide_server_ext.agent.providers.streams import Mapper

    d = describe("p", {"kind": "described", "descriptor": descriptor, "base_url": "http://h"})
    mapper = Mapper(d, d.part, "p", lambda s: s)
    out: list[Any] = []
    for chunk in chunks:
        out += mapper.feed(chunk, json.dumps(chunk))
    return out + mapper.finish()


async def test_thinking_is_not_part_of_the_answer() -> None:
    gemini = [{"candidates": [{"content": {"parts": [
        {"text": "let me think", "thought": True}, {"text": "42"}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1}}]  # fmt: skip
    assert [e for e in _mapped("gemini", gemini) if isinstance(e, TextDelta)] == [TextDelta("42")]
    bedrock = [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"delta": {"reasoningContent": {"text": "hmm"}},
                               "contentBlockIndex": 0}},
        {"contentBlockDelta": {"delta": {"text": "42"}, "contentBlockIndex": 1}},
        {"messageStop": {"stopReason": "end_turn"}},
    ]  # fmt: skip
    got = _mapped("bedrock-converse", bedrock)
    assert [e for e in got if isinstance(e, TextDelta)] == [TextDelta("42")]
    assert got[-1] == Stop("end_turn")


def test_input_tokens_count_the_prompt_caches_input_where_the_api_gives_it_apart() -> None:
    """Anthropic's Messages API and Bedrock's Converse give cached input apart from
    ``input_tokens``; aiide's usage counts all input (what quotas and the broker's budgets
    count) with the cache's share noted, as the built-in Anthropic provider does."""
    anthropic = [
        {"type": "message_start", "message": {"id": "msg_1", "model": "m", "usage": {
            "input_tokens": 12, "cache_read_input_tokens": 3000,
            "cache_creation_input_tokens": 40, "output_tokens": 1}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ok"}},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
         "usage": {"output_tokens": 9}},
    ]  # fmt: skip
    [usage] = [e for e in _mapped("anthropic-messages", anthropic) if isinstance(e, Usage)]
    assert (usage.input_tokens, usage.output_tokens) == (3052, 9)
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (3000, 40)
    bedrock = [
        {"contentBlockDelta": {"delta": {"text": "ok"}, "contentBlockIndex": 0}},
        {"messageStop": {"stopReason": "end_turn"}},
        {"metadata": {"usage": {"inputTokens": 12, "outputTokens": 9,
                                "cacheReadInputTokens": 3000, "cacheWriteInputTokens": 40}}},
    ]  # fmt: skip
    [usage] = [e for e in _mapped("bedrock-converse", bedrock) if isinstance(e, Usage)]
    assert (usage.input_tokens, usage.output_tokens) == (3052, 9)
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (3000, 40)
    # an API answer without the cache's fields counts its input as before
    plain = [{**anthropic[0], "message": {"id": "m2", "usage": {"input_tokens": 12}}}]
    [usage] = [e for e in _mapped("anthropic-messages", plain) if isinstance(e, Usage)]
    assert (usage.input_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (12, 0, 0)
