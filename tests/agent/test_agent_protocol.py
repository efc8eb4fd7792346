"""docs/protocol.md and docs/protocol.schema.json agree, and the server's parser holds
client frames to the same rules."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from aiide_server_ext.agent.errors import AgentError
from aiide_server_ext.agent.protocol import FIELDS, parse

from .chat import SCHEMA_PATH, check, schema

DOC = SCHEMA_PATH.parent / "protocol.md"


def doc_examples() -> list[dict[str, Any]]:
    """Every JSON object in the doc's json code blocks."""
    found = []
    decoder = json.JSONDecoder()
    for block in re.findall(r"```json\n(.*?)```", DOC.read_text(), re.S):
        text = block.strip()
        while text:
            obj, end = decoder.raw_decode(text)
            found.append(obj)
            text = text[end:].strip()
    return found


def definition_for(example: dict[str, Any]) -> str:
    if "op" in example:
        return "PatchOp"
    if "prefix" in example:
        return "CompleteRequest"
    if example.get("type") in FIELDS:
        return "ClientMessage"
    return "ServerMessage"


def test_the_schema_is_valid_json_schema() -> None:
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(schema())


def test_the_doc_has_examples_of_every_message() -> None:
    kinds = {e.get("type") for e in doc_examples()}
    client = {
        "chat",
        "approve",
        "cancel",
        "resume",
        "ping",
        "notebook_open",
        "notebook_close",
        "notebook_result",
        "fix",
    }
    server = {
        "hello",
        "pong",
        "resumed",
        "error",
        "run_started",
        "context",
        "token",
        "notice",
        "tool_call",
        "approval_required",
        "approval_resolved",
        "notebook_patch",
        "tool_result",
        "run_finished",
        "fix_started",
        "fix_attempt",
        "fix_finished",
    }
    assert client | server <= kinds


@pytest.mark.parametrize(
    "example", doc_examples(), ids=lambda e: str(e.get("type") or e.get("op") or "body")
)
def test_every_doc_example_matches_the_schema(example: dict[str, Any]) -> None:
    check(definition_for(example), example)


@pytest.mark.parametrize(
    "example", [e for e in doc_examples() if e.get("type") in FIELDS], ids=lambda e: str(e["type"])
)
def test_the_server_accepts_every_client_example(example: dict[str, Any]) -> None:
    assert parse(json.dumps(example), 1 << 20)["type"] == example["type"]


INVALID = [
    {"type": "chat"},
    {"type": "chat", "text": ""},
    {"type": "chat", "text": "x", "task": "dance"},
    {"type": "chat", "text": "x", "context": {"mentions": [{"kind": "cell", "path": "a"}]}},
    {
        "type": "chat",
        "text": "x",
        "context": {"mentions": [{"kind": "folder", "path": "a", "lines": [1, 2]}]},
    },
    {
        "type": "chat",
        "text": "x",
        "context": {"mentions": [{"kind": "file", "path": "a", "lines": [0, 2]}]},
    },
    {
        "type": "chat",
        "text": "x",
        "context": {"mentions": [{"kind": "file", "path": "a", "lines": [3]}]},
    },
    {"type": "approve", "conversation_id": "c", "run_id": "r", "call_id": "x"},
    {"type": "approve", "conversation_id": "c", "run_id": "r", "call_id": "x", "decision": "yes"},
    {"type": "cancel", "conversation_id": "c"},
    {"type": "resume", "conversation_id": "c", "after_seq": -1},
    {"type": "resume", "conversation_id": "c", "after_seq": "3"},
    {
        "type": "notebook_result",
        "conversation_id": "c",
        "run_id": "r",
        "request_id": "q",
        "status": "done",
    },
    {"type": "notebook_open"},
    {"type": "ping", "id": "x" * 65},
    {"type": "cancel", "conversation_id": "", "run_id": "r"},
    {"type": "fix"},
    {"type": "fix", "path": "nb.ipynb", "max_attempts": 11},
    {"type": "fix", "path": "nb.ipynb", "cell_id": ""},
]


@pytest.mark.parametrize("message", INVALID, ids=lambda m: m["type"])
def test_what_the_schema_refuses_the_server_refuses(message: dict[str, Any]) -> None:
    from jsonschema import Draft202012Validator

    v = Draft202012Validator({"$ref": "#/$defs/ClientMessage", "$defs": schema()["$defs"]})
    assert list(v.iter_errors(message)), "the schema should refuse this"
    with pytest.raises(AgentError) as e:
        parse(json.dumps(message), 1 << 20)
    assert e.value.code == "bad_message"


def test_every_code_the_server_sends_is_documented() -> None:
    documented = set(re.findall(r"\| `([a-z_]+)` \|", DOC.read_text())) | set(
        re.findall(r"`([a-z_]+)`", DOC.read_text().split("Tool errors reach the model")[1])
    )
    from pathlib import Path

    import aiide_server_ext.agent as pkg

    source = "\n".join(p.read_text() for p in Path(pkg.__file__).parent.rglob("*.py"))
    raised = set(
        re.findall(r'(?:AgentError|ToolError|ProviderError|failure)\(\s*"([a-z_]+)"', source)
    )
    assert raised - documented == set()


def test_a_line_range_that_ends_before_it_starts_is_refused() -> None:
    """What the schema cannot say (start <= end) the server still holds."""
    message = {
        "type": "chat",
        "text": "x",
        "context": {"mentions": [{"kind": "file", "path": "a", "lines": [5, 2]}]},
    }
    with pytest.raises(AgentError) as e:
        parse(json.dumps(message), 1 << 20)
    assert e.value.code == "bad_message" and "start <= end" in e.value.message
