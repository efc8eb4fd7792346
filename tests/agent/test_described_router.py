"""The router treats a described provider like any other: capabilities (by default what its
descriptor declares), cost and latency order, group allow-lists, keys per user, metering,
and fallback from one described provider to another when it is down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from fakes import FakeGemini, FakeTextApi, Reply

from aiide_server_ext.agent.providers import ModelRequest
from aiide_server_ext.agent.providers.base import TextDelta
from aiide_server_ext.agent.router import Router
from aiide_server_ext.seams import Caller

from .test_agent_providers import MeterGate, Values

KEY = "described-router-key-0123"


@pytest_asyncio.fixture
async def fakes() -> AsyncIterator[tuple[FakeGemini, FakeTextApi]]:
    gemini, text = FakeGemini(api_key=KEY), FakeTextApi(api_key=KEY)
    await gemini.start()
    await text.start()
    yield gemini, text
    await gemini.stop()
    await text.stop()


def router(
    monkeypatch: pytest.MonkeyPatch,
    gemini_url: str,
    text_url: str,
    values: Values | None = None,
    **cfg: Any,
) -> Router:
    monkeypatch.setenv("T_GW_KEY", KEY)
    r = Router(**cfg)
    r.retry_base_delay = 0.01
    providers = {
        "gem": {"kind": "described", "descriptor": "gemini", "base_url": gemini_url,
                "api_key_env": "T_GW_KEY"},
        "txt": {"kind": "described", "descriptor": "text-api", "base_url": text_url,
                "api_key_env": "T_GW_KEY"},
    }  # fmt: skip
    models = [
        {"name": "gem", "provider": "gem", "model": "gemini-2.0-flash", "cost": 3, "latency": 2},
        {"name": "txt", "provider": "txt", "model": "t", "cost": 1, "latency": 1},
    ]
    r.setup(models, providers, values or Values(), allow_user_keys=values is not None)
    return r


def request(spec: Any) -> ModelRequest:
    return ModelRequest(model=spec.model, system="s", messages=[{"role": "user", "content": "hi"}])


@pytest.mark.asyncio
async def test_capabilities_default_to_the_descriptors_and_order_by_preference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    r = router(monkeypatch, "http://127.0.0.1:9", "http://127.0.0.1:9")
    # The text API declares no tools: never a candidate for the agent.
    assert [m.name for m in r.candidates("agent", Caller("a"))] == ["gem"]
    assert [m.name for m in r.candidates("chat", Caller("a"))] == ["gem", "txt"]
    assert [m.name for m in r.candidates("complete", Caller("a"))] == ["txt", "gem"]  # latency
    assert r.sees_images("gem") and not r.sees_images("txt")
    r.group_models = {"students": ["txt"]}
    students = Caller("s", groups=frozenset({"students"}))
    assert [m.name for m in r.candidates("chat", students)] == ["txt"]
    await r.aclose()


@pytest.mark.asyncio
async def test_a_down_described_provider_falls_back_to_the_next_and_usage_is_metered(
    fakes: tuple[FakeGemini, FakeTextApi], monkeypatch: pytest.MonkeyPatch
) -> None:
    gemini, text = fakes
    r = router(monkeypatch, gemini.url, text.url)
    gemini.push(*[Reply(status=503, message="overloaded", retry_after=0)] * 3)
    text.push(Reply(text="from the text API", input_tokens=9, output_tokens=4))
    gate, notices = MeterGate(), []

    async def note(code: str, message: str) -> None:
        notices.append((code, message))

    caller = Caller("ada")
    got = [
        x
        async for x in r.stream(
            r.candidates("chat", caller), caller, request, gate=gate,
            feature="chat", on_notice=note,
        )
    ]  # fmt: skip
    await r.aclose()
    assert "".join(e.text for _, e in got if isinstance(e, TextDelta)) == "from the text API"
    assert [c for c, _ in notices] == ["retry", "retry", "fallback"]
    assert "gem is unavailable (provider_overloaded); using txt" in notices[-1][1]
    [usage] = gate.usage
    metered = {"provider": "txt", "model": "t", "feature": "chat", "input_tokens": 9,
               "output_tokens": 4}  # fmt: skip
    assert {k: usage[k] for k in metered} == metered
    assert text.requests[0].body["prompt"].endswith("User: hi\n\nAssistant:")


@pytest.mark.asyncio
async def test_a_users_own_key_and_values_reach_the_templates(
    fakes: tuple[FakeGemini, FakeTextApi], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, text = fakes
    text.api_key = "ada-own-key-0123456789"
    values = Values({("ada", "key:txt"): "ada-own-key-0123456789", ("ada", "team"): "blue"})
    r = router(monkeypatch, "http://127.0.0.1:9", text.url, values)
    r.provider_specs["txt"]["request"] = {"headers": {"x-team": "${user.team}",
                                                      "x-user": "${user}"}}  # fmt: skip
    caller = Caller("ada")
    got = [
        e
        async for _, e in r.stream(
            [m for m in r.models if m.name == "txt"], caller, request,
            gate=MeterGate(), feature="chat",
        )
    ]  # fmt: skip
    await r.aclose()
    assert got and text.requests[0].auth == "bearer"  # the fake took ada's own key only
    assert text.requests[0].headers["x-team"] == "blue"
    assert text.requests[0].headers["x-user"] == "ada"
