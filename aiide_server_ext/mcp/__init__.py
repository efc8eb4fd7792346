"""aiide as an MCP server: its notebook tools for outside agents, over HTTP (the ``McpServer``
part) and stdio (``jupyter aiide mcp``); see docs/mcp.md. aiide as an MCP client is one of
the agent's tool sources: ``agent/tools/mcp_client.py``."""
