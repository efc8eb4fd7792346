"""``jupyter aiide replay TRACE``: re-execute the recorded code, in order, in a fresh kernel
(no model), and compare each output with the recorded one."""

from __future__ import annotations

import os
import re
from typing import Any

from traitlets.config import Config

from ..agent.kernels import ExecTimeout, KernelRunner
from .config import load_config
from .notebook import BadInput, read_notebook, write_notebook
from .trace import read_trace, timeout_output

DIFFERS = 1
#: Seconds a replayed execution may take when the run recorded no timeout of its own.
REPLAY_TIMEOUT = 600.0
#: Memory addresses and timings differ from run to run and say nothing about the result.
VOLATILE = re.compile(r"0x[0-9a-f]{6,}")


def normalise(outputs: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """Outputs as comparable tuples: streams joined per name, plain-text data, errors."""
    out: list[tuple[str, ...]] = []
    for o in outputs:
        kind = o.get("output_type")
        if kind == "stream":
            text = _text(o.get("text", ""))
            if out and out[-1][0] == "stream" and out[-1][1] == o["name"]:
                out[-1] = ("stream", o["name"], out[-1][2] + text)
            else:
                out.append(("stream", o["name"], text))
        elif kind in ("execute_result", "display_data"):
            out.append((kind, _text(o.get("data", {}).get("text/plain", ""))))
        elif kind == "error":
            out.append(("error", o.get("ename", ""), o.get("evalue", "")))
    return [tuple(VOLATILE.sub("0x…", part) for part in t) for t in out]


def _text(text: Any) -> str:
    """nbformat keeps multi-line text as a list of lines in files."""
    return "".join(text) if isinstance(text, list) else str(text)


async def replay(
    trace_path: str, output: str | None, config_file: str | None, kernel: str | None, console: Any
) -> int:
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
    from rich.markup import escape

    from .magic import MagicDesk, recorded_responder  # lazy: the kernel channel's server

    try:
        records = read_trace(trace_path)
    except OSError as e:
        raise BadInput(f"cannot read the trace {trace_path!r}: {e.strerror}") from None
    except ValueError as e:
        raise BadInput(str(e)) from None
    header = next((r for r in records if r.get("type") == "header"), None)
    if header is None:
        raise BadInput(f"{trace_path!r} is not an aiide run trace (no header)")
    steps = [r for r in records if r.get("type") == "execute"]
    here = os.path.dirname(os.path.abspath(trace_path))
    notebook = _saved_notebook(records, here, header) if output else None
    # The run's kernel worked in the input's folder (its data paths are relative to it).
    cwd = header.get("cwd")
    workdir = cwd if isinstance(cwd, str) and os.path.isdir(cwd) else here
    config = Config()
    config.merge(load_config(config_file))
    if not config.SandboxPolicy.get("workspace_root"):
        config.SandboxPolicy.workspace_root = workdir
    # the run's kernel saw its input empty and read-only: so does the replay's (a recorded
    # write to it failed then, and must neither succeed nor touch the input now)
    masked = _input_of(header, here)
    if masked:
        config.SandboxPolicy.masked_paths = [
            *(config.SandboxPolicy.get("masked_paths") or []),
            masked,
        ]
    km = AsyncMappingKernelManager(config=config, root_dir=workdir)  # type: ignore[no-untyped-call]
    runner = KernelRunner(km, None, workdir, kernel or header.get("kernel") or "aiide-python")
    desk = MagicDesk()  # %ai answers as recorded, never the model
    desk.install()
    replayed: dict[str, list[dict[str, Any]]] = {}
    differs = stopped = 0
    try:
        kid = await runner.kernel_for(header.get("output") or "replay.ipynb")
        assert kid is not None
        desk.add(kid, recorded_responder(records), None)
        for n, step in enumerate(steps, 1):
            where = escape(step.get("cell_id") or "code")
            if step.get("status") == "interrupted":
                # Ctrl-C cut the run here: how far it got is not a result to reproduce
                stopped += 1
                console.print(f"{n}/{len(steps)} {where}: not replayed (stopped by Ctrl-C)")
                continue
            timed_out = step.get("status") == "timeout"
            try:
                result = await runner.execute(kid, step["source"], timeout=_timeout(step))
            except ExecTimeout as e:
                # a cell the run cut at its timeout: the same again is the same result
                # (how far it got is a matter of speed, not compared)
                differs += not timed_out
                mark = "[green]same[/] (timed out)" if timed_out else "[red]timed out[/]"
                console.print(f"{n}/{len(steps)} {where}: {mark}")
                if step.get("cell_id"):
                    replayed[step["cell_id"]] = [*e.outputs, timeout_output(e)]
                continue
            expected = normalise(step.get("outputs") or [])
            actual = normalise(result.outputs)
            same = actual == expected and not timed_out
            differs += not same
            mark = "[green]same[/]" if same else "[red]differs[/]"
            console.print(f"{n}/{len(steps)} {where}: {mark}")
            if not same:
                console.print(f"    expected: {escape(repr(expected)[:500])}")
                console.print(f"    actual:   {escape(repr(actual)[:500])}")
            if step.get("cell_id"):
                replayed[step["cell_id"]] = result.outputs
    except Exception as e:
        console.print(f"[red]error:[/] the kernel failed: {e}")
        return 5
    finally:
        await runner.shutdown()
    if output and notebook is not None:
        for cell in notebook["cells"]:
            if cell.get("id") in replayed:
                cell["outputs"] = replayed[cell["id"]]
        write_notebook(output, notebook)
    ran = len(steps) - stopped
    console.print(
        f"replayed {ran} executions: {ran - differs} same, {differs} differ"
        + (f" ({stopped} stopped by Ctrl-C in the run, not replayed)" if stopped else "")
    )
    return DIFFERS if differs else 0


def _input_of(header: dict[str, Any], here: str) -> str | None:
    """The run's input notebook, unless the run wrote it (``--inplace``)."""
    notebook = header.get("notebook")
    if not isinstance(notebook, str) or not os.path.isfile(notebook):
        return None
    output = os.path.join(here, str(header.get("output")))
    inplace = os.path.exists(output) and os.path.samefile(output, notebook)
    return None if inplace else notebook


def _timeout(step: dict[str, Any]) -> float:
    """A step the run cut at its timeout gets the same; others all the time they need."""
    recorded = float(step.get("timeout") or 0)
    if step.get("status") == "timeout" and recorded:
        return recorded
    return max(REPLAY_TIMEOUT, recorded)


def _saved_notebook(
    records: list[dict[str, Any]], here: str, header: dict[str, Any]
) -> dict[str, Any]:
    """The run's notebook as saved (its trace's end record keeps it, outputs aside), or
    the output file beside the trace for a trace without one (an older or killed run)."""
    end = next((r for r in reversed(records) if r.get("type") == "end"), None)
    saved = end.get("notebook") if end else None
    if isinstance(saved, dict) and isinstance(saved.get("cells"), list):
        return saved
    source = os.path.join(here, str(header.get("output")))
    if not os.path.isfile(source):
        raise BadInput(
            f"the trace keeps no notebook (the run did not end) and {source!r} is missing: "
            "replay without -o compares the outputs all the same"
        )
    return read_notebook(source)
