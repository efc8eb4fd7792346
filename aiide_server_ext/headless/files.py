"""The files a headless run wrote, for its provenance: what changed in the input's folder
(by the agent's ``write_file`` or by code it ran), each with its sha256, and a checkpoint
of a file's previous content before the agent's ``write_file`` replaces it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import posixpath
from typing import TYPE_CHECKING, Any

from .. import fsguard
from ..agent.steps import StepRunner
from ..agent.tools import ToolResult

if TYPE_CHECKING:
    from ..agent.runs import Call, Run

#: A folder bigger than this is not listed whole: the record says it stopped.
MAX_ENTRIES = 20_000
CHECKPOINTS = ".ipynb_checkpoints"
SKIP_DIRS = {CHECKPOINTS, "__pycache__"}
#: Files larger than this are not checkpointed, so not overwritten by ``write_file``.
MAX_CHECKPOINT = 256 * 1024 * 1024


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def snapshot(root: str) -> dict[str, tuple[int, int]]:
    """``relative path -> (size, mtime_ns)`` of the visible files under ``root`` (links
    not followed)."""
    seen: dict[str, tuple[int, int]] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
        for name in sorted(files):
            if name.startswith("."):
                continue
            full = os.path.join(folder, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            seen[os.path.relpath(full, root).replace(os.sep, "/")] = (st.st_size, st.st_mtime_ns)
            if len(seen) >= MAX_ENTRIES:
                return seen
    return seen


def changed_files(
    root: str,
    before: dict[str, tuple[int, int]],
    ignore: set[str],
    checkpoints: dict[str, str | None],
) -> list[dict[str, Any]]:
    after = snapshot(root)
    rows = []
    for rel, stamp in sorted(after.items()):
        if rel in ignore or before.get(rel) == stamp:
            continue
        full = os.path.join(root, rel)
        try:
            digest = sha256_of(full)
        except OSError:
            continue
        row: dict[str, Any] = {"path": rel, "bytes": stamp[0], "sha256": digest}
        row["status"] = "modified" if rel in before else "created"
        if checkpoints.get(rel):
            row["checkpoint"] = checkpoints[rel]
        rows.append(row)
    rows += [{"path": r, "status": "deleted"} for r in sorted(set(before) - set(after) - ignore)]
    return rows


class RunSteps(StepRunner):
    """The agent's steps, with a checkpoint of a file before ``write_file`` replaces it
    (once per file and run: the checkpoint holds what was there before the run). A file
    that cannot be checkpointed is not overwritten."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Workspace path -> its checkpoint, taken before the run first wrote it.
        self.checkpoints: dict[str, str | None] = {}

    async def _execute(self, run: Run, call: Call) -> ToolResult:
        if call.name == "write_file":
            path = str((call.arguments or {}).get("path", ""))
            try:
                await asyncio.to_thread(self._checkpoint, path)
            except fsguard.Refused as e:
                if e.code != "not_found":
                    return ToolResult.failure(
                        "checkpoint_failed", f"{path} was not overwritten: {e.message}"
                    )
        return await super()._execute(run, call)

    def _checkpoint(self, path: str) -> None:
        root = self.engine.root_dir
        with fsguard.resolve(root, path, allow_hidden=self.allow_hidden) as r:
            rel = r.rel
        if rel in self.checkpoints:
            return
        self.checkpoints[rel] = checkpoint(root, rel, allow_hidden=self.allow_hidden)


def checkpoint(root: str, rel: str, *, allow_hidden: bool = False) -> str:
    """Copy ``rel`` to where the lab's "Revert to checkpoint" finds it
    (``.ipynb_checkpoints/NAME-checkpoint.EXT``), through ``fsguard`` (a link planted by
    kernel code is not followed out of the root). Blocking; returns the checkpoint's path."""
    old, _ = fsguard.read_bytes(root, rel, allow_hidden=allow_hidden, limit=MAX_CHECKPOINT)
    if len(old) >= MAX_CHECKPOINT:
        raise fsguard.Refused("too_large", f"{rel} is too large to checkpoint")
    folder, name = posixpath.split(rel)
    stem, ext = posixpath.splitext(name)
    with (
        fsguard.open_dir(root, folder, allow_hidden=allow_hidden) as (fd, _),
        contextlib.suppress(FileExistsError),
    ):
        os.mkdir(CHECKPOINTS, dir_fd=fd)
    where = posixpath.join(folder, CHECKPOINTS, f"{stem}-checkpoint{ext}")
    fsguard.write_atomic(root, where, old, allow_hidden=True)
    return where
