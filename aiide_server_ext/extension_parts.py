"""The seam between the extension and its subsystems (gateway, agent, knowledge).

Each subsystem lives in its own package with a ``part.py`` defining a subclass of
``ExtensionPart``. The extension loads the parts that are present, in order, gives
them its settings dict to fill and collects their routes. A part is configured
under its own class name (``c.Gateway.*``, ``c.Agent.*``, ``c.Knowledge.*``) and
must import heavy libraries lazily (on first use, not in ``part.py``).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from traitlets.config import LoggingConfigurable

#: Loaded in this order: the gateway first (identity, limits), consumers after it; the
#: MCP server after the agent, whose notebooks and policy it serves.
PART_PATHS = [
    "aiide_server_ext.gateway.part:Gateway",
    "aiide_server_ext.agent.part:AgentPart",
    "aiide_server_ext.mcp.part:McpServer",
    "aiide_server_ext.knowledge.part:Knowledge",
]


class ExtensionPart(LoggingConfigurable):  # type: ignore[misc]
    """One subsystem of the extension. ``parent`` is the AiideExtension."""

    def initialize(self, settings: dict[str, Any]) -> None:
        """Create services and put them in the tornado settings (``aiide_<name>``)."""

    def handlers(self) -> list[tuple[str, Any]]:
        """Routes, relative to the server's base URL (``/aiide/api/...``)."""
        return []

    async def start(self) -> None:
        """Runs once the event loop does (background tasks)."""

    async def stop(self) -> None:
        """Server shutdown: flush, close stores."""


def load_parts(parent: Any) -> list[ExtensionPart]:
    parts = []
    for path in PART_PATHS:
        module_name, _, class_name = path.partition(":")
        try:
            if importlib.util.find_spec(module_name) is None:
                continue
        except ModuleNotFoundError:  # the subsystem's package is not there
            continue
        cls = getattr(importlib.import_module(module_name), class_name)
        parts.append(cls(parent=parent))
    return parts
