"""What a tool is, what it returns, and the confinement every path argument goes through."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
    #: low | medium | high, before policy adjustments (e.g. network-enabled kernels).
    risk: str
    run: Runner
    #: Notebook edits: the cell patch this call will apply, shown for approval.
    preview: Previewer | None = None
    executes_code: bool = False

    def definition(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "input_schema": self.schema}


def confine(root: str, path: str, *, allow_hidden: bool = False) -> str:
    """The real path of ``path`` under ``root``, or ToolError(path_outside_root).

    Refuses absolute paths, ``..``, NUL bytes, hidden components (unless allowed) and
    anything whose real path (symlinks resolved) leaves the root.
    """
    if not isinstance(path, str) or "\x00" in path:
        raise ToolError("path_outside_root", "invalid path")
    rel = path.replace("\\", "/").strip()
    if rel.startswith("/") or rel.startswith("~") or (len(rel) > 1 and rel[1] == ":"):
        raise ToolError("path_outside_root", f"{path!r}: paths are relative to the workspace")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ToolError("path_outside_root", f"{path!r}: '..' is not allowed")
    if not allow_hidden and any(p.startswith(".") for p in parts):
        raise ToolError("path_outside_root", f"{path!r}: hidden files are not accessible")
    real_root = os.path.realpath(root)
    full = os.path.realpath(os.path.join(real_root, *parts))
    if full != real_root and not full.startswith(real_root + os.sep):
        raise ToolError("path_outside_root", f"{path!r} resolves outside the workspace")
    return full


def relative(root: str, full: str) -> str:
    return os.path.relpath(full, os.path.realpath(root)).replace(os.sep, "/")
