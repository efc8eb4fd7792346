"""The agent's configuration: the ``c.Agent`` traits, and ``AgentConfig``, what they (and
the sandbox's network switch) decide, read once by ``agent_config``. The server's part,
headless runs and stdio MCP all read it so, and ``assembly.build`` makes the agent from it:
a new option is a trait and a field here, used where the part that needs it is built."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from traitlets import Bool, Dict, Float, Int, List, Unicode
from traitlets.config import LoggingConfigurable

from ..stores.sealing import load_server_key
from .router import DEFAULT_MODELS, DEFAULT_PROVIDERS
from .store import Store


class Agent(LoggingConfigurable):  # type: ignore[misc]
    """``c.Agent.*``: the assistant's model providers, chat socket, tools, approval
    policy and runs. Read once, into ``AgentConfig``, by ``agent_config``."""

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
        help="Provider name -> {kind: anthropic|openai|described, base_url, api_key_env, "
        "headers}; a described one also names its descriptor (shipped: azure-openai, gemini, "
        "bedrock-converse, ollama, text-api, anthropic-messages; or inline) and overrides "
        "(docs/providers.md). "
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
        help="Let users store their own provider keys (kept server-side, sealed with the "
        "server key, never sent back).",
    )
    secret_key_file = Unicode(
        "",
        config=True,
        help="File holding the server key that seals users' own keys at rest (32 random "
        "bytes, urlsafe base64; made 0600 when missing). $AIIDE_SECRET_KEY wins over it. "
        "Empty: aiide/secret_key in the Jupyter data directory. Servers sharing "
        "database_url must share the key.",
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


@dataclass(frozen=True)
class AgentConfig:
    """The agent's settings (``c.Agent.*``; each field's help is on its trait)."""

    db_path: str = ""
    database_url: str = ""
    server_id: str = ""
    #: The configured providers merged over the built-in ones.
    providers: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: DEFAULT_PROVIDERS)
    #: The configured models, or the default ones when none are.
    models: tuple[Mapping[str, Any], ...] = tuple(DEFAULT_MODELS)
    allow_user_keys: bool = False
    secret_key_file: str = ""
    approval_timeout: float = 900.0
    complete_timeout: float = 5.0
    magic_max_connections: int = 4
    magic_max_concurrent: int = 2
    max_open_notebooks_per_socket: int = 64
    max_open_notebooks_per_user: int = 256
    conversation_retention_days: float = 0.0
    max_conversations_per_user: int = 0
    event_retention_days: float = 0.0
    retention_interval: float = 3600.0
    execute_timeout: float = 120.0
    frontend_timeout: float = 120.0
    max_message_bytes: int = 262144
    heartbeat_seconds: float = 30.0
    kernel_name: str = "aiide-python"
    allow_hidden: bool = False
    mcp_approval_wait: float = 60.0
    mcp_max_pending_per_user: int = 20
    mcp_max_pending_per_client: int = 10
    mcp_servers: Mapping[str, Any] = field(default_factory=dict)
    mcp_timeout: float = 10.0
    mcp_refresh_seconds: float = 300.0
    preload: bool = True
    preload_delay: float = 5.0
    #: ``c.SandboxPolicy.allow_network``: whether code the agent runs may reach the network
    #: (not a ``c.Agent`` trait: ``from_traits`` reads it from the sandbox's config).
    network: bool = False

    @classmethod
    def from_traits(cls, agent: Any) -> AgentConfig:
        """Every field from the ``c.Agent`` trait of its name (``agent`` is an ``Agent``
        part), and ``network`` from ``c.SandboxPolicy`` in the same config."""
        names = [f.name for f in dataclasses.fields(cls) if f.name != "network"]
        values = {name: getattr(agent, name) for name in names}
        values["providers"] = {
            **DEFAULT_PROVIDERS,
            **{k: dict(v) for k, v in agent.providers.items()},
        }
        values["models"] = tuple(dict(m) for m in agent.models) or tuple(DEFAULT_MODELS)
        values["mcp_servers"] = dict(agent.mcp_servers)
        return cls(**values, network=_sandbox_network(agent.config))

    def replace(self, **changes: Any) -> AgentConfig:
        return dataclasses.replace(self, **changes)

    def store_path(self, data_dir: str) -> str:
        return self.db_path or os.path.join(data_dir, "aiide", "agent.sqlite")

    def server_name(self, data_dir: str) -> str:
        """This server among those sharing ``database_url`` (see ``c.Agent.server_id``)."""
        if self.server_id or not self.database_url:
            return self.server_id  # one sqlite file per server: nothing to tell apart
        user = os.environ.get("JUPYTERHUB_USER")
        if user:
            return f"hub:{user}/{os.environ.get('JUPYTERHUB_SERVER_NAME', '')}"
        import socket

        return f"{socket.gethostname()}:{os.path.abspath(data_dir)}"

    def key_path(self, data_dir: str) -> str:
        return self.secret_key_file or os.path.join(data_dir, "aiide", "secret_key")

    def open_store(self, data_dir: str) -> Store:
        return Store(
            self.store_path(data_dir),
            url=self.database_url,
            server=self.server_name(data_dir),
            sealer=load_server_key(self.key_path(data_dir)),
        )


def _sandbox_network(config: Any) -> bool:
    try:
        from aiide_kernel.policy import SandboxPolicy  # lazy: the sandbox may be absent

        return bool(SandboxPolicy(config=config).allow_network)
    except Exception:
        return False


def agent_config(**traits: Any) -> AgentConfig:
    """The agent's configuration; ``traits`` is ``config=`` (a ``Config``) or ``parent=``
    (a configurable whose config holds ``c.Agent``)."""
    return AgentConfig.from_traits(Agent(**traits))
