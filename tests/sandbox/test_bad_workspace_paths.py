"""Bad workspace paths (issue 13, "Bad input"), each backend, through a real Jupyter
server: a symlink loop and a path with a NUL character are refused with a clear message
(no traceback, no kernel, nothing created); a notebook folder whose name holds a newline
or a colon — both valid on Linux — gets a sandboxed kernel working in that folder, and
nothing is written outside it. The server answers throughout."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from kernelrun import run_code
from traitlets.config import Config

pytestmark = [pytest.mark.xdist_group("sandbox")]

SANDBOXED = "aiide-python"
KERNELSPEC = Path(__file__).parents[2] / "share" / "kernels" / SANDBOXED


@pytest.fixture(autouse=True)
def aiide_kernelspec(jp_env_jupyter_path: Path) -> None:
    """pytest-jupyter isolates Jupyter's paths; install the kernelspec there."""
    target = jp_env_jupyter_path / "kernels" / SANDBOXED
    if not target.exists():
        shutil.copytree(KERNELSPEC, target)


@pytest.fixture
def jp_server_config(backend: str, jp_root_dir: Path) -> Config:
    jp_root_dir.chmod(0o755)
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"aiide_server_ext": True}},
            "AiideExtension": {"prewarm_kernels": False},
            "Knowledge": {"enabled": False},
            "KernelPool": {"size": 0},
            "SandboxPolicy": {"backend": backend, "memory_limit": "512M", "max_processes": 64},
        }
    )


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


async def answers(jp_fetch: Any) -> list[Any]:
    """The server still answers; the kernels it lists."""
    response = await jp_fetch("api", "kernels")
    assert response.code == 200
    return list(json.loads(response.body))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("loop", "is a symbolic link loop"),
        ("nul", "contains a NUL character"),
    ],
)
async def test_a_symlink_loop_or_a_nul_in_the_path_is_a_clear_refusal(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path, make: str, message: str
) -> None:
    if make == "loop":
        os.symlink("b", jp_root_dir / "a")
        os.symlink("a", jp_root_dir / "b")
        cwd = str(jp_root_dir / "a")
    else:
        cwd = str(jp_root_dir) + "/pro\0ject"
    before = tree(jp_root_dir)
    with pytest.raises(RuntimeError) as caught:
        await jp_serverapp.kernel_manager.start_kernel(kernel_name=SANDBOXED, cwd=cwd)
    text = str(caught.value)
    assert message in text, text
    assert "Traceback" not in text
    assert tree(jp_root_dir) == before
    assert await answers(jp_fetch) == []


@pytest.mark.parametrize("folder", ["two\nlines", "x:y", "a:b:rw"])
async def test_a_folder_named_with_a_newline_or_a_colon_gets_its_sandboxed_kernel(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path, folder: str
) -> None:
    """Docker's "host:container:mode" volume strings could not carry a colon: the daemon
    refused the kernel ("invalid volume specification")."""
    (jp_root_dir / folder).mkdir(mode=0o755)
    (jp_root_dir / folder).chmod(0o755)
    path = f"{folder}/nb.ipynb"
    body = {"path": path, "name": "nb.ipynb", "type": "notebook", "kernel": {"name": SANDBOXED}}
    response = await jp_fetch("api", "sessions", method="POST", body=json.dumps(body))
    kid = json.loads(response.body)["kernel"]["id"]
    km = jp_serverapp.kernel_manager.get_kernel(kid)
    try:
        result = await run_code(
            km,
            "import contextlib, os\nprint(repr(os.getcwd()))\n"
            "open('out.txt', 'w').write('x')\n"
            "with contextlib.suppress(OSError):\n"
            "    open('../escape.txt', 'w').write('x')",
        )
        assert result.status == "ok", result.error
        assert result.stdout.splitlines() == [repr(str(jp_root_dir / folder))]
        assert await answers(jp_fetch) != []
    finally:
        await jp_serverapp.kernel_manager.shutdown_all(now=True)
    assert (jp_root_dir / folder / "out.txt").read_text() == "x"
    assert tree(jp_root_dir) == {folder, f"{folder}/out.txt"}
