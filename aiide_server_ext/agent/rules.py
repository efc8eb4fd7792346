"""Project rules: a file in the project that goes into every prompt.

A team writes down how the assistant should work in their project ("we use polars, not
pandas"; "plots in the house style"): `.aiide/rules.md` or `AGENTS.md`, the nearest one
up from the notebook (its own folder first, the workspace root last; never above it).

The file lives where the sandbox can write, so it is read like any workspace file: the
path resolved race-free under the root, nothing but a regular file, and a rules file that
is a link to somewhere else (`AGENTS.md -> .env`) is not read at all.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass

from .. import fsguard

#: Looked for in each folder, in this order.
DEFAULT_NAMES = (".aiide/rules.md", "AGENTS.md")


@dataclass(frozen=True)
class Rules:
    path: str
    text: str
    #: Bytes of the whole file.
    size: int
    #: Only the beginning of the file is in `text` (it was over the size limit).
    truncated: bool

    def render(self) -> str:
        cut = (
            f' truncated="the first {len(self.text):,} characters of {self.size:,} bytes"'
            if self.truncated
            else ""
        )
        return (
            f'<project_rules path="{self.path}"{cut}>\n'
            "The project's own instructions for you; follow them unless the user says "
            f"otherwise.\n{self.text}\n</project_rules>"
        )


def find_rules(
    root: str, notebook: str | None, names: tuple[str, ...], max_chars: int
) -> Rules | None:
    """The nearest rules file up from `notebook`'s folder (the root when None)."""
    if max_chars <= 0 or not names:
        return None
    try:
        folder = fsguard.parts_of(posixpath.dirname(notebook)) if notebook else []
    except fsguard.Refused:
        folder = []
    for depth in range(len(folder), -1, -1):
        for name in names:
            found = _read(root, [*folder[:depth], *fsguard.parts_of(name)], max_chars)
            if found is not None:
                return found
    return None


def _read(root: str, parts: list[str], max_chars: int) -> Rules | None:
    requested = "/".join(parts)
    try:
        # Hidden names are allowed for `.aiide/`, so the resolved path must be the one
        # asked for: a link anywhere on the way (to `.env`, out of the root) is refused.
        with fsguard.resolve(root, parts, allow_hidden=True) as resolved:
            if resolved.rel != requested:
                return None
            fd = fsguard.open_regular(resolved, requested)
    except fsguard.Refused:
        return None
    try:
        size = os.fstat(fd).st_size
        # UTF-8: at most four bytes a character; the rest of a huge file is never read.
        data = fsguard.read_fd(fd, min(size, max_chars * 4))
    finally:
        os.close(fd)
    text = data.decode("utf-8", errors="replace")
    truncated = len(data) < size or len(text) > max_chars
    return Rules(requested, text[:max_chars].strip(), size, truncated)
