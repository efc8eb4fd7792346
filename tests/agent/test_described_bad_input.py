"""A described provider's bad inputs and its auth pre-flight, against the fake text API
(whose token endpoint and raw byte streams script each case): every one ends in a clear
error, never a hang, an unbounded buffer, a storm of retries or a logged token."""

from __future__ import annotations

import asyncio
import logging
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from fakes import FakeTextApi, Reply

from aiide_server_ext.agent.providers import (
    ModelRequest,
    ProviderError,
    RetryPolicy,
    build_provider,
    describe,
    stream_with_retries,
)
from aiide_server_ext.agent.providers.base import TextDelta
from aiide_server_ext.agent.providers.descriptor import DescriptorError

RETRIES = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05, max_wait=5)
KEY = "text-api-key-0123456789"
SECRET = "client-secret-0123456789"
AUTH = {
    "url": "${base_url}/oauth/token",
    "form": {
        "grant_type": "client_credentials",
        "client_id": "aiide",
        "client_secret": "${api_key}",
    },
    "apply": {"authorization": "Bearer ${token}"},
}


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeTextApi]:
    server = FakeTextApi(api_key=KEY)
    await server.start()
    yield server
    await server.stop()


def provider(fake: FakeTextApi, **overrides: Any) -> Any:
    spec = {"kind": "described", "descriptor": "text-api", "base_url": fake.url, **overrides}
    return build_provider("gw", spec, {"connect_timeout": 5.0, "idle_timeout": 5.0})


async def run(p: Any, key: str | None = KEY, user: str = "alice") -> list[Any]:
    req = ModelRequest(model="m", system="", messages=[{"role": "user", "content": "hi"}])
    req.user = user
    return [e async for e in stream_with_retries(p, req, key, RETRIES)]


async def failure(p: Any, key: str | None = KEY, user: str = "alice") -> ProviderError:
    with pytest.raises(ProviderError) as e:
        await run(p, key, user)
    return e.value


async def only_failure(p: Any, key: str | None = KEY) -> ProviderError:
    """The error of one call, the provider closed after it."""
    try:
        return await failure(p, key)
    finally:
        await p.aclose()


# -- descriptors checked when loaded -------------------------------------------------


def test_a_template_naming_an_unknown_variable_is_refused_naming_the_field() -> None:
    spec = {"kind": "described", "descriptor": "text-api", "base_url": "http://h",
            "request": {"body": {"prompt": "${promt}"}}}  # fmt: skip
    with pytest.raises(DescriptorError) as e:
        describe("gw", spec)
    message = str(e.value)
    assert "c.Agent.providers['gw']" in message and "request.body.prompt" in message
    assert "${promt}" in message and "prompt" in message  # what is known is listed


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"stream": {"text": "choices[0"}}, "stream.text"),
        ({"stream": {"format": "xml"}}, "stream.format"),
        ({"stream": {"pattern": "("}}, "stream.pattern"),
        ({"converter": "cobol"}, "converter"),
        ({"stop_reasons": {"stop": "finished"}}, "stop_reasons.stop"),
        ({"errors": {"codes": {"x": "provider_sad"}}}, "errors.codes.x"),
        ({"auth": {"url": "http://t", "apply": {"x-token": "${tokn}"}}}, "auth.apply.x-token"),
        ({"mode": "batch"}, "mode"),
        ({"descriptor": "no-such-api"}, "descriptor"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_each_invalid_field_is_named(change: dict[str, Any], field: str) -> None:
    spec = {"kind": "described", "descriptor": "text-api", "base_url": "http://h", **change}
    with pytest.raises(DescriptorError) as e:
        describe("gw", spec)
    assert f": {field}:" in str(e.value)


# -- bad answers ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_mapping_that_matches_nothing_shows_the_chunk_redacted(
    fake: FakeTextApi,
) -> None:
    fake.push(Reply(text=f"the key is {KEY}", chunks=[f"the key is {KEY}"]))
    e = await only_failure(provider(fake, stream={"text": "answer", "input_tokens": "usage.in"}))
    assert e.code == "provider_error" and "matched nothing" in e.message
    assert '{"text": "the key is [redacted]' in e.message and KEY not in e.message


@pytest.mark.asyncio
async def test_a_pattern_that_never_matches_times_out_instead_of_hanging(
    fake: FakeTextApi,
) -> None:
    fake.raw = (b"no braces here, ever ", 200, 0.02)  # bytes keep coming, none match
    e = await only_failure(provider(fake, idle_timeout=0.3))
    assert e.code == "provider_timeout" and "no chunk matched" in e.message


