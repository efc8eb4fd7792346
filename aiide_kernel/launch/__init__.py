"""Starting a sandboxed kernel, in one place.

- ``recipe``: the one way a launch is assembled (provisioner, warm pool and the
  kernel-gateway launcher all go through it).
- ``launcher``: the process a kernel gateway's kernelspec runs
  (``python -m aiide_kernel.launch``), for gateways that ignore kernel provisioners.
- ``relay``: that launcher's bridge between the gateway's TCP ports and the kernel's
  ipc sockets; ``reaper``: cleans up after launchers that died.
- ``kernelspec``: writes the kernelspec that runs the launcher
  (``python -m aiide_kernel.launch.kernelspec``).

Kept free of imports so ``python -m aiide_kernel.launch`` loads only the launcher.
"""
