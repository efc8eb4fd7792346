"""bwrap kernels run under aiide's seccomp filter: the kernel attack surface Docker's
default profile closes fails with EPERM, and scientific Python still works.

Each test starts a real bwrap kernel (Docker kernels have Docker's own profile)."""

from __future__ import annotations

import ast
import shutil
import sys
import tempfile
import textwrap

import pytest
import pytest_asyncio
from jupyter_client import AsyncKernelManager
from kernelrun import run_code
from sandbox_support import require_backend
from traitlets.config import Config

from aiide_kernel import seccomp

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("sandbox")]

# x86_64 numbers and arguments: the kernel calls syscall(2) by number, as an attacker
# would. Without the filter the first six do not fail with EPERM here (they succeed or
# reject their arguments: see test_the_filter_can_be_turned_off_for_debugging); the
# rest would also meet a missing privilege, so the filter is a second wall there.
UFFD_USER_MODE_ONLY, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING = 1, 0, -3
PROBES_X86_64: dict[str, tuple[int, ...]] = {
    "io_uring_setup": (425, 1, 0),
    "userfaultfd": (323, UFFD_USER_MODE_ONLY),
    "keyctl": (250, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0),
    "perf_event_open": (298, 0, 0, -1, -1, 0),
    "ptrace": (101, 0),  # PTRACE_TRACEME
    "setns": (308, -1, 0),
    "bpf": (321, 0, 0, 0),
    "add_key": (248, 0, 0, 0, 0, 0),
    "open_by_handle_at": (304, -1, 0, 0),
    "init_module": (175, 0, 0, 0),
    "kexec_load": (246, 0, 0, 0, 0),
    "mount": (165, 0, 0, 0, 0, 0),
}
REACHABLE_WITHOUT_FILTER = list(PROBES_X86_64)[:6]


def _config(workspace: str, **policy: object) -> Config:
    c = Config()
    c.SandboxPolicy.backend = "bwrap"
    c.SandboxPolicy.workspace_root = workspace.rsplit("/", 1)[0]
    c.SandboxPolicy.memory_limit = "1G"
    c.SandboxPolicy.tmp_size = "128M"
    c.SandboxPolicy.max_processes = 128
    for key, value in policy.items():
        setattr(c.SandboxPolicy, key, value)
    return c


async def _start(config: Config, workspace: str) -> AsyncKernelManager:
    km = AsyncKernelManager(kernel_name="aiide-python", config=config)
    await km.start_kernel(cwd=workspace)
    return km


@pytest_asyncio.fixture
async def bwrap_km(workspace: str) -> AsyncKernelManager:
    require_backend("bwrap")
    if seccomp.native_arch() != "X86_64":
        pytest.skip("syscall numbers below are x86_64's")
    km = await _start(_config(workspace), workspace)
    try:
        yield km
    finally:
        await km.shutdown_kernel(now=True)


async def py(km: AsyncKernelManager, code: str, timeout: float = 120) -> str:
    r = await run_code(km, PROBE + textwrap.dedent(code), timeout=timeout)
    assert r.status == "ok", r
    return r.stdout.strip()


PROBE = """
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def probe(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return 'ok' if r >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
def probe_all(probes):
    return {name: probe(*args) for name, args in probes.items()}
"""


async def test_dangerous_syscalls_fail_with_eperm(bwrap_km: AsyncKernelManager) -> None:
    out = await py(bwrap_km, f"print(probe_all({PROBES_X86_64!r}))")
    assert out == repr(dict.fromkeys(PROBES_X86_64, "EPERM")), out


async def test_new_namespaces_and_unsafe_personalities_are_refused(
    bwrap_km: AsyncKernelManager,
) -> None:
    out = await py(
        bwrap_km,
        """
        CLONE_NEWUSER, CLONE_NEWNET, SIGCHLD = 0x10000000, 0x40000000, 17
        print('unshare', probe(272, CLONE_NEWUSER))
        print('clone_newuser', probe(56, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0))
        print('clone_newnet', probe(56, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0))
        print('clone3', probe(435, 0, 0))
        print('personality_no_aslr', probe(135, 0x0040000))
        print('personality_exec', probe(135, 0x0400000))
        print('personality_query', probe(135, 0xFFFFFFFF))
        """,
    )
    assert dict(line.split() for line in out.splitlines()) == {
        "unshare": "EPERM",
        "clone_newuser": "EPERM",
        "clone_newnet": "EPERM",
        "clone3": "ENOSYS",  # glibc then falls back to clone(2), whose flags are checked
        "personality_no_aslr": "EPERM",
        "personality_exec": "EPERM",
        "personality_query": "ok",
    }


