"""bubblewrap backend: unprivileged namespaces, no daemon.

The kernel sees read-only ``/usr`` and Python prefix, a generated minimal ``/etc``,
its workspace read-write, a private size-capped ``/tmp`` and nothing else.
When the server runs as root, bwrap itself runs as a dedicated unprivileged uid
(bwrap as root would keep full capabilities inside its namespace); directories
that uid cannot reach (``/root/.pyenv``) are bind-mounted for it first inside a
private mount namespace that disappears with the kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import stat
import subprocess
from collections.abc import Callable
from functools import lru_cache

from .. import cgroups, seccomp
from ..policy import SandboxPolicy
from ..workspace import mask_file
from .base import BackendStatus, LaunchSpec, SandboxBackend, SandboxedKernel
from .generated_etc import write_etc

_SYMLINKS = {
    "/bin": "usr/bin",
    "/sbin": "usr/sbin",
    "/lib": "usr/lib",
    "/lib64": "usr/lib64",
    "/lib32": "usr/lib32",
    "/libx32": "usr/libx32",
}
_NETWORK_ETC = (
    "/etc/resolv.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
)
#: Exit status of a launch stopped because the workspace mount was not the opened one.
WORKSPACE_CHANGED = 70
_ETC_FILES = ("/etc/localtime", "/etc/mime.types", "/etc/fonts")


@lru_cache(maxsize=1)
def _bwrap_version() -> str | None:
    path = shutil.which("bwrap")
    if not path:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or "bubblewrap"


@lru_cache(maxsize=4)
def _cgroup_support(root: str = "") -> cgroups.CgroupSupport:
    return cgroups.detect(root)


def _traversable_by(path: str, uid: int, gid: int) -> bool:
    """Whether ``uid`` can reach ``path`` (search permission on every ancestor)."""
    current = "/"
    for part in [p for p in os.path.realpath(path).split("/") if p]:
        try:
            st = os.stat(current)
        except OSError:
            return False
        mode = st.st_mode
        if st.st_uid == uid:
            ok = bool(mode & stat.S_IXUSR)
        elif st.st_gid == gid:
            ok = bool(mode & stat.S_IXGRP)
        else:
            ok = bool(mode & stat.S_IXOTH)
        if not ok:
            return False
        current = os.path.join(current, part)
    return True


def mount_args(spec: LaunchSpec, src: Callable[[str, bool], str]) -> list[str]:
    """The host paths the kernel sees, parents before children (so a Python prefix
    inside the workspace stays read-only, and one inside a masked dot-directory stays
    visible), then the masks made read-only."""
    mounts: list[tuple[str, list[str]]] = []
    for path in [*spec.ro_paths, *spec.policy.extra_ro_mounts]:
        mounts.append((path, ["--ro-bind", src(path, True), path]))
    mounts.append((spec.ipc_dir, ["--bind", src(spec.ipc_dir, False), spec.ipc_dir]))
    ws = src(spec.workspace, False)
    if ws == spec.workspace and spec.workspace_fd >= 0:
        # The descriptor, not the path: bwrap also checks the mount against it.
        mounts.append((spec.workspace, ["--bind-fd", str(spec.workspace_fd), spec.workspace]))
    else:
        mounts.append((spec.workspace, ["--bind", ws, spec.workspace]))
    # A sealed home: read-only at its top level (after the workspace's own bind), each
    # existing visible entry read-write over it, by descriptor (by path inside the staged
    # workspace when root had to stage it). Entries go first: a prefix or a mask at the
    # same depth is applied after them and wins.
    entries: list[tuple[str, list[str]]] = []
    for home in spec.sealed_homes:
        fd = spec.bind_fds.get(home.path, -1)
        via_fd = ws == spec.workspace and fd >= 0
        home_src = os.path.normpath(os.path.join(ws, os.path.relpath(home.path, spec.workspace)))
        if via_fd:
            mounts.append((home.path, ["--ro-bind-fd", str(fd), home.path]))
        else:
            mounts.append((home.path, ["--ro-bind", home_src, home.path]))
        for name, _, _ in home.writable:
            dest = os.path.join(home.path, name)
            efd = spec.bind_fds.get(dest, -1)
            if not via_fd:
                entries.append((dest, ["--bind", os.path.join(home_src, name), dest]))
            elif efd >= 0:  # no descriptor: the entry changed since it was planned
                entries.append((dest, ["--bind-fd", str(efd), dest]))
    mounts[:0] = entries
    empty = mask_file(spec.run_dir) if any(not m.is_dir for m in spec.masks) else ""
    for mask in spec.masks:
        if mask.is_dir:
            # a tmpfs, not a read-only bind: deeper mounts (a Python prefix) need mount points
            mounts.append((mask.path, ["--perms", "0555", "--size", "65536", "--tmpfs", mask.path]))
        else:
            mounts.append((mask.path, ["--ro-bind", empty, mask.path]))
    mounts.sort(key=lambda m: m[0].rstrip("/").count("/"))
    args = [a for _, margs in mounts for a in margs]
    for mask in spec.masks:
        if mask.is_dir:
            args += ["--remount-ro", mask.path]
    return args


def link_args(spec: LaunchSpec) -> list[str]:
    """The interpreter's links that lie outside every mount (a shim folder in ``/tmp``,
    ``~/bin`` when the home is not the workspace), made in the sandbox's own root or
    ``/tmp``. A link inside a mount is already there, and making one would write
    through to the host."""
    mounted = [
        "/usr",
        "/etc",
        "/proc",
        "/dev",
        *_SYMLINKS,
        spec.workspace,
        spec.ipc_dir,
        *spec.ro_paths,
        *spec.policy.extra_ro_mounts,
        *(m.path for m in spec.masks),
        *(h.path for h in spec.sealed_homes),
    ]
    args: list[str] = []
    for target, link in spec.links:
        if not any(link == m or link.startswith(m.rstrip("/") + "/") for m in mounted):
            args += ["--symlink", target, link]
    return args


class BwrapKernel(SandboxedKernel):
    def __init__(self, process: subprocess.Popen[bytes], cgroup: cgroups.KernelCgroup | None):
        self.process = process
        self.pid = process.pid
        self.cgroup = cgroup

    def poll(self) -> int | None:
        return self.process.poll()

    async def wait(self) -> int:
        while self.process.poll() is None:
            await asyncio.sleep(0.05)
        return self.process.returncode

    def send_signal(self, signum: int) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    def oom_killed(self) -> bool:
        return bool(self.cgroup and self.cgroup.oom_killed())

    def death_message(self, exit_code: int, policy: SandboxPolicy) -> str:
        if exit_code == WORKSPACE_CHANGED:
            return (
                "The kernel was not started: its workspace changed (a symlink appeared) "
                "while it was starting."
            )
        message = super().death_message(exit_code, policy)
        if self.cgroup is None and exit_code in (-signal.SIGKILL, 128 + signal.SIGKILL):
            # No cgroup: no per-kernel memory limit, so the host's OOM killer is the
            # likely sender (the start-up check said limits are not enforced).
            message += (
                " Memory is not limited per kernel here (no writable cgroup), so it was most "
                "likely the system running out of memory. A delegated cgroup gives each kernel "
                "its own limit: `systemd-run --user -p Delegate=yes jupyter lab`."
            )
        return message

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        if self.cgroup:
            self.cgroup.remove()


class BwrapBackend(SandboxBackend):
    name = "bwrap"
    check_is_cheap = True

    def check(self) -> BackendStatus:
        version = _bwrap_version()
        if version is None:
            return BackendStatus(
                self.name,
                False,
                "bubblewrap (bwrap) is not installed",
                fix="sudo apt-get install bubblewrap  (Fedora: sudo dnf install bubblewrap)",
            )
        if os.geteuid() == 0 and not shutil.which("setpriv"):
            return BackendStatus(
                self.name,
                False,
                "setpriv (util-linux) is missing",
                fix="sudo apt-get install util-linux",
            )
        return BackendStatus(self.name, True, version)

    @staticmethod
    def limits_status() -> cgroups.CgroupSupport:
        support = _cgroup_support()
        # Says what stands in for a missing cgroup (rlimits, or a refusal).
        return cgroups.CgroupSupport(
            support.version, cgroups.fallback_detail(support), support.bases
        )

    async def launch(self, spec: LaunchSpec) -> SandboxedKernel:
        # One trip to a worker thread for the whole spawn: the filter's first build
        # (libseccomp, ~15-70 ms), the cgroup's files, the generated /etc and fork/exec
        # stay off the event loop, and a busy machine makes the kernel wait for one
        # thread hand-over, not one per step (each costs milliseconds under load).
        return await asyncio.to_thread(self._spawn, spec)

    def _spawn(self, spec: LaunchSpec) -> BwrapKernel:
        support = _cgroup_support(spec.policy.cgroup_root)
        if spec.policy.seccomp:  # fails here, before a cgroup exists, without libseccomp
            seccomp.load_filter(os.path.dirname(spec.run_dir))
        cgroup = None
        if support.version:
            cgroup = cgroups.KernelCgroup.create(
                support,
                f"aiide-{os.path.basename(spec.run_dir)}",
                memory=spec.policy.memory_bytes,
                pids=spec.policy.max_processes,
                cpu=spec.policy.cpu_limit,
            )
        try:
            process = subprocess.Popen(
                self.command(spec, cgroup),
                cwd="/",
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                # the descriptors bwrap mounts (--bind-fd): the workspace, sealed homes
                pass_fds=(
                    *((spec.workspace_fd,) if spec.workspace_fd >= 0 else ()),
                    *spec.bind_fds.values(),
                ),
            )
        except BaseException:
            if cgroup:
                cgroup.remove()
            raise
        return BwrapKernel(process, cgroup)

    def command(self, spec: LaunchSpec, cgroup: cgroups.KernelCgroup | None) -> list[str]:
        """The full launch: optional root-only preparation, then bwrap."""
        as_root = os.geteuid() == 0
        staged: list[tuple[str, str, bool]] = []  # (host source, staging dir, read_only)

        def source(path: str, read_only: bool) -> str:
            if not as_root or _traversable_by(path, spec.uid, spec.gid):
                return path
            stage = os.path.join(spec.run_dir, "stage", str(len(staged)))
            os.makedirs(stage, exist_ok=True)
            staged.append((path, stage, read_only))
            return stage

        bwrap = self.bwrap_args(spec, source)
        # Seccomp (bwrap reads the filter from a descriptor the shell opens) and, with
        # no cgroup, rlimits set inside the sandbox (a prlimit prefix to the kernel).
        open_filter, filter_args = seccomp.bwrap_options(
            spec.policy.seccomp, spec.run_dir, spec.workspace_fd
        )
        bwrap[1:1] = filter_args
        at = len(bwrap) - len(spec.cmd)
        bwrap[at:at] = cgroups.rlimit_argv(
            _cgroup_support(spec.policy.cgroup_root),
            spec.policy.memory_bytes,
            spec.policy.max_processes,
            spec.policy.allow_unlimited,
            spec.policy.limit_address_space,
        )
        # POSIX `ulimit -f` counts 512-byte blocks (dash, and bash as sh); a shell
        # builtin costs no extra exec on the start path.
        blocks = max(1, spec.policy.file_size_bytes // 512)
        lines = ["set -e", f"ulimit -f {blocks}", "ulimit -c 0", *open_filter]
        if cgroup:
            lines += [f"echo $$ > {shlex.quote(f)}" for f in cgroup.procs_files]
        for src, stage, read_only in staged:
            ro = "-o ro " if read_only else ""
            lines.append(f"mount --bind {ro}{shlex.quote(src)} {shlex.quote(stage)}")
            if src == spec.workspace and spec.workspace_id:
                # mount(8) goes by path: a component swapped for a symlink since the
                # workspace was opened would mount something else. Same inode or stop.
                dev, ino = spec.workspace_id
                lines.append(
                    f'[ "$(stat -L -c %d:%i {shlex.quote(stage)})" = "{dev}:{ino}" ] || '
                    '{ echo "aiide: the workspace changed while the kernel started" >&2; '
                    f"exit {WORKSPACE_CHANGED}; }}"
                )
        tail = bwrap
        if as_root:
            tail = [
                "setpriv",
                f"--reuid={spec.uid}",
                f"--regid={spec.gid}",
                "--clear-groups",
                "--",
                *tail,
            ]
        lines.append("exec " + shlex.join(tail))
        script = "\n".join(lines)
        if staged:
            # A private mount namespace keeps the staging binds out of the host's mount table.
            return ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script]
        return ["/bin/sh", "-c", script]

    def bwrap_args(self, spec: LaunchSpec, source: object) -> list[str]:
        src = source  # callable(path, read_only) -> path bwrap can open
        assert callable(src)
        policy = spec.policy
        # A nested user namespace would hand the kernel root-like powers to exercise
        # kernel attack surface: disabled.
        args = [
            "bwrap",
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
        ]
        if policy.allow_network:
            args.append("--share-net")
        args += ["--ro-bind", "/usr", "/usr"]
        for link, target in _SYMLINKS.items():
            if os.path.lexists(link):
                args += ["--symlink", target, link]
        args += [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--perms",
            "1777",
            "--size",
            str(policy.tmp_bytes),
            "--tmpfs",
            "/tmp",
            "--dir",
            "/tmp/home",
            "--dir",
            "/tmp/site-packages",
        ]
        args += link_args(spec)
        etc = write_etc(spec)
        for name in sorted(os.listdir(etc)):
            args += ["--ro-bind", os.path.join(etc, name), f"/etc/{name}"]
        extra_etc = list(_ETC_FILES) + (list(_NETWORK_ETC) if policy.allow_network else [])
        for path in extra_etc:
            if os.path.exists(path):
                args += ["--ro-bind", path, path]
        args += mount_args(spec, src)
        # The root is bwrap's own tmpfs: make it read-only like the rest of the system.
        args += ["--remount-ro", "/", "--chdir", spec.workspace, "--clearenv"]
        for key, value in sorted(spec.env.items()):
            args += ["--setenv", key, value]
        args += ["--", *spec.cmd]
        return args
