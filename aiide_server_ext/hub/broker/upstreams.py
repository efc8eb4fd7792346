"""The broker's described upstreams (``kind: described`` in ``c.BrokerApp.upstreams``):
their providers, built when the broker starts so an invalid descriptor stops it, naming
the field. The route that calls them is ``described.py``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def described_providers(
    upstreams: Mapping[str, Mapping[str, Any]], timeout: float
) -> dict[str, Any]:
    """Every described upstream's provider (``DescriptorError`` if one is invalid)."""
    from aiide_server_ext.agent.providers import build_provider  # lazy: jmespath, aiohttp

    timeouts = {"connect_timeout": 10.0, "idle_timeout": timeout}
    return {
        name: build_provider(name, spec, timeouts)
        for name, spec in upstreams.items()
        if spec.get("kind") == "described"
    }
