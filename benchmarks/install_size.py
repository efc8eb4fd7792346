"""What a clean `pip install` of aiide puts on disk, and what dominates it.

    .venv/bin/python benchmarks/install_size.py [--keep DIR]

Builds aiide's wheel from this checkout (the labextension must be built: `make setup`),
installs it into a fresh virtualenv, and, as the baseline in the same run, installs plain
`jupyterlab` into another one (what a JupyterLab user has anyway). Prints both sizes, the
ratio, and the largest distributions aiide brings beyond the baseline. Needs the package
index (pip's configuration here).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Run inside a virtualenv: the bytes of each installed distribution's files.
SIZES = """
import json, os
from importlib import metadata
out = {}
for dist in metadata.distributions():
    total = 0
    for f in dist.files or []:
        try:
            total += os.path.getsize(dist.locate_file(f))
        except OSError:
            pass
    out[dist.metadata["Name"]] = total
print(json.dumps(out))
"""


def tree_size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def install(target: Path, *requirements: str) -> tuple[int, dict[str, int], float]:
    venv.EnvBuilder(with_pip=True).create(target)
    python = target / "bin" / "python"
    started = time.monotonic()
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements],
        check=True,
    )
    elapsed = time.monotonic() - started
    sizes = json.loads(
        subprocess.run([str(python), "-c", SIZES], check=True, capture_output=True).stdout
    )
    return tree_size(target), sizes, elapsed


def build_wheel(out: Path) -> Path:
    if not (ROOT / "aiide_server_ext" / "labextension" / "package.json").exists():
        sys.exit("the labextension is not built: run `make setup` first")
    env = {**os.environ, "SKIP_JUPYTER_BUILDER": "1"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        env=env,
    )
    (wheel,) = out.glob("aiide-*.whl")
    return wheel


def mb(n: int) -> str:
    return f"{n / 1e6:,.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="build the virtualenvs here and keep them")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="aiide-install-size-"))
    work.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel(work / "wheel")
    print(f"wheel: {wheel.name}, {wheel.stat().st_size / 1e6:.1f} MB")
    base_total, base_sizes, base_s = install(work / "jupyterlab", "jupyterlab")
    total, sizes, seconds = install(work / "aiide", str(wheel))
    print(f"baseline (pip install jupyterlab): {mb(base_total)} in {base_s:.0f} s")
    print(f"aiide (pip install the wheel):     {mb(total)} in {seconds:.0f} s")
    print(f"ratio: {total / base_total:.2f}x; aiide adds {mb(total - base_total)}")
    added = {name: size for name, size in sizes.items() if name not in base_sizes}
    print("largest distributions aiide adds:")
    for name, size in sorted(added.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {name:<28} {mb(size):>8}  ({size / max(total - base_total, 1):.0%})")
    if not args.keep:
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
