"""What a tool is, what it returns, and the confinement every path argument goes through."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ... import fsguard
from ...fsguard import Refused
from ..errors import ToolError

if TYPE_CHECKING:
    from ...seams import Caller
    from ..notebooks import NotebookBridge, Route


@dataclass
class ToolResult:
    content: str
    ok: bool = True
    code: str | None = None
    outputs: list[dict[str, Any]] | None = None
    #: Sources the content quotes (protocol ``Citation``s), for the UI's links.
    citations: list[dict[str, Any]] | None = None

    @classmethod
    def failure(cls, code: str, message: str) -> ToolResult:
        return cls(f"error ({code}): {message}", ok=False, code=code)


@dataclass
class ToolEnv:
    """What a tool may touch during one call."""

    root_dir: str
    notebooks: NotebookBridge
    caller: Caller
    route: Route
    call_id: str
    allow_hidden: bool = False
    max_read_bytes: int = 65536
    #: Asks the gateway before code runs (scope ``agent:execute``); raises on refusal.
    admit_execute: Callable[[], Awaitable[None]] | None = None
    #: The notebook the chat was about, for tools whose ``path`` is optional.
    default_notebook: str | None = None
    #: The knowledge part's service (``search(caller, query, k)``), when it is loaded.
    knowledge: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


Runner = Callable[[ToolEnv, dict[str, Any]], Awaitable[ToolResult]]
Previewer = Callable[[ToolEnv, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    schema: dict[str, Any]
    #: What the tool does, least risky first: read | edit | run | write | network (MCP
    #: tools: low | medium | high), before policy adjustments (network-enabled kernels).
    risk: str
    run: Runner
    #: Notebook edits: the cell patch this call will apply, shown for approval.
    preview: Previewer | None = None
    executes_code: bool = False

    def definition(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "input_schema": self.schema}


def tool_error(e: Refused) -> ToolError:
    """What the model is told about a path the workspace guard refused."""
    if e.confinement:
        return ToolError("path_outside_root", e.message)
    return ToolError("not_found" if e.code == "not_found" else "tool_failed", e.message)


def confine(root: str, path: str, *, allow_hidden: bool = False) -> str:
    """The resolved path of ``path`` under ``root``, or ToolError(path_outside_root).

    Refuses absolute paths, ``..``, control characters, and any path whose resolution
    (each symlink expanded by ``fsguard``, never by the OS) leaves the root or passes a
    hidden name unless allowed: ``config.txt -> .env`` is hidden. The last component may
    not exist yet (a file to create). A check only: tools that read or write use
    ``fsguard`` themselves, on descriptors, so the answer cannot go stale between the two.
    """
    try:
        with fsguard.resolve(root, path, allow_hidden=allow_hidden, missing_ok=True) as r:
            return r.real_path
    except fsguard.Refused as e:
        raise tool_error(e) from None


def relative(root: str, full: str) -> str:
    return os.path.relpath(full, os.path.realpath(root)).replace(os.sep, "/")
