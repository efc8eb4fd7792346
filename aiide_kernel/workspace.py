"""A kernel's workspace, resolved once and race-free, and what inside it stays hidden.

The workspace path is checked (``SandboxPolicy.resolve_workspace``) and then opened
one component at a time with ``O_PATH|O_NOFOLLOW|O_DIRECTORY``: a component that a
kernel swapped for a symlink after the check fails the open instead of redirecting
the launch. Everything after that (ACLs, bwrap's ``--bind-fd``) acts on the
descriptor, and mounts are checked against its device and inode.

A workspace may be, or contain, a home directory. Jupyter's runtime, data and config
directories (the server's token), the gateway's and agent's databases, ``~/.ssh``
and every dot-entry of the home are then masked: an empty read-only directory or
file is mounted over each, so the kernel can neither read nor change them. Such a
home is also *sealed*: read-only at its top level, with each of its existing visible
entries bound read-write over it, so the kernel cannot create a start-up file that
did not exist (``~/.bash_profile``, ``~/.config/autostart``) and nothing is created on
the host to serve as a mount point.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field

from .policy import SandboxConfigError, SandboxPolicy


class WorkspaceChanged(SandboxConfigError):
    """The workspace path changed (a symlink appeared) while the kernel was starting."""


@dataclass
class WorkspaceHandle:
    """An open ``O_PATH`` descriptor of the workspace, and who it is."""

    path: str
    fd: int
    dev: int
    ino: int
    owner_uid: int
    owner_gid: int
    mode: int

    @property
    def proc_path(self) -> str:
        """A path the kernel follows to this very directory, whatever its name now."""
        return f"/proc/self/fd/{self.fd}"

    def same_as(self, st: os.stat_result) -> bool:
        return st.st_dev == self.dev and st.st_ino == self.ino

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


def open_workspace(path: str) -> WorkspaceHandle:
    """Open an absolute, already resolved directory path without following any link."""
    if not os.path.isabs(path) or "\0" in path:
        raise SandboxConfigError(f"kernel workspace {path!r} is not an absolute path")
    flags = os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC
    fd = os.open("/", flags)
    try:
        for part in [p for p in path.split("/") if p]:
            if part in (".", ".."):
                raise SandboxConfigError(f"kernel workspace {path!r} is not a resolved path")
            try:
                nxt = os.open(part, flags, dir_fd=fd)
            except OSError as e:
                raise WorkspaceChanged(
                    f"kernel workspace {path!r} changed while the kernel was starting "
                    f"({part!r}: {e.strerror}); not starting it there"
                ) from None
            os.close(fd)
            fd = nxt
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    return WorkspaceHandle(path, fd, st.st_dev, st.st_ino, st.st_uid, st.st_gid, st.st_mode)


def sandbox_identity_for(ws: WorkspaceHandle, configured_uid: int) -> tuple[int, int]:
    """The uid/gid a kernel in ``ws`` runs as.

    An ordinary server: its own. A root server: the workspace owner when that is
    not root (their files stay theirs, nothing is chowned or ACL'd), else the
    dedicated ``sandbox_uid`` (given access by an ACL, see ``grants``)."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    if ws.owner_uid != 0:
        try:
            return ws.owner_uid, pwd.getpwuid(ws.owner_uid).pw_gid
        except KeyError:
            return ws.owner_uid, ws.owner_gid
    return configured_uid, configured_uid


# -- masking ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Mask:
    """A host path the kernel must not see: an empty directory or file goes over it."""

    path: str
    is_dir: bool


@dataclass
class MaskPlan:
    masks: list[Mask] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [m.path for m in self.masks]


def _homes(uids: Iterable[int]) -> list[str]:
    homes = [os.path.expanduser("~")]
    for uid in uids:
        with contextlib.suppress(KeyError):
            homes.append(pwd.getpwuid(uid).pw_dir)
    return _real_unique(homes)


def _real_unique(paths: Iterable[str]) -> list[str]:
    """Absolute paths resolved, each once, in order; never `/` itself."""
    out: list[str] = []
    for p in paths:
        if p and os.path.isabs(p):
            real = os.path.realpath(p)
            if real not in out and real != "/":
                out.append(real)
    return out


def sensitive_paths(policy: SandboxPolicy, server_paths: Iterable[str] = ()) -> list[str]:
    """Paths no kernel may see even when its workspace contains them."""
    from jupyter_core.paths import jupyter_config_dir, jupyter_data_dir, jupyter_runtime_dir

    paths = [jupyter_runtime_dir(), jupyter_data_dir(), jupyter_config_dir()]
    paths += [os.path.join(h, ".ssh") for h in _homes([os.getuid()])]
    paths += list(server_paths)
    paths += list(policy.masked_paths)
    return _real_unique(paths)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def check_not_sensitive(
    policy: SandboxPolicy, workspace: str, server_paths: Iterable[str] = ()
) -> list[str]:
    """Refuse a workspace inside a path no kernel may see; the sensitive paths."""
    sensitive = sensitive_paths(policy, server_paths)
    for s in sensitive:
        if _inside(workspace, s):
            raise SandboxConfigError(
                f"kernel workspace {workspace!r} is inside {s!r}, which is never shown to "
                "sandboxed kernels (Jupyter's own files, secrets, c.SandboxPolicy.masked_paths)"
            )
    return sensitive


def plan_masks(
    policy: SandboxPolicy,
    workspace: str,
    visible: Iterable[str],
    owner_uids: Iterable[int] = (),
    server_paths: Iterable[str] = (),
) -> MaskPlan:
    """What to hide inside ``workspace`` and the other ``visible`` host paths.

    Refuses a workspace that is itself inside a sensitive path: masking its inside
    would leave nothing, and starting there silently would expose it."""
    roots = [workspace, *visible]
    sensitive = check_not_sensitive(policy, workspace, server_paths)
    candidates = list(sensitive)
    unmasked = set(policy.unmasked_home_entries)
    if policy.mask_home_dotfiles:
        for home in _homes([os.getuid(), *owner_uids]):
            if not any(_inside(home, r) for r in roots):
                continue
            try:
                names = os.listdir(home)
            except OSError:
                continue
            hidden = [n for n in sorted(names) if n.startswith(".") and n not in unmasked]
            candidates += [os.path.join(home, n) for n in hidden]
    plan = MaskPlan()
    seen: set[str] = set()
    for path in candidates:
        if not any(_inside(path, r) and path != r for r in roots):
            continue
        try:
            st = os.lstat(path)
        except OSError:
            continue  # absent: nothing to hide
        if stat.S_ISLNK(st.st_mode):
            # A link is only followed to where the kernel can see anyway; hide the target
            # when it is visible, never mount over a path outside the sandbox.
            target = os.path.realpath(path)
            if not any(_inside(target, r) and target != r for r in roots):
                continue
            path = target
            try:
                st = os.stat(path)
            except OSError:
                continue
        if path in seen:
            continue
        seen.add(path)
        plan.masks.append(Mask(path, stat.S_ISDIR(st.st_mode)))
    # Parents before children, so a mask is never hidden by a later, wider one.
    plan.masks.sort(key=lambda m: m.path.count("/"))
    return plan


@dataclass(frozen=True)
class SealedHome:
    """A home the kernel sees (the workspace, or inside it) that it cannot add to:
    read-only at its top level, its existing visible entries read-write over it."""

    path: str
    #: (name, st_dev, st_ino) of each entry bound read-write: directories and regular
    #: files only, never a masked one or a Python prefix (those keep their own mount).
    writable: tuple[tuple[str, int, int], ...] = ()


def plan_sealed_homes(
    policy: SandboxPolicy,
    workspace: str,
    masks: Iterable[Mask],
    owner_uids: Iterable[int] = (),
    keep: Iterable[str] = (),
) -> list[SealedHome]:
    """The homes inside ``workspace`` to seal (with ``mask_home_dotfiles``, the default).

    ``keep`` are paths mounted on their own (a Python prefix, read-only): never bound
    read-write."""
    if not policy.mask_home_dotfiles:
        return []
    masked = {m.path for m in masks}
    kept = set(keep)
    out: list[SealedHome] = []
    for home in _homes([os.getuid(), *owner_uids]):
        if not _inside(home, workspace) or any(_inside(home, m) for m in masked):
            continue
        try:
            names = sorted(os.listdir(home))
        except OSError:
            continue
        writable: list[tuple[str, int, int]] = []
        for name in names:
            path = os.path.join(home, name)
            if path in masked or path in kept:
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue
            # A link stays visible as a read-only link; sockets, FIFOs: read-only too.
            if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
                writable.append((name, st.st_dev, st.st_ino))
        out.append(SealedHome(home, tuple(writable)))
    return out


def open_sealed_homes(ws: WorkspaceHandle, homes: Iterable[SealedHome]) -> dict[str, int]:
    """``O_PATH`` descriptors (by mount point) of each sealed home and its writable
    entries, opened from the workspace's descriptor without following any link. An
    entry that changed since it was planned (gone, a link, another inode) is left out:
    it stays read-only. The caller closes them once the kernel has started."""
    flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
    fds: dict[str, int] = {}
    try:
        for home in homes:
            rel = [p for p in home.path[len(ws.path) :].split("/") if p]
            fd = os.dup(ws.fd)
            try:
                for part in rel:
                    nxt = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
                    os.close(fd)
                    fd = nxt
            except OSError as e:
                os.close(fd)
                raise WorkspaceChanged(
                    f"home directory {home.path!r} changed while the kernel was starting "
                    f"({e.strerror}); not starting it there"
                ) from None
            fd = _above_shell_fds(fd)
            fds[home.path] = fd
            for name, dev, ino in home.writable:
                try:
                    efd = os.open(name, flags, dir_fd=fd)
                except OSError:
                    continue
                st = os.fstat(efd)
                if (st.st_dev, st.st_ino) != (dev, ino) or stat.S_ISLNK(st.st_mode):
                    os.close(efd)
                    continue
                fds[os.path.join(home.path, name)] = _above_shell_fds(efd)
    except BaseException:
        close_fds(fds)
        raise
    return fds


def _above_shell_fds(fd: int) -> int:
    """The same descriptor numbered 10 or more: the launch shell uses 3-9 for itself
    (the seccomp filter) and would replace a descriptor it passes on there."""
    if fd >= 10:
        return fd
    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    finally:
        os.close(fd)


def close_fds(fds: dict[str, int]) -> None:
    for fd in fds.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


def mask_file(run_dir: str) -> str:
    """An empty read-only file in the run dir to mount over masked files."""
    empty_file = os.path.join(run_dir, "masked.file")
    if not os.path.exists(empty_file):
        fd = os.open(empty_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444)
        os.close(fd)
        os.chmod(empty_file, 0o444)
    return empty_file
