"""A seccomp filter for bwrap kernels, comparable to Docker's default profile.

A Docker kernel gets Docker's default seccomp profile; a bubblewrap kernel gets
this one, handed to ``bwrap --seccomp FD``. It is a deny list: the syscalls below
fail with ``EPERM`` (so Python raises ``PermissionError`` instead of dying) and
everything else is allowed, so new syscalls that glibc, numpy or OpenBLAS start
using keep working. What it denies is the kernel attack surface an unprivileged
process can still reach inside the namespaces bwrap makes (io_uring, userfaultfd,
bpf, keyrings, perf), what needs privileges a sandboxed kernel must never get
(modules, kexec, mounts, namespaces, clock, reboot), and the debugging interfaces
(ptrace, process_vm_*: gdb, strace and py-spy do not work in a sandboxed kernel;
``c.SandboxPolicy.seccomp = False`` turns the filter off to debug one).

The BPF is compiled by libseccomp (through ``pyseccomp``, ctypes over
``libseccomp.so.2``), never assembled by hand, once per process and architecture.
Syscalls of another ABI (x32, or i386 through ``int 0x80`` on x86_64) would dodge
a filter written for the native numbers: libseccomp's bad-architecture action kills
the process that makes one.

Loading libseccomp through pyseccomp costs 80-120 ms (it runs ``ldconfig -p`` twice to
find the libraries) and building the filter 3-15 ms more. The built filter is therefore
kept on disk, keyed by everything it is built from (this module's rules, the machine's
architecture, the libseccomp and pyseccomp files), in the server's private run
directory (``rundir.run_parent``: owned by the server, masked in every sandbox), so only
the first kernel on a machine pays that, not the first of every server or every kernel
of the gateway launcher (one process per kernel). A cached file is used only when it is
this user's own regular file, private, of a plausible size; anything else is rebuilt.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import importlib.util
import os
import shlex
import stat
import tempfile
from functools import lru_cache
from typing import Any

#: Denied outright with EPERM.
DENIED: tuple[str, ...] = (
    # Kernel attack surface reachable without privileges: the source of most
    # container escapes of recent years.
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "userfaultfd",
    "bpf",
    "perf_event_open",
    "add_key",
    "keyctl",
    "request_key",
    "lookup_dcookie",
    "fanotify_init",
    # Handles that reach files by inode, past every mount and path check.
    "open_by_handle_at",
    "name_to_handle_at",
    # Kernel modules and replacing the kernel.
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "kexec_load",
    "kexec_file_load",
    # Mounts and namespaces: the sandbox's view of the system is fixed at start.
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    # Debugging other processes (decided: denied; gdb in kernels is rare).
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    # Host-wide state no kernel may change.
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "settimeofday",
    "stime",
    "clock_settime",
    "clock_adjtime",
    "sethostname",
    "setdomainname",
    "syslog",
    "quotactl",
    "quotactl_fd",
    "vhangup",
    "nfsservctl",
    "_sysctl",
    "sysfs",
    "ustat",
    "uselib",
    # Legacy x86 hardware access.
    "iopl",
    "ioperm",
    "vm86",
    "vm86old",
)

# clone(2) flags that make new namespaces (the user namespace above all: root-like
# powers over fresh kernel objects). bwrap's --disable-userns also blocks it.
_CLONE_NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)
# Docker's personality(2) allow list: PER_LINUX, PER_LINUX32, UNAME26 and both, and
# 0xffffffff (query). Anything else can switch off ASLR (ADDR_NO_RANDOMIZE) or map
# page zero (MMAP_PAGE_ZERO) for what the kernel runs next.
_PERSONALITY_ALLOWED_BITS = 0x00020008
_QUERY_BIT = 0x80000000
# ioctls that push input into a terminal (the kernel has none, but a pty it opens
# could still reach a shell that reads it).
_TIOCSTI = 0x5412
_TIOCLINUX = 0x541C
_LOW32 = 0xFFFFFFFF

_ARCHES_WITH_FLAGS_IN_ARG0 = ("X86_64", "AARCH64", "PPC64LE", "RISCV64")


class SeccompUnavailable(RuntimeError):
    """libseccomp (or its Python binding) is missing; the message says how to fix it."""


def _library() -> Any:
    try:
        import pyseccomp  # type: ignore[import-untyped]
    except (ImportError, RuntimeError, OSError) as e:  # RuntimeError: no libseccomp.so
        raise SeccompUnavailable(
            f"cannot build the seccomp filter for bwrap kernels ({e}). Install libseccomp "
            "(sudo apt-get install libseccomp2) and the pyseccomp package, or turn the "
            "filter off with c.SandboxPolicy.seccomp = False"
        ) from None
    return pyseccomp


def native_arch() -> str:
    """The name pyseccomp uses for this machine's architecture (e.g. 'X86_64')."""
    sc = _library()
    native = sc.system_arch()
    for name in dir(sc.Arch):
        if not name.startswith("_") and name != "NATIVE" and getattr(sc.Arch, name) == native:
            return name
    return f"0x{native:x}"


def _personality_rules(sc: Any, deny: int) -> list[tuple[int, Any]]:
    """Deny every personality outside Docker's allow list, as single masked
    comparisons (libseccomp allows one comparison per argument in a rule, and its
    rules add up as OR): with the top bit clear, any bit outside PER_LINUX32|UNAME26
    is denied; with it set, only 0xffffffff (all bits) is allowed."""
    rules: list[tuple[int, Any]] = []
    for bit in range(31):
        b = 1 << bit
        if not b & _PERSONALITY_ALLOWED_BITS:
            rules.append((deny, sc.Arg(0, sc.MASKED_EQ, b | _QUERY_BIT, b)))
        rules.append((deny, sc.Arg(0, sc.MASKED_EQ, b | _QUERY_BIT, _QUERY_BIT)))
    return rules


