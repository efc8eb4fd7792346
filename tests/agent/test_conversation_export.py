"""Conversations: export to Markdown and to a notebook, search on the server, renames."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import nbformat
import pytest
from fakes import FakeAnthropic, Reply

from aiide_server_ext.agent.export import content_disposition, file_name, split_blocks
from aiide_server_ext.agent.store import Store

from .chat import check, connect
from .test_agent_rest import fetch_error

pytestmark = pytest.mark.xdist_group("agent")

ANSWER = (
    "Load it with pandas:\n\n```python\nimport pandas as pd\ndf = pd.read_csv('x.csv')\n```"
    "\n\nThen `df.head()`."
)


def api(*parts: str) -> tuple[str, ...]:
    return ("aiide", "api", "agent", "conversations", *parts)


def store_of(jp_serverapp: Any) -> Store:
    store: Store = jp_serverapp.web_app.settings["aiide_agent"].store
    return store


async def ask(jp_ws_fetch: Any, fake: FakeAnthropic, text: str, answer: str) -> dict[str, Any]:
    fake.push(Reply(text=answer))
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text=text, task="chat")
    done: dict[str, Any] = await chat.until("run_finished")
    return done


def seed(store: Store, cid: str, owner: str, title: str, turns: list[tuple[str, Any]]) -> None:
    store.create_conversation(cid, owner, title)
    for role, content in turns:
        store.append_turn(cid, role, content, None)
    store.flush()


# -- pure functions ------------------------------------------------------------------------
def test_python_fences_become_code_pieces_and_other_languages_stay_markdown() -> None:
    text = "Intro\n```python\nx = 1\n```\nmid\n```bash\nls\n```\n```\ny = 2\n```\n~~~py\nz\n~~~"
    assert split_blocks(text) == [
        ("markdown", "Intro"),
        ("code", "x = 1"),
        ("markdown", "mid\n```bash\nls\n```"),
        ("code", "y = 2"),
        ("code", "z"),
    ]


def test_an_unclosed_fence_runs_to_the_end_and_a_longer_fence_holds_a_shorter_one() -> None:
    assert split_blocks("a\n````python\n```\nx\n````") == [("markdown", "a"), ("code", "```\nx")]
    assert split_blocks("```python\nx = 1") == [("code", "x = 1")]


def test_the_file_name_is_the_titles_words_and_the_header_carries_utf8() -> None:
    assert file_name('Plot: "sales" / 2024?', "ipynb") == "Plot sales 2024.ipynb"
    assert file_name("../../", "markdown") == "conversation.md"
    assert file_name("Données été", "markdown") == "Données été.md"
    header = content_disposition("Données été.md")
    assert header.startswith('attachment; filename="Donnes t.md"')
    assert "filename*=UTF-8''" + urllib.parse.quote("Données été.md") in header


# -- rename ------------------------------------------------------------------------------
async def test_a_rename_is_stored_on_the_server(
    jp_fetch: Any, jp_ws_fetch: Any, fake_anthropic: FakeAnthropic
) -> None:
    cid = (await ask(jp_ws_fetch, fake_anthropic, "first question", "an answer"))["conversation_id"]
    r = await jp_fetch(*api(cid), method="PATCH", body=json.dumps({"title": "  My   analysis "}))
    assert json.loads(r.body)["title"] == "My analysis"
    listing = json.loads((await jp_fetch(*api())).body)
    assert listing["conversations"][0]["title"] == "My analysis"


@pytest.mark.parametrize("title", ["", "   ", "x" * 121, 42, None])
async def test_a_bad_title_is_refused(
    title: Any, jp_fetch: Any, jp_ws_fetch: Any, fake_anthropic: FakeAnthropic
) -> None:
    cid = (await ask(jp_ws_fetch, fake_anthropic, "q", "a"))["conversation_id"]
    code, body = await fetch_error(
        jp_fetch, *api(cid), method="PATCH", body=json.dumps({"title": title})
    )
    assert (code, body["code"]) == (400, "bad_title")


async def test_someone_elses_conversation_cannot_be_renamed_or_exported(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    seed(store_of(jp_serverapp), "theirs", "someone-else", "secret plans", [("user", "hi")])
    code, body = await fetch_error(
        jp_fetch, *api("theirs"), method="PATCH", body='{"title": "mine"}'
    )
    assert (code, body["code"]) == (404, "unknown_conversation")
    code, body = await fetch_error(jp_fetch, *api("theirs", "export"))
    assert (code, body["code"]) == (404, "unknown_conversation")
    assert store_of(jp_serverapp).conversation("theirs")["title"] == "secret plans"  # type: ignore[index]


# -- search ------------------------------------------------------------------------------
async def test_search_finds_titles_and_answer_text_of_the_callers_conversations_only(
    jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any, fake_anthropic: FakeAnthropic
) -> None:
    done = await ask(jp_ws_fetch, fake_anthropic, "How do I load a CSV?", ANSWER)
    cid = done["conversation_id"]
    store = store_of(jp_serverapp)
    me = store.conversation(cid)["owner"]  # type: ignore[index]
    seed(store, "other-mine", me, "Plotting", [("user", "bar chart"), ("assistant", "use plt")])
    seed(store, "theirs", "someone-else", "pandas too", [("assistant", "pandas read_csv")])

    found = json.loads((await jp_fetch(*api(), params={"q": "READ_CSV"})).body)
    check("ConversationList", found)
    assert [c["id"] for c in found["conversations"]] == [cid]
    assert "read_csv" in found["conversations"][0]["snippet"]

    by_title = json.loads((await jp_fetch(*api(), params={"q": "plotting"})).body)
    assert [(c["id"], c["snippet"]) for c in by_title["conversations"]] == [("other-mine", None)]


async def test_search_wildcards_and_json_keys_match_nothing(
    jp_fetch: Any, jp_serverapp: Any, jp_ws_fetch: Any, fake_anthropic: FakeAnthropic
) -> None:
    done = await ask(jp_ws_fetch, fake_anthropic, "plain question", "plain answer")
    store = store_of(jp_serverapp)
    me = store.conversation(done["conversation_id"])["owner"]  # type: ignore[index]
    seed(store, "tools", me, "t", [("assistant", [{"type": "text", "text": "100% sure"}])])
    for q in ("%", "_", "type", '"text"'):
        found = json.loads((await jp_fetch(*api(), params={"q": q})).body)["conversations"]
        assert [c["id"] for c in found] == (["tools"] if q == "%" else []), q


async def test_an_empty_or_huge_query_is_refused(jp_fetch: Any) -> None:
    for q in ("  ", "x" * 201):
        code, body = await fetch_error(jp_fetch, *api(), params={"q": q})
        assert (code, body["code"]) == (400, "bad_message")


# -- export ------------------------------------------------------------------------------
async def test_export_as_markdown(
    jp_fetch: Any, jp_ws_fetch: Any, fake_anthropic: FakeAnthropic
) -> None:
    cid = (await ask(jp_ws_fetch, fake_anthropic, "How do I load a CSV?", ANSWER))[
        "conversation_id"
    ]
    r = await jp_fetch(*api(cid, "export"), params={"format": "markdown"})
    assert r.headers["Content-Type"].startswith("text/markdown")
    assert r.headers["Content-Disposition"].startswith(
        'attachment; filename="How do I load a CSV.md"'
    )
    text = r.body.decode()
    assert text.startswith("# How do I load a CSV?\n\n## Question 1\n\n> How do I load a CSV?")
    assert "### Answer\n\n" + ANSWER in text


async def test_export_as_a_notebook_puts_code_blocks_in_code_cells(
    jp_fetch: Any, jp_ws_fetch: Any, fake_anthropic: FakeAnthropic
) -> None:
    cid = (await ask(jp_ws_fetch, fake_anthropic, "How do I load a CSV?", ANSWER))[
        "conversation_id"
    ]
    r = await jp_fetch(*api(cid, "export"), params={"format": "ipynb"})
    assert r.headers["Content-Type"] == "application/x-ipynb+json"
    assert 'filename="How do I load a CSV.ipynb"' in r.headers["Content-Disposition"]
    nb = nbformat.reads(r.body.decode(), as_version=4)  # type: ignore[no-untyped-call]
    nbformat.validate(nb)
    assert [(c.cell_type, c.source) for c in nb.cells] == [
        ("markdown", "# How do I load a CSV?"),
        ("markdown", "**Question**\n\n> How do I load a CSV?"),
        ("markdown", "Load it with pandas:"),
        ("code", "import pandas as pd\ndf = pd.read_csv('x.csv')"),
        ("markdown", "Then `df.head()`."),
    ]
    assert nb.metadata.kernelspec.name == "aiide-python"
    assert nb.metadata.aiide.conversation_id == cid


async def test_export_leaves_tool_plumbing_out_and_refuses_an_unknown_format(
    jp_fetch: Any, jp_serverapp: Any, jp_ws_fetch: Any, fake_anthropic: FakeAnthropic
) -> None:
    done = await ask(jp_ws_fetch, fake_anthropic, "q", "a")
    store = store_of(jp_serverapp)
    me = store.conversation(done["conversation_id"])["owner"]  # type: ignore[index]
    tool_use = {"type": "tool_use", "id": "t1", "name": "read_file", "input": {"path": "k"}}
    tool_result = {"type": "tool_result", "tool_use_id": "t1", "content": "SECRET"}
    seed(
        store,
        "plumbing",
        me,
        "t",
        [
            ("user", "look"),
            ("assistant", [tool_use]),
            ("user", [tool_result]),
            ("assistant", "done"),
        ],
    )
    text = (await jp_fetch(*api("plumbing", "export"))).body.decode()
    assert "SECRET" not in text and "read_file" not in text and "done" in text
    code, body = await fetch_error(jp_fetch, *api("plumbing", "export"), params={"format": "pdf"})
    assert (code, body["code"]) == (400, "bad_format")


async def test_a_2000_message_conversation_exports_whole_in_both_formats(
    jp_fetch: Any, jp_serverapp: Any, jp_ws_fetch: Any, fake_anthropic: FakeAnthropic
) -> None:
    """Nothing cut or dropped at 2,000 messages (its time: benchmarks/export.py)."""
    done = await ask(jp_ws_fetch, fake_anthropic, "q", "a")
    store = store_of(jp_serverapp)
    me = store.conversation(done["conversation_id"])["owner"]  # type: ignore[index]
    turns: list[tuple[str, Any]] = []
    for i in range(1000):
        turns.append(("user", f"question {i}: how do I plot column {i}?"))
        turns.append(("assistant", [{"type": "text", "text": f"Like this:\n{ANSWER}\n{i}"}]))
    seed(store, "long", me, "A long day", turns)
    md = (await jp_fetch(*api("long", "export"), params={"format": "markdown"})).body.decode()
    assert md.count("```python") == 1000
    assert "question 0: how do I plot column 0?" in md
    assert "question 999: how do I plot column 999?" in md
    r = await jp_fetch(*api("long", "export"), params={"format": "ipynb"})
    nb = nbformat.reads(r.body.decode(), as_version=4)  # type: ignore[no-untyped-call]
    nbformat.validate(nb)  # type: ignore[no-untyped-call]
    assert len(nb.cells) == 1 + 1000 * 4
    assert sum(c.cell_type == "code" for c in nb.cells) == 1000
