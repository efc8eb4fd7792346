"""Streamed inline completion: ghost text that grows as the model writes it.

``streamed_view`` is checked on every prefix of real completions (each view must extend
the one before, or the editor's ghost text would flicker); the NDJSON answer goes through
a real Jupyter server to the fake providers.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fakes import FakeAnthropic, FakeOpenAI, Reply
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from aiide_server_ext.agent.complete import (
    is_prose,
    streamed_view,
    strip_fences,
    trim_to_block,
    without_preamble,
)

from .test_fim_completion import fim

pytestmark = pytest.mark.xdist_group("agent")


@pytest.mark.parametrize(
    ("prefix", "completion", "suffix"),
    [
        ("x = ", "compute()", "\n"),
        ("print(", "total)\nprint(1)", ")\n"),
        ("def f():\n    ", "a = 1\n    return a\nprint(f())", ""),
        ("def f(xs):", "\n    return sum(xs)\n\ndef g():\n    pass", ""),
        ("x = 1\n", "y = 2\n\nz = 3", ""),
        ("def f(xs):", "\n    y = 1\n\n    return y\n\nz = 2", ""),
        ("for i in r:\n    ", "print(i)\n\n\n", ""),
        ("x = ", "```python\nvalue + 1\n```\nmore", "\n"),
    ],
)
def test_each_streamed_view_extends_the_last_and_ends_at_the_final_answer(
    prefix: str, completion: str, suffix: str
) -> None:
    shown = ""
    for end in range(1, len(completion) + 1):
        view = streamed_view(prefix, completion[:end], suffix)
        if len(view) > len(shown):
            assert view.startswith(shown), (shown, view)
            shown = view
    assert shown == trim_to_block(prefix, strip_fences(completion), suffix).rstrip()


def test_an_opening_fence_shows_nothing_until_its_line_ends() -> None:
    assert streamed_view("x = ", "```pyth", "") == ""
    assert streamed_view("x = ", "```python\nval", "") == "val"


async def stream_lines(
    url: str, headers: dict[str, str], body: dict[str, Any]
) -> tuple[int, list[tuple[float, dict[str, Any]]]]:
    """POSTs ``body`` and returns the status and each NDJSON line with its arrival time."""
    lines: list[tuple[float, dict[str, Any]]] = []
    pending = b""

    def on_chunk(chunk: bytes) -> None:
        nonlocal pending
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            lines.append((time.monotonic(), json.loads(line)))

    r = await AsyncHTTPClient(force_instance=True).fetch(
        url, method="POST", body=json.dumps(body), headers=headers, streaming_callback=on_chunk
    )
    assert r.headers["Content-Type"].startswith("application/x-ndjson")
    return r.code, lines


@pytest.fixture
def complete_url(jp_fetch: Any, jp_http_port: int, jp_base_url: str) -> str:
    """The route's URL, for a client that reads the answer as it streams (jp_fetch: served)."""
    return f"http://127.0.0.1:{jp_http_port}{jp_base_url}aiide/api/complete"


@fim
async def test_ghost_text_arrives_while_the_model_is_still_writing(
    complete_url: str, jp_auth_header: dict[str, str], fake_openai: FakeOpenAI
) -> None:
    fake_openai.push(Reply(chunks=["total ", "= sum(", "values) ", "/ len(values)"], delay=0.3))
    started = time.monotonic()
    status, lines = await stream_lines(
        complete_url,
        jp_auth_header,
        {"prefix": "def mean(values):\n    ", "suffix": "\n", "stream": True, "path": "m.ipynb"},
    )
    assert status == 200
    texts = [line["completion"] for _, line in lines[:-1]]
    final_text = "total = sum(values) / len(values)"
    assert texts == ["total", "total = sum(", "total = sum(values)", final_text]
    # The first words were on screen long before the last ones were written (0.3 s apart).
    assert lines[0][0] - started < lines[-1][0] - started - 0.6
    final = lines[-1][1]
    assert final["done"] is True and final["completion"] == texts[-1]
    assert final["model"] == "local" and final["usage"]["output_tokens"] > 0


