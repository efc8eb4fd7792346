"""REST: conversations, inline completion, models, personal keys."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fakes import FakeAnthropic, FakeOpenAI, Reply
from tornado.httpclient import HTTPClientError

from .chat import check, connect
from .conftest import KEY

pytestmark = pytest.mark.xdist_group("agent")


async def fetch_error(jp_fetch: Any, *path: str, **kw: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch(*path, **kw)
    assert e.value.response is not None
    return e.value.code, json.loads(e.value.response.body)


async def test_conversations_list_get_delete(
    jp_fetch: Any, jp_ws_fetch: Any, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.push(Reply(text="first answer"))
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="first question\nmore", task="chat")
    done = await chat.until("run_finished")
    cid = done["conversation_id"]
    listing = json.loads((await jp_fetch("aiide", "api", "agent", "conversations")).body)
    check("ConversationList", listing)
    assert listing["conversations"][0]["id"] == cid
    assert listing["conversations"][0]["title"] == "first question"
    assert listing["conversations"][0]["last_seq"] == done["seq"]
    detail = json.loads((await jp_fetch("aiide", "api", "agent", "conversations", cid)).body)
    check("ConversationDetail", detail)
    assert [(t["role"], t["text"]) for t in detail["turns"]] == [
        ("user", "first question\nmore"),
        ("assistant", "first answer"),
    ]
    assert detail["runs"][0]["state"] == "completed"
    await jp_fetch("aiide", "api", "agent", "conversations", cid, method="DELETE")
    code, body = await fetch_error(jp_fetch, "aiide", "api", "agent", "conversations", cid)
    assert code == 404 and body["code"] == "unknown_conversation"
    code, body = await fetch_error(
        jp_fetch, "aiide", "api", "agent", "conversations", cid, method="DELETE"
    )
    assert code == 404


async def test_deleting_a_conversation_stops_its_run(
    jp_fetch: Any, jp_ws_fetch: Any, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.push(Reply(text=" ".join(["w"] * 200), delay=0.02))
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="talk", task="chat")
    token = await chat.until("token")
    await jp_fetch(
        "aiide", "api", "agent", "conversations", token["conversation_id"], method="DELETE"
    )
    await asyncio.sleep(0.2)
    assert fake_anthropic.open_streams == 0
    listing = json.loads((await jp_fetch("aiide", "api", "agent", "conversations")).body)
    assert listing["conversations"] == []


async def test_complete(jp_fetch: Any, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.push(Reply(text="sum(xs) / len(xs)", input_tokens=30, output_tokens=7))
    body = {"prefix": "def mean(xs):\n    return ", "suffix": "\n", "language": "python"}
    check("CompleteRequest", body)
    r = await jp_fetch("aiide", "api", "complete", method="POST", body=json.dumps(body))
    result = json.loads(r.body)
    check("CompleteResponse", result)
    assert result == {
        "completion": "sum(xs) / len(xs)",
        "model": "claude",
        "usage": {"input_tokens": 30, "output_tokens": 7},
    }
    sent = fake_anthropic.requests[0].body
    assert "<CURSOR>" in sent["messages"][0]["content"] and "tools" not in sent


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("not json", 400, "bad_message"),
        (json.dumps({"suffix": "x"}), 400, "bad_message"),
        (json.dumps({"prefix": "x", "max_tokens": 0}), 400, "bad_message"),
        (json.dumps({"prefix": "x" * 300000}), 413, "too_large"),
    ],
)
async def test_complete_bad_input(jp_fetch: Any, body: str, status: int, code: str) -> None:
    got, error = await fetch_error(jp_fetch, "aiide", "api", "complete", method="POST", body=body)
    assert (got, error["code"]) == (status, code)
    check("RestError", error)


@pytest.mark.agent_config(complete_timeout=0.3)
async def test_complete_times_out_fast(
    jp_fetch: Any, fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI
) -> None:
    fake_anthropic.push(Reply(text="slow", first_delay=2))
    code, error = await fetch_error(
        jp_fetch, "aiide", "api", "complete", method="POST", body=json.dumps({"prefix": "x"})
    )
    assert (code, error["code"]) == (504, "timeout")


async def test_models_list_never_shows_keys_or_urls(
    jp_fetch: Any, fake_anthropic: FakeAnthropic
) -> None:
    r = await jp_fetch("aiide", "api", "agent", "models")
    assert [m["name"] for m in json.loads(r.body)["models"]] == ["claude", "local"]
    assert KEY.encode() not in r.body and b"127.0.0.1" not in r.body


async def test_personal_keys_are_refused_unless_allowed(jp_fetch: Any) -> None:
    code, error = await fetch_error(
        jp_fetch,
        "aiide",
        "api",
        "agent",
        "keys",
        "anthropic",
        method="PUT",
        body=json.dumps({"key": "sk-mine-12345678"}),
    )
    assert (code, error["code"]) == (403, "forbidden")


@pytest.mark.agent_config(allow_user_keys=True)
async def test_personal_key_is_used_and_never_shown(
    jp_fetch: Any, jp_ws_fetch: Any, fake_anthropic: FakeAnthropic
) -> None:
    mine = "sk-ant-mine-abcdefgh1234"
    fake_anthropic.api_key = mine
    await jp_fetch(
        "aiide", "api", "agent", "keys", "anthropic", method="PUT", body=json.dumps({"key": mine})
    )
    listing = await jp_fetch("aiide", "api", "agent", "keys")
    assert json.loads(listing.body) == {
        "keys": [{"provider": "anthropic", "set": True, "hint": "…1234"}]
    }
    assert mine.encode() not in listing.body
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="hi", task="chat")
    assert (await chat.until("run_finished"))["status"] == "completed"
    assert fake_anthropic.requests[0].auth == "bearer"
    assert all(mine not in json.dumps(m) for m in chat.received)


async def hang_up_on_a_completion(port: int, base_url: str, auth_header: Any) -> None:
    """A completion request whose client gives up after half a second, mid-answer."""
    from tornado.httpclient import AsyncHTTPClient

    url = f"http://127.0.0.1:{port}{base_url}aiide/api/complete"
    with pytest.raises(HTTPClientError):
        await AsyncHTTPClient(force_instance=True).fetch(
            url,
            method="POST",
            body=json.dumps({"prefix": "x"}),
            headers=auth_header,
            request_timeout=0.5,
        )


@pytest.mark.agent_config(complete_timeout=30.0)
async def test_closing_a_completion_request_cancels_the_model_call(
    jp_fetch: Any,
    jp_http_port: int,
    jp_base_url: str,
    jp_auth_header: Any,
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.push(Reply(text="warm"), Reply(text="slow " * 50, delay=0.1))
    await jp_fetch("aiide", "api", "complete", method="POST", body=json.dumps({"prefix": "x"}))
    await hang_up_on_a_completion(jp_http_port, jp_base_url, jp_auth_header)
    for _ in range(50):
        if len(fake_anthropic.requests) == 2 and fake_anthropic.open_streams == 0:
            break
        await asyncio.sleep(0.05)
    assert len(fake_anthropic.requests) == 2 and fake_anthropic.open_streams == 0
