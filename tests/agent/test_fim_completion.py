"""Fill-in-the-middle inline completion for local (OpenAI-compatible) models.

The block rule is unit-tested on ``trim_to_block``; everything else goes through a real
Jupyter server to the fake OpenAI server, whose request log shows what was sent.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest
from fakes import FakeAnthropic, FakeOpenAI, Reply
from tornado.httpclient import HTTPClientError

from aiide_server_ext.agent.complete import block_ended, trim_to_block
from aiide_server_ext.agent.providers import ModelRequest, ProviderError, Stop, TextDelta, Usage
from aiide_server_ext.agent.providers.openai_compat import OpenAICompatProvider

from .chat import check
from .conftest import OAI_KEY
from .test_agent_rest import hang_up_on_a_completion

pytestmark = pytest.mark.xdist_group("agent")

#: 'local' (the fake OpenAI server) is the completion model and speaks FIM.
FIM_MODELS = [
    {
        "name": "local",
        "provider": "local",
        "model": "llama-test",
        "capabilities": ["chat", "complete", "fim"],
        "latency": 0.5,
    },
    {
        "name": "claude",
        "provider": "anthropic",
        "model": "claude-test",
        "capabilities": ["chat", "tools", "complete"],
    },
]
fim = pytest.mark.agent_config(models=FIM_MODELS, complete_timeout=30.0)


async def complete(jp_fetch: Any, **body: Any) -> dict[str, Any]:
    r = await jp_fetch("aiide", "api", "complete", method="POST", body=json.dumps(body))
    result: dict[str, Any] = json.loads(r.body)
    check("CompleteResponse", result)
    return result


# -- the block rule -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "completion", "suffix", "expected"),
    [
        # one line stays as it is
        ("x = ", "compute()", "\n", "compute()"),
        # rule 1: inside a line, only the first line
        ("print(", "total)\nprint(1)", ")\n", "total)"),
        # rule 2: a dedent below the cursor's line ends the block
        ("def f():\n    ", "a = 1\n    return a\nprint(f())", "", "a = 1\n    return a"),
        # rule 3: a blank line and a dedent end the block (the next def is not ours)
        (
            "def f(xs):",
            "\n    return sum(xs)\n\ndef g():\n    pass",
            "",
            "\n    return sum(xs)",
        ),
        # ...and so does a blank line then the next statement at the cursor's level
        ("x = 1\n", "y = 2\n\nz = 3", "", "y = 2"),
        ("def f(xs):\n    return ", "sum(xs)\n\n\ndef g():", "", "sum(xs)"),
        # but blank lines inside a block the completion opened stay
        ("def f(xs):", "\n    y = 1\n\n    return y\n\nz = 2", "", "\n    y = 1\n\n    return y"),
        # a blank line and a dedent inside that block end it too
        (
            "if a:",
            "\n    for x in y:\n        f(x)\n\n    g()",
            "",
            "\n    for x in y:\n        f(x)",
        ),
        # rule 4: the model rewriting the code after the cursor is cut
        ("def f():\n    ", "a = 1\n    return a", "\n    return a\n", "a = 1"),
        # trailing blank lines go
        ("for i in r:\n    ", "print(i)\n\n\n", "", "print(i)"),
        # tabs count as four columns
        ("if a:\n\t", "b()\n\tc()\nd()", "", "b()\n\tc()"),
    ],
)
def test_completions_are_trimmed_to_the_block(
    prefix: str, completion: str, suffix: str, expected: str
) -> None:
    assert trim_to_block(prefix, completion, suffix) == expected


def test_the_block_end_is_seen_before_the_stream_ends() -> None:
    prefix = "def f():\n    "
    assert not block_ended(prefix, "a = 1\n    ret", "")
    assert not block_ended(prefix, "a = 1\n    return a\npri", "")  # partial line: wait
    assert block_ended(prefix, "a = 1\n    return a\nprint(1)\n", "")
    assert block_ended("print(", "x)\n", ")")  # mid-line: the first newline ends it


# -- through the server ---------------------------------------------------------------


@fim
async def test_fim_sends_prefix_and_suffix_without_chat_messages(
    jp_fetch: Any, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    fake_openai.push(Reply(text="sum(xs) / len(xs)", input_tokens=12, output_tokens=5))
    prefix, suffix = "def mean(xs):\n    return ", "\n\nprint(mean([1, 2]))\n"
    result = await complete(jp_fetch, prefix=prefix, suffix=suffix, language="python")
    assert result == {
        "completion": "sum(xs) / len(xs)",
        "model": "local",
        "usage": {"input_tokens": 12, "output_tokens": 5},
    }
    [sent] = fake_openai.requests
    assert sent.path == "/v1/completions" and sent.auth == "bearer"
    assert (sent.body["prompt"], sent.body["suffix"]) == (prefix, suffix)
    assert sent.body["model"] == "llama-test" and sent.body["stream"] is True
    assert "messages" not in sent.body and "<CURSOR>" not in json.dumps(sent.body)
    assert fake_anthropic.requests == []


@fim
async def test_fim_answer_is_trimmed_to_the_block(jp_fetch: Any, fake_openai: FakeOpenAI) -> None:
    tail = "".join(f"\ndef g{n}():\n    pass\n" for n in range(40))
    fake_openai.push(Reply(text="\n    return sum(xs)\n" + tail, delay=0.02))
    result = await complete(jp_fetch, prefix="def total(xs):", suffix="")
    assert result["completion"] == "\n    return sum(xs)"
    # The stream was closed once the block had ended, long before the fake's 200+ chunks.
    for _ in range(40):
        if fake_openai.hangups == 1 and fake_openai.open_streams == 0:
            break
        await asyncio.sleep(0.05)
    assert fake_openai.hangups == 1 and fake_openai.open_streams == 0


@fim
@pytest.mark.parametrize("refusal", ["reject", "missing"])
async def test_a_server_refusing_suffix_falls_back_to_chat_once_and_remembers(
    jp_fetch: Any, fake_openai: FakeOpenAI, refusal: str
) -> None:
    fake_openai.fim = refusal
    fake_openai.push(Reply(text="first"), Reply(text="second"))
    assert (await complete(jp_fetch, prefix="x = ", suffix="\n"))["completion"] == "first"
    assert (await complete(jp_fetch, prefix="y = ", suffix="\n"))["completion"] == "second"
    assert [r.path for r in fake_openai.requests] == [
        "/v1/completions",
        "/v1/chat/completions",
        "/v1/chat/completions",
    ]
    chat = fake_openai.requests[1].body
    assert "<CURSOR>" in chat["messages"][-1]["content"] and "suffix" not in chat


@fim
async def test_concurrent_first_requests_to_a_refusing_server_fail_once(
    jp_fetch: Any, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fim = "reject"
    results = await asyncio.gather(
        *(complete(jp_fetch, prefix=f"v{n} = ", path=f"{n}.ipynb") for n in range(4))
    )
    assert [r["completion"] for r in results] == ["ok"] * 4
    paths = [r.path for r in fake_openai.requests]
    assert paths.count("/v1/completions") == 1 and paths.count("/v1/chat/completions") == 4


@fim
async def test_a_newer_request_cancels_the_stale_one_upstream(
    jp_fetch: Any, fake_openai: FakeOpenAI
) -> None:
    fake_openai.push(Reply(text="slow " * 100, delay=0.05), Reply(text="fast"))
    stale = asyncio.ensure_future(complete(jp_fetch, prefix="a = ", suffix="", path="n.ipynb"))
    for _ in range(100):
        if fake_openai.open_streams == 1:
            break
        await asyncio.sleep(0.02)
    newer = await complete(jp_fetch, prefix="a = f", suffix="", path="n.ipynb")
    assert newer["completion"] == "fast"
    assert (await stale)["completion"] == ""  # superseded: answered, nothing to show
    for _ in range(40):
        if fake_openai.hangups == 1 and fake_openai.open_streams == 0:
            break
        await asyncio.sleep(0.05)
    assert fake_openai.hangups == 1 and fake_openai.open_streams == 0


@fim
async def test_requests_for_other_or_unnamed_documents_do_not_cancel_each_other(
    jp_fetch: Any, fake_openai: FakeOpenAI
) -> None:
    fake_openai.push(
        Reply(text="one", first_delay=0.3),
        Reply(text="two"),
        Reply(text="three", first_delay=0.3),
        Reply(text="four"),
    )
    first = asyncio.ensure_future(complete(jp_fetch, prefix="a = ", path="a.ipynb"))
    await asyncio.sleep(0.1)
    second = await complete(jp_fetch, prefix="b = ", path="b.ipynb")
    assert ((await first)["completion"], second["completion"]) == ("one", "two")
    # No path: not known to be one editor, so not superseded either.
    third = asyncio.ensure_future(complete(jp_fetch, prefix="c = "))
    await asyncio.sleep(0.1)
    fourth = await complete(jp_fetch, prefix="d = ")
    assert ((await third)["completion"], fourth["completion"]) == ("three", "four")
    assert fake_openai.hangups == 0


@fim
async def test_closing_a_fim_request_aborts_the_upstream_call(
    jp_fetch: Any,
    jp_http_port: int,
    jp_base_url: str,
    jp_auth_header: Any,
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.push(Reply(text="warm"), Reply(text="slow " * 100, delay=0.05))
    await complete(jp_fetch, prefix="x")
    await hang_up_on_a_completion(jp_http_port, jp_base_url, jp_auth_header)
    for _ in range(50):
        if fake_openai.hangups == 1 and fake_openai.open_streams == 0:
            break
        await asyncio.sleep(0.05)
    assert fake_openai.hangups == 1 and fake_openai.open_streams == 0


@fim
async def test_another_fim_error_is_not_taken_for_a_refusal(
    jp_fetch: Any, fake_openai: FakeOpenAI
) -> None:
    fake_openai.push(
        Reply(status=400, error_type="invalid_request_error", message="max_tokens too large"),
        Reply(text="later"),
    )
    with pytest.raises(HTTPClientError) as e:
        await complete(jp_fetch, prefix="x = ")
    assert e.value.response is not None
    assert json.loads(e.value.response.body)["code"] == "provider_bad_request"
    assert (await complete(jp_fetch, prefix="x = "))["completion"] == "later"
    assert [r.path for r in fake_openai.requests] == ["/v1/completions"] * 2


@pytest.mark.agent_config(
    models=[{**FIM_MODELS[1], "capabilities": ["chat", "complete", "fim"]}], complete_timeout=30.0
)
async def test_fim_on_a_provider_without_it_uses_the_chat_prompt(
    jp_fetch: Any, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.push(Reply(text="1"))
    assert (await complete(jp_fetch, prefix="x = ", suffix="\n"))["completion"] == "1"
    assert "<CURSOR>" in fake_anthropic.requests[0].body["messages"][0]["content"]


# -- the provider and the fake, without a server ---------------------------------------


def fim_request(model: str = "coder") -> ModelRequest:
    return ModelRequest(
        model=model,
        system="s",
        messages=[{"role": "user", "content": "c"}],
        max_tokens=16,
        fim=("def f():\n    return ", "\n"),
    )


@pytest.mark.asyncio
async def test_an_unreachable_fim_server_is_a_retryable_provider_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    provider = OpenAICompatProvider("local", f"http://127.0.0.1:{port}/v1", connect_timeout=2)
    try:
        with pytest.raises(ProviderError) as e:
            [event async for event in provider.stream(fim_request(), None)]
        assert (e.value.code, e.value.retryable) == ("provider_unavailable", True)
        assert provider.no_fim == set()  # not a refusal: FIM is tried again next time
    finally:
        await provider.aclose()


@pytest.mark.asyncio
async def test_the_fake_answers_fim_streamed_and_not(afake_openai: FakeOpenAI) -> None:
    from tornado.httpclient import AsyncHTTPClient

    afake_openai.push(Reply(text="x + 1"))
    body = {"model": "coder", "prompt": "y = ", "suffix": "\n", "max_tokens": 8}
    r = await AsyncHTTPClient().fetch(
        f"{afake_openai.url}/v1/completions",
        method="POST",
        body=json.dumps(body),
        headers={"Authorization": f"Bearer {OAI_KEY}"},
    )
    answer = json.loads(r.body)
    assert answer["object"] == "text_completion" and answer["choices"][0]["text"] == "x + 1"
    afake_openai.push(Reply(text="x + 2", chunks=["x ", "+ ", "2"]))
    provider = OpenAICompatProvider("local", f"{afake_openai.url}/v1")
    try:
        events = [e async for e in provider.stream(fim_request(), OAI_KEY)]
    finally:
        await provider.aclose()
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["x ", "+ ", "2"]
    assert isinstance(events[-1], Stop) and any(isinstance(e, Usage) for e in events)
    assert [r.body.get("suffix") for r in afake_openai.requests] == ["\n", "\n"]
