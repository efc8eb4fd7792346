"""The agent part of the extension: its service, its routes, ``%ai`` in the server's
kernels. Its settings are ``c.Agent`` (``config.py``); the agent itself is made in
``assembly.py``, as for headless runs and stdio MCP.

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

from aiide_kernel.channel import KernelChannels

from ..extension_parts import ExtensionPart
from ..seams import DelegatingGate, Gate, gate_of
from .ask import KernelAsk, owner_caller
from .assembly import Host, build
from .config import agent_config
from .handlers import default_handlers
from .providers.base import DescriptorError
from .service import AgentService


class AgentPart(ExtensionPart):
    """The assistant in the server: its service, its chat socket and routes, ``%ai`` in
    the server's kernels (configured under ``c.Agent``: ``config.py``)."""

    def initialize(self, settings: dict[str, Any]) -> None:
        server = getattr(self.parent, "serverapp", None)
        if server is None:
            raise RuntimeError("the agent part runs inside the aiide extension")
        config = agent_config(parent=self)
        host = Host(
            root_dir=os.path.realpath(server.root_dir),
            contents_manager=server.contents_manager,
            kernel_manager=server.kernel_manager,
            session_manager=getattr(server, "session_manager", None),
            gate=_LazyGate(settings),
            knowledge=lambda: settings.get("aiide_knowledge"),
        )
        try:
            parts = build(config, host, config.open_store(server.data_dir), traits={"parent": self})
        except DescriptorError as e:
            # Jupyter would log a failing extension and serve on without it: a provider
            # configured wrong stops the server instead, saying which field is wrong.
            self.log.critical("aiide: %s", e)
            raise SystemExit(f"aiide: {e}") from None
        self.mcp_clients = parts.mcp_clients
        settings["aiide_mcp_clients"] = self.mcp_clients
        self.service = AgentService(parts)
        settings["aiide_agent"] = self.service
        self._settings = settings

    def handlers(self) -> list[tuple[str, Any]]:
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
        channels = KernelChannels.instance()
        if channels.responder == self._responder:
            channels.reset_responder()
        await self.mcp_clients.close()
        await self.service.stop()

    _responder: Any = None

    def _answer_kernels(self) -> None:
        """``%ai`` in this server's sandboxed kernels: answered as whoever started each."""
        settings, config = self._settings, self.service.config
        user = _server_user()
        ask = KernelAsk(
            self.service.router,
            self.service.gate,
            lambda: owner_caller(gate_of(settings), user),
            guard=lambda: getattr(self.service.notebooks, "guard", None),
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
