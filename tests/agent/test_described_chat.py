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
    request: pytest.FixtureRequest,
) -> Config:
    """The only model is the described one (its capabilities: what its descriptor says);
    ``@pytest.mark.agent_config`` adds ``c.Agent`` settings (``described``: overrides of
    the descriptor)."""
    api, fake = gateway
    marker = request.node.get_closest_marker("agent_config")
    monkeypatch.setenv("AIIDE_T_DESCRIBED", KEY)
    spec: dict[str, Any] = {"kind": "described", "descriptor": api.descriptor,
                            "base_url": fake.url}  # fmt: skip
    if api.keyed:
        spec["api_key_env"] = "AIIDE_T_DESCRIBED"
    overrides = dict(marker.kwargs) if marker else {}
    spec.update(overrides.pop("described", {}))  # the test's changes to the descriptor
    return server_config(
        jp_root_dir,
        fake_anthropic,
        fake_openai,
        monkeypatch,
        providers={"gw": spec},
        models=[{"name": api.descriptor, "provider": "gw", "model": api.model}],
        complete_timeout=30.0,
        **overrides,
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


def _images(body: dict[str, Any]) -> list[str]:
    """The base64 images a request carries, in each API's own form."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if "inlineData" in value:  # Gemini
                found.append(value["inlineData"]["data"])
            elif "image" in value and "source" in value.get("image", {}):  # Bedrock
                found.append(value["image"]["source"]["bytes"])
            elif value.get("type") == "image_url":  # OpenAI form (Azure): a data: URL
                found.append(value["image_url"]["url"].split("base64,", 1)[1])
            elif isinstance(value.get("images"), list):  # Ollama
                found.extend(value["images"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(body)
    return found


async def test_the_model_sees_the_plot_where_its_api_takes_images(
    jp_ws_fetch: Any, jp_root_dir: Path, gateway: tuple[Api, FakeServer]
) -> None:
    from .test_context_images import decoded, plot_png, write_notebook

    api, fake = gateway
    write_notebook(jp_root_dir, [("c1", "df.plot()", {"image/png": plot_png()})])
    fake.push(Reply(text="The y axis has no label."))
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="What's wrong with this plot?", task="chat",
                    context={"notebook": "nb.ipynb"})  # fmt: skip
    done = await chat.until("run_finished")
    assert done["status"] == "completed", done
    images = _images(fake.requests[-1].body)
    vision = api.descriptor in ("azure-openai", "gemini", "bedrock-converse")
    if vision:  # declared by the descriptor: resized, in the API's form
        assert len(images) == 1 and decoded(images[0]).size == (1024, 768)
    else:  # Ollama's descriptor says no vision by default; the text API has none
        assert images == []


@pytest.mark.agent_config(allow_user_keys=True)
async def test_a_users_own_key_is_used_and_never_shown(
    jp_fetch: Any, jp_ws_fetch: Any, gateway: tuple[Api, FakeServer]
) -> None:
    api, fake = gateway
    if not api.keyed:
        pytest.skip("Ollama takes no key")
    mine = "users-own-gateway-key-1234"
    fake.api_key = mine  # the server's key is refused from now on
    await jp_fetch(
        "aiide", "api", "agent", "keys", "gw", method="PUT", body=json.dumps({"key": mine})
    )
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="hi", task="chat")
    assert (await chat.until("run_finished"))["status"] == "completed"
    assert fake.requests[-1].auth not in ("refused", "none")
    assert all(mine not in json.dumps(m) for m in chat.received)


@pytest.mark.agent_config(described={"mode": "sync"})
async def test_sync_mode_answers_the_chat_from_one_json_answer(
    jp_ws_fetch: Any, gateway: tuple[Api, FakeServer]
) -> None:
    _, fake = gateway
    fake.push(Reply(text="All at once.", input_tokens=21, output_tokens=3))
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="hi", task="chat")
    done = await chat.until("run_finished")
    assert done["status"] == "completed" and done["text"] == "All at once."
    assert done["usage"]["input_tokens"] == 21
    sent = fake.requests[-1]
    assert not sent.body.get("stream") and "stream" not in sent.path.lower()
