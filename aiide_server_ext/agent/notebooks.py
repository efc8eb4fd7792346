"""Where a notebook change goes: to the front end that has the notebook open, or, with no
browser attached, into the file after a checkpoint.

Either way the change is a cell-level patch (``patches.py``), and cell runs report their
outputs back to the run.

The server reads and writes notebooks with ``fsguard``, not through Jupyter's contents
manager: the workspace is writable by sandboxed kernels, and the contents manager follows
links (a notebook, its ``.~`` backup or its checkpoint may be a link to ``~/.bashrc``) and
checks a path before it uses it. Here a notebook is resolved race-free under the root, the
hidden rule holds for the resolved path, only a regular file is read, and a write is a
fresh temporary file renamed over the target in the folder that was checked. The
checkpoint goes where the lab's "Revert to checkpoint" finds it.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import time
import uuid
from dataclasses import dataclass
from typing import Any

from .. import fsguard
from .errors import ToolError
from .fanout import Connection, Fanout
from .kernels import ExecResult, KernelRunner
from .patches import apply_patch, ensure_ids, index_of, source_of

#: A notebook larger than this is not read by the agent (a flood of outputs saved in it).
MAX_NOTEBOOK_BYTES = 256 * 1024 * 1024
#: How long a notebook that does not parse is read again (a save may be half written),
#: and how often. A save of even a large notebook is well under a second.
SAVE_SETTLE_SECONDS = 2.0
SAVE_POLL_SECONDS = 0.05
#: The contents manager's default checkpoint folder and id (``FileCheckpoints``).
CHECKPOINT_DIR = ".ipynb_checkpoints"
CHECKPOINT_ID = "checkpoint"


def _refusal(path: str, e: fsguard.Refused) -> ToolError:
    if e.code == "not_found":
        return ToolError("not_found", f"no notebook {path!r}")
    if e.confinement:
        return ToolError("path_outside_root", e.message)
    return ToolError("tool_failed", e.message)


def read_notebook(
    root: str,
    path: str,
    *,
    allow_hidden: bool = False,
    limit: int = MAX_NOTEBOOK_BYTES,
    settle: float = SAVE_SETTLE_SECONDS,
) -> tuple[dict[str, Any], str, bytes]:
    """The notebook at ``path`` (nbformat 4, cell ids ensured), its resolved path under the
    root, and the bytes it was parsed from. Blocking: call it in a thread.

    Jupyter saves a notebook in place (its ``atomic_writing`` keeps a backup copy, then
    rewrites the file), so a read during the lab's save (after an agent edit, a cell run,
    an autosave) sees a truncated file. Bytes that do not parse are read again for up to
    ``settle`` seconds before the notebook is called invalid."""
    import nbformat  # brings jsonschema: not at server start

    if not path.endswith(".ipynb"):
        raise ToolError("validation_error", f"{path!r} is not a notebook (.ipynb)")
    deadline = time.monotonic() + settle
    while True:
        data, rel = _read_bytes(root, path, allow_hidden=allow_hidden, limit=limit)
        try:
            nb: dict[str, Any] = nbformat.reads(data.decode("utf-8"), as_version=4)  # type: ignore[no-untyped-call]
        except Exception:
            if time.monotonic() < deadline:
                time.sleep(SAVE_POLL_SECONDS)
                continue
            raise ToolError("tool_failed", f"{path!r} is not a valid notebook") from None
        ensure_ids(nb)
        return nb, rel, data


def _read_bytes(root: str, path: str, *, allow_hidden: bool, limit: int) -> tuple[bytes, str]:
    try:
        with fsguard.resolve(root, path, allow_hidden=allow_hidden) as r:
            fd = fsguard.open_regular(r, path)
            rel = r.rel
        try:
            size = os.fstat(fd).st_size
            if size > limit:
                raise ToolError(
                    "too_large",
                    f"{path!r} is {size >> 20} MiB; the agent reads notebooks "
                    f"up to {limit >> 20} MiB (clear its outputs to work on it)",
                )
            return fsguard.read_fd(fd, limit), rel
        finally:
            os.close(fd)
    except fsguard.Refused as e:
        raise _refusal(path, e) from None


def write_notebook(
    root: str,
    path: str,
    nb: dict[str, Any],
    *,
    allow_hidden: bool = False,
    checkpoint_of: tuple[str, bytes] | None = None,
) -> None:
    """Write ``nb`` over the notebook at ``path``; first, with ``checkpoint_of`` (the
    resolved path and bytes ``read_notebook`` gave), save those bytes as its checkpoint.
    Blocking: call it in a thread."""
    import nbformat

    text = nbformat.writes(nbformat.from_dict(nb), version=nbformat.NO_CONVERT)  # type: ignore[no-untyped-call]
    try:
        if checkpoint_of is not None:
            rel, old = checkpoint_of
            folder, name = posixpath.split(rel)
            stem, ext = posixpath.splitext(name)
            where = posixpath.join(folder, CHECKPOINT_DIR, f"{stem}-{CHECKPOINT_ID}{ext}")
            # The server's own file: no link anywhere on its path, whatever sits at its
            # name is replaced (never written through), its folder made if missing.
            fsguard.write_atomic(
                root,
                where,
                old,
                allow_hidden=True,
                links=False,
                replace_any=True,
                make_folder=True,
            )
        fsguard.write_atomic(root, path, text.encode("utf-8"), allow_hidden=allow_hidden)
    except fsguard.Refused as e:
        raise _refusal(path, e) from None


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
        fanout: Fanout,
        *,
        frontend_timeout: float = 120.0,
        execute_timeout: float = 120.0,
    ) -> None:
        # Only its root is used: files are reached through fsguard (see the module doc).
        self.root_dir = fsguard.real_root(contents_manager.root_dir)
        self.kernels = kernels
        self.fanout = fanout
        self.frontend_timeout = frontend_timeout
        self.execute_timeout = execute_timeout
        self.pending: dict[str, Pending] = {}
        #: What a model may read of a notebook or file, when a course says (the hub's
        #: ``tutoring.TutorGuard``: assignments' hidden tests and instructor-only cells
        #: withheld). None: everything. Every read for a prompt or a tool goes through it.
        self.guard: Any = None

    # -- files -------------------------------------------------------------------
    async def load(
        self, path: str, *, allow_hidden: bool = False, raw: bool = False
    ) -> dict[str, Any]:
        """The notebook as a model may read it (``guard``); ``raw``: as it is on disk, for
        running its cells (never shown to a model)."""
        nb, _, _ = await asyncio.to_thread(
            read_notebook, self.root_dir, path, allow_hidden=allow_hidden
        )
        return nb if raw or self.guard is None else dict(self.guard.notebook(path, nb))

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

    async def _update(
        self, path: str, change: Any, *, checkpoint: bool, allow_hidden: bool = False
    ) -> dict[str, Any] | None:
        """Read the notebook, ``change(nb)`` (a new notebook, or None: leave it), write it
        back, after a checkpoint of what was read when asked; returns what was written."""
        nb, rel, data = await asyncio.to_thread(
            read_notebook, self.root_dir, path, allow_hidden=allow_hidden
        )
        new = change(nb)
        if new is None:
            return None
        await asyncio.to_thread(
            write_notebook,
            self.root_dir,
            path,
            new,
            allow_hidden=allow_hidden,
            checkpoint_of=(rel, data) if checkpoint else None,
        )
        return dict(new)

    # -- front end ---------------------------------------------------------------
    async def _ask_frontend(
        self, conn: Connection, route: Route, kind: str, **fields: Any
    ) -> dict[str, Any]:
        request_id = "rq_" + uuid.uuid4().hex[:16]
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = Pending(future, conn, route)
        try:
            self.fanout.emit(
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
    async def apply(
        self, patch: dict[str, Any], route: Route, *, allow_hidden: bool = False
    ) -> str:
        """Apply a patch; returns where it went."""
        path = patch["path"]
        conn = self.fanout.frontend_for(route.conversation_id, route.username, path)
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
        await self._update(
            path, lambda nb: apply_patch(nb, patch), checkpoint=True, allow_hidden=allow_hidden
        )
        return f"saved (checkpoint {CHECKPOINT_ID})"

    # -- execution ---------------------------------------------------------------
    async def run_cell(
        self, path: str, cell_id: str, route: Route, *, allow_unsandboxed: bool = False
    ) -> ExecResult:
        """``allow_unsandboxed``: see ``KernelRunner.execute``."""
        conn = self.fanout.frontend_for(route.conversation_id, route.username, path)
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
        nb = await self.load(path, raw=True)
        cell = nb["cells"][index_of(nb, cell_id)]
        if cell.get("cell_type") != "code":
            raise ToolError("validation_error", f"cell {cell_id} is not a code cell")
        source = source_of(cell)
        result = await self.execute(path, source, allow_unsandboxed=allow_unsandboxed)

        def with_outputs(nb: dict[str, Any]) -> dict[str, Any] | None:
            # Write the outputs back, unless the cell changed (or went) meanwhile.
            try:
                cell = nb["cells"][index_of(nb, cell_id)]
            except ToolError:
                return None
            if source_of(cell) != source:
                return None
            cell["outputs"] = result.outputs
            cell["execution_count"] = result.execution_count
            return nb

        await self._update(path, with_outputs, checkpoint=False)
        return result

    async def execute(self, path: str, code: str, *, allow_unsandboxed: bool = False) -> ExecResult:
        if await self.kernels.kernel_for(path, start=False) is None:
            await self._require_known_kernelspec(path)
        kid = await self.kernels.kernel_for(path)
        assert kid is not None
        return await self.kernels.execute(
            kid, code, timeout=self.execute_timeout, allow_unsandboxed=allow_unsandboxed
        )
