"""``/aiide/api/mcp``: thin tornado handlers over ``McpTools`` and ``protocol.handle``."""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..seams import Caller, GateRefusal, gate_of
from .client import McpClients
from .protocol import handle
from .tools import McpTools

MAX_BODY = 1 << 20


class McpHandler(APIHandler):  # type: ignore[misc]
    auth_resource = "aiide"

    @property
    def tools(self) -> McpTools:
        tools: McpTools = self.settings["aiide_mcp"]
        return tools

    @property
    def caller(self) -> Caller:
        return gate_of(self.settings).caller(self)

    def check_xsrf_cookie(self) -> None:
        """Token-authenticated API for agents, not a browser form (tokens only)."""
        if not self.request.headers.get("Authorization"):
            super().check_xsrf_cookie()

    @web.authenticated
    @authorized
    async def post(self) -> None:
        if len(self.request.body) > MAX_BODY:
            raise web.HTTPError(413, "request body is too large")
        try:
            body = json.loads(self.request.body)
        except ValueError:
            self.set_status(400)
            self.finish(
                {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}
            )
            return
        caller = self.caller
        messages = body if isinstance(body, list) else [body]
        replies = [r for m in messages if (r := await handle(self.tools, caller, m)) is not None]
        if not replies:
            self.set_status(202)
            self.finish()
            return
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(replies if isinstance(body, list) else replies[0]))

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.set_status(405)  # no server-initiated stream: JSON responses only
        self.finish()


class ApprovalsHandler(McpHandler):
    """A user answers the calls of their own outside agents that wait for approval."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish(json.dumps({"pending": self.tools.waiting(self.caller)}))

    @web.authenticated
    @authorized
    async def post(self, pending_id: str = "") -> None:
        body: Any = json.loads(self.request.body or b"{}")
        decision = body.get("decision") if isinstance(body, dict) else None
        if decision not in ("approve", "reject"):
            raise web.HTTPError(400, "decision must be approve or reject")
        if not self.tools.decide(self.caller, pending_id, decision):
            raise web.HTTPError(404, f"no pending call {pending_id}")
        self.set_status(204)
        self.finish()


class ServersHandler(McpHandler):
    """The configured MCP servers the agent uses: state, tools, why one is skipped."""

    @property
    def clients(self) -> McpClients:
        clients: McpClients = self.settings["aiide_mcp_clients"]
        return clients

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish(json.dumps({"servers": self.clients.status()}))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Fetch the tool lists again now (all servers, or ``{"name": ...}``)."""
        try:
            await gate_of(self.settings).admit(self.caller, "agent", scope="agent:run")
        except GateRefusal as e:
            raise web.HTTPError(e.status, e.message) from None
        body: Any = json.loads(self.request.body or b"{}")
        name = body.get("name") if isinstance(body, dict) else None
        if name is not None and name not in self.clients.servers:
            raise web.HTTPError(404, f"no MCP server {name}")
        self.finish(json.dumps({"servers": await self.clients.refresh(name)}))


default_handlers = [
    (r"/aiide/api/mcp/servers", ServersHandler),
    (r"/aiide/api/mcp/servers/refresh", ServersHandler),
    (r"/aiide/api/mcp", McpHandler),
    (r"/aiide/api/mcp/approvals", ApprovalsHandler),
    (r"/aiide/api/mcp/approvals/(?P<pending_id>[A-Za-z0-9_]+)", ApprovalsHandler),
]
