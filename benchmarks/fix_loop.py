"""The fix loop: attempts and wall time to a verified fix per case, and the loop's own
overhead per attempt, against running the cells alone, measured in the same run.

    .venv/bin/python benchmarks/fix_loop.py [--runs 3] [--cases case01,case08]

Cases are the corpus's (tests/fixloop/corpus.py, its "main" group). Measured per case, each
``--runs`` times, in turn:

  cells alone  ``jupyter nbconvert --execute`` of the fixed notebook, same kernel: the
               baseline (a kernel start and the cells, nothing else)
  aiide fix    ``jupyter aiide fix`` on the broken notebook, as a user runs it, to its exit

and from the fix's JSON summary: attempts, the loop's wall time, of which the model's
turns and the kernel's cells, and the rest, the loop's own overhead per attempt
(diagnosis, diff, dependency analysis, bookkeeping; target: at most 100 ms).

By default the model is the scripted fake (tests/fakes, in this process), which answers
the corpus's patches at once: the figures are then the loop and the kernel. With
``ANTHROPIC_API_KEY`` set (or ``--provider real``), a real model answers instead (``--model``
names it) and attempts may differ; the first line says which.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from fakes import FakeAnthropic, Reply, ToolUse  # noqa: E402
from fixloop.corpus import CASES, Case, notebook, replies  # noqa: E402

KEY = "sk-bench"
POLICY = {"approvals": {"default": "approve"}}


def write_config(folder: Path, url: str | None, kernel: str, model: str) -> Path:
    caps = ["chat", "tools", "complete"]
    if url is None:  # a real provider, its key from the environment
        provider = {"kind": "anthropic", "api_key_env": "ANTHROPIC_API_KEY"}
    else:
        provider = {"kind": "anthropic", "base_url": url, "api_key_env": "AIIDE_B_KEY"}
    config = {
        "Agent": {
            "models": [{"name": "m", "provider": "p", "model": model, "capabilities": caps}],
            "providers": {"p": provider},
            "kernel_name": kernel,
            "preload": False,
        },
        "Router": {"max_retries": 0},
        "KernelPool": {"size": 0},
    }
    path = folder / "aiide_config.json"
    path.write_text(json.dumps(config))
    return path


async def timed(*cmd: str, cwd: Path, ok: tuple[int, ...] = (0,)) -> tuple[float, str]:
    env = {**os.environ, "AIIDE_B_KEY": KEY, "JUPYTER_CONFIG_DIR": str(cwd / ".jupyter")}
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    took = time.perf_counter() - t0
    if proc.returncode not in ok:
        raise RuntimeError(f"{cmd[2:4]} exit {proc.returncode}: {err.decode()[-2000:]}")
    return took, out.decode()


def script(fake: FakeAnthropic, case: Case) -> None:
    for r in replies(case):
        tools = [ToolUse(**t) for t in r.get("tools", [])]
        fake.push_for(case.name, Reply(text=r.get("text", ""), tools=tools))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kernel", default="aiide-python")
    parser.add_argument("--cases", help="comma-separated name prefixes (default: all verified)")
    parser.add_argument("--provider", choices=["auto", "fake", "real"], default="auto")
    parser.add_argument("--model", default="claude-sonnet-4-5", help="with a real provider")
    args = parser.parse_args()
    real = args.provider == "real" or (
        args.provider == "auto" and bool(os.environ.get("ANTHROPIC_API_KEY"))
    )
    cases = [c for c in CASES if c.group == "main" and c.status == "verified" and c.attempts]
    if args.cases:
        wanted = args.cases.split(",")
        cases = [c for c in cases if any(c.name.startswith(w) for w in wanted)]
    fake = None if real else FakeAnthropic(api_key=KEY)
    url = None if fake is None else await fake.start()
    folder = Path(tempfile.mkdtemp(prefix="aiide-bench-fix-"))
    config = write_config(folder, url, args.kernel, args.model if real else "bench")
    (folder / "policy.json").write_text(json.dumps(POLICY))
    jupyter = str(Path(sys.executable).parent / "jupyter")
    cli = [sys.executable, "-m", "aiide_server_ext.cli", "fix"]
    load = os.getloadavg()[0]
    which = f"real provider (anthropic, {args.model})" if real else "scripted fake model"
    print(f"model: {which}; kernel {args.kernel}; {args.runs} runs per case, medians")
    print(
        f"{'case':34} {'verified':>8} {'attempts':>8} {'cells alone':>12} "
        f"{'aiide fix':>10} {'of it, loop':>12}",
        flush=True,
    )
    overheads: list[float] = []
    for case in cases:
        (folder / f"{case.name}.ipynb").write_text(json.dumps(notebook(case)))
        for name, text in case.files.items():
            (folder / name).write_text(text)
        alone: list[float] = []
        fix: list[float] = []
        loops: list[float] = []
        attempts: list[int] = []
        verified = 0
        for _ in range(args.runs):  # interleaved: a change in load hits both alike
            if fake is not None:
                fake.keyed.pop(case.name, None)
                script(fake, case)
            out = f"{case.name}.fixed.ipynb"
            took, text = await timed(
                *cli,
                f"{case.name}.ipynb",
                "-o",
                out,
                "--policy",
                "policy.json",
                "--config",
                str(config),
                "--json",
                "--no-input",
                cwd=folder,
                ok=(0, 6),
            )
            fix.append(took)
            result = json.loads(text)[0]["fix"]
            verified += result["status"] == "verified"
            attempts.append(len(result["attempts"]))
            loops.append(result["seconds"])
            overheads += [a["overhead"] for a in result["attempts"]]
            took, _ = await timed(
                jupyter,
                "nbconvert",
                "--to",
                "notebook",
                "--execute",
                f"--ExecutePreprocessor.kernel_name={args.kernel}",
                "--output",
                f"{case.name}.alone.ipynb",
                out,
                cwd=folder,
            )
            alone.append(took)
        print(
            f"{case.name:34} {f'{verified}/{args.runs}':>8} {statistics.median(attempts):>8} "
            f"{statistics.median(alone):11.2f}s {statistics.median(fix):9.2f}s "
            f"{statistics.median(loops):11.2f}s",
            flush=True,
        )
    if fake is not None:
        await fake.stop()
    shutil.rmtree(folder, ignore_errors=True)
    now = os.getloadavg()[0]
    print(f"load average {load:.1f} -> {now:.1f}")
    if overheads:
        overheads.sort()
        p95 = overheads[min(len(overheads) - 1, int(len(overheads) * 0.95))]
        print(
            f"loop overhead per attempt (beyond model and kernel time), {len(overheads)} "
            f"attempts: median {statistics.median(overheads) * 1000:.1f} ms, "
            f"p95 {p95 * 1000:.1f} ms, max {overheads[-1] * 1000:.1f} ms (target <= 100 ms)"
        )


if __name__ == "__main__":
    asyncio.run(main())
