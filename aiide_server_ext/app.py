"""The aiide server extension: configuration, services and routes."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, Int, List, Unicode

from ._version import __version__
from .csp import apply_csp
from .extension_parts import ExtensionPart, load_parts
from .handlers import default_handlers
from .output_cap import apply_output_cap
from .seams import Gate
from .status import StatusService


class AiideExtension(ExtensionApp):  # type: ignore[misc]
    """aiide inside a Jupyter server (``c.AiideExtension.*``)."""

    name = "aiide_server_ext"
    extension_url = "/lab"
    load_other_extensions = True

    model_key_envs = List(
        Unicode(),
        default_value=["ANTHROPIC_API_KEY", "OPENAI_API_KEY"],
        config=True,
        help="Environment variables whose presence means a model provider is configured, "
        "where the agent is not loaded (jupyter aiide check). In the server the agent's "
        "models decide: one usable by the caller (its provider needs no key, or has one) "
        "is a configured model.",
    )
    prewarm_kernels = Bool(
        True,
        config=True,
        help="Start the warm pool of sandboxed kernels for the server's root directory "
        "when the server starts, so the first notebook opens without waiting.",
    )
    prewarm_delay = Float(
        2.0, config=True, help="Seconds after server start before pre-starting kernels."
    )

    hide_unsandboxed_kernels = Bool(
        False,
        config=True,
        help="Hide kernelspecs whose kernels are not sandboxed (e.g. 'python3'): not "
        "offered by the launcher or kernel pickers, and refused when asked for by name. "
        "Otherwise they are offered with '(not sandboxed)' after their name. Either way "
        "new notebooks get the sandboxed kernel unless "
        "c.MappingKernelManager.default_kernel_name says otherwise.",
    )

    gc_young_threshold = Int(
        7000,
        min=0,
        config=True,
        help="Allocations between the collector's young-generation passes (Python's default "
        "is 700; 0 leaves it alone). Streaming hundreds of chats keeps thousands of small "
        "objects in flight: at 700 many outlive two young passes, get promoted and trigger "
        "a full pass over every live stream (40-70 ms) about once a second; at 7000 that "
        "happens about ten times less often, for a few MB of memory.",
    )

    @property
    def server(self) -> Any:
        if self.serverapp is None:
            raise RuntimeError("the aiide extension runs inside a Jupyter server")
        return self.serverapp

    def initialize_settings(self) -> None:
        # Everything the server has loaded so far lives as long as the process. Frozen, the
        # collector's full passes stop rescanning it: without this, the extra allocations
        # of aiide's start triggered one more full pass (~60 ms) over the whole server.
        # (Cyclic garbage alive at this moment is frozen too: a one-off, bounded amount.)
        gc.freeze()
        if self.gc_young_threshold:
            gc.set_threshold(self.gc_young_threshold, *gc.get_threshold()[1:])
        from aiide_kernel.policy import SandboxPolicy

        from .kernelspecs import install_defaults

        install_defaults(self.server, hide_unsandboxed=self.hide_unsandboxed_kernels)
        policy = SandboxPolicy(config=self.server.config)
        self.settings.update(
            {
                "aiide_version": __version__,
                "aiide_status": StatusService(policy.backend, list(self.model_key_envs)),
            }
        )
        # The lab page's Content-Security-Policy (the net under output isolation).
        apply_csp(self.settings, self.server.config)
        # Sandboxed kernels' output to the browser is capped (a flood must not kill the tab).
        apply_output_cap(self.settings, self.server)
        self.parts: list[ExtensionPart] = load_parts(self)
        for part in self.parts:
            part.initialize(self.settings)
        self.log.info("aiide %s: sandbox backend %s", __version__, policy.backend)

    def use_gate(self, gate: Gate) -> None:
        """Every part and route of this extension asks ``gate`` from now on. How a server
        extension loaded after this one (the hub's course gate) puts a gate in front of the
        gateway's: the parts read the gate from this extension's settings
        (``seams.gate_of``), where the gateway part put its own, and the routes from the
        server's."""
        self.settings["aiide_gate"] = gate
        self.server.web_app.settings["aiide_gate"] = gate

    def initialize_handlers(self) -> None:
        self.handlers.extend(default_handlers)
        for part in self.parts:
            self.handlers.extend(part.handlers())

    async def _start_pool(self) -> None:
        from aiide_kernel.pool import KernelPool

        pool = KernelPool.instance(config=self.server.config)
        if pool.size <= 0 or not self.prewarm_kernels:
            return
        if getattr(getattr(self.server, "gateway_config", None), "gateway_enabled", False):
            return  # kernels run on the gateway (--gateway-url): nothing to pre-start here
        await asyncio.sleep(self.prewarm_delay)
        try:
            from aiide_kernel.backends import get_backend
            from aiide_kernel.policy import SandboxPolicy
            from aiide_kernel.provisioner import SandboxProvisioner
            from aiide_kernel.rundir import sandbox_identity

            spec = self.server.kernel_spec_manager.get_kernel_spec("aiide-python")
            prov = spec.metadata.get("kernel_provisioner", {}).get("config", {})
            policy = SandboxPolicy(config=self.server.config)
            if not await asyncio.to_thread(lambda: get_backend(policy.backend).check().available):
                return
            argv = [sys.executable if a in ("python", "python3") else a for a in spec.argv]
            # The provisioner's own traits (and the kernelspec's overrides of them) decide
            # the uid and run directory, exactly as for a kernel started by a user.
            provisioner = SandboxProvisioner(config=self.server.config, **prov)
            uid, gid = sandbox_identity(provisioner.sandbox_uid)
            workspace = policy.resolve_workspace(None, os.path.realpath(self.server.root_dir))
            pool.prewarm(argv, policy, workspace, uid, gid, provisioner.run_root)
        except Exception as e:  # the pool is an optimisation: never block the server
            self.log.warning("aiide: not pre-starting kernels: %s", e)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """Runs once the event loop does: pre-start kernels in the background."""
        from aiide_kernel.pool import KernelPool

        KernelPool.instance(config=self.server.config)
        task = asyncio.create_task(self._start_pool())
        self._background = {task}
        task.add_done_callback(self._background.discard)
        for part in self.parts:
            await part.start()

    async def stop_extension(self) -> None:
        from aiide_kernel.pool import KernelPool

        for part in reversed(getattr(self, "parts", [])):
            await part.stop()
        if KernelPool.initialized():
            await KernelPool.instance().shutdown()
