"""Race-free access to the workspace for the server's own hands (file tools, indexer,
mentions).

The workspace is writable by sandboxed kernels, so anything in it may be a link planted to
make the server read or write elsewhere, and it may change between two system calls. Path
strings are therefore never checked and then used: a path is walked one component at a
time from a descriptor of the root, each component opened with ``O_PATH | O_NOFOLLOW``
relative to its parent's descriptor. Symlinks are expanded here, under the same rules as
the request (never above the root, never through a hidden name unless allowed), so the
checks hold for the *resolved* path — ``config.txt -> .env`` is a hidden file. Files are
opened relative to the descriptor of the folder that was checked, compared by inode with
what was checked, and read only when they are regular files (a FIFO or a device is refused
without being opened for reading, so it cannot block a thread). Writes go to a fresh
temporary name created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` in that folder, then
``renameat`` over the target: a link planted at any name is never followed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

#: Symlinks expanded in one resolution before it is called a loop (Linux's own limit).
MAX_LINKS = 40
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_PATH = os.O_PATH | os.O_NOFOLLOW | _CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | _CLOEXEC


class Refused(Exception):
    """A path the server will not touch. ``code`` is one of ``invalid``, ``outside``,
    ``hidden``, ``not_found``, ``not_regular``, ``not_dir``, ``loop``, ``changed``, ``link``
    (a symlink where the caller takes none)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def confinement(self) -> bool:
        """True when the path is refused as such (not merely missing or of the wrong kind)."""
        return self.code in ("invalid", "outside", "hidden")


def parts_of(path: str) -> list[str]:
    """The components of a requested path (relative, ``/``-separated), or Refused.

    Absolute paths, ``~``, drive letters, ``..`` and control characters (NUL, newline:
    they end up in logs, prompts and tool results) are refused outright.
    """
    if not isinstance(path, str):
        raise Refused("invalid", "a path must be a string")
    if any(ord(ch) < 32 or ch == "\x7f" for ch in path):
        raise Refused("invalid", f"{path!r}: control characters (NUL, newline) are not allowed")
    rel = path.replace("\\", "/").strip()
    if rel.startswith(("/", "~")) or (len(rel) > 1 and rel[1] == ":"):
        raise Refused("invalid", f"{path!r}: paths are relative to the workspace")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Refused("invalid", f"{path!r}: '..' is not allowed")
    return parts


@dataclass
class Resolved:
    """Where a path leads, held by descriptors (closed by ``resolve``'s context)."""

    root: str
    #: The resolved path relative to the root (symlinks expanded), ``/``-separated.
    rel: str
    #: ``O_PATH`` descriptor of the folder holding the last component.
    parent_fd: int
    #: The last component's name in that folder ("" for the root itself).
    name: str
    #: ``O_PATH`` descriptor of the object itself; -1 when it does not exist (``missing_ok``).
    fd: int
    st: os.stat_result | None

    @property
    def real_path(self) -> str:
        return os.path.join(self.root, *self.rel.split("/")) if self.rel else self.root


def real_root(root: str) -> str:
    # The root is the administrator's choice, resolved once: links above it are trusted.
    return os.path.realpath(root)


