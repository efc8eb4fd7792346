"""The sandboxed kernel's entry point: ``ipykernel_launcher`` without the debugger.

A sandboxed kernelspec declares ``"debugger": false`` (the lab offers no debugger for
it), yet ipykernel imports debugpy whenever it can: about 90 ms of every cold start
on a 2-core machine, plus a ``uname -p`` subprocess that debugpy's logging runs at
import. Starting through this module keeps debugpy out while the kernel starts
(ipykernel then reports ``debugger: false`` in its ``kernel_info``, as the kernelspec
says); once the kernel is up, user code may import debugpy as usual.

Keep this module to the standard library: it runs on the start path of every
sandboxed kernel (``add_kernel_hooks`` in ``backends/base.py`` puts it there).
"""

from __future__ import annotations

import sys

#: The module ipykernel would import to offer a debugger.
DEBUGGER_MODULE = "debugpy"


def main() -> None:
    if sys.path and sys.path[0] == "":  # as ipykernel_launcher: not the cwd's modules
        del sys.path[0]
    # A None entry makes ``import debugpy`` raise ImportError, which ipykernel takes
    # for "debugger not available".
    sys.modules[DEBUGGER_MODULE] = None  # type: ignore[assignment]
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    try:
        app.initialize()  # type: ignore[no-untyped-call]
    finally:
        if sys.modules.get(DEBUGGER_MODULE, False) is None:
            del sys.modules[DEBUGGER_MODULE]
    app.start()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