@pytest.mark.asyncio
async def test_a_10mb_line_ends_the_call_with_bounded_memory(fake: FakeTextApi) -> None:
    fake.raw = (b"x" * (1 << 20), 10, 0)  # one line of 10 MB, no newline
    p = provider(fake, stream={"format": "jsonl"})
    tracemalloc.start()
    try:
        e = await only_failure(p)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert e.code == "provider_error" and "longer than 1048576 bytes" in e.message
    assert peak < 6 * (1 << 20)  # the line limit and a read or two, never the 10 MB


@pytest.mark.asyncio
async def test_a_chunk_that_is_not_json_is_shown(fake: FakeTextApi) -> None:
    fake.raw = (b"{not json}", 1, 0)
    e = await only_failure(provider(fake))
    assert "not JSON: {not json}" in e.message


# -- the auth pre-flight --------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_token_is_exchanged_once_per_user_and_reused(fake: FakeTextApi) -> None:
    fake.client = ("aiide", SECRET)
    p = provider(fake, auth=AUTH)
    try:
        for _ in range(3):
            assert "".join(e.text for e in await run(p, SECRET) if isinstance(e, TextDelta))
        assert fake.token_requests == 1
        await run(p, SECRET, user="bob")
        assert fake.token_requests == 2  # per user: bob gets his own
        assert {r.headers["authorization"] for r in fake.requests} == {"<redacted>"}
        assert all(r.auth == "bearer" for r in fake.requests if r.path == "/generate")
    finally:
        await p.aclose()


@pytest.mark.asyncio
async def test_concurrent_calls_share_one_exchange(fake: FakeTextApi) -> None:
    fake.client = ("aiide", SECRET)
    p = provider(fake, auth=AUTH)
    try:
        await asyncio.gather(*(run(p, SECRET) for _ in range(8)))
        assert fake.token_requests == 1
    finally:
        await p.aclose()


@pytest.mark.asyncio
async def test_a_revoked_token_is_refreshed_once_on_401(fake: FakeTextApi) -> None:
    fake.client = ("aiide", SECRET)
    p = provider(fake, auth=AUTH)
    try:
        await run(p, SECRET)
        fake.revoke()
        got = await run(p, SECRET)
        assert "".join(e.text for e in got if isinstance(e, TextDelta)) == "ok"
        assert fake.token_requests == 2
        # A model that refuses every token: one refresh, then the error (not a loop).
        fake.push(*[Reply(status=401, message="no") for _ in range(5)])
        e = await failure(p, SECRET)
        assert e.code == "provider_auth" and fake.token_requests == 3
    finally:
        await p.aclose()


@pytest.mark.asyncio
async def test_an_auth_endpoint_that_is_down_is_asked_once_not_stormed(
    fake: FakeTextApi,
) -> None:
    fake.client = ("aiide", SECRET)
    fake.token_status = 503
    p = provider(fake, auth=AUTH)
    try:
        errors = [await failure(p, SECRET) for _ in range(4)]
        assert fake.token_requests == 1  # retries and later calls wait out the back-off
        assert all("auth pre-flight" in e.message and "HTTP 503" in e.message for e in errors)
        assert "not tried again for 10 s" in errors[0].message
        assert not any(r.path == "/generate" for r in fake.requests)
    finally:
        await p.aclose()


@pytest.mark.asyncio
async def test_an_unreachable_auth_endpoint_is_a_clear_error(fake: FakeTextApi) -> None:
    from servers import free_port

    down = {**AUTH, "url": f"http://127.0.0.1:{free_port()}/token"}
    p = provider(fake, auth=down)
    try:
        e = await failure(p, SECRET)
        assert e.code == "provider_unavailable" and "cannot reach it" in e.message
        assert SECRET not in e.message
    finally:
        await p.aclose()


@pytest.mark.asyncio
async def test_tokens_and_secrets_are_never_logged(
    fake: FakeTextApi, caplog: pytest.LogCaptureFixture
) -> None:
    fake.client = ("aiide", SECRET)
    caplog.set_level(logging.DEBUG)
    p = provider(fake, auth=AUTH)
    try:
        await run(p, SECRET)
        fake.revoke()
        await run(p, SECRET)
        fake.client = ("aiide", "changed")
        p.auth.forget(next(iter(p.auth._tokens)))
        e = await failure(p, SECRET)
    finally:
        await p.aclose()
    assert len(fake.issued) == 2
    for secret in (*fake.issued, SECRET):
        assert secret not in caplog.text and secret not in e.message
    assert "[redacted]" in e.message or "invalid_client" in e.message
