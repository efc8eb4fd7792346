"""``%ai`` in a real sandboxed kernel under a real server, answered by the agent's router
(the fake model) over the kernel's local channel, as the server's owner."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fakes import FakeAnthropic, Reply
from kernelrun import run_code

pytestmark = pytest.mark.xdist_group("headless")


async def _kernel(jp_fetch: Any, jp_serverapp: Any) -> Any:
    # What a real server does once its loop runs (pytest-jupyter does not).
    await jp_serverapp.extension_manager.start_all_extensions()
    r = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "aiide-python"}))
    kid = json.loads(r.body)["id"]
    return jp_serverapp.kernel_manager.get_kernel(kid)


async def test_ai_magic_is_answered_by_the_model_through_the_channel(
    jp_fetch: Any, jp_serverapp: Any, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.push(Reply(text="The sum is 6."))
    km = await _kernel(jp_fetch, jp_serverapp)
    r = await run_code(
        km,
        "%load_ext aiide_kernel.magics\nxs = [1, 2, 3]\n"
        "%ai --format text --vars xs what is the sum",
    )
    assert r.status == "ok", r
    assert r.stdout.strip() == "The sum is 6."
    body = fake_anthropic.requests[-1].body
    question = json.dumps(body["messages"])
    assert "what is the sum" in question and "builtins.list" in question
    assert "plain text" in str(body["system"])


async def test_code_format_renders_code_without_fences(
    jp_fetch: Any, jp_serverapp: Any, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.push(Reply(text="```python\nprint(42)\n```"))
    km = await _kernel(jp_fetch, jp_serverapp)
    await run_code(km, "%load_ext aiide_kernel.magics")
    r = await run_code(km, "%%ai --format code\nprint the answer")
    assert r.status == "ok", r
    shown = [o for o in r.outputs if o["type"] == "display_data"]
    assert shown and "print(42)" in shown[0]["data"]["text/plain"]
    assert "```" not in shown[0]["data"]["text/plain"]


async def test_model_failure_is_a_clear_message_in_the_cell(
    jp_fetch: Any, jp_serverapp: Any, fake_anthropic: FakeAnthropic, fake_openai: Any
) -> None:
    fake_anthropic.push(*[Reply(status=400, error_type="invalid_request_error")] * 3)
    km = await _kernel(jp_fetch, jp_serverapp)
    r = await run_code(km, "%load_ext aiide_kernel.magics\n%ai --model claude hello")
    assert r.status == "error", r  # the cell fails: a notebook run stops there
    assert r.error.startswith("UsageError: aiide: ") and "provider_bad_request" in r.error
