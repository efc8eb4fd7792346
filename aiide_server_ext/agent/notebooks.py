"""Where a notebook change goes: to the front end that has the notebook open, or, with no
browser attached, into the file through the contents manager after a checkpoint.

Either way the change is a cell-level patch (``patches.py``), and cell runs report their
outputs back to the run.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from jupyter_core.utils import ensure_async

from .errors import ToolError
from .hub import Connection, Hub
from .kernels import ExecResult, KernelRunner
from .patches import apply_patch, ensure_ids, index_of, source_of


@dataclass(frozen=True)
class Route:
    conversation_id: str
    run_id: str
    username: str


@dataclass
class Pending:
    future: asyncio.Future[dict[str, Any]]
    conn: Connection
    route: Route


class NotebookBridge:
    def __init__(
        self,
        contents_manager: Any,
        kernels: KernelRunner,
        hub: Hub,
        *,
        frontend_timeout: float = 120.0,
        execute_timeout: float = 120.0,
    ) -> None:
        self.cm = contents_manager
        self.kernels = kernels
        self.hub = hub
        self.frontend_timeout = frontend_timeout
        self.execute_timeout = execute_timeout
        self.pending: dict[str, Pending] = {}

    # -- files -------------------------------------------------------------------
    async def load(self, path: str) -> dict[str, Any]:
        if not path.endswith(".ipynb"):
            raise ToolError("validation_error", f"{path!r} is not a notebook (.ipynb)")
        try:
            model = await ensure_async(self.cm.get(path, content=True, type="notebook"))
        except Exception as e:
            if getattr(e, "status_code", None) == 404 or isinstance(e, FileNotFoundError):
                raise ToolError("not_found", f"no notebook {path!r}") from None
            raise ToolError("tool_failed", f"cannot read {path!r}") from None
        nb: dict[str, Any] = model["content"]
        ensure_ids(nb)
        return nb

    async def _require_known_kernelspec(self, path: str) -> None:
        """A notebook that names a kernel not installed here (another language, a
        removed environment) is refused rather than run in the headless kernel."""
        try:
            nb = await self.load(path)
        except ToolError:
            return  # no notebook (yet): the headless kernel it would get is the default
        spec = (nb.get("metadata") or {}).get("kernelspec") or {}
        name = spec.get("name") if isinstance(spec, dict) else None
        if isinstance(name, str) and name and not await self.kernels.spec_exists(name):
            raise ToolError(
                "unknown_kernel",
                f"{path} names the kernel {name!r}, which is not installed here; the code "
                "was not run. Pick a kernel for the notebook (e.g. Python 3 (sandboxed)) "
                "and try again.",
            )

    async def _save(self, path: str, nb: dict[str, Any], *, checkpoint: bool) -> str | None:
        checkpoint_id = None
        if checkpoint:
            cp = await ensure_async(self.cm.create_checkpoint(path))
            checkpoint_id = str(cp.get("id")) if isinstance(cp, dict) else None
        await ensure_async(
            self.cm.save({"type": "notebook", "format": "json", "content": nb}, path)
        )
        return checkpoint_id

    # -- front end ---------------------------------------------------------------
    async def _ask_frontend(
        self, conn: Connection, route: Route, kind: str, **fields: Any
    ) -> dict[str, Any]:
        request_id = "rq_" + uuid.uuid4().hex[:16]
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = Pending(future, conn, route)
        try:
            self.hub.emit(
                route.conversation_id, route.run_id, kind, request_id=request_id, **fields
            )
            return await asyncio.wait_for(future, self.frontend_timeout)
        except asyncio.TimeoutError:
            raise ToolError("timeout", "the notebook front end did not answer") from None
        finally:
            self.pending.pop(request_id, None)

    def resolve(self, conn: Connection, message: dict[str, Any]) -> bool:
        """A ``notebook_result`` from a front end; False when nothing waits for it."""
        pending = self.pending.get(message["request_id"])
        if (
            pending is None
            or pending.route.run_id != message["run_id"]
            or pending.route.conversation_id != message["conversation_id"]
            or pending.route.username != conn.username
        ):
            return False
        if not pending.future.done():
            pending.future.set_result(message)
        return True

    def connection_closed(self, conn: Connection) -> None:
        for pending in list(self.pending.values()):
            if pending.conn is conn and not pending.future.done():
                pending.future.set_exception(
                    ToolError("frontend_gone", "the notebook's front end went away; re-read it")
                )

    # -- patches -----------------------------------------------------------------
    async def apply(self, patch: dict[str, Any], route: Route) -> str:
        """Apply a patch; returns where it went."""
        path = patch["path"]
        conn = self.hub.frontend_for(route.conversation_id, route.username, path)
        if conn is not None:
            answer = await self._ask_frontend(conn, route, "notebook_patch", path=path, patch=patch)
            status = answer.get("status")
            if status == "applied":
                return "applied in the open notebook"
            reason = answer.get("reason") or ""
            if status == "rejected":
                raise ToolError("rejected", f"the user rejected the change: {reason}".rstrip(": "))
            raise ToolError(
                "conflict" if status == "conflict" else "tool_failed", reason or str(status)
            )
        nb = await self.load(path)
        new = apply_patch(nb, patch)
        checkpoint = await self._save(path, new, checkpoint=True)
        return f"saved (checkpoint {checkpoint})" if checkpoint else "saved"

    # -- execution ---------------------------------------------------------------
    async def run_cell(
        self, path: str, cell_id: str, route: Route, *, allow_unsandboxed: bool = False
    ) -> ExecResult:
        """``allow_unsandboxed``: see ``KernelRunner.execute``."""
        conn = self.hub.frontend_for(route.conversation_id, route.username, path)
        if conn is not None:
            # The browser runs the cell in the notebook's session: the server checks that
            # session's kernel itself, and the browser runs only in that very kernel.
            kid = await self.kernels.kernel_for(path, start=False)
            if kid is not None:
                await self.kernels.require_sandbox(kid, allow_unsandboxed=allow_unsandboxed)
            answer = await self._ask_frontend(
                conn, route, "notebook_execute", path=path, cell_id=cell_id, kernel_id=kid
            )
            if answer.get("status") == "rejected":
                raise ToolError("rejected", answer.get("reason") or "the user did not run the cell")
            outputs = [o for o in answer.get("outputs") or [] if isinstance(o, dict)]
            return ExecResult(
                status="ok" if answer.get("status") == "ok" else "error", outputs=outputs
            )
        nb = await self.load(path)
        cell = nb["cells"][index_of(nb, cell_id)]
        if cell.get("cell_type") != "code":
            raise ToolError("validation_error", f"cell {cell_id} is not a code cell")
        source = source_of(cell)
        result = await self.execute(path, source, allow_unsandboxed=allow_unsandboxed)
        # Write the outputs back, unless the cell changed meanwhile.
        nb = await self.load(path)
        try:
            cell = nb["cells"][index_of(nb, cell_id)]
        except ToolError:
            return result
        if source_of(cell) == source:
            cell["outputs"] = result.outputs
            cell["execution_count"] = result.execution_count
            await self._save(path, nb, checkpoint=False)
        return result

    async def execute(self, path: str, code: str, *, allow_unsandboxed: bool = False) -> ExecResult:
        if await self.kernels.kernel_for(path, start=False) is None:
            await self._require_known_kernelspec(path)
        kid = await self.kernels.kernel_for(path)
        assert kid is not None
        return await self.kernels.execute(
            kid, code, timeout=self.execute_timeout, allow_unsandboxed=allow_unsandboxed
        )
