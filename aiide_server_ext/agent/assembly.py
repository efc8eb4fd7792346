"""The agent put together in one place, for the server (``part.py``), headless runs
(``headless/runner.py``) and the stdio MCP server (``mcp/stdio.py``) alike.

``AgentConfig`` is what ``c.Agent`` (and the sandbox's network switch) decides, read once
by ``AgentConfig.from_traits``; ``build`` makes the agent's parts from it. A new option is
a trait in ``part.py`` and a field here, read where the part that needs it is built.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..seams import Gate, OpenGate
from .context import ContextBuilder
from .engine import RunEngine
from .hub import Hub
from .kernels import KernelRunner
from .notebooks import NotebookBridge
from .policy import ToolPolicy
from .router import DEFAULT_MODELS, DEFAULT_PROVIDERS, Router
from .steps import StepRunner
from .store import Store
from .tools.mcp_client import McpClients


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

    def open_store(self, data_dir: str) -> Store:
        return Store(
            self.store_path(data_dir), url=self.database_url, server=self.server_name(data_dir)
        )


def _sandbox_network(config: Any) -> bool:
    try:
        from aiide_kernel.policy import SandboxPolicy  # lazy: the sandbox may be absent

        return bool(SandboxPolicy(config=config).allow_network)
    except Exception:
        return False


@dataclass
class Host:
    """Where the agent works: the server's managers, or those of one headless run."""

    root_dir: str
    contents_manager: Any
    kernel_manager: Any
    session_manager: Any = None
    gate: Gate = field(default_factory=OpenGate)
    #: The knowledge part's service, looked up per use (it may load after the agent).
    knowledge: Callable[[], Any] = lambda: None


@dataclass
class Kinds:
    """The classes ``build`` makes; a headless run uses its own (its router traces model
    calls, its bridge writes only the output notebook, its steps checkpoint files)."""

    router: type[Router] = Router
    policy: type[ToolPolicy] = ToolPolicy
    kernels: type[KernelRunner] = KernelRunner
    notebooks: Callable[..., NotebookBridge] = NotebookBridge
    steps: type[StepRunner] = StepRunner


@dataclass
class AgentParts:
    config: AgentConfig
    store: Store
    hub: Hub
    router: Router
    policy: ToolPolicy
    context: ContextBuilder
    kernels: KernelRunner
    notebooks: NotebookBridge
    #: The configured MCP servers, a tool source of the engine when there are any (their
    #: status is a route even when there are none).
    mcp_clients: McpClients
    engine: RunEngine


def build(
    config: AgentConfig,
    host: Host,
    store: Store,
    *,
    traits: Mapping[str, Any],
    kinds: Kinds | None = None,
) -> AgentParts:
    """The agent's parts. ``traits`` is how the configurables among them (``c.Router``,
    ``c.ToolPolicy``, ``c.ContextBuilder``) find their config: ``{"parent": part}`` or
    ``{"config": config}``."""
    kinds = kinds or Kinds()
    router = kinds.router(**traits)
    router.setup(
        [dict(m) for m in config.models],
        {k: dict(v) for k, v in config.providers.items()},
        store,
        config.allow_user_keys,
    )
    policy = kinds.policy(**traits)
    context = ContextBuilder(**traits)
    hub = Hub(
        store,
        max_notebooks_per_socket=config.max_open_notebooks_per_socket,
        max_notebooks_per_user=config.max_open_notebooks_per_user,
    )
    kernels = kinds.kernels(
        host.kernel_manager, host.session_manager, host.root_dir, config.kernel_name
    )
    notebooks = kinds.notebooks(
        host.contents_manager,
        kernels,
        hub,
        frontend_timeout=config.frontend_timeout,
        execute_timeout=config.execute_timeout,
    )
    mcp_clients = McpClients.from_config(
        dict(config.mcp_servers),
        timeout=config.mcp_timeout,
        refresh_seconds=config.mcp_refresh_seconds,
    )
    engine = RunEngine(
        store,
        hub,
        router,
        policy,
        context,
        notebooks,
        host.gate,
        root_dir=host.root_dir,
        approval_timeout=config.approval_timeout,
        network=config.network,
        allow_hidden=config.allow_hidden,
        knowledge=host.knowledge,
        tool_source=mcp_clients if mcp_clients.servers else None,
        steps=kinds.steps,
    )
    return AgentParts(
        config=config,
        store=store,
        hub=hub,
        router=router,
        policy=policy,
        context=context,
        kernels=kernels,
        notebooks=notebooks,
        mcp_clients=mcp_clients,
        engine=engine,
    )