@contextlib.contextmanager
def resolve(
    root: str,
    path: str | list[str],
    *,
    allow_hidden: bool = False,
    follow_last: bool = True,
    missing_ok: bool = False,
    links: bool = True,
) -> Iterator[Resolved]:
    """Walk ``path`` under ``root`` without following anything unchecked.

    ``missing_ok``: a last component that does not exist is not an error (``fd == -1``);
    a missing folder before it still is. ``follow_last=False`` stops at a final symlink.
    ``links=False``: any symlink on the way is refused (``link``), for paths the server
    owns (checkpoints) where a link can only have been planted.
    """
    requested = path if isinstance(path, str) else "/".join(path)
    parts = parts_of(path) if isinstance(path, str) else list(path)
    base = real_root(root)
    try:
        root_fd = os.open(base, os.O_PATH | os.O_DIRECTORY | _CLOEXEC)
    except OSError as e:
        raise Refused("not_found", f"the workspace is not available ({e.strerror})") from None
    stack: list[int] = [root_fd]  # descriptors of the folders walked, root first
    names: list[str] = []  # their names (the resolved path)
    final_fd = -1
    try:
        pending = deque(p for p in parts if p not in ("", "."))
        expanded = 0
        found: tuple[int, str, os.stat_result | None] | None = None  # (parent, name, st)
        while pending:
            name = pending.popleft()
            if name in ("", "."):
                continue
            if name == "..":  # only from a symlink's target: the request may not climb
                if len(stack) == 1:
                    raise Refused("outside", f"{requested!r} resolves outside the workspace")
                os.close(stack.pop())
                names.pop()
                continue
            if not allow_hidden and name.startswith("."):
                shown = "/".join([*names, name])
                why = "" if shown == requested else f" (it leads to {shown!r})"
                raise Refused("hidden", f"{requested!r}: hidden files are not accessible{why}")
            last = not any(p not in ("", ".") for p in pending)
            try:
                fd = os.open(name, _PATH, dir_fd=stack[-1])
            except FileNotFoundError:
                if missing_ok and last:
                    found = (stack[-1], name, None)
                    break
                raise Refused("not_found", f"{requested!r} does not exist") from None
            except OSError as e:
                raise _refusal(requested, e) from None
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode) and (follow_last or not last):
                if not links:
                    os.close(fd)
                    shown = "/".join([*names, name])
                    raise Refused("link", f"{requested!r}: {shown!r} is a symlink")
                expanded += 1
                try:
                    target = os.readlink("", dir_fd=fd)  # this very link, not its name again
                finally:
                    os.close(fd)
                if expanded > MAX_LINKS:
                    raise Refused("loop", f"{requested!r}: too many symlinks (a loop?)")
                if target.startswith("/"):
                    inside = target.rstrip("/")
                    if inside != base and not inside.startswith(base + "/"):
                        raise Refused("outside", f"{requested!r} resolves outside the workspace")
                    while len(stack) > 1:  # an absolute link into the root: start over there
                        os.close(stack.pop())
                    names.clear()
                    target = inside[len(base) :]
                pending.extendleft(reversed(target.split("/")))
                continue
            if last:
                final_fd = fd
                found = (stack[-1], name, st)
                break
            if not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise Refused("not_dir", f"{requested!r}: {'/'.join([*names, name])} is a file")
            stack.append(fd)
            names.append(name)
        if found is not None:
            parent, name, st_found = found
            yield Resolved(base, "/".join([*names, name]), parent, name, final_fd, st_found)
        else:  # the path ends on a folder already walked (the root, or after '..')
            final_fd = os.dup(stack[-1])
            parent = stack[-2] if len(stack) > 1 else stack[0]
            here = names[-1] if names else ""
            yield Resolved(base, "/".join(names), parent, here, final_fd, os.fstat(final_fd))
    finally:
        if final_fd >= 0:
            os.close(final_fd)
        for fd in stack:
            os.close(fd)


def _refusal(requested: str, e: OSError) -> Refused:
    if e.errno == errno.ELOOP:
        return Refused("loop", f"{requested!r}: symlink loop")
    if e.errno == errno.ENOTDIR:
        return Refused("not_dir", f"{requested!r}: a component is not a folder")
    if e.errno == errno.ENAMETOOLONG:
        return Refused("invalid", f"{requested!r}: name too long")
    return Refused("not_found", f"{requested!r}: {e.strerror}")


def open_regular(r: Resolved, requested: str) -> int:
    """A readable descriptor of the resolved regular file, or Refused.

    FIFOs, sockets and devices are refused from the ``O_PATH`` descriptor's type, before
    any open that could block or have side effects. The file is then opened by name in the
    checked folder with ``O_NOFOLLOW | O_NONBLOCK`` and must be the very inode checked.
    """
    if r.fd < 0 or r.st is None:
        raise Refused("not_found", f"{requested!r} does not exist")
    if stat.S_ISDIR(r.st.st_mode):
        raise Refused("not_regular", f"{requested!r} is a folder")
    if not stat.S_ISREG(r.st.st_mode):
        raise Refused("not_regular", f"{requested!r} is not a regular file ({_kind(r.st)})")
    try:
        fd = os.open(r.name, _READ, dir_fd=r.parent_fd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOENT):
            raise Refused("changed", f"{requested!r} changed while it was read") from None
        raise Refused("not_found", f"{requested!r}: {e.strerror}") from None
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (r.st.st_dev, r.st.st_ino) or not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise Refused("changed", f"{requested!r} changed while it was read")
    os.set_blocking(fd, True)
    return fd


def open_child(dir_fd: int, name: str, st: os.stat_result) -> int | None:
    """A readable descriptor of the regular file ``name`` in an open folder, when it is
    still the inode ``st`` (from ``entry_kind``) describes; None otherwise (a FIFO, a
    device, a link, or swapped since)."""
    if not stat.S_ISREG(st.st_mode):
        return None
    try:
        fd = os.open(name, _READ, dir_fd=dir_fd)
    except OSError:
        return None
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(now.st_mode):
        os.close(fd)
        return None
    os.set_blocking(fd, True)
    return fd


