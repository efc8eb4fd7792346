"""Per-kernel run directories: the ipc sockets, the connection file, generated /etc.

ZMQ ``ipc`` sockets live in ``<run_dir>/ipc``, bind-mounted at the same path inside
the sandbox, so one connection file serves both sides (TCP loopback is unreachable
from a kernel whose network namespace is unshared).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass


def sandbox_identity(configured_uid: int) -> tuple[int, int]:
    """The uid/gid kernels run as: the server's own, or a dedicated one under root."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    return configured_uid, configured_uid


@dataclass
class RunDir:
    path: str
    ipc_dir: str

    @property
    def connection_file(self) -> str:
        return os.path.join(self.ipc_dir, "connection.json")

    @property
    def ipc_prefix(self) -> str:
        return os.path.join(self.ipc_dir, "k")

    @classmethod
    def create(cls, root: str, uid: int, gid: int) -> RunDir:
        root = root or tempfile.gettempdir()
        os.makedirs(root, exist_ok=True)
        path = tempfile.mkdtemp(prefix="aiide-", dir=root)
        # Traversable but not listable, so the sandbox uid reaches ipc/ and etc/.
        os.chmod(path, 0o711)
        ipc = os.path.join(path, "ipc")
        os.mkdir(ipc, 0o700)
        if os.geteuid() == 0:
            os.chown(ipc, uid, gid)
        return cls(path, ipc)

    def hand_to_kernel(self, uid: int, gid: int) -> None:
        """The kernel must read its connection file (it holds the HMAC key)."""
        if os.geteuid() == 0 and os.path.exists(self.connection_file):
            os.chown(self.connection_file, uid, gid)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
