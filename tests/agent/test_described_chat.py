"""Each shipped descriptor end to end in a real Jupyter server: the chat socket streams its
answer, the agent calls a tool through it and gets the result back in the API's own shape,
inline completion answers through it, and its errors reach the chat with aiide's codes.
The server reaches each fake through ``base_url``, as it would the real service."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeAnthropic, FakeOpenAI, Reply, ToolUse
from fakes.script import FakeServer
from traitlets.config import Config

from .chat import connect
from .conftest import server_config
from .test_described_providers import APIS, IDS, KEY, Api

pytestmark = pytest.mark.xdist_group("agent")


@pytest.fixture(params=APIS, ids=IDS)
def gateway(
    request: pytest.FixtureRequest, jp_asyncio_loop: asyncio.AbstractEventLoop
) -> Iterator[tuple[Api, FakeServer]]:
    api: Api = request.param
    fake = api.fake(api_key=KEY if api.keyed else None)
    jp_asyncio_loop.run_until_complete(fake.start())
    yield api, fake
    jp_asyncio_loop.run_until_complete(fake.stop())


@pytest.fixture
def jp_server_config(
    jp_root_dir: Path,
    fake_anthropic: FakeAnthropic,
    fake_openai: FakeOpenAI,
    gateway: tuple[Api, FakeServer],
    monkeypatch: pytest.MonkeyPatch,
) -> Config:
    """The only model is the described one (its capabilities: what its descriptor says)."""
    api, fake = gateway
    monkeypatch.setenv("AIIDE_T_DESCRIBED", KEY)
    spec: dict[str, Any] = {"kind": "described", "descriptor": api.descriptor,
                            "base_url": fake.url}  # fmt: skip
    if api.keyed:
        spec["api_key_env"] = "AIIDE_T_DESCRIBED"
    return server_config(
        jp_root_dir,
        fake_anthropic,
        fake_openai,
        monkeypatch,
        providers={"gw": spec},
        models=[{"name": api.descriptor, "provider": "gw", "model": api.model}],
        complete_timeout=30.0,
    )


async def test_the_chat_streams_an_answer_with_its_usage(
    jp_ws_fetch: Any, gateway: tuple[Api, FakeServer]
) -> None:
    api, fake = gateway
    fake.push(Reply(text="Hello from the gateway model", input_tokens=50, output_tokens=6))
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", id="m1", text="hi", task="chat")
    started = await chat.until("run_started")
    assert started["model"] == api.descriptor
    done = await chat.until("run_finished")
    assert done["status"] == "completed" and done["text"] == "Hello from the gateway model"
    assert chat.text(started["run_id"]) == "Hello from the gateway model"
    assert done["usage"]["input_tokens"] == 50 and done["usage"]["output_tokens"] == 6
    assert "hi" in json.dumps(fake.requests[0].body)


async def test_the_agent_calls_a_tool_and_sends_its_result_back(
    jp_ws_fetch: Any, jp_root_dir: Path, gateway: tuple[Api, FakeServer]
) -> None:
    api, fake = gateway
    if not api.tools:
        pytest.skip("this API has no tool calls (its descriptor declares no 'tools')")
    (jp_root_dir / "data.csv").write_text("a,b\n1,2\n")
    fake.push(
        Reply(text="Looking.", tools=[ToolUse("list_files", {"path": "."}, id="call_files1")]),
        Reply(text="There is a data.csv."),
    )
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="which files are there?")
    call = await chat.until("tool_call")
    assert call["name"] == "list_files"
    result = await chat.until("tool_result")
    assert "data.csv" in json.dumps(result)
    done = await chat.until("run_finished")
    assert done["status"] == "completed" and done["text"].endswith("There is a data.csv.")
    assert len(fake.requests) == 2 and "data.csv" in json.dumps(fake.requests[1].body)
    tools = json.dumps(fake.requests[0].body)
    assert "list_files" in tools  # the tools went in the API's own form


async def test_completion_answers_through_it(
    jp_fetch: Any, gateway: tuple[Api, FakeServer]
) -> None:
    api, fake = gateway
    fake.push(Reply(text="1 + 1"))
    r = await jp_fetch(
        "aiide", "api", "complete", method="POST", body=json.dumps({"prefix": "x = "})
    )
    answer = json.loads(r.body)
    assert answer["completion"] == "1 + 1" and answer["model"] == api.descriptor
    assert answer["usage"]["output_tokens"] > 0


async def test_its_errors_reach_the_chat_with_aiides_codes(
    jp_ws_fetch: Any, gateway: tuple[Api, FakeServer]
) -> None:
    _, fake = gateway
    fake.push(Reply(status=400, message="this request is wrong"))
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="hi", task="chat")
    error = await chat.until("error")
    assert error["code"] == "provider_bad_request" and "this request is wrong" in error["message"]
    assert KEY not in json.dumps(chat.received)
    assert (await chat.until("run_finished"))["status"] == "failed"
