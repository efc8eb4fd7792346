"""The agent's tools, and argument validation: a model's bad call is an answer to the model
(``validation_error``, ``unknown_tool``, ``invalid_json``), never an exception."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, Protocol

from ..errors import ToolError
from .base import Tool, ToolEnv, ToolResult, confine
from .files import FILE_TOOLS
from .knowledge import KNOWLEDGE_TOOLS
from .notebook import NOTEBOOK_TOOLS

__all__ = [
    "TOOLS",
    "Tool",
    "ToolEnv",
    "ToolError",
    "ToolResult",
    "ToolSource",
    "confine",
    "definitions",
    "validate",
]

TOOLS: dict[str, Tool] = {t.name: t for t in [*NOTEBOOK_TOOLS, *FILE_TOOLS, *KNOWLEDGE_TOOLS]}


class ToolSource(Protocol):
    """Tools from elsewhere (configured MCP servers), namespaced so they cannot shadow ours."""

    async def ready(self) -> None:
        """Wait (bounded) for the first listing, so a run's first step sees the tools."""
        ...

    def tools(self) -> dict[str, Tool]: ...


def definitions(
    *, knowledge: bool = True, extra: Mapping[str, Tool] | None = None
) -> list[dict[str, Any]]:
    """What the model is told; ``search_knowledge`` only where an index exists."""
    own = [t.definition() for t in TOOLS.values() if knowledge or t.name != "search_knowledge"]
    return own + [t.definition() for n, t in (extra or {}).items() if n not in TOOLS]


@cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(TOOLS[name].schema)


def validate(
    name: str,
    arguments: dict[str, Any] | None,
    parse_error: str | None = None,
    *,
    extra: Mapping[str, Tool] | None = None,
) -> Tool:
    """The tool, or ToolError saying precisely what is wrong with the call."""
    tool = TOOLS.get(name) or (extra or {}).get(name)
    if tool is None:
        names = ", ".join([*TOOLS, *(extra or {})])
        raise ToolError("unknown_tool", f"no tool named {name!r}; tools: {names}")
    if arguments is None:
        raise ToolError("invalid_json", parse_error or "arguments are not a JSON object")
    if name in TOOLS:
        validator = _validator(name)
    else:
        from jsonschema import Draft202012Validator

        validator = Draft202012Validator(tool.schema)
    errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
    if errors:
        details = "; ".join(
            f"{'/'.join(str(p) for p in e.path) or 'arguments'}: {e.message}" for e in errors[:5]
        )
        raise ToolError("validation_error", details)
    return tool
