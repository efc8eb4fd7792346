"""``/aiide/api/mcp``: thin tornado handlers over ``McpTools`` and ``protocol.handle``.

Errors are JSON ``{code, message}`` (``json_api.py``); a body that is not JSON is a
JSON-RPC parse error on the MCP route itself. Which credential sent a request matters
here: the one that made a call may not approve it (``tools.py``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..agent.tools.mcp_client import McpClients
from ..api_handler import AiideAPIHandler
from ..seams import ApiError
from .protocol import handle
from .tools import Credential, McpTools

MAX_BODY = 1 << 20
#: An approval body is one small JSON object.
MAX_APPROVAL_BODY = 4096


class McpHandler(AiideAPIHandler):
    auth_resource = "aiide"
    max_body_bytes = MAX_BODY

    @property
    def tools(self) -> McpTools:
        tools: McpTools = self.settings["aiide_mcp"]
        return tools

    @property
    def gone(self) -> asyncio.Event:
        """Set when the agent hangs up: a call it left waiting for approval ends then."""
        if not hasattr(self, "_gone"):
            self._gone = asyncio.Event()
        return self._gone

    def on_connection_close(self) -> None:
        self.gone.set()
        super().on_connection_close()

    def check_xsrf_cookie(self) -> None:
        """Token-authenticated API for agents, not a browser form (tokens only)."""
        if not self.request.headers.get("Authorization"):
            super().check_xsrf_cookie()

    @property
    def credential(self) -> Credential:
        """The credential of this request: a gateway key or token (its refresh family),
        Jupyter's token, or a browser session (interactive)."""
        gateway = self.caller.credential
        if gateway:
            return Credential(gateway)
        if self.request.headers.get("Authorization") or self.token_authenticated:
            return Credential("jupyter:token")
        return Credential("session", interactive=True)

    @web.authenticated
    @authorized
    async def post(self) -> None:
        try:
            body = json.loads(self.body_bytes())
        except (ValueError, UnicodeDecodeError):
            error = {"code": -32700, "message": "parse error"}
            return self.reply({"jsonrpc": "2.0", "id": None, "error": error}, status=400)
        caller = self.caller
        messages = body if isinstance(body, list) else [body]
        credential = self.credential
        replies = []
        for message in messages:
            reply = await handle(self.tools, caller, message, credential, self.gone)
            if reply is not None:
                replies.append(reply)
        if not replies:
            self.set_status(202)
            self.finish()
            return
        self.reply(replies if isinstance(body, list) else replies[0])

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.set_status(405)  # no server-initiated stream: JSON responses only
        self.finish()


class ApprovalsHandler(McpHandler):
    """A user answers the calls of their own outside agents that wait for approval."""

    max_body_bytes = MAX_APPROVAL_BODY

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply({"pending": self.tools.waiting(self.caller)})

    @web.authenticated
    @authorized
    async def post(self, pending_id: str = "") -> None:
        try:
            decision, pending_id, reason = self.decision(pending_id)
        except ApiError as e:  # a malformed answer is a refusal like the others: audited
            detail = {"code": e.code, "credential": self.credential.id}
            await self.gate.audit(self.caller, "mcp.approval", pending_id[:40], "refused", detail)
            raise
        credential = self.credential
        if credential.interactive:
            try:  # a person's session: its XSRF token is checked even if Jupyter's check is off
                web.RequestHandler.check_xsrf_cookie(self)
            except web.HTTPError:
                raise ApiError(
                    403, "xsrf_required", "a browser approval needs its XSRF token"
                ) from None
        await self.tools.decide(self.caller, pending_id, decision, credential, reason)
        self.no_content()

    def decision(self, pending_id: str) -> tuple[str, str, str | None]:
        """(decision, pending id, reason) from the URL and ``{"decision": ..., "id": ...,
        "reason": ...}`` (a rejection may say why; the agent is told)."""
        body = self.json_body({})
        if not isinstance(body, dict):
            body = {}
        decision, reason = body.get("decision"), body.get("reason")
        pending_id = pending_id or body.get("id") or ""
        if (
            decision not in ("approve", "reject")
            or not isinstance(pending_id, str)
            or not (reason is None or isinstance(reason, str))
        ):
            raise ApiError(
                400,
                "bad_decision",
                'the body must be {"decision": "approve"|"reject"}, with an optional "reason"',
            )
        return decision, pending_id, reason


class ServersHandler(McpHandler):
    """The configured MCP servers the agent uses: state, tools, why one is skipped."""

    @property
    def clients(self) -> McpClients:
        clients: McpClients = self.settings["aiide_mcp_clients"]
        return clients

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply({"servers": self.clients.status()})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Fetch the tool lists again now (all servers, or ``{"name": ...}``)."""
        await self.admit("agent", scope="agent:run")
        body: Any = self.json_body({})
        name = body.get("name") if isinstance(body, dict) else None
        if name is not None and name not in self.clients.servers:
            raise ApiError(404, "unknown_server", f"no MCP server {name}")
        self.reply({"servers": await self.clients.refresh(name)})


default_handlers = [
    (r"/aiide/api/mcp/servers", ServersHandler),
    (r"/aiide/api/mcp/servers/refresh", ServersHandler),
    (r"/aiide/api/mcp", McpHandler),
    (r"/aiide/api/mcp/approvals", ApprovalsHandler),
    (r"/aiide/api/mcp/approvals/(?P<pending_id>[A-Za-z0-9_]+)", ApprovalsHandler),
]
