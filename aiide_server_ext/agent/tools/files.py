"""File tools: read, write, list, search — all confined to the server root."""

from __future__ import annotations

import asyncio
import fnmatch
import os
import re
from typing import Any

from ..errors import ToolError
from .base import Tool, ToolEnv, ToolResult, confine, relative

MAX_LIST = 200
MAX_MATCHES = 50
MAX_SEARCH_FILE = 1 << 20


async def read_file(env: ToolEnv, args: dict[str, Any]) -> ToolResult:
    full = confine(env.root_dir, args["path"], allow_hidden=env.allow_hidden)

    def read() -> str:
        if not os.path.isfile(full):
            raise ToolError("not_found", f"no file {args['path']!r}")
        with open(full, "rb") as f:
            data = f.read(env.max_read_bytes + 1)
        if b"\x00" in data[:8192]:
            raise ToolError("tool_failed", f"{args['path']!r} is a binary file")
        text = data[: env.max_read_bytes].decode("utf-8", errors="replace")
        if len(data) > env.max_read_bytes:
            text += f"\n[truncated at {env.max_read_bytes} bytes]"
        return text

    return ToolResult(await asyncio.to_thread(read))


async def write_file(env: ToolEnv, args: dict[str, Any]) -> ToolResult:
    full = confine(env.root_dir, args["path"], allow_hidden=env.allow_hidden)
    if os.path.islink(full) or os.path.isdir(full):
        raise ToolError("tool_failed", f"{args['path']!r} is not a regular file")
    if not os.path.isdir(os.path.dirname(full)):
        raise ToolError("not_found", f"the folder of {args['path']!r} does not exist")
    content: str = args["content"]

    def write() -> None:
        tmp = f"{full}.aiide-tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(content)
        os.replace(tmp, full)

    await asyncio.to_thread(write)
    return ToolResult(f"wrote {len(content.encode())} bytes to {args['path']}")


async def list_files(env: ToolEnv, args: dict[str, Any]) -> ToolResult:
    full = confine(env.root_dir, args.get("path", ""), allow_hidden=env.allow_hidden)
    if not os.path.isdir(full):
        raise ToolError("not_found", f"no folder {args.get('path', '')!r}")
    names = sorted(os.listdir(full))
    shown = [n for n in names if env.allow_hidden or not n.startswith(".")]
    lines = [n + ("/" if os.path.isdir(os.path.join(full, n)) else "") for n in shown[:MAX_LIST]]
    if len(shown) > MAX_LIST:
        lines.append(f"[{len(shown) - MAX_LIST} more]")
    return ToolResult("\n".join(lines) or "(empty folder)")


async def search_files(env: ToolEnv, args: dict[str, Any]) -> ToolResult:
    base = confine(env.root_dir, args.get("path", ""), allow_hidden=env.allow_hidden)
    try:
        pattern = re.compile(args["query"], re.IGNORECASE)
    except re.error:
        pattern = re.compile(re.escape(args["query"]), re.IGNORECASE)
    glob = args.get("glob", "*")
    real_root = os.path.realpath(env.root_dir)

    def search() -> list[str]:
        hits: list[str] = []
        for folder, dirs, files in os.walk(base):
            dirs[:] = sorted(d for d in dirs if env.allow_hidden or not d.startswith("."))
            for name in sorted(files):
                if not fnmatch.fnmatch(name, glob) or (not env.allow_hidden and name[0] == "."):
                    continue
                path = os.path.join(folder, name)
                real = os.path.realpath(path)
                if (
                    not real.startswith(real_root + os.sep)
                    or os.path.getsize(real) > MAX_SEARCH_FILE
                ):
                    continue  # symlinks out of the root, and big files, are not searched
                with open(real, encoding="utf-8", errors="ignore") as f:
                    for n, line in enumerate(f, 1):
                        if pattern.search(line):
                            hits.append(f"{relative(env.root_dir, path)}:{n}: {line.strip()[:200]}")
                            if len(hits) >= MAX_MATCHES:
                                return hits
        return hits

    hits = await asyncio.to_thread(search)
    return ToolResult("\n".join(hits) or "no matches")


def _path(description: str) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": 1024, "description": description}


FILE_TOOLS = [
    Tool(
        "read_file",
        "Read a text file of the workspace.",
        {
            "type": "object",
            "properties": {"path": _path("relative to the workspace")},
            "required": ["path"],
            "additionalProperties": False,
        },
        "low",
        read_file,
    ),
    Tool(
        "write_file",
        "Create or overwrite a text file (not notebooks: use cell tools).",
        {
            "type": "object",
            "properties": {"path": _path("relative"), "content": {"type": "string"}},
            "required": ["path", "content"],
            "additionalProperties": False,
        },
        "high",
        write_file,
    ),
    Tool(
        "list_files",
        "List a folder of the workspace.",
        {
            "type": "object",
            "properties": {"path": {"type": "string", "maxLength": 1024}},
            "additionalProperties": False,
        },
        "low",
        list_files,
    ),
    Tool(
        "search_files",
        "Search text files for a regex; returns path:line: text.",
        {
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1, "maxLength": 500},
                "path": {"type": "string", "maxLength": 1024},
                "glob": {"type": "string", "maxLength": 100},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        "low",
        search_files,
    ),
]
