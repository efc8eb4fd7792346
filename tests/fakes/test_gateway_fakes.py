"""The described providers' fakes speak their APIs' documented wire formats: checked with
plain httpx, independently of aiide's descriptors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from fakes import FakeAzure, FakeBedrock, FakeGemini, FakeOllama, FakeTextApi, Reply, ToolUse
from fakes.script import FakeServer

pytestmark = pytest.mark.asyncio
KEY = "gateway-fake-key-0123"


async def started(fake: FakeServer) -> FakeServer:
    await fake.start()
    return fake


@pytest_asyncio.fixture
async def servers() -> AsyncIterator[dict[str, Any]]:
    fakes = {
        "azure": await started(FakeAzure(api_key=KEY)),
        "gemini": await started(FakeGemini(api_key=KEY)),
        "bedrock": await started(FakeBedrock(api_key=KEY)),
        "ollama": await started(FakeOllama()),
        "text": await started(FakeTextApi(api_key=KEY)),
    }
    yield fakes
    for fake in fakes.values():
        await fake.stop()


async def lines(url: str, body: dict[str, Any], headers: dict[str, str]) -> list[str]:
    async with (
        httpx.AsyncClient() as client,
        client.stream("POST", url, json=body, headers=headers) as r,
    ):
        assert r.status_code == 200, await r.aread()
        return [line async for line in r.aiter_lines()]


async def test_azure_needs_api_version_and_the_api_key_header(servers: dict[str, Any]) -> None:
    fake = servers["azure"]
    base = fake.url + "/openai/deployments/dep1/chat/completions"
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with httpx.AsyncClient() as client:
        r = await client.post(base, json=body, headers={"api-key": KEY})
        assert r.status_code == 404 and r.json()["error"]["code"] == "404"
        r = await client.post(base + "?api-version=2024-10-21", json=body,
                              headers={"authorization": f"Bearer {KEY}"})  # fmt: skip
        assert r.status_code == 401 and r.json()["error"]["code"] == "401"
    got = await lines(base + "?api-version=2024-10-21", body, {"api-key": KEY})
    chunks = [json.loads(x[6:]) for x in got if x.startswith("data: {")]
    assert chunks[0]["choices"] == [] and "prompt_filter_results" in chunks[0]
    assert chunks[1]["model"] == "dep1" and got[-2] == "data: [DONE]"


async def test_gemini_streams_whole_responses_as_sse_with_usage(servers: dict[str, Any]) -> None:
    fake = servers["gemini"]
    fake.push(Reply(text="a b", tools=[ToolUse("f", {"x": 1})]))
    url = fake.url + "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    got = await lines(url, {"contents": []}, {"x-goog-api-key": KEY})
    chunks = [json.loads(x[6:]) for x in got if x.startswith("data: ")]
    assert all("usageMetadata" in c and c["modelVersion"] for c in chunks)
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    assert parts == [
        {"text": "a "},
        {"text": "b"},
        {"functionCall": {"name": "f", "args": {"x": 1}}},
    ]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    fake.push(Reply(status=429, message="quota"))
    sync = fake.url + "/v1beta/models/gemini-2.0-flash:generateContent"
    async with httpx.AsyncClient() as client:
        r = await client.post(sync, json={}, headers={"x-goog-api-key": KEY})
        assert r.json()["error"] == {
            "code": 429,
            "message": "quota",
            "status": "RESOURCE_EXHAUSTED",
        }


async def test_bedrock_stream_is_converse_events_one_a_line(servers: dict[str, Any]) -> None:
    fake = servers["bedrock"]
    fake.push(Reply(text="hi", tools=[ToolUse("f", {"x": 1}, id="tooluse_1")]))
    url = fake.url + "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
    got = [json.loads(x) for x in await lines(url, {"messages": []},
                                               {"authorization": f"Bearer {KEY}"})]  # fmt: skip
    kinds = [next(iter(e)) for e in got]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    start = next(e for e in got if "contentBlockStart" in e)["contentBlockStart"]
    assert start["start"]["toolUse"] == {"toolUseId": "tooluse_1", "name": "f"}
    pieces = [e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in got
              if "toolUse" in e.get("contentBlockDelta", {}).get("delta", {})]  # fmt: skip
    assert json.loads("".join(pieces)) == {"x": 1}
    assert got[-1]["metadata"]["usage"]["outputTokens"] > 0
    fake.push(Reply(status=429, message="Too many requests"))
    async with httpx.AsyncClient() as client:
        r = await client.post(url.replace("-stream", ""), json={},
                              headers={"authorization": f"Bearer {KEY}"})  # fmt: skip
    assert r.status_code == 429 and r.headers["x-amzn-ErrorType"] == "ThrottlingException"


async def test_ollama_streams_json_lines_ending_with_counts(servers: dict[str, Any]) -> None:
    fake = servers["ollama"]
    got = [json.loads(x) for x in await lines(fake.url + "/api/chat", {"model": "m"}, {})]
    assert [g["done"] for g in got] == [False] * (len(got) - 1) + [True]
    assert got[-1]["done_reason"] == "stop" and got[-1]["eval_count"] > 0
    async with httpx.AsyncClient() as client:
        r = await client.post(fake.url + "/api/chat", json={"model": "m", "stream": False})
    assert r.json()["done"] is True and r.json()["message"]["content"] == "ok"


async def test_the_text_api_streams_a_json_array(servers: dict[str, Any]) -> None:
    fake = servers["text"]
    fake.push(Reply(text="one two"))
    got = "\n".join(await lines(fake.url + "/generate", {"prompt": "x", "stream": True},
                                {"authorization": f"Bearer {KEY}"}))  # fmt: skip
    array = json.loads(got)
    assert array[0] == {"text": "one "} and array[-1]["finish"] == "stop"
