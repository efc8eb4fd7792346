"""The agent's MCP client, one of its tool sources: tools of admin-configured MCP servers
(stdio or streamable HTTP) become agent tools, namespaced ``mcp__<server>__<tool>``,
validated against their JSON schema and decided by ``c.ToolPolicy`` at the server's risk
level. A server that fails, hangs (timeout) or lists malformed schemas is logged, shown in
the status and skipped: runs go on. (aiide's own MCP server is ``aiide_server_ext/mcp/``.)"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .base import Tool, ToolEnv, ToolResult

log = logging.getLogger("aiide.mcp")

RISKS = ("low", "medium", "high")
NAME = re.compile(r"^[A-Za-z0-9_-]{1,24}$")
VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")
MAX_RESULT_CHARS = 50_000
#: Default of a server entry's ``start_timeout``.
START_TIMEOUT = 60.0


class McpConfigError(ValueError):
    """A configured MCP server entry that cannot work as written."""


def _expand(value: str) -> str:
    """``${VAR}`` / ``${VAR:-default}`` from the environment (secrets stay out of config)."""
    return VAR.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), value)


@dataclass(frozen=True)
class ServerSpec:
    name: str
    transport: str  # stdio | http
    command: str = ""
    args: tuple[str, ...] = ()
    env: dict[str, str] | None = None
    cwd: str | None = None
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    #: low | medium | high, for ``c.ToolPolicy``; unknown outside tools default to high
    #: (approve for everyone under the default roles, refused for students).
    risk: str = "high"
    #: Tool-name patterns (fnmatch) this server may contribute; empty: all of them.
    allow: tuple[str, ...] = ()
    #: Seconds a request (listing, call) may take; and the longest a run waits for the
    #: server's first listing before it goes on without the server for now.
    timeout: float = 10.0
    #: Seconds the server may take to start and answer ``initialize`` (a process started
    #: on a loaded machine is slow to come up, not broken); it answers in the background
    #: and its tools join the runs from then on.
    start_timeout: float = 60.0

    @classmethod
    def parse(cls, name: str, data: Any, timeout: float) -> ServerSpec:
        if not NAME.match(name):
            raise McpConfigError(f"MCP server name {name!r}: use 1-24 of [A-Za-z0-9_-]")
        if not isinstance(data, dict):
            raise McpConfigError(f"MCP server {name!r}: the entry must be a dict")
        transport = data.get("transport", "stdio" if "command" in data else "http")
        risk = data.get("risk", "high")
        if risk not in RISKS:
            raise McpConfigError(f"MCP server {name!r}: risk must be one of {', '.join(RISKS)}")
        allow = data.get("allow") or []
        if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
            raise McpConfigError(f"MCP server {name!r}: 'allow' must be a list of tool names")
        common: dict[str, Any] = {
            "name": name,
            "transport": transport,
            "risk": risk,
            "allow": tuple(allow),
            "timeout": float(data.get("timeout", timeout)),
        }
        common["start_timeout"] = max(
            float(data.get("start_timeout", START_TIMEOUT)), common["timeout"]
        )
        if transport == "stdio":
            command, args = data.get("command"), data.get("args") or []
            if not isinstance(command, str) or not command:
                raise McpConfigError(f"MCP server {name!r}: stdio needs a 'command'")
            if not isinstance(args, list):
                raise McpConfigError(f"MCP server {name!r}: 'args' must be a list")
            env = data.get("env")
            return cls(
                command=command,
                args=tuple(str(a) for a in args),
                env={str(k): _expand(str(v)) for k, v in env.items()} if env else None,
                cwd=data.get("cwd"),
                **common,
            )
        if transport == "http":
            url = data.get("url")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise McpConfigError(f"MCP server {name!r}: http needs an http(s) 'url'")
            headers = {str(k): _expand(str(v)) for k, v in (data.get("headers") or {}).items()}
            return cls(url=_expand(url), headers=headers, **common)
        raise McpConfigError(f"MCP server {name!r}: transport must be stdio or http")


def tool_name(server: str, tool: str) -> str:
    """A name every provider accepts (``^[A-Za-z0-9_-]{1,64}$``), unique per server."""
    return f"mcp__{server}__{re.sub(r'[^A-Za-z0-9_-]', '_', tool)}"[:64]


def result_text(result: Any) -> str:
    parts: list[str] = []
    for item in result.content:
        kind = getattr(item, "type", "")
        if kind == "text":
            parts.append(item.text)
        elif kind == "resource" and hasattr(item.resource, "text"):
            parts.append(item.resource.text)
        else:
            parts.append(f"[{kind or 'content'} omitted]")
    if not parts and getattr(result, "structuredContent", None) is not None:
        import json

        parts.append(json.dumps(result.structuredContent))
    text = "\n".join(parts)
    return text if len(text) <= MAX_RESULT_CHARS else text[:MAX_RESULT_CHARS] + " …"


Op = Callable[[Any], Awaitable[Any]]


class ServerConnection:
    """One MCP server, its session held by a worker task (anyio contexts are entered and
    left in the same task); operations are queued to it and bounded by the timeout."""

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self.tools: dict[str, Tool] = {}
        self.state = "configured"  # configured | ok | failed (listing: ``listing``)
        self.error = ""
        self.skipped: list[str] = []
        self.refreshed: float | None = None
        self._queue: asyncio.Queue[tuple[Op, asyncio.Future[Any]] | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        #: A listing is under way (the first may outlast the time a run waits for it).
        self.listing = False
        #: Sessions being closed in the background (a failed server is not waited for).
        self._closing: set[asyncio.Task[None]] = set()

    def _transport(self) -> Any:
        spec = self.spec
        if spec.transport == "stdio":
            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            env = {**_default_env(), **(spec.env or {})}
            params = StdioServerParameters(
                command=spec.command, args=list(spec.args), env=env, cwd=spec.cwd
            )
            return stdio_client(params)
        return _http(spec)

    async def _worker(
        self,
        ready: asyncio.Future[None],
        queue: asyncio.Queue[tuple[Op, asyncio.Future[Any]] | None],
    ) -> None:
        try:
            # the SDK's import is seconds of CPU on a loaded machine: not on the loop
            await asyncio.to_thread(_load_sdk)
            from mcp import ClientSession

            async with contextlib.AsyncExitStack() as stack:
                streams = await stack.enter_async_context(self._transport())
                session = await stack.enter_async_context(
                    ClientSession(
                        streams[0],
                        streams[1],
                        # initialize may take start_timeout; each request after has
                        # its own, shorter bound (timeout)
                        read_timeout_seconds=timedelta(seconds=self.spec.start_timeout),
                    )
                )
                await session.initialize()
                ready.set_result(None)
                while (item := await queue.get()) is not None:
                    op, future = item
                    try:
                        value = await op(session)
                    except Exception as e:
                        if not future.done():
                            future.set_exception(e)
                        if _broken(e):
                            break
                    else:
                        if not future.done():
                            future.set_result(value)
        except BaseException as e:
            if not ready.done():
                ready.set_exception(e if isinstance(e, Exception) else RuntimeError(repr(e)))
            if isinstance(e, asyncio.CancelledError):
                raise
        finally:
            while not queue.empty():
                item = queue.get_nowait()
                if item is not None and not item[1].done():
                    item[1].set_exception(ConnectionError("the MCP session closed"))

    async def _session_queue(self) -> asyncio.Queue[tuple[Op, asyncio.Future[Any]] | None]:
        async with self._lock:
            if self._task is not None and not self._task.done() and self._queue is not None:
                return self._queue
            loop = asyncio.get_running_loop()
            ready: asyncio.Future[None] = loop.create_future()
            ready.add_done_callback(lambda f: f.cancelled() or f.exception())
            queue: asyncio.Queue[tuple[Op, asyncio.Future[Any]] | None] = asyncio.Queue()
            self._queue = queue
            self._task = asyncio.create_task(self._worker(ready, queue))
            try:
                await asyncio.wait_for(asyncio.shield(ready), self.spec.start_timeout)
            except BaseException:
                self.close_later()
                raise
            return queue

    async def do(self, op: Op) -> Any:
        queue = await self._session_queue()  # at most start_timeout (a new session)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        queue.put_nowait((op, future))
        try:
            return await asyncio.wait_for(future, self.spec.timeout + 1)
        except asyncio.TimeoutError:
            self.close_later()  # a hung server: start afresh next time
            raise

    def close_later(self) -> None:
        """End the session without waiting for it (a hung server's exit takes seconds);
        the next operation starts a new one."""
        task, queue = self._task, self._queue
        self._task = self._queue = None
        closing = asyncio.ensure_future(self._end(task, queue, 3.0))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def close(self, wait: float = 3.0) -> None:
        task, queue = self._task, self._queue
        self._task = self._queue = None
        await self._end(task, queue, wait)
        if self._closing:  # sessions ended in the background
            await asyncio.wait(set(self._closing), timeout=wait + 5)

    @staticmethod
    async def _end(
        task: asyncio.Task[None] | None,
        queue: asyncio.Queue[tuple[Op, asyncio.Future[Any]] | None] | None,
        wait: float,
    ) -> None:
        if task is None or task.done():
            return
        if queue is not None:
            queue.put_nowait(None)
        done, _ = await asyncio.wait({task}, timeout=wait) if wait else (set(), set())
        if not done:
            task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 5)

    async def list_tools(self) -> list[Any]:
        async def op(session: Any) -> list[Any]:
            import anyio

            tools: list[Any] = []
            cursor = None
            with anyio.fail_after(self.spec.timeout):
                for _ in range(50):  # pages
                    page = await session.list_tools(cursor=cursor)
                    tools += page.tools
                    cursor = page.nextCursor
                    if not cursor:
                        break
            return tools

        result: list[Any] = await self.do(op)
        return result

    async def call(self, name: str, arguments: dict[str, Any]) -> Any:
        async def op(session: Any) -> Any:
            wait = timedelta(seconds=self.spec.timeout)
            return await session.call_tool(name, arguments, read_timeout_seconds=wait)

        return await self.do(op)

    def convert(self, listed: list[Any]) -> tuple[dict[str, Tool], list[str]]:
        """Agent tools for the listed ones; a malformed schema skips that tool, with why."""
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        tools: dict[str, Tool] = {}
        skipped: list[str] = []
        for t in listed:
            if self.spec.allow and not any(fnmatch.fnmatch(t.name, p) for p in self.spec.allow):
                continue
            schema = t.inputSchema
            try:
                if not isinstance(schema, dict) or schema.get("type") != "object":
                    raise SchemaError("the input schema is not an object schema")
                Draft202012Validator.check_schema(schema)
            except SchemaError as e:
                skipped.append(f"{t.name}: malformed input schema ({e.message[:200]})")
                continue
            name = tool_name(self.spec.name, t.name)
            if name in tools:
                skipped.append(f"{t.name}: its name collides with another tool of this server")
                continue
            tools[name] = Tool(
                name,
                f"[MCP server {self.spec.name}] {(t.description or t.name)[:1000]}",
                schema,
                self.spec.risk,
                self._runner(t.name),
            )
        return tools, skipped

    def _runner(self, remote: str) -> Callable[[ToolEnv, dict[str, Any]], Awaitable[ToolResult]]:
        async def run(env: ToolEnv, arguments: dict[str, Any]) -> ToolResult:
            try:
                result = await self.call(remote, arguments)
            except asyncio.TimeoutError:
                return ToolResult.failure(
                    "mcp_timeout", f"MCP server {self.spec.name} did not answer in time"
                )
            except Exception as e:
                return ToolResult.failure(
                    "mcp_failed", f"MCP server {self.spec.name}: {_describe(e)}"
                )
            text = result_text(result)
            if result.isError:
                return ToolResult.failure("mcp_tool_error", text or "the tool reported an error")
            return ToolResult(text or "(no output)")

        return run

    async def refresh(self) -> None:
        self.listing = True
        try:
            listed = await self.list_tools()
        except Exception as e:
            self.tools, self.state = {}, "failed"
            self.error = (
                f"no answer within {self.spec.timeout:g}s"
                if isinstance(e, asyncio.TimeoutError) or _timed_out(e)
                else _describe(e)
            )
            log.warning("aiide: MCP server %s is skipped: %s", self.spec.name, self.error)
            self.close_later()
            return
        finally:
            self.listing = False
        self.tools, self.skipped = self.convert(listed)
        self.state, self.error, self.refreshed = "ok", "", time.time()
        for why in self.skipped:
            log.warning("aiide: MCP server %s: tool skipped: %s", self.spec.name, why)

    def status(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "transport": self.spec.transport,
            "risk": self.spec.risk,
            "state": self.state,
            "listing": self.listing,
            "error": self.error or None,
            "tools": sorted(self.tools),
            "skipped": self.skipped,
            "refreshed": self.refreshed,
        }


class McpClients:
    """Every configured server; the agent engine's ``ToolSource``."""

    def __init__(
        self,
        specs: list[ServerSpec],
        *,
        refresh_seconds: float = 300.0,
        config_errors: list[str] | None = None,
    ) -> None:
        self.servers = {s.name: ServerConnection(s) for s in specs}
        self.refresh_seconds = refresh_seconds
        self.config_errors = list(config_errors or [])
        self._first: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._started = 0.0

    @classmethod
    def from_config(
        cls, servers: dict[str, Any], *, timeout: float = 10.0, refresh_seconds: float = 300.0
    ) -> McpClients:
        specs, errors = [], []
        for name, data in servers.items():
            try:
                specs.append(ServerSpec.parse(str(name), data, timeout))
            except McpConfigError as e:
                log.warning("aiide: %s (skipped)", e)
                errors.append(str(e))
        return cls(specs, refresh_seconds=refresh_seconds, config_errors=errors)

    def start(self) -> None:
        """List every server in the background, then again every ``refresh_seconds``."""
        if self.servers and self._first is None:
            self._started = time.monotonic()
            self._first = asyncio.create_task(self._refresh_all())
            if self.refresh_seconds > 0:
                self._timer = asyncio.create_task(self._refresh_loop())

    async def _refresh_all(self) -> None:
        await self.refresh()

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.refresh()
            except Exception:
                log.exception("aiide: MCP refresh failed")

    async def refresh(self, name: str | None = None) -> list[dict[str, Any]]:
        chosen = [s for n, s in self.servers.items() if name is None or n == name]
        await asyncio.gather(*(s.refresh() for s in chosen))
        return self.status()

    async def ready(self) -> None:
        """Wait for the first listing, at most the longest server ``timeout`` since it
        began: a run is never held longer by a server that hangs. One still starting then
        goes on in the background; its tools join the steps after it answers."""
        if self._first is None:
            self.start()
        if self._first is None or self._first.done():
            return
        limit = max(s.spec.timeout for s in self.servers.values())
        left = self._started + limit - time.monotonic()
        if left > 0:
            await asyncio.wait({self._first}, timeout=left)

    def unavailable(self) -> dict[str, str]:
        """Server name -> why a run does not have its tools (yet)."""
        found = {}
        for name, s in self.servers.items():
            if s.state == "failed":
                found[name] = f"MCP server {name} is unavailable: {s.error}"
            elif s.state != "ok" and s.listing:
                found[name] = (
                    f"MCP server {name} is unavailable: no answer within {s.spec.timeout:g}s; "
                    f"the run goes on without it (its tools join if it answers within "
                    f"{s.spec.start_timeout:g}s)"
                )
        return found

    def tools(self) -> dict[str, Tool]:
        merged: dict[str, Tool] = {}
        for server in self.servers.values():
            if server.state == "ok":
                merged.update(server.tools)
        return merged

    def problems(self, told: Collection[str] = ()) -> list[str]:
        """What an admin (or a headless run's user) should be told (``told``: servers
        whose failure was told already)."""
        found = list(self.config_errors)
        for s in self.servers.values():
            if s.state == "failed" and s.spec.name not in told:
                found.append(f"MCP server {s.spec.name} is skipped: {s.error}")
            found += [f"MCP server {s.spec.name}: tool skipped: {why}" for why in s.skipped]
        return found

    def status(self) -> list[dict[str, Any]]:
        return [s.status() for s in self.servers.values()]

    async def close(self) -> None:
        for task in (self._timer, self._first):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        await asyncio.gather(*(s.close() for s in self.servers.values()))


@contextlib.asynccontextmanager
async def _http(spec: ServerSpec) -> AsyncIterator[Any]:
    import httpx
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx.AsyncClient(headers=spec.headers, timeout=spec.timeout) as http,
        streamable_http_client(spec.url, http_client=http) as streams,
    ):
        yield streams


def _load_sdk() -> None:
    import mcp.client.stdio
    import mcp.client.streamable_http  # noqa: F401


def _timed_out(e: BaseException) -> bool:
    """The SDK's own read timeout (an McpError with HTTP's 408 as its code)."""
    inner = getattr(e, "exceptions", None)  # an exception group (anyio task groups)
    if inner:
        return _timed_out(inner[0])
    error = getattr(e, "error", None)
    return getattr(error, "code", None) == 408


def _broken(e: BaseException) -> bool:
    import anyio

    return isinstance(e, (anyio.ClosedResourceError, anyio.BrokenResourceError, EOFError))


def _describe(e: BaseException) -> str:
    inner = getattr(e, "exceptions", None)  # an exception group (anyio task groups)
    if inner:
        return _describe(inner[0])
    text = str(e) or type(e).__name__
    return f"{type(e).__name__}: {text}"[:500] if str(e) else text


def _default_env() -> dict[str, str]:
    from mcp.client.stdio import get_default_environment

    return get_default_environment()
