"""The fakes speak the providers' wire formats: checked with the official anthropic SDK and
plain httpx, as the product uses them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
import pytest_asyncio

from fakes import FakeAnthropic, FakeOpenAI, Reply, ToolUse

pytestmark = pytest.mark.asyncio
KEY = "sk-ant-fake-key"


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    server = FakeAnthropic(api_key=KEY)
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def oai() -> AsyncIterator[FakeOpenAI]:
    server = FakeOpenAI(api_key=KEY)
    await server.start()
    yield server
    await server.stop()


def client(fake: FakeAnthropic, **kw: object) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key=KEY, base_url=fake.url, max_retries=0, **kw)  # type: ignore[arg-type]


async def collect(fake: FakeAnthropic, **kw: object) -> list[object]:
    stream = await client(fake, **kw).messages.create(
        model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    return [event async for event in stream]


async def failure(call: Any) -> BaseException:
    """The exception a call raises, whatever its type (it depends on the SDK version)."""
    try:
        await call
    except Exception as e:
        return e
    raise AssertionError("the call did not fail")


async def test_sdk_streams_text_with_usage_in_message_start(fake: FakeAnthropic) -> None:
    fake.push(Reply(text="Hello there world"))
    events = await collect(fake)
    kinds = [e.type for e in events]  # type: ignore[attr-defined]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert events[0].message.usage.input_tokens > 0  # type: ignore[attr-defined]
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")  # type: ignore[attr-defined]
    assert text == "Hello there world"
    assert fake.requests[0].auth == "bearer"


async def test_sdk_assembles_tool_use_blocks(fake: FakeAnthropic) -> None:
    fake.push(
        Reply(text="Let me look.", tools=[ToolUse("read_cell", {"cell_id": "c1"}, id="toolu_1")])
    )
    async with client(fake).messages.stream(
        model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        message = await stream.get_final_message()
    assert message.stop_reason == "tool_use"
    tool = message.content[1]
    assert tool.type == "tool_use" and tool.input == {"cell_id": "c1"} and tool.id == "toolu_1"


async def test_x_api_key_header_is_accepted(fake: FakeAnthropic) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"{fake.url}/v1/messages",
            headers={"x-api-key": KEY},
            json={"model": "m", "max_tokens": 5, "messages": []},
        )
    assert r.status_code == 200 and r.json()["content"][0]["text"] == "ok"
    assert fake.requests[0].auth == "x-api-key"


async def test_wrong_key_is_401(fake: FakeAnthropic) -> None:
    bad = anthropic.AsyncAnthropic(api_key="wrong", base_url=fake.url, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        await bad.messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )


@pytest.mark.parametrize(("status", "kind"), [(429, "rate_limit_error"), (529, "overloaded_error")])
async def test_errors_carry_retry_after(fake: FakeAnthropic, status: int, kind: str) -> None:
    fake.push(Reply(status=status, error_type=kind, retry_after=2))
    with pytest.raises(anthropic.APIStatusError) as e:
        await collect(fake)
    assert e.value.status_code == status
    assert e.value.response.headers["retry-after"] == "2"
    assert e.value.body["error"]["type"] == kind  # type: ignore[index]


async def test_stall_trips_the_clients_read_timeout(fake: FakeAnthropic) -> None:
    fake.push(Reply(text="a b c d", stall_after=2))
    # The SDK raises its own timeout before the stream starts, the transport's within it.
    error = await failure(collect(fake, timeout=anthropic.Timeout(5, read=0.3)))
    assert "Timeout" in type(error).__name__


async def test_drop_mid_stream_is_a_broken_stream(fake: FakeAnthropic) -> None:
    fake.push(Reply(text="a b c d", drop_after=2))
    error = await failure(collect(fake))
    assert "Protocol" in type(error).__name__ or isinstance(error, anthropic.APIConnectionError)


async def test_in_stream_error_event(fake: FakeAnthropic) -> None:
    fake.push(Reply(text="a b", stream_error="overloaded_error"))
    with pytest.raises(anthropic.APIStatusError):
        await collect(fake)


async def test_script_over_http_and_request_log(fake: FakeAnthropic) -> None:
    async with httpx.AsyncClient() as http:
        await http.post(f"{fake.url}/_fake/script", json=[{"text": "scripted", "tools": []}])
        stream_text = "".join(
            e.delta.text
            for e in await collect(fake)
            if e.type == "content_block_delta"  # type: ignore[attr-defined]
        )
        log = (await http.get(f"{fake.url}/_fake/requests")).json()["requests"]
    assert stream_text == "scripted"
    assert log[0]["headers"]["authorization"] == "<redacted>"


async def _openai_stream(oai: FakeOpenAI, **body: object) -> list[dict[str, object]]:
    chunks = []
    async with (
        httpx.AsyncClient() as http,
        http.stream(
            "POST",
            f"{oai.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"model": "m", "messages": [], "stream": True, **body},
        ) as r,
    ):
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[6:]))
    return chunks


async def test_openai_streams_text_tool_calls_and_usage(oai: FakeOpenAI) -> None:
    oai.push(Reply(text="hi you", tools=[ToolUse("list_cells", {"path": "a.ipynb"}, id="call_1")]))
    chunks = await _openai_stream(oai, stream_options={"include_usage": True})
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])  # type: ignore[index]
    args = "".join(
        tc["function"]["arguments"]
        for c in chunks
        if c["choices"]
        for tc in c["choices"][0]["delta"].get("tool_calls", [])  # type: ignore[index]
    )
    assert text == "hi you" and json.loads(args) == {"path": "a.ipynb"}
    assert chunks[-1]["usage"]["prompt_tokens"] > 0  # type: ignore[index]
    assert [c for c in chunks if c["choices"]][-1]["choices"][0]["finish_reason"] == "tool_calls"  # type: ignore[index]


async def test_openai_429_has_retry_after(oai: FakeOpenAI) -> None:
    oai.push(Reply(status=429, error_type="rate_limit_exceeded", retry_after=1))
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"{oai.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"model": "m", "messages": []},
        )
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert r.json()["error"]["type"] == "rate_limit_exceeded"


async def test_runs_standalone() -> None:
    tests_dir = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "fakes.fake_anthropic", "--port", "0", "--default-text", "solo"],
        cwd=tests_dir,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tests_dir)},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
        url = json.loads(line)["url"]
        async with httpx.AsyncClient() as http:
            r = await http.post(
                f"{url}/v1/messages", json={"model": "m", "max_tokens": 5, "messages": []}
            )
        assert r.json()["content"][0]["text"] == "solo"
    finally:
        proc.terminate()
        proc.wait(10)
