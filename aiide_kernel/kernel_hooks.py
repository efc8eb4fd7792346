"""What a sandboxed ipykernel loads at start: an IPython extension, not exec_lines.

``add_kernel_hooks`` (``backends/base.py``) adds ``--IPKernelApp.extra_extensions=
aiide_kernel.kernel_hooks`` to an ipykernel command; the sandbox binds this package
read-only. An extension is an import and a call: ``exec_lines`` went through
``run_cell``, whose first call compiles IPython's tokenizer patterns, about 15 ms on
every cold start that a plain kernel only pays at its first cell.

What to install comes from the kernel's environment, set by the same launch
(``kernel_environment``): ``AIIDE_NETWORK`` and ``AIIDE_SEALED_HOMES``. Keep this
module free of imports beyond the standard library's cheapest: it runs on the
start path of every sandboxed kernel.
"""

from __future__ import annotations

import os
from typing import Any

NO_NETWORK_PIP = (
    "aiide: this kernel runs in a sandbox without network access "
    "(c.SandboxPolicy.allow_network is False), so %pip cannot download packages. "
    "Install them in the environment JupyterLab runs from, or ask for a kernel "
    "with network access."
)
SEALED_HOME = (
    "aiide: a sandboxed kernel cannot create new files or folders at the top of your "
    "home directory (a new dot-file there could run outside the sandbox at your next "
    "login). Write into a folder instead (e.g. results/out.csv), or start JupyterLab "
    "in a folder of your home."
)
_EROFS = 30


def pip_without_network(line: str = "") -> None:
    """``%pip`` when the network is off: says why at once instead of retrying for a
    minute and failing obscurely."""
    print(NO_NETWORK_PIP)


def sealed_home_note(
    shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None
) -> None:
    """Shows the error, then why a new name at the top of a sealed home fails."""
    shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
    name = getattr(value, "filename", None)
    homes = os.environ.get("AIIDE_SEALED_HOMES", "").split(":")
    if (
        getattr(value, "errno", None) == _EROFS
        and isinstance(name, str)
        and os.path.dirname(os.path.abspath(name)) in homes
    ):
        print(SEALED_HOME)


def load_ipython_extension(ip: Any) -> None:
    if os.environ.get("AIIDE_NETWORK") == "off":
        ip.register_magic_function(pip_without_network, "line", "pip")
    if os.environ.get("AIIDE_SEALED_HOMES"):
        ip.set_custom_exc((OSError,), sealed_home_note)
