"""MCP: aiide's notebook tools for outside agents (see docs/mcp.md)."""
