"""Which files of the workspace get indexed, and why the others do not.

Paths are the contents API's (relative to the server root, ``/``-separated). Anything
that resolves outside the root, or to a hidden file (unless hidden files are indexed), is
refused — on the resolved path, race-free, through ``fsguard`` — symlink loops are
detected rather than followed forever, only regular files are read, and every file left
out for a reason a user may not expect (binary, too large, not UTF-8, unreadable) is
reported with that reason.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import fsguard

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
MAX_IGNORE_FILE = 1 << 20


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
    # Everything below goes through ``fsguard``: folders are walked by descriptor, links
    # expanded under the root and hidden-file rules (checked on the resolved path), and
    # only regular files are read, so a link or FIFO the sandbox planted cannot make the
    # indexer read elsewhere, index a hidden file under another name, or block.

    def _refusal(self, api_path: str, e: fsguard.Refused) -> str:
        if e.code == "outside":
            return "resolves outside the root directory"
        if e.code == "hidden":
            return "leads to a hidden file (c.Knowledge.include_hidden is off)"
        if e.code == "loop":
            return "symlink loop"
        if e.code == "not_found":
            return f"{api_path or '/'} does not exist"
        return e.message

    def check(self, api_path: str) -> str:
        """The OS path of an existing file or folder inside the root, or PathRefused."""
        try:
            with fsguard.resolve(self.root, api_path, allow_hidden=self.limits.include_hidden):
                pass
        except fsguard.Refused as e:
            raise PathRefused(f"{api_path or '/'}: {self._refusal(api_path, e)}") from None
        return self.os_path(api_path)

    def scan(self, api_path: str) -> Scan:
        """Files to index under ``api_path`` (a file or a folder) and those left out."""
        out = Scan()
        try:
            with fsguard.resolve(self.root, api_path, allow_hidden=self.limits.include_hidden) as r:
                assert r.st is not None
                st = r.st
                folder = (
                    os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=r.fd)
                    if stat.S_ISDIR(st.st_mode)
                    else -1
                )
        except fsguard.Refused as e:
            raise PathRefused(f"{api_path or '/'}: {self._refusal(api_path, e)}") from None
        if folder < 0:
            reason = self._file_problem(api_path, st)
            if reason:
                out.skipped.append((api_path, reason))
            else:
                out.files.append(api_path)
            return out
        try:
            specs = self._parent_specs(api_path)
            self._walk(api_path, folder, specs, {_key(st)}, out)
        finally:
            os.close(folder)
        return out

    def _parent_specs(self, api_path: str) -> list[tuple[str, Any]]:
        specs: list[tuple[str, Any]] = []
        parts = api_path.split("/") if api_path else []
        for i in range(len(parts)):
            base = "/".join(parts[:i])
            try:
                with fsguard.open_dir(self.root, base, allow_hidden=self.limits.include_hidden) as (
                    fd,
                    _,
                ):
                    spec = self._ignore_spec(fd)
            except fsguard.Refused:
                continue
            if spec is not None:
                specs.append((base, spec))
        return specs

    def _ignore_spec(self, dir_fd: int) -> Any:
        lines: list[str] = []
        for name in IGNORE_FILES:
            st = fsguard.entry_kind(dir_fd, name)
            fd = fsguard.open_child(dir_fd, name, st) if st is not None else None
            if fd is None:  # missing, a link, a FIFO: not read
                continue
            try:
                data = fsguard.read_fd(fd, MAX_IGNORE_FILE)
            finally:
                os.close(fd)
            lines.extend(data.decode("utf-8", errors="replace").splitlines())
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

    def _through_link(self, api: str, out: Scan) -> tuple[os.stat_result, int] | None:
        """Where a link found in the walk leads (its status, and a descriptor when it is a
        folder), resolved from the root; None when it is reported instead."""
        try:
            with fsguard.resolve(
                self.root, api.split("/"), allow_hidden=self.limits.include_hidden
            ) as r:
                assert r.st is not None
                if not stat.S_ISDIR(r.st.st_mode):
                    return r.st, -1
                flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
                return r.st, os.open(".", flags, dir_fd=r.fd)
        except fsguard.Refused as e:
            if e.code == "hidden":
                out.skipped.append((api, "symlink to a hidden file"))
            else:
                reason = {
                    "outside": "symlink to outside the root directory",
                    "loop": "symlink loop",
                    "not_found": "broken symlink",
                    "not_dir": "broken symlink",
                }.get(e.code, e.message)
                out.errors.append((api, reason))
            return None
        except OSError as e:
            out.errors.append((api, f"unreadable: {e.strerror}"))
            return None

    def _walk(
        self, api_dir: str, dir_fd: int, specs: list[tuple[str, Any]], seen: set[Any], out: Scan
    ) -> None:
        spec = self._ignore_spec(dir_fd)
        specs = [*specs, (api_dir, spec)] if spec is not None else specs
        try:
            names = sorted(os.listdir(dir_fd))
        except OSError as e:
            out.errors.append((api_dir, f"unreadable folder: {e.strerror}"))
            return
        for name in names:
            api = f"{api_dir}/{name}" if api_dir else name
            if name.startswith(".") and not self.limits.include_hidden:
                continue
            own = fsguard.entry_kind(dir_fd, name)
            if own is None:
                continue  # gone since the listing
            child = -1
            if stat.S_ISLNK(own.st_mode):
                found = self._through_link(api, out)
                if found is None:
                    continue
                st, child = found
            else:
                st = own
            is_dir = stat.S_ISDIR(st.st_mode)
            try:
                if self._ignored(api, is_dir, specs) or (is_dir and name in SKIPPED_DIRS):
                    out.ignored += 1
                    continue
                if is_dir:
                    if _key(st) in seen:
                        out.errors.append((api, "symlink loop (folder already visited)"))
                        continue
                    if child < 0:
                        try:  # O_NOFOLLOW: a folder swapped for a link since is not entered
                            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                            child = os.open(name, flags, dir_fd=dir_fd)
                        except OSError as e:
                            out.errors.append((api, f"unreadable folder: {e.strerror}"))
                            continue
                    self._walk(api, child, specs, seen | {_key(st)}, out)
                    continue
            finally:
                if child >= 0:
                    os.close(child)
            reason = self._file_problem(api, st)
            if reason:
                out.skipped.append((api, reason))
            else:
                out.files.append(api)

    def _name_problem(self, api_path: str) -> str:
        name = posixpath.basename(api_path).lower()
        ext = posixpath.splitext(name)[1]
        if ext and ext not in self.limits.extensions:
            return f"not a text format that is indexed ({ext})"
        if not ext and name not in NO_EXTENSION_OK:
            return "no file extension: not indexed"
        return ""

    def _limit(self, api_path: str) -> int:
        ext = posixpath.splitext(api_path.lower())[1]
        return self.limits.max_notebook_size if ext == ".ipynb" else self.limits.max_file_size

    def _file_problem(self, api_path: str, st: os.stat_result) -> str:
        """Why a file is left out before reading it ("" if it is not)."""
        reason = self._name_problem(api_path)
        if reason:
            return reason
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        limit = self._limit(api_path)
        if st.st_size > limit:
            return f"too large ({st.st_size:,} bytes > {limit:,})"
        return ""

    def read(self, api_path: str) -> str:
        """The file's text; raises Skipped with the reason when it is not text."""
        reason = self._name_problem(api_path)
        if reason:
            raise Skipped(reason)
        limit = self._limit(api_path)
        try:
            with fsguard.resolve(self.root, api_path, allow_hidden=self.limits.include_hidden) as r:
                assert r.st is not None
                reason = self._file_problem(api_path, r.st)
                if reason:
                    raise Skipped(reason)
                fd = fsguard.open_regular(r, api_path)
        except fsguard.Refused as e:
            raise Skipped(self._refusal(api_path, e), True) from None
        try:
            data = fsguard.read_fd(fd, limit + 1)
        except OSError as e:
            raise Skipped(f"unreadable: {e.strerror}", True) from e
        finally:
            os.close(fd)
        if len(data) > limit:  # grew since it was checked
            raise Skipped(f"too large (more than {limit:,} bytes)")
        if b"\0" in data[:8192]:
            raise Skipped("binary file")
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise Skipped(f"not UTF-8 text (invalid byte at offset {e.start})", True) from e


def _key(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)
