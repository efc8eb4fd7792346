"""Streaming over the chat socket: cancel, reconnect + resume, retries, fallback, many
conversations, heartbeat, and frames that break the protocol."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fakes import FakeAnthropic, FakeOpenAI, Reply

from .chat import connect

pytestmark = pytest.mark.xdist_group("agent")
WORDS = " ".join(f"w{i}" for i in range(40))


async def test_cancel_mid_stream(jp_ws_fetch: Any, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.push(Reply(text=WORDS, delay=0.05))
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="talk", task="chat")
    token = await chat.until("token")
    await chat.send(type="cancel", conversation_id=token["conversation_id"], run_id=token["run_id"])
    done = await chat.until("run_finished")
    assert done["status"] == "cancelled"
    streamed = chat.text(token["run_id"])
    assert 0 < len(streamed) < len(WORDS) and done["text"] == streamed
    # The provider was sent the question and streamed part of the answer: both count.
    usage = done["usage"]
    assert usage["model_calls"] == 1 and usage["input_tokens"] > 0, usage
    assert usage["output_tokens"] >= len(streamed) // 8, usage
    await asyncio.sleep(0.2)
    assert fake_anthropic.open_streams == 0  # the model call was really stopped
    await chat.send(
        type="cancel", id="again", conversation_id=token["conversation_id"], run_id=token["run_id"]
    )
    assert (await chat.until("error", reply_to="again"))["code"] == "run_not_active"


async def test_reconnect_and_resume_get_every_missed_event_once_in_order(
    jp_ws_fetch: Any, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.push(Reply(text=WORDS, delay=0.01))
    first = await connect(jp_ws_fetch)
    await first.send(type="chat", text="talk", task="chat")
    seen = [await first.recv() for _ in range(5)]
    first.ws.close()
    cid, last = seen[-1]["conversation_id"], seen[-1]["seq"]
    await asyncio.sleep(0.3)  # events go on while nobody listens
    second = await connect(jp_ws_fetch)
    await second.send(type="resume", id="r", conversation_id=cid, after_seq=last)
    second.last_seq[cid] = last  # the checker then proves: no gap, no repeat, in order
    done = await second.until("run_finished")
    resumed = second.of("resumed")[0]
    assert resumed["after_seq"] == last and resumed["replayed"] > 0
    events = [e for e in seen + second.received if e.get("seq")]
    assert [e["seq"] for e in events] == list(range(1, done["seq"] + 1))
    assert "".join(e["text"] for e in events if e["type"] == "token") == WORDS


async def test_resume_from_zero_replays_a_finished_conversation(
    jp_ws_fetch: Any, fake_anthropic: FakeAnthropic
) -> None:
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="hi", task="chat")
    done = await chat.until("run_finished")
    again = await connect(jp_ws_fetch)
    await again.send(type="resume", conversation_id=done["conversation_id"], after_seq=0)
    resumed = await again.until("resumed")
    assert resumed["replayed"] == done["seq"] == resumed["last_seq"]
    assert [e["seq"] for e in again.received if e.get("seq")] == list(range(1, done["seq"] + 1))


async def test_provider_429_is_retried_then_succeeds(
    jp_ws_fetch: Any, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.push(
        Reply(status=429, error_type="rate_limit_error", retry_after=0.1), Reply(text="made it")
    )
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="hi", task="chat")
    notice = await chat.until("notice")
    assert notice["code"] == "retry" and "provider_rate_limited" in notice["message"]
    done = await chat.until("run_finished")
    assert done["status"] == "completed" and done["text"] == "made it"
    assert len(fake_anthropic.requests) == 2


async def test_provider_down_falls_back_to_the_next_model(
    jp_ws_fetch: Any, fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI
) -> None:
    await fake_anthropic.stop()  # the provider is down: connection refused
    fake_openai.push(Reply(text="local model here"))
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="hi", task="chat")
    notice = await chat.until("notice", code="fallback")
    assert "claude is unavailable (provider_unavailable); using local" in notice["message"]
    done = await chat.until("run_finished")
    assert done["status"] == "completed" and done["text"] == "local model here"


async def test_every_model_down_fails_the_run_clearly(
    jp_ws_fetch: Any, fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI
) -> None:
    fake_anthropic.push(*[Reply(status=401, error_type="authentication_error")])
    fake_openai.push(*[Reply(status=529, error_type="overloaded")] * 3)
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="hi", task="chat")
    error = await chat.until("error")
    assert error["code"] == "provider_overloaded" and error["seq"] is not None
    assert (await chat.until("run_finished"))["status"] == "failed"


async def test_one_socket_carries_many_conversations(
    jp_ws_fetch: Any, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.default = Reply(text="a b c d e", delay=0.01)
    chat = await connect(jp_ws_fetch)
    for n in range(3):
        await chat.send(type="chat", id=f"m{n}", text=f"q{n}", task="chat")
    finished = [await chat.until("run_finished") for _ in range(3)]
    assert len({f["conversation_id"] for f in finished}) == 3
    for f in finished:
        assert chat.text(f["run_id"]) == "a b c d e"


async def test_ping_pong(jp_ws_fetch: Any) -> None:
    chat = await connect(jp_ws_fetch)
    await chat.send(type="ping", id="p1")
    pong = await chat.until("pong")
    assert pong["reply_to"] == "p1"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "bad_frame"),
        ("[1, 2]", "bad_frame"),
        (b"\x00\x01", "bad_frame"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"text": "no type"}', "bad_message"),
        ('{"type": "chat"}', "bad_message"),
        ('{"type": "chat", "text": 5}', "bad_message"),
        ('{"type": "chat", "text": "   "}', "bad_message"),
        ('{"type": "resume", "conversation_id": "c", "after_seq": -1}', "bad_message"),
        ('{"type": "resume", "conversation_id": "c", "after_seq": true}', "bad_message"),
        (
            '{"type": "approve", "conversation_id": "c", "run_id": "r", "call_id": "x", '
            '"decision": "maybe"}',
            "bad_message",
        ),
        (
            '{"type": "notebook_result", "conversation_id": "c", "run_id": "r", '
            '"request_id": "q", "status": "ok"}',
            "unknown_request",
        ),
        (
            '{"type": "chat", "text": "hi", '
            '"context": {"mentions": [{"kind": "url", "path": "x"}]}}',
            "bad_message",
        ),
    ],
)
async def test_bad_frames_get_error_events_and_the_socket_lives_on(
    jp_ws_fetch: Any, frame: str | bytes, code: str
) -> None:
    chat = await connect(jp_ws_fetch)
    await chat.send_raw(frame)
    error = await chat.until("error")
    assert error["code"] == code and error["seq"] is None
    await chat.send(type="ping", id="alive")
    assert (await chat.until("pong"))["reply_to"] == "alive"


@pytest.mark.agent_config(max_message_bytes=1000)
async def test_frames_over_the_cap_are_refused(jp_ws_fetch: Any) -> None:
    chat = await connect(jp_ws_fetch)
    await chat.send_raw(json.dumps({"type": "chat", "text": "x" * 2000}))
    assert (await chat.until("error"))["code"] == "too_large"
    await chat.send_raw(json.dumps({"type": "chat", "text": "x" * 10000}))  # over 4x: closed
    assert await chat.ws.read_message() is None


async def test_keys_never_reach_events_logs_or_the_database(
    jp_ws_fetch: Any,
    fake_anthropic: FakeAnthropic,
    fake_openai: FakeOpenAI,
    jp_data_dir: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from .conftest import KEY, OAI_KEY

    # A provider that echoes the key in its error must not leak it either.
    fake_anthropic.push(
        Reply(status=400, error_type="invalid_request_error", message=f"bad key {KEY}")
    )
    fake_openai.push(Reply(text="ok"))
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="hi", task="chat")
    await chat.until("run_finished")
    frames = json.dumps(chat.received)
    assert KEY not in frames and OAI_KEY not in frames
    assert KEY not in caplog.text and OAI_KEY not in caplog.text
    for path in jp_data_dir.rglob("*.sqlite*"):
        data = path.read_bytes()
        assert KEY.encode() not in data and OAI_KEY.encode() not in data