def compile_filter() -> bytes:
    """The filter as BPF bytes for this machine's architecture, built once."""
    return _compile(native_arch())


@lru_cache(maxsize=2)
def _compile(arch: str) -> bytes:
    sc = _library()
    # Native only: libseccomp reads rule numbers as native ones and translates them
    # for every architecture in a filter, so one filter is one architecture here.
    flt = sc.SyscallFilter(sc.ALLOW)
    # Another ABI's syscall numbers (x32, int 0x80) are not checked against this
    # list: kill the process rather than let them through.
    flt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
    deny = sc.ERRNO(errno.EPERM)

    def nr(name: str) -> int:
        return int(sc.resolve_syscall(sc.Arch.NATIVE, name))

    for name in DENIED:
        number = nr(name)
        # Negative: libseccomp knows the name but this architecture has no such
        # syscall (vm86 on arm64); -1: unknown to this libseccomp. Nothing to deny.
        if number >= 0:
            flt.add_rule(deny, number)
    if arch in _ARCHES_WITH_FLAGS_IN_ARG0:  # s390 passes clone's flags second
        for flag in _CLONE_NAMESPACE_FLAGS:
            flt.add_rule(deny, nr("clone"), sc.Arg(0, sc.MASKED_EQ, flag, flag))
    # clone3 passes its flags in memory, where seccomp cannot look: ENOSYS makes
    # glibc fall back to clone(2), whose flags are checked above (Docker does the same).
    if nr("clone3") >= 0:
        flt.add_rule(sc.ERRNO(errno.ENOSYS), nr("clone3"))
    for action, arg in _personality_rules(sc, deny):
        flt.add_rule(action, nr("personality"), arg)
    for request in (_TIOCSTI, _TIOCLINUX):
        flt.add_rule(deny, nr("ioctl"), sc.Arg(1, sc.MASKED_EQ, _LOW32, request))
    with tempfile.TemporaryFile() as f:
        flt.export_bpf(f)
        f.seek(0)
        return f.read()


#: Where libseccomp is looked for when keying the cache (the loader's usual places).
_LIBSECCOMP = (
    "/usr/lib/*/libseccomp.so.2",
    "/lib/*/libseccomp.so.2",
    "/usr/lib64/libseccomp.so.2",
    "/lib64/libseccomp.so.2",
    "/usr/lib/libseccomp.so.2",
    "/usr/local/lib/libseccomp.so.2",
    "/usr/local/lib64/libseccomp.so.2",
)
#: A filter is a list of 8-byte BPF instructions; the kernel accepts at most 4096.
_BPF_INSN = 8
_BPF_MAX_BYTES = 4096 * _BPF_INSN


@lru_cache(maxsize=1)
def cache_key() -> str | None:
    """What the filter is built from, hashed: the rules (this module's source), the
    architecture, and the libseccomp and pyseccomp files. None when they cannot be
    found without loading them: then nothing is cached."""
    digest = hashlib.sha256()
    with open(__file__, "rb") as f:
        digest.update(f.read())
    digest.update(os.uname().machine.encode())
    spec = importlib.util.find_spec("pyseccomp")
    libraries = sorted({os.path.realpath(p) for pattern in _LIBSECCOMP for p in glob.glob(pattern)})
    if spec is None or not spec.origin or not libraries:
        return None
    for path in (spec.origin, *libraries):
        st = os.stat(path)
        digest.update(f"{path}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}".encode())
    return digest.hexdigest()[:32]


def _read_cached(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if (
            not stat.S_ISREG(st.st_mode)
            or st.st_uid != os.geteuid()
            or st.st_mode & 0o077
            or not 0 < st.st_size <= _BPF_MAX_BYTES
            or st.st_size % _BPF_INSN
        ):
            return None
        data = f.read(_BPF_MAX_BYTES + 1)
    return data if len(data) == st.st_size else None


def _write_cached(path: str, data: bytes) -> None:
    tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:  # a cache: a read-only or full disk only costs the next start time
        with contextlib.suppress(OSError):
            os.unlink(tmp)


_loaded: dict[str, bytes] = {}


def load_filter(cache_dir: str) -> bytes:
    """``compile_filter()``, through the cache in ``cache_dir`` (the server's private
    run directory). Raises ``SeccompUnavailable`` only when it has to build the filter
    and cannot."""
    key = cache_key()
    if key is None:
        return compile_filter()
    path = os.path.join(cache_dir, f"seccomp-{key}.bpf")
    data = _loaded.get(path) or _read_cached(path)
    if data is None:
        data = compile_filter()
        _write_cached(path, data)
    _loaded[path] = data
    return data


def filter_file(directory: str) -> str:
    """Write the filter into ``directory`` (the kernel's private run directory, which
    the sandbox cannot see; the cache sits in its parent) and return its path."""
    data = load_filter(os.path.dirname(directory))
    path = os.path.join(directory, "seccomp.bpf")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def bwrap_options(enabled: bool, run_dir: str, taken_fd: int = -1) -> tuple[list[str], list[str]]:
    """(lines for the launch shell, options for bwrap) that hand bwrap the filter.

    The shell opens the file on a descriptor and bwrap reads it from there
    (``--seccomp FD``) and closes it before the kernel starts. dash takes one digit
    in a redirection; the descriptor avoids ``taken_fd``, one the launch passes on."""
    if not enabled:
        return [], []
    fd = next(n for n in range(9, 2, -1) if n != taken_fd)
    path = filter_file(run_dir)
    return [f"exec {fd}< {shlex.quote(path)}"], ["--seccomp", str(fd)]