def read_fd(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes from an open file (which may shrink or grow meanwhile)."""
    chunks, got = [], 0
    while got < limit:
        chunk = os.read(fd, min(limit - got, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _kind(st: os.stat_result) -> str:
    mode = st.st_mode
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"


def read_bytes(
    root: str, path: str | list[str], *, allow_hidden: bool = False, limit: int | None = None
) -> tuple[bytes, int]:
    """Up to ``limit`` bytes (all when None) of a regular file under the root, and its size."""
    requested = path if isinstance(path, str) else "/".join(path)
    with resolve(root, path, allow_hidden=allow_hidden) as r:
        fd = open_regular(r, requested)
    try:
        size = os.fstat(fd).st_size
        return read_fd(fd, size if limit is None else min(size, limit)), size
    finally:
        os.close(fd)


@contextlib.contextmanager
def open_dir(
    root: str, path: str | list[str], *, allow_hidden: bool = False
) -> Iterator[tuple[int, Resolved]]:
    """A readable descriptor of a folder under the root (for ``os.scandir``/``listdir``)."""
    requested = path if isinstance(path, str) else "/".join(path)
    with resolve(root, path, allow_hidden=allow_hidden) as r:
        if r.st is None or not stat.S_ISDIR(r.st.st_mode):
            raise Refused("not_dir", f"{requested!r} is not a folder")
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC, dir_fd=r.fd)
        try:
            yield fd, r
        finally:
            os.close(fd)


def entry_kind(dir_fd: int, name: str) -> os.stat_result | None:
    """The entry's own status (links not followed), or None when it vanished."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return None


def write_atomic(
    root: str,
    path: str,
    data: bytes,
    *,
    allow_hidden: bool = False,
    links: bool = True,
    replace_any: bool = False,
    make_folder: bool = False,
) -> None:
    """Replace (or create) a regular file under the root with ``data``, atomically.

    The folder is resolved like any path; the target may not be a link, a folder or a
    special file. The temporary file gets a fresh random name, created exclusively without
    following links, and is renamed over the target inside the same folder descriptor.

    For files the server owns (a notebook's checkpoint): ``replace_any`` renames over a
    link or special file found at the name (the entry itself is replaced, nothing behind it
    is touched); ``make_folder`` creates a missing last folder (``mkdirat``, which never
    follows a link); ``links=False`` refuses any link on the way.
    """
    parts = parts_of(path)
    if not parts:
        raise Refused("not_regular", f"{path!r} is a folder")
    name = parts[-1]
    if not allow_hidden and name.startswith("."):
        raise Refused("hidden", f"{path!r}: hidden files are not accessible")
    with _folder(root, parts[:-1], path, allow_hidden, links, make_folder) as (dir_fd, dir_st):
        existing = entry_kind(dir_fd, name)
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            raise Refused("not_regular", f"{path!r} is a folder")
        if existing is not None and not stat.S_ISREG(existing.st_mode):
            if not replace_any and stat.S_ISLNK(existing.st_mode):
                # Never written through; say where it leads (outside, hidden) when refused.
                with resolve(root, parts, allow_hidden=allow_hidden, missing_ok=True) as to:
                    raise Refused("not_regular", f"{path!r} is a symlink (to {to.rel!r})")
            if not replace_any:
                raise Refused("not_regular", f"{path!r} is not a regular file")
            existing = None  # replaced, not kept: its mode and owner say nothing
        _write_in(dir_fd, name, data, existing or dir_st, keep_mode=existing is not None)


@contextlib.contextmanager
def _folder(
    root: str, parts: list[str], path: str, allow_hidden: bool, links: bool, make: bool
) -> Iterator[tuple[int, os.stat_result]]:
    """An ``O_PATH`` descriptor of the folder that holds ``path``, and its status."""
    with resolve(root, parts, allow_hidden=allow_hidden, links=links, missing_ok=make) as f:
        if f.fd >= 0:
            if f.st is None or not stat.S_ISDIR(f.st.st_mode):
                raise Refused("not_found", f"the folder of {path!r} does not exist")
            yield f.fd, f.st
            return
        parent = os.fstat(f.parent_fd)
        with contextlib.suppress(FileExistsError):  # created meanwhile: checked below
            os.mkdir(f.name, 0o777, dir_fd=f.parent_fd)
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
        try:
            fd = os.open(f.name, flags, dir_fd=f.parent_fd)
        except OSError:  # a link or a file took the name meanwhile
            raise Refused("changed", f"the folder of {path!r} changed while it was made") from None
        try:
            if os.geteuid() == 0:
                # Like files: a root server's new folder belongs to the folder it is in.
                os.fchown(fd, parent.st_uid, parent.st_gid)
            yield fd, os.fstat(fd)
        finally:
            os.close(fd)


def _write_in(
    dir_fd: int, name: str, data: bytes, owner: os.stat_result, *, keep_mode: bool
) -> None:
    tmp, fd = _create_temp(dir_fd, name)
    try:
        if keep_mode:  # keep the file's permissions, as an in-place edit would
            os.fchmod(fd, stat.S_IMODE(owner.st_mode))
        if os.geteuid() == 0:
            # A root server never leaves a user's file (or a new one in their folder)
            # owned by root: the file keeps its owner, a new one gets the folder's.
            os.fchown(fd, owner.st_uid, owner.st_gid)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


def _create_temp(dir_fd: int, name: str) -> tuple[str, int]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC
    for _ in range(100):
        # Hidden, so the indexer and listings skip it; random, so it cannot be planted.
        tmp = f".{name[:180]}.{secrets.token_hex(8)}.aiide-tmp"
        try:
            return tmp, os.open(tmp, flags, 0o666, dir_fd=dir_fd)
        except FileExistsError:
            continue
    raise Refused("changed", f"no temporary name could be created next to {name!r}")
