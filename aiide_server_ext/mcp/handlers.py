"""``/aiide/api/mcp``: thin tornado handlers over ``McpTools`` and ``protocol.handle``.

Errors are JSON ``{code, message}``. Which credential sent a request matters here: the one
that made a call may not approve it (``tools.py``)."""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..seams import Caller, GateRefusal, gate_of
from .client import McpClients
from .protocol import handle
from .tools import Credential, McpTools

MAX_BODY = 1 << 20
#: An approval body is one small JSON object.
MAX_APPROVAL_BODY = 4096


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

    @property
    def credential(self) -> Credential:
        """The credential of this request: a gateway key or token (its refresh family),
        Jupyter's token, or a browser session (interactive)."""
        extra = self.caller.extra
        found = extra.get("family") or extra.get("credential_id")
        if found:
            return Credential(f"{extra.get('via', 'gateway')}:{found}")
        if self.request.headers.get("Authorization") or self.token_authenticated:
            return Credential("jupyter:token")
        return Credential("session", interactive=True)

    def fail(self, status: int, code: str, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"code": code, "message": message}))

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
        credential = self.credential
        replies = []
        for message in messages:
            reply = await handle(self.tools, caller, message, credential)
            if reply is not None:
                replies.append(reply)
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
        if len(self.request.body or b"") > MAX_APPROVAL_BODY:
            self.fail(413, "body_too_large", f"an approval is at most {MAX_APPROVAL_BODY} bytes")
            return
        try:
            body: Any = json.loads(self.request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            self.fail(400, "invalid_json", "the body is not valid JSON")
            return
        decision = body.get("decision") if isinstance(body, dict) else None
        pending_id = pending_id or (body.get("id") if isinstance(body, dict) else None) or ""
        if decision not in ("approve", "reject") or not isinstance(pending_id, str):
            self.fail(400, "bad_decision", 'the body must be {"decision": "approve"|"reject"}')
            return
        credential = self.credential
        if credential.interactive:
            try:  # a person's session: its XSRF token is checked even if Jupyter's check is off
                web.RequestHandler.check_xsrf_cookie(self)
            except web.HTTPError:
                self.fail(403, "xsrf_required", "a browser approval needs its XSRF token")
                return
        try:
            await self.tools.decide(self.caller, pending_id, decision, credential)
        except GateRefusal as e:
            self.fail(e.status, e.code, e.message)
            return
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
