"""What of the kernel's Python the sandbox binds read-only: its venv and the Python the
venv was made from, never the folder around a link to it. A venv made from a folder of
links (``home = ~/bin``, a PATH of shims in ``/tmp``) once bound that folder's parent —
the home, or all of ``/tmp`` — into every sandboxed kernel."""

from __future__ import annotations

import os
from pathlib import Path

from aiide_kernel.backends.base import python_prefixes


def python_install(root: Path) -> Path:
    """A Python installation: ``bin/python3.11`` and its stdlib folder."""
    (root / "bin").mkdir(parents=True)
    (root / "lib" / "python3.11").mkdir(parents=True)
    interpreter = root / "bin" / "python3.11"
    interpreter.write_text("")
    interpreter.chmod(0o755)
    return interpreter


def venv(root: Path, home: Path, interpreter: Path, copies: bool = False) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    (root / "pyvenv.cfg").write_text(
        f"home = {home}\ninclude-system-site-packages = false\nversion = 3.11.2\n"
    )
    python = root / "bin" / "python"
    if copies:
        python.write_text("")
    else:
        os.symlink(interpreter, root / "bin" / "python3")
        os.symlink("python3", python)
    return python


def test_a_venv_made_through_a_folder_of_links_binds_the_python_not_the_folders_parent(
    tmp_path: Path,
) -> None:
    real = python_install(tmp_path / "opt" / "py")
    shims = tmp_path / "home" / "bin"
    shims.mkdir(parents=True)
    os.symlink(real, shims / "python3")
    python = venv(tmp_path / "home" / "proj" / ".venv", shims, shims / "python3")

    prefixes = python_prefixes(str(python))

    assert prefixes == [str(tmp_path / "home" / "proj" / ".venv"), str(tmp_path / "opt" / "py")]
    assert str(tmp_path / "home") not in prefixes


def test_a_copied_venv_finds_its_python_through_the_link_in_home(tmp_path: Path) -> None:
    real = python_install(tmp_path / "opt" / "py")
    shims = tmp_path / "shims"
    shims.mkdir()
    os.symlink(real, shims / "python3")
    python = venv(tmp_path / "proj" / ".venv", shims, shims / "python3", copies=True)

    assert python_prefixes(str(python)) == [
        str(tmp_path / "proj" / ".venv"),
        str(tmp_path / "opt" / "py"),
    ]


def test_a_venv_of_an_installed_python_binds_both(tmp_path: Path) -> None:
    real = python_install(tmp_path / "pyenv" / "versions" / "3.11.7")
    python = venv(tmp_path / "proj" / ".venv", real.parent, real)

    assert python_prefixes(str(python)) == [
        str(tmp_path / "proj" / ".venv"),
        str(tmp_path / "pyenv" / "versions" / "3.11.7"),
    ]


def test_a_folder_that_holds_no_python_is_never_bound(tmp_path: Path) -> None:
    """``home`` names a folder with no interpreter in it (moved, or a stale venv): only
    the venv itself is bound, not the folder's parent."""
    python = venv(tmp_path / "proj" / ".venv", tmp_path / "gone" / "bin", Path("/usr/bin/true"))

    assert python_prefixes(str(python)) == [str(tmp_path / "proj" / ".venv")]


def test_the_interpreters_links_are_made_only_where_no_mount_holds_them(tmp_path: Path) -> None:
    """bwrap makes a link outside every mount (a shim folder in /tmp) in the sandbox's
    own tmpfs; one inside a mount is there already, and making it would write to the host."""
    from aiide_kernel.backends.base import LaunchSpec, interpreter_links
    from aiide_kernel.backends.bwrap import link_args
    from aiide_kernel.policy import SandboxPolicy

    real = python_install(tmp_path / "opt" / "py")
    shims = tmp_path / "shims"
    shims.mkdir()
    os.symlink(real, shims / "python3")
    python = venv(tmp_path / "ws" / ".venv", shims, shims / "python3")
    links = interpreter_links(str(python))
    assert [link for _, link in links] == [
        str(python),
        str(tmp_path / "ws" / ".venv" / "bin" / "python3"),
        str(shims / "python3"),
    ]
    spec = LaunchSpec(
        kernel_id="k",
        cmd=[str(python)],
        env={},
        workspace=str(tmp_path / "ws"),
        ipc_dir=str(tmp_path / "run" / "ipc"),
        run_dir=str(tmp_path / "run"),
        ro_paths=python_prefixes(str(python)),
        policy=SandboxPolicy(),
        uid=os.getuid(),
        gid=os.getgid(),
        links=links,
    )
    assert link_args(spec) == ["--symlink", str(real), str(shims / "python3")]
