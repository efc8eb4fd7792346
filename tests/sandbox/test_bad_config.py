"""Bad sandbox settings fail at kernel start with the setting to change: never an
unsandboxed kernel, never a hang."""

from __future__ import annotations

import asyncio
import os

import pytest
from jupyter_client import AsyncKernelManager
from sandbox_support import require_backend
from traitlets import TraitError
from traitlets.config import Config

from aiide_kernel.policy import SandboxPolicy


async def _start_fails(config: Config, cwd: str, match: str) -> None:
    km = AsyncKernelManager(kernel_name="aiide-python", config=config)
    with pytest.raises((RuntimeError, TraitError), match=match):
        async with asyncio.timeout(30):
            await km.start_kernel(cwd=cwd)
    assert not km.has_kernel


def _config(workspace: str, **policy: object) -> Config:
    c = Config()
    c.SandboxPolicy.workspace_root = os.path.dirname(workspace)
    for k, v in policy.items():
        setattr(c.SandboxPolicy, k, v)
    return c


@pytest.mark.asyncio
async def test_unknown_backend(workspace: str) -> None:
    await _start_fails(
        _config(workspace, backend="chroot"), workspace, r"c\.SandboxPolicy\.backend='chroot'"
    )


@pytest.mark.parametrize(
    ("setting", "value", "match"),
    [
        ("memory_limit", 0, r"memory_limit=0 must be a positive size"),
        ("memory_limit", "lots", r"memory_limit='lots' is not a size"),
        ("max_processes", -5, r"max_processes=-5 is too small"),
        ("cpu_limit", 0.0, r"cpu_limit=0.0 must be a positive"),
        ("tmp_size", "-1G", r"tmp_size='-1G' is not a size"),
        ("extra_ro_mounts", ["relative/dir"], r"is not an absolute path"),
    ],
)
@pytest.mark.asyncio
async def test_impossible_limits(workspace: str, setting: str, value: object, match: str) -> None:
    await _start_fails(_config(workspace, **{setting: value}), workspace, match)


def test_limits_are_validated_when_set() -> None:
    with pytest.raises(TraitError, match="memory_limit"):
        SandboxPolicy(memory_limit="0")


@pytest.mark.asyncio
async def test_workspace_that_does_not_exist(workspace: str) -> None:
    missing = os.path.join(workspace, "nope")
    await _start_fails(_config(workspace), missing, "does not exist")


@pytest.mark.asyncio
async def test_workspace_outside_the_root(
    workspace: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("root")
    await _start_fails(
        _config(str(root / "x")), workspace, "is outside c.SandboxPolicy.workspace_root"
    )


@pytest.mark.asyncio
async def test_workspace_escaping_by_symlink(
    workspace: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("root2")
    link = root / "link"
    link.symlink_to(workspace)
    await _start_fails(_config(str(root / "x")), str(link), "is outside")


@pytest.mark.asyncio
async def test_docker_configured_but_daemon_down(
    workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    await _start_fails(
        _config(workspace, backend="docker"),
        workspace,
        "Docker daemon is not reachable.*c.SandboxPolicy.backend",
    )


@pytest.mark.asyncio
async def test_docker_image_missing(workspace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    require_backend("docker")
    import aiide_kernel.image

    monkeypatch.setattr(aiide_kernel.image, "image_tag", lambda: "aiide-kernel:missing000000")
    await _start_fails(
        _config(workspace, backend="docker"),
        workspace,
        r"aiide-kernel:missing000000 is not built.*jupyter aiide image build",
    )
