"""What this server can do right now: sandbox backends, limits, model configuration.

Shown in the UI (status bar, first-run notice) and printed by ``jupyter aiide check``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from aiide_kernel.backends import backend_statuses
from aiide_kernel.backends.bwrap import BwrapBackend

from ._version import __version__

MODEL_HELP = (
    "No model key: set ANTHROPIC_API_KEY and restart JupyterLab to turn on the assistant. "
    "In the shell that starts JupyterLab: export ANTHROPIC_API_KEY=sk-ant-... "
    "(optionally ANTHROPIC_BASE_URL for a proxy). For a local or hosted OpenAI-compatible "
    "model, configure c.Agent in jupyter_server_config.py instead."
)


class StatusService:
    """Collects the status once in a while; backend checks can take a moment."""

    def __init__(self, default_backend: str, model_key_envs: list[str], ttl: float = 10.0):
        self.default_backend = default_backend
        self.model_key_envs = model_key_envs
        self.ttl = ttl
        #: Where models come from when no key is in the environment, in words (set by
        #: whatever provides them, e.g. the hub's key broker); None: nothing does.
        self.model_source: str | None = None
        self._cached: tuple[float, dict[str, Any]] | None = None

    def model_status(self) -> dict[str, Any]:
        configured = [name for name in self.model_key_envs if os.environ.get(name)]
        if not configured and self.model_source:
            return {"configured": True, "help": None, "source": self.model_source}
        return {
            "configured": bool(configured),
            "help": None if configured else MODEL_HELP,
        }

    def sandbox_status(self) -> dict[str, Any]:
        if self._cached and time.monotonic() - self._cached[0] < self.ttl:
            return self._cached[1]
        limits = BwrapBackend.limits_status()
        sandbox = {
            "default_backend": self.default_backend,
            "backends": {name: s.as_dict() for name, s in backend_statuses().items()},
            "limits": {"enforced": limits.version > 0, "detail": limits.detail},
        }
        self._cached = (time.monotonic(), sandbox)
        return sandbox

    def status(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "sandbox": self.sandbox_status(),
            "model": self.model_status(),
        }
