"""Running the agent's code in a notebook's kernel (its Jupyter session's, else a
``c.Agent.kernel_name`` sandboxed kernel started for it) through a kernel client: for the
server's runs (code with no browser attached, kernel introspection, the sandbox check),
headless runs and stdio MCP alike.

One client per kernel, kept open (``wait_for_ready`` costs ~200 ms once), and one call at
a time per kernel (iopub replies are matched by parent id; interleaving would lose some).
A kernel that dies mid-call is noticed by polling, not by waiting out the timeout.

Code runs only in sandboxed kernels (``execute`` refuses others with
``kernel_not_sandboxed``) unless the caller says an approval covered running outside
the sandbox. Whether a kernel is sandboxed is the server's own knowledge: the kernel
manager's provisioner (``aiide_server_ext/kernelspecs.py``), never a browser's word.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any

from jupyter_core.utils import ensure_async

from aiide_kernel.events import KernelEvents

from ..kernelspecs import NOT_SANDBOXED, is_gateway_kernel, kernel_is_sandboxed, spec_is_sandboxed
from .errors import ToolError

log = logging.getLogger("aiide.agent")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# What one call keeps of its outputs (their JSON size): a kernel that prints 100 MB of
# HTML would otherwise be held in the server's memory, sent on, and written into the
# notebook. Outputs past it are dropped and a note says how much was cut.
MAX_KEPT_OUTPUT_BYTES = 2_000_000


def cut_note(dropped: int, size: int) -> dict[str, Any]:
    return {
        "output_type": "stream",
        "name": "stderr",
        "text": f"[output cut: {dropped} more outputs ({size:,} bytes) were not kept; "
        f"the limit is {MAX_KEPT_OUTPUT_BYTES:,} bytes per run]\n",
    }


#: Seconds a kernel has to answer after the interrupt that ends a call past its timeout;
#: a kernel that does not (a C loop ignoring SIGINT) is restarted.
INTERRUPT_GRACE = 10.0


class ExecTimeout(ToolError):
    """A call ran past its timeout: the kernel was interrupted (or, deaf to the interrupt,
    restarted, its state lost). ``outputs``: what the code printed before."""

    def __init__(self, timeout: float, outputs: list[dict[str, Any]], recovery: str) -> None:
        then = "interrupted" if recovery == "interrupted" else "restarted (its variables are lost)"
        super().__init__("timeout", f"the code ran longer than {timeout:g}s; the kernel was {then}")
        self.timeout = timeout
        self.outputs = outputs
        self.recovery = recovery


@dataclass
class ExecResult:
    status: str
    outputs: list[dict[str, Any]] = field(default_factory=list)
    execution_count: int | None = None
    user_expressions: dict[str, Any] = field(default_factory=dict)


def to_output(kind: str, content: dict[str, Any]) -> dict[str, Any] | None:
    """An iopub message as an nbformat output."""
    if kind == "stream":
        return {"output_type": "stream", "name": content["name"], "text": content["text"]}
    if kind in ("execute_result", "display_data"):
        out = {
            "output_type": kind,
            "data": content["data"],
            "metadata": content.get("metadata", {}),
        }
        if kind == "execute_result":
            out["execution_count"] = content.get("execution_count")
        return out
    if kind == "error":
        return {
            "output_type": "error",
            "ename": content["ename"],
            "evalue": content["evalue"],
            "traceback": content.get("traceback", []),
        }
    return None


def summarise_outputs(outputs: list[dict[str, Any]], limit: int = 4000) -> str:
    """Outputs as the model reads them: text, errors in full (up to the limit), no images."""
    parts: list[str] = []
    for out in outputs:
        kind = out["output_type"]
        if kind == "stream":
            parts.append(out["text"])
        elif kind == "error":
            trace = ANSI.sub("", "\n".join(out.get("traceback") or []))
            parts.append(trace or f"{out['ename']}: {out['evalue']}")
        else:
            data = out.get("data", {})
            if "text/plain" in data:
                text = data["text/plain"]
                parts.append("".join(text) if isinstance(text, list) else str(text))
            others = [k for k in data if k != "text/plain"]
            if others:
                parts.append(f"[{', '.join(others)} output]")
    text = "\n".join(p.rstrip("\n") for p in parts)
    return text if len(text) <= limit else text[: limit // 2] + "\n[…]\n" + text[-limit // 2 :]


class KernelRunner:
    def __init__(
        self, kernel_manager: Any, session_manager: Any, root_dir: str, kernel_name: str
    ) -> None:
        self.km = kernel_manager
        self.sessions = session_manager
        self.root_dir = root_dir
        self.kernel_name = kernel_name
        self.own: dict[str, str] = {}  # notebook path -> kernel id we started
        self._clients: dict[str, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._starting: dict[str, asyncio.Lock] = {}
        #: kernel id -> the outputs of the latest call there, so far (a headless run
        #: stopped while it runs saves them).
        self.running: dict[str, list[dict[str, Any]]] = {}

    async def kernel_for(self, path: str, *, start: bool = True) -> str | None:
        """The notebook's kernel: its session's if it has one, else ours."""
        if self.sessions is not None:
            try:
                for session in await self.sessions.list_sessions():
                    if session.get("path") == path and session.get("kernel"):
                        return str(session["kernel"]["id"])
            except Exception as e:  # the session store is optional for headless runs
                log.debug("aiide: no sessions (%s)", e)
        kid = self.own.get(path)
        if kid is not None and kid in self.km:
            return kid
        if not start:
            return None
        # Two callers at once (a run's first cell and its environment probe) must get one
        # kernel, not start one each (the first would run cells the second never sees).
        async with self._starting.setdefault(path, asyncio.Lock()):
            kid = self.own.get(path)
            if kid is not None and kid in self.km:
                return kid
            folder = os.path.dirname(path)
            kid = await self.km.start_kernel(kernel_name=self.kernel_name, path=folder)
            self.own[path] = str(kid)
            return str(kid)

    async def kernel_sandboxed(self, kid: str) -> bool:
        """Whether this server started the kernel through the sandbox provisioner (or,
        for a kernel on a kernel gateway, from a kernelspec that runs the sandbox)."""
        try:
            manager = self.km.get_kernel(kid)
        except KeyError:
            return False
        if kernel_is_sandboxed(manager):
            return True
        if is_gateway_kernel(manager):
            return await self.spec_sandboxed(str(manager.kernel_name))
        return False

    async def _spec(self, kernel_name: str, *, hidden_too: bool = False) -> Any:
        """The kernelspec, or None when it is not installed (``hidden_too``: or only
        hidden by ``LabelledKernelSpecManager``)."""
        # A kernel manager made outside a server (headless, MCP stdio) has none of its
        # own until it starts a kernel: its kernels then use Jupyter's default one.
        ksm = self.km.kernel_spec_manager
        if ksm is None:
            from jupyter_client.kernelspec import KernelSpecManager

            ksm = KernelSpecManager(parent=self.km)
        get = getattr(ksm, "_plain_spec", ksm.get_kernel_spec) if hidden_too else None
        try:
            return await ensure_async((get or ksm.get_kernel_spec)(kernel_name))
        except Exception:
            return None

    async def spec_exists(self, kernel_name: str) -> bool:
        """Installed here, hidden or not (a hidden unsandboxed spec's notebook still runs,
        in the sandboxed headless kernel)."""
        return await self._spec(kernel_name, hidden_too=True) is not None

    async def spec_sandboxed(self, kernel_name: str) -> bool:
        spec = await self._spec(kernel_name)
        return spec is not None and spec_is_sandboxed(spec)

    async def sandboxed(self, path: str) -> bool:
        """Whether code run for this notebook would run in a sandbox: its session's
        kernel, else the kernel headless runs start for it (``kernel_name``)."""
        kid = await self.kernel_for(path, start=False)
        if kid is not None:
            return await self.kernel_sandboxed(kid)
        return await self.spec_sandboxed(self.kernel_name)

    async def require_sandbox(self, kid: str, *, allow_unsandboxed: bool = False) -> None:
        if not allow_unsandboxed and not await self.kernel_sandboxed(kid):
            raise ToolError("kernel_not_sandboxed", NOT_SANDBOXED)

    async def _client(self, kid: str) -> Any:
        client = self._clients.get(kid)
        if client is None:
            client = self.km.get_kernel(kid).client()
            client.start_channels()
            try:
                await client.wait_for_ready(timeout=60)
            except Exception:
                client.stop_channels()
                raise
            self._clients[kid] = client
        return client

    def _forget(self, kid: str) -> None:
        client = self._clients.pop(kid, None)
        if client is not None:
            client.stop_channels()

    async def execute(
        self,
        kid: str,
        code: str,
        *,
        timeout: float,
        silent: bool = False,
        user_expressions: dict[str, str] | None = None,
        allow_unsandboxed: bool = False,
    ) -> ExecResult:
        """``allow_unsandboxed``: an approval covered running outside the sandbox
        (``c.ToolPolicy.allow_unsandboxed_kernels``); otherwise such a kernel is refused."""
        await self.require_sandbox(kid, allow_unsandboxed=allow_unsandboxed)
        lock = self._locks.setdefault(kid, asyncio.Lock())
        async with lock:
            return await self._execute(kid, code, timeout, silent, user_expressions or {})

    async def _execute(
        self, kid: str, code: str, timeout: float, silent: bool, exprs: dict[str, str]
    ) -> ExecResult:
        deaths = len(KernelEvents.instance().for_kernel(kid))
        manager = self.km.get_kernel(kid)
        client = await self._client(kid)
        outputs: list[dict[str, Any]] = []
        self.running[kid] = outputs
        kept = [0, 0, 0]  # bytes kept, outputs dropped, bytes dropped

        def hook(msg: dict[str, Any]) -> None:
            kind = msg["header"]["msg_type"]
            if kind == "clear_output":
                outputs.clear()
                kept[0] = 0
            out = to_output(kind, msg["content"])
            if out is None:
                return
            size = len(json.dumps(out))
            if kept[0] + size > MAX_KEPT_OUTPUT_BYTES:
                kept[1] += 1
                kept[2] += size
                return
            kept[0] += size
            outputs.append(out)

        task = asyncio.ensure_future(
            client.execute_interactive(
                code,
                silent=silent,
                store_history=not silent,
                user_expressions=exprs,
                allow_stdin=False,
                timeout=timeout,
                output_hook=hook,
            )
        )
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=0.25)
                if task.done():
                    break
                died = len(KernelEvents.instance().for_kernel(kid)) > deaths
                if died or not await manager.is_alive():
                    task.cancel()
                    self._forget(kid)
                    raise ToolError("kernel_died", "the kernel died while running the code")
            reply = task.result()
        except TimeoutError:
            recovery = await self._recover(kid)
            raise ExecTimeout(timeout, outputs, recovery) from None
        finally:
            if not task.done():
                task.cancel()
        content = reply["content"]
        if kept[1]:
            outputs.append(cut_note(kept[1], kept[2]))
        return ExecResult(
            status=content.get("status", "error"),
            outputs=outputs,
            execution_count=content.get("execution_count"),
            user_expressions=content.get("user_expressions", {}),
        )

    async def _recover(self, kid: str) -> str:
        """After a timeout: interrupt the kernel, so the next call does not wait behind the
        code; restart it when it does not answer within ``INTERRUPT_GRACE``."""
        try:
            await ensure_async(self.km.interrupt_kernel(kid))
            client = await self._client(kid)
            await client.execute_interactive(
                "", silent=True, store_history=False, timeout=INTERRUPT_GRACE
            )
            return "interrupted"
        except Exception as e:
            log.info("aiide: kernel %s did not answer its interrupt (%r): restarting it", kid, e)
        self._forget(kid)
        try:
            await self.km.restart_kernel(kid, now=True)
        except Exception as e:
            log.warning("aiide: kernel %s could not be restarted: %r", kid, e)
            return "lost"
        return "restarted"

    async def shutdown(self) -> None:
        for kid in list(self._clients):
            self._forget(kid)
        for kid in self.own.values():
            if kid in self.km:
                try:
                    await self.km.shutdown_kernel(kid, now=True)
                except Exception as e:  # already gone
                    log.debug("aiide: kernel %s: %s", kid, e)
        self.own.clear()
