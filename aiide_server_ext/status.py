"""What this server can do right now: sandbox backends, limits, model configuration.

Shown in the UI (status bar, first-run notice) and printed by ``jupyter aiide check``.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Protocol

from aiide_kernel.backends import backend_statuses
from aiide_kernel.backends.bwrap import BwrapBackend

from ._version import __version__
from .seams import Caller

MODEL_HELP = (
    "No model key: set ANTHROPIC_API_KEY and restart JupyterLab to turn on the assistant. "
    "In the shell that starts JupyterLab: export ANTHROPIC_API_KEY=sk-ant-... "
    "(optionally ANTHROPIC_BASE_URL for a proxy). For a local or hosted OpenAI-compatible "
    "model, configure c.Agent in jupyter_server_config.py instead."
)


class ModelRouter(Protocol):
    """The agent's router, as far as the status needs it."""

    #: The configured models (``ModelSpec``: ``name``, ``provider``).
    models: list[Any]
    #: Provider name -> its configuration (``api_key_env`` when it needs a key).
    provider_specs: dict[str, dict[str, Any]]

    def available(self, caller: Caller) -> list[Any]: ...


#: The variables MODEL_HELP explains (the built-in providers').
DEFAULT_KEY_ENVS = frozenset({"ANTHROPIC_API_KEY", "OPENAI_API_KEY"})


def help_for(router: ModelRouter) -> str:
    """Why the caller has no model, in terms of what is configured: the keys the
    configured models' providers want (MODEL_HELP for the built-in ones), or the
    allow-list when every key is there."""
    needs = sorted(
        {
            str(router.provider_specs.get(m.provider, {}).get("api_key_env") or "")
            for m in router.models
        }
        - {""}
    )
    missing = [name for name in needs if not os.environ.get(name)]
    if not missing:
        return (
            "No model is available to you: the configured models are not on your groups' "
            "allow-list (c.Router.group_models) or were turned off; ask your administrator."
        )
    if set(missing) <= DEFAULT_KEY_ENVS:
        return MODEL_HELP
    return (
        f"No model can be used: the configured models need {' or '.join(missing)} in the "
        "environment of the server. Set it in the shell that starts JupyterLab and restart."
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

    def model_status(
        self, caller: Caller | None = None, router: ModelRouter | None = None
    ) -> dict[str, Any]:
        """With the agent's router, "configured" means the models it would use for the
        caller: a local server that needs no key counts, a key no configured model uses
        does not, and the caller's own keys and group allow-list are taken into account."""
        advice = MODEL_HELP
        if router is not None and caller is not None:
            names = [str(m.name) for m in router.available(caller)]
            configured = bool(names)
            if not configured:
                advice = help_for(router)
        else:
            names = None
            # Without the agent (the command line's check): a key, or a source that holds them.
            keys = any(os.environ.get(name) for name in self.model_key_envs)
            configured = keys or bool(self.model_source)
        out: dict[str, Any] = {"configured": configured, "help": None if configured else advice}
        if names is not None:
            out["models"] = names
        if configured and self.model_source:
            out["source"] = self.model_source
        return out

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
        """For the command line: no caller, so the key variables decide the model state."""
        return {
            "version": __version__,
            "sandbox": self.sandbox_status(),
            "model": self.model_status(),
        }

    async def report(self, caller: Caller, router: ModelRouter | None) -> dict[str, Any]:
        """For the route: backend checks in a thread, the caller's models on the loop
        (the router reads users' own keys from the agent's store, which lives there)."""
        sandbox = await asyncio.to_thread(self.sandbox_status)
        model = self.model_status(caller, router)
        return {"version": __version__, "sandbox": sandbox, "model": model}
