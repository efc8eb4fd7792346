"""File tools: read, write, list, search — all confined to the server root.

Every path goes through ``fsguard``: resolved on descriptors, one component at a time, so
a link the sandbox planted (or swaps in during the call) is never followed out of the
root or into a hidden file, only regular files are read, and writes never follow a link.
All file work runs in a thread; ``search_files`` uses RE2, linear in the text searched.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import stat
import threading
import time
from collections.abc import Callable
from typing import Any

from ... import fsguard
from ...safe_regex import Pattern, search_pattern
from ..errors import ToolError
from .base import Tool, ToolEnv, ToolResult, tool_error

MAX_LIST = 200
MAX_MATCHES = 50
MAX_SEARCH_FILE = 1 << 20
#: A search reads at most this many files, for at most this long: a huge workspace
#: answers with what was found so far rather than holding a thread for minutes.
MAX_SEARCH_FILES = 5000
MAX_SEARCH_SECONDS = 10.0
MAX_SEARCH_DEPTH = 64
#: Characters of ``write_file`` content: bounded by the schema, before the safety fence.
MAX_WRITE_CHARS = 2_000_000


async def read_file(env: ToolEnv, args: dict[str, Any]) -> ToolResult:
    path: str = args["path"]

    def read() -> str:
        try:
            data, _ = fsguard.read_bytes(
                env.root_dir, path, allow_hidden=env.allow_hidden, limit=env.max_read_bytes + 1
            )
        except fsguard.Refused as e:
            if e.code == "not_found":
                raise ToolError("not_found", f"no file {path!r}") from None
            raise tool_error(e) from None
        if b"\x00" in data[:8192]:
            raise ToolError("tool_failed", f"{path!r} is a binary file")
        text = data[: env.max_read_bytes].decode("utf-8", errors="replace")
        if len(data) > env.max_read_bytes:
            text += f"\n[truncated at {env.max_read_bytes} bytes]"
        return text

    text = await asyncio.to_thread(read)
    guard = getattr(env.notebooks, "guard", None)  # a course's tutoring (hub)
    return ToolResult(text if guard is None else str(guard.text(path, text)))


async def write_file(env: ToolEnv, args: dict[str, Any]) -> ToolResult:
    path: str = args["path"]
    data = str(args["content"]).encode("utf-8")

    def write() -> None:
        try:
            fsguard.write_atomic(env.root_dir, path, data, allow_hidden=env.allow_hidden)
        except fsguard.Refused as e:
            raise tool_error(e) from None

    await asyncio.to_thread(write)
    return ToolResult(f"wrote {len(data)} bytes to {path}")


def folder_entries(root: str, path: str, allow_hidden: bool) -> list[str]:
    """A folder's names under the root, folders marked with '/', at most ``MAX_LIST`` and
    a line for the rest; raises ``fsguard.Refused`` (the file tool and mentions alike)."""
    with fsguard.open_dir(root, path, allow_hidden=allow_hidden) as (fd, _):
        names = sorted(os.listdir(fd))
        shown = [n for n in names if allow_hidden or not n.startswith(".")]
        lines = []
        for n in shown[:MAX_LIST]:
            try:  # for the "/" only: nothing is opened or read through a link
                is_dir = stat.S_ISDIR(os.stat(n, dir_fd=fd).st_mode)
            except OSError:
                is_dir = False
            lines.append(n + ("/" if is_dir else ""))
    if len(shown) > MAX_LIST:
        lines.append(f"[{len(shown) - MAX_LIST} more]")
    return lines


async def list_files(env: ToolEnv, args: dict[str, Any]) -> ToolResult:
    path: str = args.get("path", "")

    def listing() -> list[str]:
        try:
            return folder_entries(env.root_dir, path, env.allow_hidden)
        except fsguard.Refused as e:
            if e.code in ("not_found", "not_dir"):
                raise ToolError("not_found", f"no folder {path!r}") from None
            raise tool_error(e) from None

    return ToolResult("\n".join(await asyncio.to_thread(listing)) or "(empty folder)")


class _Search:
    """One search's walk: folders by descriptor, never through a link; linked files read
    only when their resolution stays in the root and out of hidden files."""

    def __init__(self, env: ToolEnv, pattern: Pattern, glob: str) -> None:
        self.env = env
        self.pattern = pattern
        self.glob = glob
        self.hits: list[str] = []
        self.files = 0
        self.deadline = time.monotonic() + MAX_SEARCH_SECONDS
        self.stopped = ""

    def done(self) -> bool:
        if len(self.hits) >= MAX_MATCHES:
            return True
        if not self.stopped and self.files >= MAX_SEARCH_FILES:
            self.stopped = f"[search stopped after {MAX_SEARCH_FILES} files]"
        elif not self.stopped and time.monotonic() > self.deadline:
            self.stopped = f"[search stopped after {MAX_SEARCH_SECONDS:g} s]"
        return bool(self.stopped)

    def folder(self, dir_fd: int, rel: str, depth: int) -> None:
        if depth > MAX_SEARCH_DEPTH:
            return
        for name in sorted(os.listdir(dir_fd)):
            if self.done():
                return
            if not self.env.allow_hidden and name.startswith("."):
                continue
            child = f"{rel}/{name}" if rel else name
            st = fsguard.entry_kind(dir_fd, name)
            if st is None:
                continue
            if stat.S_ISDIR(st.st_mode):
                try:  # O_NOFOLLOW: a folder swapped for a link since the lstat is skipped
                    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
                except OSError:
                    continue
                try:
                    self.folder(fd, child, depth + 1)
                finally:
                    os.close(fd)
            elif fnmatch.fnmatch(name, self.glob):
                self.file(dir_fd, name, st, child)

    def file(self, dir_fd: int, name: str, st: os.stat_result, rel: str) -> None:
        if stat.S_ISLNK(st.st_mode):
            try:  # a linked file: resolved from the root, under the same rules as a request
                data, size = fsguard.read_bytes(
                    self.env.root_dir,
                    rel,
                    allow_hidden=self.env.allow_hidden,
                    limit=MAX_SEARCH_FILE + 1,
                )
            except fsguard.Refused:
                return
        else:
            if st.st_size > MAX_SEARCH_FILE:
                return
            fd = fsguard.open_child(dir_fd, name, st)
            if fd is None:
                return
            try:
                data = fsguard.read_fd(fd, MAX_SEARCH_FILE + 1)
            finally:
                os.close(fd)
            size = len(data)
        if size > MAX_SEARCH_FILE:
            return  # big files are not searched
        self.files += 1
        text = data.decode("utf-8", errors="ignore")
        if not self.pattern.may_match(text):
            return  # the usual case: decided in one RE2 call, without a Python loop
        for n, line in enumerate(text.split("\n"), 1):
            line = line.removesuffix("\r")
            if self.pattern.search(line):
                self.hits.append(f"{rel}:{n}: {line.strip()[:200]}")
                if len(self.hits) >= MAX_MATCHES:
                    return


async def search_files(env: ToolEnv, args: dict[str, Any]) -> ToolResult:
    path: str = args.get("path", "")
    query: str = args["query"]
    glob: str = args.get("glob", "*")

    def search() -> list[str]:
        # Compiled here too: RE2 compiles in linear time, but off the loop all the same.
        run = _Search(env, search_pattern(query), glob)
        try:
            with fsguard.open_dir(env.root_dir, path, allow_hidden=env.allow_hidden) as (fd, r):
                run.folder(fd, r.rel, 0)
        except fsguard.Refused as e:
            if e.code in ("not_found", "not_dir"):
                raise ToolError("not_found", f"no folder {path!r}") from None
            raise tool_error(e) from None
        return run.hits + ([run.stopped] if run.stopped else [])

    hits = await _in_background_thread(search)
    return ToolResult("\n".join(hits) or "no matches")


async def _in_background_thread(fn: Callable[[], list[str]]) -> list[str]:
    """``fn`` in a thread of its own at a lower CPU priority, so a long search yields the
    CPU to the event loop's thread (on Linux, nice applies per thread). Its own thread:
    a pool thread could not get its priority back without privileges."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[list[str]] = loop.create_future()

    def settle(result: list[str] | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result or [])

    def body() -> None:
        with contextlib.suppress(OSError, AttributeError):
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + 5)
        try:
            result = fn()
        except BaseException as e:
            loop.call_soon_threadsafe(settle, None, e)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=body, name="aiide-search", daemon=True).start()
    return await future


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
        "read",
        read_file,
    ),
    Tool(
        "write_file",
        "Create or overwrite a text file (not notebooks: use cell tools).",
        {
            "type": "object",
            "properties": {
                "path": _path("relative"),
                "content": {"type": "string", "maxLength": MAX_WRITE_CHARS},
            },
            "required": ["path", "content"],
            "additionalProperties": False,
        },
        "write",
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
        "read",
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
        "read",
        search_files,
    ),
]