async def test_another_abi_cannot_dodge_the_filter(bwrap_km: AsyncKernelManager) -> None:
    """x32 syscall numbers are not in the native list: the process making one dies."""
    out = await py(
        bwrap_km,
        """
        import subprocess, sys
        code = ("import ctypes; ctypes.CDLL(None).syscall(0x40000000 | 425, 1, 0); "
                "print('survived')")
        r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
        print(r.returncode, r.stdout.strip() or '-')
        """,
    )
    assert out == "-31 -", out  # SIGSYS


async def test_int_0x80_cannot_dodge_the_filter(bwrap_km: AsyncKernelManager) -> None:
    """i386 syscalls through ``int 0x80`` from a 64-bit process carry another
    architecture: the filter kills the process (or, where the kernel has no i386
    emulation, the kernel does: SIGSEGV). They never run."""
    # mov eax, 425 (io_uring_setup on i386 too); xor ebx, ebx; xor ecx, ecx; int 0x80; ret
    machine = "b8a901000031db31c9cd80c3"
    child = (
        "import ctypes, mmap\n"
        "page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
        f"page.write(bytes.fromhex({machine!r}))\n"
        "address = ctypes.addressof(ctypes.c_char.from_buffer(page))\n"
        "print('survived', ctypes.CFUNCTYPE(ctypes.c_int)(address)())\n"
    )
    out = await py(
        bwrap_km,
        f"""
        import subprocess, sys
        r = subprocess.run([sys.executable, '-c', {child!r}], capture_output=True, text=True)
        print(r.returncode, r.stdout.strip() or '-', r.stderr.strip()[-200:])
        """,
    )
    assert out.split()[:2] in (["-31", "-"], ["-11", "-"]), out  # SIGSYS, or SIGSEGV


async def test_scientific_python_still_works(bwrap_km: AsyncKernelManager) -> None:
    out = await py(
        bwrap_km,
        """
        import multiprocessing, subprocess, threading
        import numpy as np
        import pandas as pd
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt

        a = np.random.default_rng(0).random((300, 300))
        print('numpy', round(float(np.linalg.inv(a @ a.T + np.eye(300)).trace()), 3) > 0)
        df = pd.DataFrame({'k': list('abcab'), 'v': range(5)})
        print('pandas', df.groupby('k').v.sum().to_dict() == {'a': 3, 'b': 5, 'c': 2})
        fig, ax = plt.subplots()
        ax.plot(a[0])
        fig.savefig('plot.png')
        import os
        print('matplotlib', os.path.getsize('plot.png') > 1000)
        with multiprocessing.Pool(2) as pool:
            print('multiprocessing', pool.map(abs, [-1, -2, -3]) == [1, 2, 3])
        seen = []
        threads = [threading.Thread(target=seen.append, args=(i,)) for i in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        print('threading', sorted(seen) == list(range(8)))
        out = subprocess.run(['sh', '-c', 'echo hi'], capture_output=True, text=True).stdout
        print('subprocess', out.strip() == 'hi')
        """,
    )
    results = dict(line.split() for line in out.splitlines())
    assert results == dict.fromkeys(
        ["numpy", "pandas", "matplotlib", "multiprocessing", "threading", "subprocess"], "True"
    ), out


async def test_the_filter_can_be_turned_off_for_debugging(workspace: str) -> None:
    require_backend("bwrap")
    if seccomp.native_arch() != "X86_64":
        pytest.skip("syscall numbers below are x86_64's")
    km = await _start(_config(workspace, seccomp=False), workspace)
    try:
        out = await py(km, f"print(probe_all({PROBES_X86_64!r}))")
    finally:
        await km.shutdown_kernel(now=True)
    # Without the filter these reach the kernel: it runs them or rejects the arguments.
    results = ast.literal_eval(out)
    assert [n for n in REACHABLE_WITHOUT_FILTER if results[n] == "EPERM"] == [], results


@pytest.mark.asyncio
async def test_no_libseccomp_refuses_the_kernel_naming_the_setting(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel never silently starts without its filter."""
    require_backend("bwrap")

    # As if libseccomp or its binding were missing: the import fails, and the filter,
    # built once per process, is built again. A run root of its own: a filter cached on
    # disk by an earlier start (built when libseccomp was there) is a whole filter, and
    # would be used (test_seccomp_cache.py); here nothing is cached yet.
    monkeypatch.setitem(sys.modules, "pyseccomp", None)
    monkeypatch.setattr(seccomp, "compile_filter", lambda: seccomp._compile.__wrapped__("X86_64"))
    config = _config(workspace)
    config.SandboxProvisioner.run_root = run_root = tempfile.mkdtemp(prefix="sc")
    km = AsyncKernelManager(kernel_name="aiide-python", config=config)
    try:
        with pytest.raises(RuntimeError, match=r"c\.SandboxPolicy\.seccomp"):
            await km.start_kernel(cwd=workspace)
    finally:
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
        shutil.rmtree(run_root, ignore_errors=True)
