"""``jupyter aiide mcp``: aiide's notebook tools (those of ``/aiide/api/mcp``, through the
same ``McpTools``) served over stdio to a local MCP client, on a notebook directory, code
running in a sandboxed kernel. The caller is the local user; ``c.ToolPolicy`` (and a
``--policy`` file) decides, and since nobody can answer an approval here, a call that needs
one is refused unless ``--yes`` approves it."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from typing import Any

from .._version import __version__
from ..agent.tool_policy import Decision
from ..agent.tools.base import Tool
from ..headless.config import load_config, local_user
from ..headless.notebook import BadInput
from ..headless.policy_file import FilePolicy, PolicyFile, PolicyFileError
from ..headless.startup import defer_slow_imports
from ..seams import Caller


def register_cli(sub: Any) -> None:
    mcp = sub.add_parser("mcp", help="serve aiide's notebook tools to an MCP client (stdio)")
    mcp.add_argument("root", nargs="?", default=".", help="the notebook directory (default: .)")
    mcp.add_argument("--config", help="a Jupyter config file (.py or .json) to load as well")
    mcp.add_argument(
        "--kernel",
        help="kernel name (default: c.Agent.kernel_name); the agent runs code only in a "
        "sandboxed one unless c.ToolPolicy.allow_unsandboxed_kernels",
    )
    mcp.add_argument("--policy", help="policy file (TOML or JSON; see docs/headless.md)")
    mcp.add_argument(
        "--yes", action="store_true", help="run calls that need approval (deny still refuses)"
    )
    mcp.set_defaults(func=mcp_command)


def mcp_command(args: argparse.Namespace) -> int:
    defer_slow_imports()
    import anyio

    if not os.path.isdir(args.root):
        print(f"error: no directory {args.root!r}", file=sys.stderr)
        return 2
    try:
        anyio.run(serve, args)
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def build_tools(args: argparse.Namespace, workdir: str, tmp: str) -> Any:
    # lazy: jupyter_server and the agent load to serve, not for every `jupyter aiide` command
    from ..agent.assembly import Kinds, build_standalone
    from .tools import McpTools

    try:
        policy_file = PolicyFile.load(args.policy)
    except PolicyFileError as e:
        raise BadInput(str(e)) from None
    config = policy_file.config(load_config(args.config), None)
    if not config.SandboxPolicy.get("workspace_root"):
        config.SandboxPolicy.workspace_root = workdir
    parts = build_standalone(
        config,
        workdir,
        tmp,
        kinds=Kinds(policy=Yes if args.yes else FilePolicy),
        kernel_name=args.kernel,
        mcp_servers={},  # this serves aiide's tools: it calls no MCP server itself
    )
    policy = parts.policy
    assert isinstance(policy, FilePolicy)
    policy.tool_actions = dict(policy_file.tools)
    tools = McpTools(parts.engine.gate, policy, parts.notebooks, workdir, approval_wait=0.0)
    return tools, parts.store


async def serve(args: argparse.Namespace) -> None:
    import mcp.types as types
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server

    from .tools import McpRefusal  # lazy: as in build_tools

    workdir = os.path.realpath(args.root)
    caller = Caller(username=local_user())
    with tempfile.TemporaryDirectory(prefix="aiide-mcp-") as tmp:
        tools, store = build_tools(args, workdir, tmp)
        server: Server[Any, Any] = Server("aiide", version=__version__)

        @server.list_tools()  # type: ignore[misc,no-untyped-call,untyped-decorator,unused-ignore]
        async def list_tools() -> list[types.Tool]:
            return [
                types.Tool(
                    name=d["name"], description=d["description"], inputSchema=d["input_schema"]
                )
                for d in tools.definitions()
            ]

        @server.call_tool(validate_input=False)  # type: ignore[misc,untyped-decorator,unused-ignore]
        async def call_tool(name: str, arguments: dict[str, Any]) -> list[types.TextContent]:
            try:
                text = await tools.call(caller, name, arguments or {})
            except McpRefusal as e:
                raise RuntimeError(f"error ({e.code}): {e.message}") from None
            return [types.TextContent(type="text", text=text)]

        try:
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())
        finally:
            await tools.notebooks.kernels.shutdown()
            store.close()


class Yes(FilePolicy):
    """``--yes``: what would wait for an approval runs; what is denied stays denied."""

    def decide(
        self,
        tool: Tool,
        arguments: dict[str, Any],
        caller: Caller,
        *,
        network: bool = False,
        sandboxed: bool = True,
    ) -> Decision:
        base = super().decide(tool, arguments, caller, network=network, sandboxed=sandboxed)
        return dataclasses.replace(base, action="auto") if base.action == "approve" else base
