"""What a cold sandboxed start does beyond a plain kernel's, kept off the start path
(figures: ``benchmarks/kernel_start.py``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell

from aiide_kernel import kernel_hooks
from aiide_kernel.backends.base import add_kernel_hooks

IPYKERNEL = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]


def test_kernel_hooks_load_as_an_extension_not_through_run_cell() -> None:
    """``exec_lines`` run through ``run_cell``, whose first call costs every cold
    start ~15 ms (IPython's tokenizer patterns); an extension is an import. The
    kernel starts through our launcher, which leaves out the debugger (~90 ms)."""
    cmd = add_kernel_hooks(IPYKERNEL)
    assert cmd[:5] == [
        sys.executable,
        "-m",
        "aiide_kernel.sandboxed_ipykernel",
        "-f",
        "{connection_file}",
    ]
    extra = cmd[len(IPYKERNEL) :]
    assert extra == ["--IPKernelApp.extra_extensions=aiide_kernel.kernel_hooks"]
    assert not any("exec_lines" in a or "exec_files" in a for a in cmd)
    assert add_kernel_hooks(cmd) == cmd  # a recipe's command keeps one copy
    assert add_kernel_hooks(["/bin/other-kernel", "-f", "x"]) == ["/bin/other-kernel", "-f", "x"]


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    InteractiveShell.clear_instance()
    sh = InteractiveShell.instance()
    yield sh
    InteractiveShell.clear_instance()


def test_the_extension_installs_what_the_environment_says(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = shell.find_line_magic("pip")
    monkeypatch.setenv("AIIDE_NETWORK", "on")
    monkeypatch.delenv("AIIDE_SEALED_HOMES", raising=False)
    kernel_hooks.load_ipython_extension(shell)
    assert shell.find_line_magic("pip") is before
    assert shell.custom_exceptions == ()

    monkeypatch.setenv("AIIDE_NETWORK", "off")
    monkeypatch.setenv("AIIDE_SEALED_HOMES", "/home/ada")
    kernel_hooks.load_ipython_extension(shell)
    shell.run_line_magic("pip", "install numpy")
    assert "without network access" in capsys.readouterr().out
    shell.run_cell("raise OSError(30, 'Read-only file system', '/home/ada/new.csv')")
    out = capsys.readouterr().out
    assert "Read-only file system" in out
    assert "cannot create new files or folders at the top of your home" in out
    shell.run_cell("raise OSError(30, 'Read-only file system', '/home/ada/data/new.csv')")
    assert "top of your home" not in capsys.readouterr().out
