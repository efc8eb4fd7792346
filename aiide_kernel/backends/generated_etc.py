"""The generated /etc a sandboxed kernel sees: who it is, and localhost."""

from __future__ import annotations

import os

from .base import LaunchSpec


def write_etc(spec: LaunchSpec) -> str:
    etc = os.path.join(spec.run_dir, "etc")
    os.makedirs(etc, exist_ok=True)
    files = {
        "passwd": f"kernel:x:{spec.uid}:{spec.gid}:sandboxed kernel:/tmp/home:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        "group": f"kernel:x:{spec.gid}:\nnogroup:x:65534:\n",
        "hosts": "127.0.0.1 localhost\n::1 localhost\n",
        "hostname": "sandbox\n",
    }
    for name, content in files.items():
        path = os.path.join(etc, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(content)
        os.chmod(path, 0o644)
    os.chmod(etc, 0o755)
    return etc
