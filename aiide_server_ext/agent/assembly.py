"""The agent put together in one place, for the server (``part.py``), headless runs
(``headless/runner.py``) and the stdio MCP server (``mcp/stdio.py``) alike: ``build`` makes
the agent's parts from an ``AgentConfig`` (``config.py``: ``c.Agent``, read once) and a
``Host`` (where it works); ``build_standalone`` does that for a process of its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from traitlets.config import Config

from ..seams import Gate, OpenGate
from .config import AgentConfig, agent_config
from .context import ContextBuilder
from .engine import RunEngine
from .fanout import Fanout
from .kernels import KernelRunner
from .notebooks import NotebookBridge
from .router import Router
from .steps import StepRunner
from .store import Store
from .tool_policy import ToolPolicy
from .tools.mcp_client import McpClients


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
    fanout: Fanout
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
    fanout = Fanout(
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
        fanout,
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
        fanout,
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
        fanout=fanout,
        router=router,
        policy=policy,
        context=context,
        kernels=kernels,
        notebooks=notebooks,
        mcp_clients=mcp_clients,
        engine=engine,
    )


def build_standalone(
    config: Config,
    root_dir: str,
    scratch: str,
    *,
    kinds: Kinds,
    kernel_name: str | None = None,
    **changes: Any,
) -> AgentParts:
    """The agent in a process of its own, no server (a headless run, ``jupyter aiide mcp``):
    ``c.Agent`` from ``config`` with ``changes`` over it, a throwaway sqlite store in
    ``scratch`` (never a shared database), jupyter_server's managers on ``root_dir``, the
    open gate; ``kernel_name`` (a command's ``--kernel``) over the configured one."""
    # lazy: they bring nbformat and jsonschema, which the server's start does without
    from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

    configured = agent_config(config=config)
    settings = configured.replace(
        db_path=os.path.join(scratch, "agent.sqlite"),
        database_url="",
        server_id="",
        kernel_name=kernel_name or configured.kernel_name,
        **changes,
    )
    host = Host(
        root_dir=root_dir,
        contents_manager=AsyncLargeFileManager(root_dir=root_dir, config=config),
        kernel_manager=AsyncMappingKernelManager(config=config, root_dir=root_dir),  # type: ignore[no-untyped-call]
    )
    store = settings.open_store(scratch)
    return build(settings, host, store, traits={"config": config}, kinds=kinds)
