"""The agent part of the extension (``c.Agent.*``): its traits, its service, its routes.
The parts themselves are made in ``assembly.py`` (as for headless runs and stdio MCP).

Nothing heavy is imported here or at server start: the anthropic SDK, httpx and
jsonschema load on first use (or in a background thread shortly after start).
"""

from __future__ import annotations

import asyncio
import gc
import getpass
import os
import threading
from typing import Any

from traitlets import Bool, Dict, Float, Int, List, Unicode

from ..parts import ExtensionPart
from ..seams import DelegatingGate, Gate, gate_of


class Agent(ExtensionPart):
    """The assistant: model providers, chat socket, tools, approval policy, runs."""

    db_path = Unicode(
        "",
        config=True,
        help="sqlite file for conversations, runs and events. Empty: aiide/agent.sqlite "
        "in the Jupyter data directory.",
    )
    database_url = Unicode(
        "",
        config=True,
        help="PostgreSQL URL for conversations, runs and events shared by several servers, "
        "e.g. postgresql://aiide@/aiide?host=/run/postgresql. Empty: the sqlite file db_path.",
    )
    server_id = Unicode(
        "",
        config=True,
        help="This server's name among those sharing database_url: a restart recovers only "
        "its own runs. Default: the JupyterHub user/server name, else host:data dir.",
    )
    providers = Dict(
        {},
        config=True,
        help="Provider name -> {kind: anthropic|openai, base_url, api_key_env, headers}. "
        "base_url and header values may use ${VAR} / ${VAR:-default} (environment, or the "
        "user's own values when allow_user_keys). Merged over the built-in 'anthropic' "
        "(ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL) and 'openai' (OPENAI_API_KEY) entries.",
    )
    models = List(
        Dict(),
        default_value=[],
        config=True,
        help="Models, in order of preference: {name, provider, model, capabilities "
        "(chat, tools, complete), cost, latency, max_output_tokens}. Empty: Claude Sonnet "
        "and Haiku, GPT-4o mini (each usable when its provider has a key).",
    )
    allow_user_keys = Bool(
        False,
        config=True,
        help="Let users store their own provider keys (kept server-side, never sent back).",
    )
    approval_timeout = Float(
        900.0, config=True, help="Seconds before an unanswered approval expires the run."
    )
    complete_timeout = Float(5.0, config=True, help="Seconds an inline completion may take.")
    magic_max_connections = Int(
        4,
        config=True,
        help="Connections one kernel may hold open to the server for %ai; more are refused "
        "(503 too_many_connections).",
    )
    magic_max_concurrent = Int(
        2,
        config=True,
        help="%ai requests of one kernel answered at once; more are refused (429 "
        "too_many_requests). Rate limits and quotas: route class 'magic' of c.Gateway.",
    )
    max_open_notebooks_per_socket = Int(
        64,
        config=True,
        help="Notebooks one chat connection may declare open (notebook_open) at once; "
        "more are refused (error too_many_notebooks) until one is closed.",
    )
    max_open_notebooks_per_user = Int(
        256,
        config=True,
        help="Notebooks all of one user's chat connections together may declare open at "
        "once; more are refused (error too_many_notebooks).",
    )
    conversation_retention_days = Float(
        0.0,
        config=True,
        help="Delete conversations (turns, runs, events) not updated for this many days; "
        "asking for one afterwards answers conversation_expired (410). 0: keep them.",
    )
    max_conversations_per_user = Int(
        0,
        config=True,
        help="Keep at most this many conversations per user: older ones (by last update) "
        "are deleted like expired ones. 0: no limit.",
    )
    event_retention_days = Float(
        0.0,
        config=True,
        help="Delete a conversation's events (what 'resume' replays) older than this many "
        "days, except its newest, so sequence numbers go on; a resume replays what is "
        "left. Conversations with a run still going are left alone. 0: keep them.",
    )
    retention_interval = Float(
        3600.0,
        config=True,
        help="Seconds between retention passes (one also runs at start).",
    )
    execute_timeout = Float(120.0, config=True, help="Seconds a tool's code run may take.")
    frontend_timeout = Float(
        120.0, config=True, help="Seconds to wait for a front end to apply a patch or run a cell."
    )
    max_message_bytes = Int(262144, config=True, help="Largest chat frame accepted.")
    heartbeat_seconds = Float(
        30.0, config=True, help="How often clients should ping (sent to them in 'hello')."
    )
    kernel_name = Unicode(
        "aiide-python",
        config=True,
        help="Kernel the agent starts for a notebook that has none running (in the server, "
        "headless runs and 'jupyter aiide mcp').",
    )
    allow_hidden = Bool(False, config=True, help="Let file tools see hidden files.")
    mcp_approval_wait = Float(
        60.0,
        config=True,
        help="Seconds an outside agent's MCP call that needs approval waits for a user "
        "(POST /aiide/api/mcp/approvals/<id>) before it is refused.",
    )
    mcp_max_pending_per_user = Int(
        20,
        config=True,
        help="Outside agents' MCP calls of one user that may wait for approval at once; "
        "more are refused (too_many_pending).",
    )
    mcp_max_pending_per_client = Int(
        10,
        config=True,
        help="MCP calls of one credential (one outside agent) that may wait for approval "
        "at once; more are refused (too_many_pending).",
    )
    mcp_servers = Dict(
        {},
        config=True,
        help="MCP servers whose tools the agent may use, name -> {transport: stdio|http, "
        "command, args, env, cwd (stdio) or url, headers (http; values may use ${VAR}), "
        "risk: low|medium|high (for c.ToolPolicy; default high), allow: [tool-name "
        "patterns], timeout}. Their tools are named mcp__<name>__<tool>.",
    )
    mcp_timeout = Float(
        10.0, config=True, help="Seconds an MCP server may take to start, list or answer."
    )
    mcp_refresh_seconds = Float(
        300.0,
        config=True,
        help="How often MCP servers' tool lists are fetched again (0: only at start and on "
        "POST /aiide/api/mcp/servers/refresh).",
    )
    preload = Bool(
        True,
        config=True,
        help="Import the model SDKs in a background thread after start, so the first "
        "chat does not pay for it.",
    )

    preload_delay = Float(
        5.0, config=True, help="Seconds after server start before the SDKs are preloaded."
    )

    def initialize(self, settings: dict[str, Any]) -> None:
        from .assembly import AgentConfig, Host, build
        from .service import AgentService

        server = getattr(self.parent, "serverapp", None)
        if server is None:
            raise RuntimeError("the agent part runs inside the aiide extension")
        config = AgentConfig.from_traits(self)
        host = Host(
            root_dir=os.path.realpath(server.root_dir),
            contents_manager=server.contents_manager,
            kernel_manager=server.kernel_manager,
            session_manager=getattr(server, "session_manager", None),
            gate=_LazyGate(settings),
            knowledge=lambda: settings.get("aiide_knowledge"),
        )
        parts = build(config, host, config.open_store(server.data_dir), traits={"parent": self})
        self.mcp_clients = parts.mcp_clients
        settings["aiide_mcp_clients"] = self.mcp_clients
        self.service = AgentService(parts)
        settings["aiide_agent"] = self.service
        self._settings = settings

    def handlers(self) -> list[tuple[str, Any]]:
        from .handlers import default_handlers

        return list(default_handlers)

    async def start(self) -> None:
        self.service.start()
        self.mcp_clients.start()
        self._answer_kernels()
        if self.service.config.preload:
            # Later, not now: an import thread holds the GIL in bursts and would slow
            # the server's first responses.
            def spawn() -> None:
                threading.Thread(target=_preload, name="aiide-preload", daemon=True).start()

            asyncio.get_running_loop().call_later(self.service.config.preload_delay, spawn)

    async def stop(self) -> None:
        from aiide_kernel.channel import KernelChannels

        channels = KernelChannels.instance()
        if channels.responder == self._responder:
            channels.reset_responder()
        await self.mcp_clients.close()
        await self.service.stop()

    _responder: Any = None

    def _answer_kernels(self) -> None:
        """``%ai`` in this server's sandboxed kernels: answered as whoever started each."""
        from aiide_kernel.channel import KernelChannels

        from .ask import KernelAsk, owner_caller

        settings, config = self._settings, self.service.config
        user = _server_user()
        ask = KernelAsk(
            self.service.router,
            self.service.gate,
            lambda: owner_caller(gate_of(settings), user),
        )
        self._responder = ask.respond
        channels = KernelChannels.instance()
        channels.responder = ask.respond
        channels.max_connections = max(1, config.magic_max_connections)
        channels.max_concurrent = max(1, config.magic_max_concurrent)


class _LazyGate(DelegatingGate):
    """The gate as of each call: the gateway part may install it after this part starts."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings

    def inner_gate(self) -> Gate:
        return gate_of(self.settings)


def _server_user() -> str:
    try:
        return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        return "owner"


def _preload() -> None:
    try:
        import anthropic  # noqa: F401
        import httpx  # noqa: F401
        import jsonschema  # noqa: F401
    except ImportError:
        pass
    # What the server has allocated so far (modules, schemas, the SDKs) lives as long as
    # the process: out of the collector's full passes, which otherwise scan all of it and
    # pause the loop for ~250 ms under hundreds of streams (benchmarks/chat_stream.py).
    gc.freeze()