@pytest.mark.agent_config(complete_timeout=30.0)  # the first call imports the SDK
async def test_a_stream_that_fails_after_text_ends_with_an_error_line(
    complete_url: str, jp_auth_header: dict[str, str], fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.push(Reply(text="partial answer", stream_error="overloaded_error", delay=0.05))
    status, lines = await stream_lines(
        complete_url, jp_auth_header, {"prefix": "x = ", "stream": True}
    )
    assert status == 200  # sent with the first line
    assert lines[0][1] == {"completion": "partial"}
    last = lines[-1][1]
    assert set(last) == {"code", "message"} and last["code"].startswith("provider_")


async def test_a_refusal_before_any_text_keeps_its_status(
    complete_url: str, jp_auth_header: dict[str, str]
) -> None:
    with pytest.raises(HTTPClientError) as e:
        await AsyncHTTPClient(force_instance=True).fetch(
            complete_url,
            method="POST",
            body=json.dumps({"prefix": "x = ", "stream": "yes"}),
            headers=jp_auth_header,
        )
    assert e.value.code == 400 and e.value.response is not None
    assert json.loads(e.value.response.body)["code"] == "bad_message"


@pytest.mark.agent_config(complete_timeout=30.0)
async def test_without_stream_the_answer_is_one_json_object(
    jp_fetch: Any, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.push(Reply(text="1 + 1"))
    r = await jp_fetch(
        "aiide", "api", "complete", method="POST", body=json.dumps({"prefix": "x = "})
    )
    assert json.loads(r.body)["completion"] == "1 + 1"


PREAMBLES = [
    # (cursor line, the model's answer, what is inserted)
    (
        "    return ",
        "Here's the completion:\n```python\nsum(xs) / len(xs)\n```",
        "sum(xs) / len(xs)",
    ),
    ("    return ", "Here is the code you need:\n\nsum(xs) / len(xs)", "sum(xs) / len(xs)"),
    ("x = ", "Sure! The answer is below.\n```\ncompute()\n```", "compute()"),
    ("", "This computes the mean of the values.", ""),
]


@pytest.mark.parametrize(("cursor", "answer", "inserted"), PREAMBLES)
def test_prose_before_the_code_is_never_ghost_text(cursor: str, answer: str, inserted: str) -> None:
    prefix = "def mean(xs):\n" + cursor
    final = strip_fences(without_preamble(answer, cursor, "python", final=True))
    assert trim_to_block(prefix, final, "\n") == inserted
    shown = ""
    for end in range(1, len(answer) + 1):
        code = without_preamble(answer[:end], cursor, "python", final=False)
        view = streamed_view(prefix, code, "\n")
        assert not any(word in view for word in ("Here", "Sure", "This")), (answer[:end], view)
        if len(view) > len(shown):
            assert view.startswith(shown), (shown, view)
            shown = view
    assert shown == inserted


@pytest.mark.parametrize(
    "line",
    [
        "True if ready else None",
        "MyModel(alpha=0.5, fit_intercept=False)",
        "return a if b else c",
        'Compute the mean of xs."""',
        "Exception('The file was not found')",
        "# Here is a comment line",
        "Hello from the model",  # after a '#' on the cursor's line: a comment's words
    ],
)
def test_code_that_starts_with_a_capital_is_not_prose(line: str) -> None:
    cursor = '    """' if line.endswith('"""') else "# " if line.startswith("Hello") else ""
    assert not is_prose(line, cursor)
    assert without_preamble(line + "\nnext()", cursor, "python", final=True).startswith(line)


def test_other_languages_lose_only_a_colon_line_before_a_fence() -> None:
    answer = "Here is the query:\n```sql\nSELECT 1\n```"
    assert strip_fences(without_preamble(answer, "", "sql", final=True)) == "SELECT 1\n"
    assert without_preamble("Hello world", "", "markdown", final=True) == "Hello world"


@pytest.mark.agent_config(complete_timeout=30.0)  # the first call imports the SDK
async def test_the_server_answers_the_code_not_the_models_preamble(
    jp_fetch: Any, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.push(Reply(text="Here's the completion:\n```python\nsum(xs)\n```"))
    r = await jp_fetch(
        "aiide", "api", "complete", method="POST",
        body=json.dumps({"prefix": "def total(xs):\n    return ", "suffix": "\n"}),
    )  # fmt: skip
    assert json.loads(r.body)["completion"] == "sum(xs)"
