"""A real Jupyter server with the aiide extension, via pytest-jupyter."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from traitlets.config import Config

KERNELSPEC = Path(__file__).parents[2] / "share" / "kernels" / "aiide-python"


@pytest.fixture
def jp_server_config(jp_root_dir: Path) -> Config:
    jp_root_dir.chmod(0o755)
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"aiide_server_ext": True}},
            "AiideExtension": {"prewarm_kernels": False},
            "KernelPool": {"size": 0},
            "SandboxPolicy": {"memory_limit": "512M", "max_processes": 64},
        }
    )


@pytest.fixture(autouse=True)
def aiide_kernelspec(jp_env_jupyter_path: Path) -> None:
    """pytest-jupyter isolates Jupyter's paths; install the kernelspec there."""
    shutil.copytree(KERNELSPEC, jp_env_jupyter_path / "kernels" / "aiide-python")


@pytest.fixture
def no_model_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
