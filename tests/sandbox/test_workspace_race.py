"""The workspace is resolved once: a kernel that swaps a directory of its workspace
for a symlink while another kernel starts there gets neither the link's target
mounted into that sandbox nor its owner, mode or ACL changed. Each backend."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Any

import pytest
from jupyter_client import AsyncKernelManager
from kernelrun import run_code
from traitlets.config import Config

from aiide_kernel.grants import read_acl
from aiide_kernel.policy import SandboxPolicy

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("sandbox")]

DECOY = "decoy-" + os.urandom(6).hex()


@dataclass
class Scene:
    root: str  # c.SandboxPolicy.workspace_root
    sub: str  # the notebook's directory, swapped during the launch
    decoy: str  # outside the root: what the planted link points to

    def swap(self) -> None:
        os.rename(self.sub, self.sub + ".real")
        os.symlink(self.decoy, self.sub)

    def decoy_state(self) -> tuple[int, int, int, bytes | None]:
        st = os.lstat(self.decoy)
        return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), read_acl(self.decoy)


@pytest.fixture
def scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    base = str(tmp_path_factory.mktemp("race"))
    os.chmod(base, 0o755)
    root = os.path.join(base, "root")
    sub = os.path.join(root, "sub")
    decoy = os.path.join(base, "decoy")  # stands in for /etc or $HOME
    os.makedirs(sub, 0o755)
    os.mkdir(decoy, 0o755)
    os.chmod(root, 0o755)
    with open(os.path.join(decoy, "secret.txt"), "w") as f:
        f.write(DECOY)
    os.chmod(os.path.join(decoy, "secret.txt"), 0o644)
    with open(os.path.join(sub, "real.txt"), "w") as f:
        f.write("real")
    os.chmod(os.path.join(sub, "real.txt"), 0o644)
    return Scene(root, sub, decoy)


def scene_config(backend: str, scene: Scene) -> Config:
    c = Config()
    c.SandboxPolicy.backend = backend
    c.SandboxPolicy.workspace_root = scene.root
    c.SandboxPolicy.memory_limit = "512M"
    c.SandboxPolicy.tmp_size = "64M"
    return c


async def _start_and_look(km: AsyncKernelManager, scene: Scene) -> str | None:
    """What the kernel sees in its workspace, or None when the start was refused."""
    try:
        await km.start_kernel(cwd=scene.sub)
    except RuntimeError as e:
        if "changed" not in str(e):
            raise
        return None
    try:
        r = await run_code(km, "import os\nprint(sorted(os.listdir('.')))")
    except RuntimeError as e:  # the sandbox saw the swap and stopped before the kernel ran
        if "died" not in str(e):
            raise
        return None
    else:
        assert r.status == "ok", r
        return r.stdout
    finally:
        await km.shutdown_kernel(now=True)


def swap_after(monkeypatch: pytest.MonkeyPatch, owner: type, name: str, scene: Scene) -> None:
    """``owner.name`` does its work, then the scene swaps the workspace for a link."""
    original = getattr(owner, name)

    def then_swap(self: Any, *args: Any) -> Any:
        result = original(self, *args)
        scene.swap()
        return result

    monkeypatch.setattr(owner, name, then_swap)


async def start_and_look_untouched(backend: str, scene: Scene) -> str | None:
    """What the kernel lists (None: refused): never the secret, the decoy left as it was."""
    before = scene.decoy_state()
    km = AsyncKernelManager(kernel_name="aiide-python", config=scene_config(backend, scene))
    seen = await _start_and_look(km, scene)
    assert seen is None or "secret.txt" not in seen, seen
    assert scene.decoy_state() == before  # not chowned, no ACL
    return seen


async def test_a_link_swapped_in_after_the_check_is_not_followed(
    backend: str, scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the confinement check (realpath) and the use of the path."""
    swap_after(monkeypatch, SandboxPolicy, "resolve_workspace", scene)
    await start_and_look_untouched(backend, scene)


async def test_a_link_swapped_in_after_the_open_is_not_mounted(
    backend: str, scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the workspace was opened, just before the sandbox mounts it."""
    from aiide_kernel.launch.recipe import PreparedLaunch

    swap_after(monkeypatch, PreparedLaunch, "spec", scene)
    seen = await start_and_look_untouched(backend, scene)
    if seen is not None:
        assert "real.txt" in seen  # the directory that was opened
