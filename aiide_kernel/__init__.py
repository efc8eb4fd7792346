"""The executor: kernels that run untrusted code in a sandbox.

``provisioner`` (jupyter_client's ``aiide-sandbox`` kernel provisioner) and ``pool``
(pre-started kernels) start kernels through ``launch.recipe`` on a ``backends``
sandbox (bubblewrap or Docker) under a ``policy``. Nothing is imported here: the
kernel's own start-up (``kernel_hooks``, ``magics``) loads this package inside the
sandbox, where every import is start-up time.
"""
