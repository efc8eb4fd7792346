"""Per-kernel run directories: the ipc sockets, the connection file, generated /etc.

ZMQ ``ipc`` sockets live in ``<run_dir>/ipc``, bind-mounted at the same path inside
the sandbox, so one connection file serves both sides (TCP loopback is unreachable
from a kernel whose network namespace is unshared).

Run dirs sit in ``<run root>/aiide-run-<server uid>``, a directory only the server
may list: a kernel whose workspace contains the run root (a server started in
``/tmp``) finds neither another kernel's sockets nor its connection file (that
directory is also masked inside the sandbox).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass

from .policy import SandboxConfigError


def run_parent(root: str) -> str:
    """Where this server's run dirs go under ``root``."""
    return os.path.join(root or tempfile.gettempdir(), f"aiide-run-{os.geteuid()}")


def _private_parent(root: str) -> str:
    parent = run_parent(root)
    with contextlib.suppress(FileExistsError):
        os.mkdir(parent, 0o711)
    st = os.lstat(parent)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise SandboxConfigError(
            f"{parent} is not this server's directory (made by someone else?): not putting "
            "kernel sockets there. Remove it, or set c.SandboxProvisioner.run_root"
        )
    if stat.S_IMODE(st.st_mode) != 0o711:
        os.chmod(parent, 0o711)  # listable by nobody else, traversable for the sandbox uid
    return parent


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
        for attempt in range(3):
            try:
                path = tempfile.mkdtemp(prefix="aiide-", dir=_private_parent(root))
                break
            except FileNotFoundError:  # the last kernel's remove() took the parent away
                if attempt == 2:
                    raise
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
        # The last one leaves the run root as found (unless the bwrap filter's cache,
        # seccomp.load_filter, keeps the directory for the next server or launcher).
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(self.path))
