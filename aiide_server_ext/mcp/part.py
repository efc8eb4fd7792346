"""The MCP server part of the extension: aiide's notebook tools for outside agents
(``/aiide/api/mcp``, ``tools.py``), on the agent's notebooks, tool policy and gate, and the
status of the MCP servers the agent itself uses (``/aiide/api/mcp/servers``).

Its settings are ``c.Agent.mcp_*`` (read into the agent's ``AgentConfig``), so it loads
after the agent part."""

from __future__ import annotations

from typing import Any

from ..extension_parts import ExtensionPart
from .handlers import default_handlers
from .tools import McpTools


class McpServer(ExtensionPart):
    """Outside agents calling aiide's tools; configured under ``c.Agent.mcp_*``."""

    def initialize(self, settings: dict[str, Any]) -> None:
        service = settings["aiide_agent"]
        config = service.config
        tools = McpTools(
            service.gate,
            service.engine.policy,
            service.notebooks,
            service.engine.root_dir,
            knowledge=lambda: settings.get("aiide_knowledge"),
            approval_wait=config.mcp_approval_wait,
            max_pending_per_user=config.mcp_max_pending_per_user,
            max_pending_per_client=config.mcp_max_pending_per_client,
        )
        settings["aiide_mcp"] = tools
        service.policy_users.append(tools)  # a stricter policy reaches it too: wrap_tool_policy

    def handlers(self) -> list[tuple[str, Any]]:
        return list(default_handlers)
