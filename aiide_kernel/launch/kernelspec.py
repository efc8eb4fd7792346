"""Write the kernelspec that gives a kernel gateway sandboxed kernels.

Enterprise Gateway ignores kernel provisioners, so its ``aiide-python`` kernelspec
runs ``aiide_kernel.launch`` as argv instead. The interpreter in argv is the
kernel's Python (it must have aiide_kernel and ipykernel; the sandbox binds its
prefix read-only), not the gateway's own::

    python -m aiide_kernel.launch.kernelspec --prefix /opt/eg-venv            # its kernels dir
    python -m aiide_kernel.launch.kernelspec --dir /usr/local/share/jupyter/kernels \\
        --backend docker -- --memory=1G
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Any

DEFAULT_NAME = "aiide-python"
_LOGOS = ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg")


def gateway_kernelspec(
    python: str,
    backend: str = "bwrap",
    launcher_args: list[str] | None = None,
    display_name: str = "Python 3 (sandboxed)",
) -> dict[str, Any]:
    """The kernel.json: the launcher in argv, interrupts as messages (bubblewrap
    would kill the sandbox on SIGINT; the launcher also turns one into a message)."""
    return {
        "argv": [
            python,
            "-m",
            "aiide_kernel.launch",
            f"--backend={backend}",
            *(launcher_args or []),
            "-f",
            "{connection_file}",
        ],
        "display_name": display_name,
        "language": "python",
        "interrupt_mode": "message",
        "env": {},
        "metadata": {"debugger": False},
    }


def _logo_dir() -> str | None:
    """The logos shipped with the provisioner kernelspec (checkout or installed)."""
    # The checkout: three levels up from aiide_kernel/launch/kernelspec.py.
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for candidate in (
        os.path.join(here, "share", "kernels", DEFAULT_NAME),
        os.path.join(sys.prefix, "share", "jupyter", "kernels", DEFAULT_NAME),
    ):
        if os.path.isdir(candidate):
            return candidate
    return None


def install(kernels_dir: str, spec: dict[str, Any], name: str = DEFAULT_NAME) -> str:
    """Write ``<kernels_dir>/<name>/kernel.json`` (and logos); returns the directory.
    Leaves an identical kernel.json untouched, so concurrent installs do not race."""
    dest = os.path.join(kernels_dir, name)
    os.makedirs(dest, exist_ok=True)
    path = os.path.join(dest, "kernel.json")
    text = json.dumps(spec, indent=2) + "\n"
    try:
        with open(path, encoding="utf-8") as f:
            unchanged = f.read() == text
    except OSError:
        unchanged = False
    if not unchanged:
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    logos = _logo_dir()
    if logos:
        for logo in _LOGOS:
            src = os.path.join(logos, logo)
            if os.path.exists(src) and not os.path.exists(os.path.join(dest, logo)):
                shutil.copyfile(src, os.path.join(dest, logo))
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aiide_kernel.launch.kernelspec",
        description="Install the sandboxed-kernel kernelspec for a kernel gateway.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--prefix", help="an environment prefix: writes <prefix>/share/jupyter/kernels"
    )
    where.add_argument("--dir", help="a kernels directory to write into")
    parser.add_argument("--name", default=DEFAULT_NAME)
    parser.add_argument("--backend", default="bwrap", choices=("bwrap", "docker"))
    parser.add_argument("--python", default=sys.executable, help="the kernel's Python")
    parser.add_argument("--display-name", default="Python 3 (sandboxed)")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("launcher_args", nargs="*", help="after --: more launcher options")
    args = parser.parse_args(argv)
    kernels_dir = args.dir or os.path.join(args.prefix, "share", "jupyter", "kernels")
    spec = gateway_kernelspec(args.python, args.backend, args.launcher_args, args.display_name)
    dest = install(kernels_dir, spec, args.name)
    if not args.quiet:
        print(dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
