"""Prompt caching with Anthropic, proven against the fake (which caches as the real API
does): the stable prefix is marked, a later step and a later turn read it from the cache,
and the usage records cached tokens at their own prices (issue 17, item 5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeAnthropic, Reply, ToolUse

from .chat import connect
from .test_agent_chat import write_notebook

pytestmark = pytest.mark.xdist_group("agent")

PRICES = {
    "claude-test": {
        "input_per_mtok": 3.0,
        "output_per_mtok": 15.0,
        "cache_read_per_mtok": 0.3,
        "cache_write_per_mtok": 3.75,
    }
}
#: A notebook long enough that its context block alone is worth caching.
CELLS = [
    (f"c{i}", f"# step {i}\n" + f"value_{i} = compute({i})  # " + "x" * 300) for i in range(30)
]


def marks(body: dict[str, Any]) -> list[str]:
    """Where a request puts ``cache_control``: tools, system, message n block k."""
    out = [f"tool {t['name']}" for t in body.get("tools", []) if "cache_control" in t]
    system = body.get("system")
    if isinstance(system, list):
        out += ["system" for b in system if "cache_control" in b]
    for n, message in enumerate(body["messages"]):
        content = message["content"]
        if isinstance(content, list):
            out += [f"message {n} block {k}" for k, b in enumerate(content) if "cache_control" in b]
    return out


def without_marks(value: Any) -> Any:
    if isinstance(value, list):
        return [without_marks(v) for v in value]
    if isinstance(value, dict):
        return {k: without_marks(v) for k, v in value.items() if k != "cache_control"}
    return value


@pytest.mark.agent_config(Gateway={"model_prices": PRICES})
async def test_the_stable_prefix_is_cached_across_steps_and_turns_and_priced_apart(
    jp_fetch: Any, jp_ws_fetch: Any, jp_root_dir: Path, fake_anthropic: FakeAnthropic
) -> None:
    rules = "Always explain each step.\n" + "".join(
        f"- Rule {i}: name every dataframe after what it holds, never df{i}.\n" for i in range(12)
    )
    (jp_root_dir / "AGENTS.md").write_text(rules)
    write_notebook(jp_root_dir, "nb.ipynb", CELLS)
    fake_anthropic.push(
        Reply(tools=[ToolUse("read_cell", {"path": "nb.ipynb", "cell_id": "c3"})]),
        Reply(text="c3 computes value_3."),
        Reply(text="It is the fourth cell."),
    )
    chat = await connect(jp_ws_fetch)
    context = {"notebook": "nb.ipynb", "cell_id": "c3"}
    await chat.send(type="chat", text="what does c3 do?", task="agent", context=context)
    first = await chat.until("run_finished")
    assert first["status"] == "completed", chat.of("error")
    await chat.send(
        type="chat",
        text="and where is it?",
        task="agent",
        context=context,
        conversation_id=first["conversation_id"],
    )
    started = await chat.until("run_started")
    second = await chat.until("run_finished", run_id=started["run_id"])
    assert second["status"] == "completed", chat.of("error")

    step1, step2, turn2 = (r.body for r in fake_anthropic.requests)
    # Each request marks the tools, the system prompt, the run's context block (rules and
    # notebook, opening the question's message) and the end of what it sends.
    q = len(step1["messages"]) - 1  # the question's message
    tool = "tool " + step1["tools"][-1]["name"]
    assert marks(step1) == [tool, "system", f"message {q} block 0", f"message {q} block 1"]
    # The rules follow the system prompt (the same each turn); the notebook opens the
    # question's message (the same each step of a run).
    assert "Always explain each step." in step1["system"][0]["text"]
    assert "value_29" in step1["messages"][-1]["content"][0]["text"]
    # Step 2 of the run marks the same prefix (the context block where it was) and its end.
    assert marks(step2)[:3] == marks(step1)[:3] == [*marks(turn2)[:2], f"message {q} block 0"]
    assert marks(step2)[3] == f"message {len(step2['messages']) - 1} block 0"
    assert without_marks(step2["messages"][: q + 1]) == without_marks(step1["messages"])
    # The second turn sends the same tools and system prompt with the rules, marked the
    # same way.
    assert turn2["tools"] == step1["tools"] and turn2["system"] == step1["system"]

    (w1_read, w1_write), (s2_read, s2_write), (t2_read, t2_write) = fake_anthropic.cache_usage
    assert w1_read == 0 and w1_write > 0  # the first request writes the whole prefix
    assert s2_read == w1_write and s2_write > 0  # step 2 reads it all, writes what it added
    # Turn 2 reads the tools, the system prompt and the rules from the cache.
    assert t2_read > 0 and t2_read < w1_write

    # The usage records the cached tokens and prices them at their own rates.
    r = await jp_fetch("aiide", "api", "usage", params={"by": "model"})
    (row,) = [row for row in json.loads(r.body)["rows"] if row["model"] == "claude-test"]
    reads, writes = s2_read + t2_read, w1_write + s2_write + t2_write
    assert (row["cache_read_tokens"], row["cache_write_tokens"]) == (reads, writes)
    total_in = sum(u["input_tokens"] for u in (first["usage"], second["usage"]))
    total_out = sum(u["output_tokens"] for u in (first["usage"], second["usage"]))
    assert row["input_tokens"] == total_in and row["output_tokens"] == total_out
    plain = total_in - reads - writes
    cost = (plain * 3.0 + reads * 0.3 + writes * 3.75 + total_out * 15.0) / 1e6
    assert row["cost"] == pytest.approx(cost, abs=1e-6)
    # Priced as plain input, the same tokens would cost more: the tiers are really apart.
    assert row["cost"] < ((total_in * 3.0 + total_out * 15.0) / 1e6) - 1e-4


async def test_a_chat_turn_without_tools_marks_nothing_past_the_system_prompt(
    jp_ws_fetch: Any, jp_root_dir: Path, fake_anthropic: FakeAnthropic
) -> None:
    write_notebook(jp_root_dir, "nb.ipynb", CELLS)
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="hi", task="chat", context={"notebook": "nb.ipynb"})
    assert (await chat.until("run_finished"))["status"] == "completed"
    body = fake_anthropic.requests[-1].body
    assert not [m for m in marks(body) if m.startswith("message")]
