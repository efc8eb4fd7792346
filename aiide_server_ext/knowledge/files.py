"""Which files of the workspace get indexed, and why the others do not.

Paths are the contents API's (relative to the server root, ``/``-separated). Anything
that resolves outside the root is refused, symlink loops are detected rather than
followed forever, and every file left out for a reason a user may not expect (binary,
too large, not UTF-8, unreadable) is reported with that reason.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

TEXT_EXTENSIONS = (
    ".ipynb",
    ".py",
    ".pyi",
    ".md",
    ".markdown",
    ".txt",
    ".rst",
    ".r",
    ".jl",
    ".sql",
    ".sh",
    ".toml",
    ".cfg",
    ".ini",
    ".yaml",
    ".yml",
    ".json",
    ".js",
    ".ts",
    ".tsx",
    ".jsx",
    ".html",
    ".css",
    ".tex",
    ".c",
    ".h",
    ".cpp",
    ".hpp",
    ".rs",
    ".go",
    ".java",
    ".scala",
)
NO_EXTENSION_OK = ("readme", "makefile", "dockerfile", "license", "changelog", "notes")
SKIPPED_DIRS = ("__pycache__", "node_modules", "site-packages", "venv")
IGNORE_FILES = (".gitignore", ".aiideignore")


class PathRefused(ValueError):
    """A requested path the index will not touch (outside the root, missing)."""


class Skipped(Exception):
    """A file left out; ``str()`` is the reason. ``error`` tells a broken file (malformed,
    not UTF-8, a symlink loop) from one left out by policy (binary, too large)."""

    def __init__(self, reason: str, error: bool = False):
        super().__init__(reason)
        self.error = error


@dataclass(frozen=True)
class ScanLimits:
    max_file_size: int = 1_000_000
    max_notebook_size: int = 20_000_000  # outputs (images) make notebooks big; text is small
    extensions: tuple[str, ...] = TEXT_EXTENSIONS
    include_hidden: bool = False


@dataclass
class Scan:
    files: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # by policy
    errors: list[tuple[str, str]] = field(default_factory=list)  # broken: stale chunks kept
    ignored: int = 0  # .gitignore / .aiideignore, hidden files, caches


class Workspace:
    """The server's root directory, seen as the contents API sees it."""

    def __init__(self, root: str, limits: ScanLimits = ScanLimits()):
        self.root = os.path.realpath(root)
        self.limits = limits
        self._bases = tuple(dict.fromkeys([os.path.abspath(root), self.root]))

    def api_path(self, path: str) -> str:
        """Normalised API path; refuses anything that climbs out of the root."""
        raw = (path or "").replace("\\", "/")
        for base in self._bases:  # an absolute path inside the root is accepted
            if raw.startswith(base + "/"):
                raw = raw[len(base) :]
        parts = [p for p in raw.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise PathRefused(f"{path!r} is outside the root directory")
        return "/".join(parts)

    def os_path(self, api_path: str) -> str:
        return os.path.join(self.root, *api_path.split("/")) if api_path else self.root

    def inside(self, os_path: str) -> bool:
        real = os.path.realpath(os_path)
        return real == self.root or real.startswith(self.root + os.sep)

    def to_api(self, os_path: str) -> str | None:
        """The API path of a file on disk, or None when it is not under the root."""
        absolute = os.path.abspath(os_path)
        for base in self._bases:
            if absolute.startswith(base + os.sep):
                return os.path.relpath(absolute, base).replace(os.sep, "/")
        return None

    # --- walking ------------------------------------------------------------

    def check(self, api_path: str) -> str:
        """The OS path of an existing file or folder inside the root, or PathRefused."""
        start = self.os_path(api_path)
        if not os.path.lexists(start):
            raise PathRefused(f"{api_path or '/'} does not exist")
        if not self.inside(start):
            raise PathRefused(f"{api_path} resolves outside the root directory")
        return start

    def scan(self, api_path: str) -> Scan:
        """Files to index under ``api_path`` (a file or a folder) and those left out."""
        start = self.check(api_path)
        out = Scan()
        if not os.path.isdir(start):
            try:
                reason = self._file_problem(api_path, start)
            except Skipped as e:
                out.errors.append((api_path, str(e)))
                return out
            if reason:
                out.skipped.append((api_path, reason))
            else:
                out.files.append(api_path)
            return out
        specs = self._parent_specs(api_path)
        self._walk(api_path, start, specs, {_key(os.stat(start))}, out)
        return out

    def _parent_specs(self, api_path: str) -> list[tuple[str, Any]]:
        specs: list[tuple[str, Any]] = []
        parts = api_path.split("/") if api_path else []
        for i in range(len(parts)):
            base = "/".join(parts[:i])
            spec = self._ignore_spec(self.os_path(base))
            if spec is not None:
                specs.append((base, spec))
        return specs

    def _ignore_spec(self, os_dir: str) -> Any:
        lines: list[str] = []
        for name in IGNORE_FILES:
            try:
                with open(os.path.join(os_dir, name), encoding="utf-8", errors="replace") as fh:
                    lines.extend(fh.read().splitlines())
            except OSError:
                continue
        if not lines:
            return None
        import pathspec

        return pathspec.GitIgnoreSpec.from_lines(lines)

    def _ignored(self, api_path: str, is_dir: bool, specs: Sequence[tuple[str, Any]]) -> bool:
        for base, spec in specs:
            rel = api_path[len(base) + 1 :] if base else api_path
            if spec.match_file(rel + "/" if is_dir else rel):
                return True
        return False

    def _walk(
        self, api_dir: str, os_dir: str, specs: list[tuple[str, Any]], seen: set[Any], out: Scan
    ) -> None:
        spec = self._ignore_spec(os_dir)
        specs = [*specs, (api_dir, spec)] if spec is not None else specs
        try:
            entries = sorted(os.scandir(os_dir), key=lambda e: e.name)
        except OSError as e:
            out.errors.append((api_dir, f"unreadable folder: {e.strerror}"))
            return
        for entry in entries:
            api = f"{api_dir}/{entry.name}" if api_dir else entry.name
            if entry.name.startswith(".") and not self.limits.include_hidden:
                continue
            try:
                st = os.stat(entry.path)  # follows symlinks
            except OSError as e:
                if entry.is_symlink():
                    loop = e.errno == errno.ELOOP
                    out.errors.append((api, "symlink loop" if loop else "broken symlink"))
                else:
                    out.errors.append((api, f"unreadable: {e.strerror}"))
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if entry.is_symlink() and not self.inside(entry.path):
                out.errors.append((api, "symlink to outside the root directory"))
                continue
            if self._ignored(api, is_dir, specs) or (is_dir and entry.name in SKIPPED_DIRS):
                out.ignored += 1
                continue
            if is_dir:
                if _key(st) in seen:
                    out.errors.append((api, "symlink loop (folder already visited)"))
                    continue
                self._walk(api, entry.path, specs, seen | {_key(st)}, out)
                continue
            reason = self._file_problem(api, entry.path, st)  # st given: cannot raise
            if reason:
                out.skipped.append((api, reason))
            else:
                out.files.append(api)

    def _file_problem(self, api_path: str, os_path: str, st: os.stat_result | None = None) -> str:
        """Why a file is left out before reading it ("" if it is not)."""
        name = posixpath.basename(api_path).lower()
        ext = posixpath.splitext(name)[1]
        if ext and ext not in self.limits.extensions:
            return f"not a text format that is indexed ({ext})"
        if not ext and name not in NO_EXTENSION_OK:
            return "no file extension: not indexed"
        try:
            st = st or os.stat(os_path)
        except OSError as e:
            raise Skipped(
                "symlink loop" if e.errno == errno.ELOOP else f"unreadable: {e.strerror}", True
            ) from e
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        limit = self.limits.max_notebook_size if ext == ".ipynb" else self.limits.max_file_size
        if st.st_size > limit:
            return f"too large ({st.st_size:,} bytes > {limit:,})"
        return ""

    def read(self, api_path: str) -> str:
        """The file's text; raises Skipped with the reason when it is not text."""
        os_path = self.os_path(api_path)
        if not self.inside(os_path):
            raise Skipped("resolves outside the root directory", True)
        reason = self._file_problem(api_path, os_path)
        if reason:
            raise Skipped(reason)
        try:
            with open(os_path, "rb") as fh:
                data = fh.read()
        except OSError as e:
            raise Skipped(f"unreadable: {e.strerror}", True) from e
        if b"\0" in data[:8192]:
            raise Skipped("binary file")
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise Skipped(f"not UTF-8 text (invalid byte at offset {e.start})", True) from e


def _key(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)
