"""Where a headless run may write: its output notebook, nothing else.

The tool root is the input's folder (where the data is, and the kernel's working directory),
so the agent reads what the notebook reads. The output notebook may live elsewhere (``-o``):
the model names it ``RunBridge.name`` and this bridge maps that name to the output file.
Every other notebook, the input first, is read-only to the notebook tools; the injected
parameters cell is read-only too (it is the run's record of its parameters), and running
the notebook's ``parameters`` cell runs the injected cell after it, as papermill orders them.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from typing import Any

from ..agent.errors import ToolError
from ..agent.kernels import ExecResult, KernelRunner
from ..agent.notebooks import Route
from .trace import Trace, TracingBridge


class RunKernels(KernelRunner):
    """One kernel per run, started in the input's folder whatever notebook path asks: a
    relative data path means the same thing with ``-o`` anywhere."""

    #: Told of the kernel once it started (``%ai`` in it is answered by the run).
    on_start: Callable[[str], None] | None = None

    async def kernel_for(self, path: str, *, start: bool = True) -> str | None:
        known = self.own.get("")
        kid = await super().kernel_for("", start=start)
        if kid is not None and kid != known and self.on_start is not None:
            self.on_start(kid)
        return kid


class RunBridge(TracingBridge):
    """Notebook work of one run. Rooted at the input's folder (other notebooks are read
    there, read-only); the output goes through a bridge of its own, rooted at its folder."""

    def __init__(
        self,
        contents_manager: Any,
        kernels: KernelRunner,
        fanout: Any,
        *,
        output_manager: Any,
        output_name: str,
        name: str,
        execute_timeout: float,
        frontend_timeout: float = 120.0,
    ) -> None:
        super().__init__(
            contents_manager,
            kernels,
            fanout,
            frontend_timeout=frontend_timeout,
            execute_timeout=execute_timeout,
        )
        self.output = TracingBridge(
            output_manager, kernels, fanout, execute_timeout=execute_timeout
        )
        self.out_name = output_name
        #: What the model calls the output notebook.
        self.name = name
        self.parameters_id: str | None = None
        self.injected_id: str | None = None

    def set_trace(self, trace: Trace) -> None:
        self.trace = self.output.trace = trace

    @property
    def failure(self) -> str | None:
        """Why the kernel failed (died, did not start), if it did."""
        return self.kernel_failed or self.output.kernel_failed

    def is_output(self, path: str) -> bool:
        return posixpath.normpath(path.strip().strip("/")) == self.name

    def _refuse(self, path: str) -> ToolError:
        return ToolError(
            "read_only_notebook",
            f"{path} is read-only in this run: it writes only its output notebook {self.name}",
        )

    async def load(self, path: str, **kwargs: Any) -> dict[str, Any]:
        if self.is_output(path):
            return await self.output.load(self.out_name, **kwargs)
        return await super().load(path, **kwargs)

    async def apply(self, patch: dict[str, Any], route: Route, **kwargs: Any) -> str:
        if not self.is_output(patch["path"]):
            raise self._refuse(patch["path"])
        if self.injected_id and any(
            op.get("cell_id") == self.injected_id and op["op"] in ("replace", "delete")
            for op in patch["ops"]
        ):
            raise ToolError(
                "read_only_cell",
                f"cell {self.injected_id} holds the run's parameters and cannot be changed",
            )
        return await self.output.apply({**patch, "path": self.out_name}, route, **kwargs)

    async def run_as_is(self, cell_id: str, route: Any) -> ExecResult:
        """One cell of the output, without the injected cell after the defaults (running
        the notebook in order does that by itself)."""
        return await self.output.run_cell(self.out_name, cell_id, route)

    async def run_cell(
        self, path: str, cell_id: str, route: Any, *, allow_unsandboxed: bool = False
    ) -> ExecResult:
        if not self.is_output(path):
            raise self._refuse(path)
        run = self.output.run_cell
        result = await run(self.out_name, cell_id, route, allow_unsandboxed=allow_unsandboxed)
        if cell_id == self.parameters_id and self.injected_id and result.status == "ok":
            # papermill's order: the defaults, then the injected values over them. A model
            # that re-runs the defaults gets the run's parameters back, not the defaults.
            await run(self.out_name, self.injected_id, route, allow_unsandboxed=allow_unsandboxed)
        return result


def model_name(output: str, input_dir: str) -> str:
    """The output as the model names it: its path under the input's folder, else its name."""
    rel = os.path.relpath(output, input_dir)
    return os.path.basename(output) if rel.startswith("..") else rel.replace(os.sep, "/")
