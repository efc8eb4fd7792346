"""The sandbox as the default path: which kernels are sandboxed, the server's default
kernel, and unsandboxed kernelspecs labelled (or hidden) in every picker.

Whether a kernel is sandboxed is decided from server-side facts only: a running kernel's
provisioner object (``SandboxProvisioner``), a kernelspec's provisioner entry point
(``aiide-sandbox``). Never from what a browser says.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel

log = logging.getLogger("aiide")

#: The sandboxed kernelspec aiide installs (share/kernels/aiide-python).
SANDBOXED_KERNEL = "aiide-python"
#: The provisioner entry point that makes a kernelspec sandboxed.
PROVISIONER = "aiide-sandbox"
#: The module a gateway's sandboxed kernelspec runs (``python -m aiide_kernel.launch``).
LAUNCHER = "aiide_kernel.launch"
#: Appended to the display name of kernelspecs that run code as the server's user.
UNSANDBOXED_SUFFIX = " (not sandboxed)"
#: Why the agent refuses code for a notebook whose kernel is not sandboxed (error code
#: ``kernel_not_sandboxed``; the chat offers to switch the notebook's kernel).
NOT_SANDBOXED = (
    "this notebook's kernel is not sandboxed: code the agent runs there would run as "
    "the server's user. Switch the notebook to the sandboxed kernel "
    "('Python 3 (sandboxed)'), then ask again"
)
#: Config sections whose ``default_kernel_name`` the user may have set.
_KM_SECTIONS = (
    "MultiKernelManager",
    "AsyncMultiKernelManager",
    "MappingKernelManager",
    "AsyncMappingKernelManager",
)


def spec_is_sandboxed(spec: KernelSpec | dict[str, Any] | None) -> bool:
    """A kernelspec whose kernels start through the aiide sandbox provisioner, or (on a
    kernel gateway, which ignores provisioners) through the sandbox launcher
    (``aiide_kernel/launch/kernelspec.py``). ``spec`` may also be a kernelspec model
    (``{"name", "spec": {...}}``) as a gateway's REST API answers it."""
    if isinstance(spec, dict) and isinstance(spec.get("spec"), dict):
        spec = spec["spec"]
    metadata: Any
    argv: Any
    if isinstance(spec, KernelSpec):
        metadata, argv = spec.metadata, spec.argv
    elif isinstance(spec, dict):
        metadata, argv = spec.get("metadata"), spec.get("argv")
    else:
        return False
    provisioner = (metadata if isinstance(metadata, dict) else {}).get("kernel_provisioner")
    if isinstance(provisioner, dict) and provisioner.get("provisioner_name") == PROVISIONER:
        return True
    args = [str(a) for a in argv] if isinstance(argv, list) else []
    return any(a == "-m" and b == LAUNCHER for a, b in itertools.pairwise(args))


def kernel_is_sandboxed(kernel_manager: Any) -> bool:
    """A running kernel (its KernelManager) started by the sandbox provisioner."""
    from aiide_kernel.provisioner import SandboxProvisioner

    return isinstance(getattr(kernel_manager, "provisioner", None), SandboxProvisioner)


def is_gateway_kernel(kernel_manager: Any) -> bool:
    """A kernel on a kernel gateway (``--gateway-url``): only its kernelspec says."""
    try:
        from jupyter_server.gateway.managers import GatewayKernelManager
    except ImportError:  # pragma: no cover - jupyter_server always has it
        return False
    return isinstance(kernel_manager, GatewayKernelManager)


class LabelledKernelSpecManager(KernelSpecManager):  # type: ignore[misc]
    """Jupyter's own KernelSpecManager, with unsandboxed kernelspecs labelled in their
    display name (the launcher and kernel pickers show it) or hidden altogether.

    Not configured as ``ServerApp.kernel_spec_manager_class`` (that would also replace
    the gateway's manager under ``--gateway-url``): ``install_labels`` turns the server's
    plain KernelSpecManager into one of these once the extension loads.
    """

    #: Hide unsandboxed kernelspecs: not listed, and refused by name.
    aiide_hide_unsandboxed = False

    def _plain_spec(self, kernel_name: str) -> KernelSpec:
        return super().get_kernel_spec(kernel_name)

    def find_kernel_specs(self) -> dict[str, str]:
        found: dict[str, str] = super().find_kernel_specs()
        if not self.aiide_hide_unsandboxed:
            return found
        kept = {}
        for name, resource_dir in found.items():
            try:
                if spec_is_sandboxed(self._plain_spec(name)):
                    kept[name] = resource_dir
            except Exception as e:  # unreadable: not offered
                log.debug("aiide: kernelspec %s: %s", name, e)
        return kept

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        spec = self._plain_spec(kernel_name)
        if spec_is_sandboxed(spec):
            return spec
        if self.aiide_hide_unsandboxed:
            raise NoSuchKernel(kernel_name)
        if not spec.display_name.endswith(UNSANDBOXED_SUFFIX):
            spec.display_name = spec.display_name + UNSANDBOXED_SUFFIX
        return spec


def _user_set_default(config: Any) -> bool:
    return any(
        section in config and "default_kernel_name" in config[section] for section in _KM_SECTIONS
    )


def install_defaults(server: Any, *, hide_unsandboxed: bool) -> None:
    """New notebooks get the sandboxed kernel unless the user chose another default;
    unsandboxed kernelspecs are labelled, or hidden when ``hide_unsandboxed``."""
    if getattr(getattr(server, "gateway_config", None), "gateway_enabled", False):
        return  # kernels and their specs are the gateway's (its own default applies)
    ksm = server.kernel_spec_manager
    if type(ksm) is KernelSpecManager:
        ksm.__class__ = LabelledKernelSpecManager
    if isinstance(ksm, LabelledKernelSpecManager):
        ksm.aiide_hide_unsandboxed = hide_unsandboxed
    elif hide_unsandboxed:
        log.warning(
            "aiide: hide_unsandboxed_kernels is set but the server's kernel spec manager "
            "(%s) is not Jupyter's own: unsandboxed kernels are not hidden",
            type(ksm).__name__,
        )
    km = server.kernel_manager
    if _user_set_default(server.config):
        default = km.default_kernel_name
        try:
            sandboxed = spec_is_sandboxed(ksm.get_kernel_spec(default))
        except Exception:
            sandboxed = False
        if not sandboxed:
            log.warning(
                "aiide: the default kernel %r (configured) is not sandboxed: new notebooks "
                "run code as the server's user",
                default,
            )
        return
    try:
        spec = ksm.get_kernel_spec(SANDBOXED_KERNEL)
    except Exception:
        spec = None
    if not spec_is_sandboxed(spec):
        log.warning(
            "aiide: the %r kernelspec is not installed (make sandbox): the default kernel stays %r",
            SANDBOXED_KERNEL,
            km.default_kernel_name,
        )
        return
    km.default_kernel_name = SANDBOXED_KERNEL
