"""The bwrap kernels' seccomp filter is built once per machine, not once per process:
loading libseccomp through pyseccomp costs a cold start 80-120 ms (``ldconfig -p``), and
the gateway launcher is one process per kernel. The cache sits in the server's private
run directory and is trusted only as this user's private regular file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sandbox_support import require_backend

from aiide_kernel import seccomp


@pytest.fixture(autouse=True)
def _bwrap() -> None:
    """The filter is the bwrap backend's (libseccomp is one of its requirements)."""
    require_backend("bwrap")
    assert seccomp.cache_key() is not None, "libseccomp.so.2 not found where it is looked for"


def _cached(directory: Path) -> Path:
    return directory / f"seccomp-{seccomp.cache_key()}.bpf"


def test_the_filter_is_built_once_and_then_read_without_libseccomp(tmp_path: Path) -> None:
    data = seccomp.load_filter(str(tmp_path))
    assert data == seccomp.compile_filter()
    cached = _cached(tmp_path)
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600
    assert cached.read_bytes() == data
    # Another process (the next server, or the gateway launcher's next kernel) reads it
    # back without loading pyseccomp at all.
    code = (
        "import sys\n"
        "from aiide_kernel import seccomp\n"
        f"data = seccomp.load_filter({str(tmp_path)!r})\n"
        "print(len(data), 'pyseccomp' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    ).stdout.split()
    assert out == [str(len(data)), "False"]


def test_the_key_changes_with_what_the_filter_is_built_from(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = seccomp.cache_key()
    rules = tmp_path / "seccomp.py"
    rules.write_text(Path(seccomp.__file__).read_text() + "\n# another rule\n")
    seccomp.cache_key.cache_clear()
    monkeypatch.setattr(seccomp, "__file__", str(rules))
    try:
        assert seccomp.cache_key() not in (None, key)
    finally:
        seccomp.cache_key.cache_clear()


@pytest.mark.parametrize("plant", ["world-readable", "symlink", "truncated", "not-bpf-sized"])
def test_a_planted_or_damaged_cache_is_rebuilt(tmp_path: Path, plant: str) -> None:
    good = seccomp.compile_filter()
    cached = _cached(tmp_path)
    permissive = b"\x06\x00\x00\x00\x00\x00\xff\x7f"  # BPF "return ALLOW", nothing else
    if plant == "world-readable":
        cached.write_bytes(permissive)
        cached.chmod(0o644)
    elif plant == "symlink":
        target = tmp_path / "elsewhere"
        target.write_bytes(permissive)
        target.chmod(0o600)
        cached.symlink_to(target)
    elif plant == "truncated":
        cached.write_bytes(b"")
        cached.chmod(0o600)
    else:
        cached.write_bytes(good[:-3])
        cached.chmod(0o600)
    assert seccomp.load_filter(str(tmp_path)) == good


def test_a_kernels_filter_file_comes_from_the_cache_in_its_run_parent(tmp_path: Path) -> None:
    run_dir = tmp_path / "aiide-abc"
    run_dir.mkdir()
    path = seccomp.filter_file(str(run_dir))
    assert Path(path).read_bytes() == seccomp.compile_filter()
    assert _cached(tmp_path).exists()
    assert os.path.dirname(path) == str(run_dir)
