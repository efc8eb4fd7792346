"""The broker's described route without a hub: an invalid described upstream stops the
broker naming the field; a Messages API body becomes the neutral request; the events the
broker writes back read, through the shipped ``anthropic-messages`` descriptor a student's
server uses, as the same events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiide_server_ext.agent.providers import describe
from aiide_server_ext.agent.providers.base import (
    DescriptorError,
    Stop,
    TextDelta,
    ToolRequest,
    Usage,
)
from aiide_server_ext.agent.providers.streams import Mapper, chunks
from aiide_server_ext.hub.broker.described import _Writer, request_of
from aiide_server_ext.hub.broker.upstreams import described_providers


def test_an_invalid_described_upstream_stops_the_broker_naming_the_field() -> None:
    upstreams = {"gem": {"kind": "described", "descriptor": "gemini", "api_key_file": "/k",
                         "models": ["gemini-"], "stream": {"stop": "candidates[0"}}}  # fmt: skip
    with pytest.raises(DescriptorError) as e:
        described_providers(upstreams, 30.0)
    assert "['gem']: stream.stop: invalid JMESPath" in str(e.value)


def test_a_messages_body_becomes_the_neutral_request() -> None:
    body = {
        "model": "gemini-2.0-flash", "max_tokens": 99, "temperature": 0.2,
        "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "t", "input_schema": {"type": "object"},
                   "cache_control": {"type": "ephemeral"}}],
        "stop_sequences": ["\n\n"],
    }  # fmt: skip
    request = request_of(body, "alice")
    assert (request.model, request.system, request.max_tokens) == ("gemini-2.0-flash",
                                                                    "be brief", 99)  # fmt: skip
    assert request.tools == [{"name": "t", "input_schema": {"type": "object"}}]
    assert request.user == "alice" and request.stop_sequences == ["\n\n"]


async def _read(raw: bytes, mode: str) -> list[Any]:
    descriptor = describe("via-broker", {"kind": "described", "descriptor": "anthropic-messages",
                                         "base_url": "http://broker", "mode": mode})  # fmt: skip
    part = descriptor.part
    mapper = Mapper(descriptor, part, "via-broker", lambda s: s)
    events: list[Any] = []
    if mode == "sync":
        events += mapper.feed(mapper.parse(raw), raw)
    else:

        async def source() -> AsyncIterator[bytes]:
            for n in range(0, len(raw), 7):  # cut anywhere, as a network does
                yield raw[n : n + 7]

        async for chunk in chunks(source(), part, max_line=1 << 20, idle=5, provider="x"):
            events += mapper.feed(mapper.parse(chunk), chunk)
    return events + mapper.finish()


SENT = [
    TextDelta("Looking "),
    TextDelta("now."),
    ToolRequest("call_1", "list_files", {"path": "."}, '{"path": "."}'),
    Usage(12, 5),
    Stop("tool_use"),
]


@pytest.mark.asyncio
async def test_what_the_broker_streams_reads_back_as_the_same_events() -> None:
    writer = _Writer("gemini-2.0-flash", streaming=True)
    raw = b"".join(b for event in SENT for b in writer.events(event))
    raw += b'event: message_stop\ndata: {"type": "message_stop"}\n\n'
    got = await _read(raw, "stream")
    assert got == SENT


@pytest.mark.asyncio
async def test_what_the_broker_answers_unstreamed_reads_back_as_the_same_events() -> None:
    writer = _Writer("gemini-2.0-flash", streaming=False)
    for event in SENT:
        writer.collect(event)
    got = await _read(json.dumps(writer.message()).encode(), "sync")
    assert got == [TextDelta("Looking now."), *SENT[2:]]


def test_a_described_upstream_needs_a_key_only_when_one_is_configured() -> None:
    from types import SimpleNamespace

    from aiide_server_ext.hub.broker.described import DescribedHandler

    upstreams = {
        "ollama": {"kind": "described", "descriptor": "ollama"},  # keyless
        "gemini": {"kind": "described", "descriptor": "gemini", "api_key_env": "UNSET_X"},
    }
    broker = SimpleNamespace(
        upstreams=upstreams, keys={"ollama": None, "gemini": None},
        described=described_providers(upstreams, 30.0),
    )  # fmt: skip

    def found(name: str) -> Any:
        handler = SimpleNamespace(broker=broker, upstream_name=name)
        return DescribedHandler.upstream_found(handler)  # type: ignore[arg-type]

    assert found("ollama") == (upstreams["ollama"], "")
    assert found("gemini") is None  # its key is missing: refused as no_provider
    assert found("nope") is None
