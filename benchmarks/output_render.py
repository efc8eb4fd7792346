"""What output isolation costs: rendering rich output of a sandboxed kernel vs a plain one.

    .venv/bin/python benchmarks/output_render.py [--rounds 15]

Starts ``jupyter lab`` with aiide and Debian's chromium (playwright; no browser download),
opens two notebooks, one on ``Python 3 (sandboxed)`` (its outputs go through aiide's
isolation: HTML sanitized in place, active output in frames) and one on the plain
``python3`` kernel (outputs rendered as trusted), and renders the same outputs in each, in
alternating rounds of the same run:

  - a 1,000-row pandas table (``DataFrame._repr_html_`` with all rows shown),
  - a matplotlib figure (PNG, as ``%matplotlib inline`` sends it).

Two measures, each timed in the page up to the first frame painted once the output's
element is in the page (and, for the PNG, decoded):

  - front end (``--mode frontend``): from adding the output to the cell's output model.
    The outputs are the ones the kernel would send, made here so that kernel execution
    time (the same Python either way) does not blur the front end's share.
  - from the kernel (``--mode kernel``): from running the cell (``notebook:run-cell``)
    whose code displays the table or the figure, so the whole path counts: the kernel in
    its sandbox (seccomp, cgroup limits, ipc sockets), the server's output cap for
    sandboxed kernels, the WebSocket, the guard and the renderer.

Target: sandboxed ≤ 1.2 times plain (p50), for each measure.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import statistics
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _support import lab_folders, notebook, running_lab
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (the tests' own launch flags)

TOKEN = uuid.uuid4().hex
TARGET = 1.2

#: In the page, the end of every measure: `selector` in the cell's output, decoded if an
#: image, and the next frame painted.
PAINTED = """
  const paint = () => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
  const painted = async (cell, selector) => {
    let el = null;
    while (!(el = cell.node.querySelector('.jp-OutputArea-output ' + selector))) {
      await new Promise(r => setTimeout(r, 0));
    }
    if (el.decode) { await el.decode(); }
    await paint();
  };"""

#: In the page: render `bundle` `rounds` times into the first cell of the current
#: notebook; each time from `outputs.add` to a painted frame with `selector` present.
RENDER = (
    "async ([bundle, selector, rounds]) => {"
    + PAINTED
    + """
  const panel = window.jupyterapp.shell.currentWidget;
  const cell = panel.content.widgets[0];
  const outputs = cell.model.outputs;
  const times = [];
  for (let i = 0; i < rounds; i++) {
    outputs.clear();
    await paint();
    const t0 = performance.now();
    outputs.add({ output_type: 'display_data', data: bundle, metadata: {} });
    await painted(cell, selector);
    times.push(performance.now() - t0);
  }
  return times;
}"""
)


#: In the page: run cell 0 of the current notebook (its source set to `code`) `rounds`
#: times; each time from the run command to a painted frame with `selector` present.
RUN = (
    "async ([code, selector, rounds]) => {"
    + PAINTED
    + """
  const app = window.jupyterapp;
  const panel = app.shell.currentWidget;
  const cell = panel.content.widgets[0];
  const times = [];
  for (let i = 0; i < rounds; i++) {
    cell.model.outputs.clear();
    cell.model.sharedModel.setSource(code);
    panel.content.activeCellIndex = 0;
    await paint();
    const t0 = performance.now();
    const done = app.commands.execute('notebook:run-cell');
    await painted(cell, selector);
    times.push(performance.now() - t0);
    await done;
  }
  return times;
}"""
)

#: Run once in each kernel before timing: the imports, the data, the inline backend.
KERNEL_SETUP = """
import numpy as np, pandas as pd, matplotlib
matplotlib.use('module://matplotlib_inline.backend_inline')
import matplotlib.pyplot as plt
from IPython.display import display
rng = np.random.default_rng(0)
df = pd.DataFrame({
    'city': [f'city {i}' for i in range(1000)],
    'temp': rng.normal(12, 6, 1000).round(2),
    'rain': rng.gamma(2, 20, 1000).round(1),
    'day': pd.date_range('2024-01-01', periods=1000, freq='D').astype(str),
})
fig, ax = plt.subplots(figsize=(6.4, 4.8))
ax.plot(range(100), [i**0.5 for i in range(100)])
ax.set_title('a figure')
plt.close(fig)
print('ready')
"""
#: What each timed cell runs (the kernel's own repr: pandas' HTML, matplotlib's PNG).
KERNEL_CODE = {
    "table": "with pd.option_context('display.max_rows', 1000):\n    display(df)",
    "img": "display(fig)",
}


def table_bundle() -> dict[str, str]:
    import numpy as np
    import pandas as pd  # type: ignore[import-untyped]

    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "city": [f"city {i}" for i in range(1000)],
            "temp": rng.normal(12, 6, 1000).round(2),
            "rain": rng.gamma(2, 20, 1000).round(1),
            "day": pd.date_range("2024-01-01", periods=1000, freq="D").astype(str),
        }
    )
    with pd.option_context("display.max_rows", 1000):
        return {"text/html": df._repr_html_(), "text/plain": "<1000 rows>"}


def figure_bundle() -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ax.plot(range(100), [i**0.5 for i in range(100)])
    ax.set_title("a figure")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return {"image/png": base64.b64encode(buf.getvalue()).decode(), "text/plain": "<Figure>"}


@contextmanager
def lab(tmp: Path) -> Iterator[str]:
    dirs = lab_folders(tmp)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    notebook(dirs["root"], "sandboxed.ipynb", "aiide-python", "Python 3 (sandboxed)")
    notebook(dirs["root"], "plain.ipynb", "python3", "Python 3 (ipykernel)")
    with running_lab(dirs, env, TOKEN) as base:
        yield base


def open_notebook(page: Page, path: str) -> None:
    page.evaluate(
        "p => window.jupyterapp.commands.execute('docmanager:open', {path: p}).then(() => null)",
        path,
    )
    page.wait_for_function(
        """p => {
          const w = window.jupyterapp.shell.currentWidget;
          return w?.context?.path === p && w.content.widgets.length > 0;
        }""",
        arg=path,
        timeout=60_000,
    )


def render(page: Page, path: str, bundle: dict[str, str], selector: str, rounds: int) -> Any:
    open_notebook(page, path)
    return page.evaluate(RENDER, [bundle, selector, rounds])


def run_in_kernel(page: Page, path: str, selector: str, rounds: int) -> Any:
    open_notebook(page, path)
    return page.evaluate(RUN, [KERNEL_CODE[selector], selector, rounds])


def prepare_kernel(page: Page, path: str) -> None:
    """Wait for the notebook's kernel, then run the set-up cell in it."""
    open_notebook(page, path)
    page.wait_for_function(
        """() => {
          const k = window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel;
          return k && k.status === 'idle';
        }""",
        timeout=120_000,
    )
    out = page.evaluate(
        """async code => {
          const app = window.jupyterapp;
          const panel = app.shell.currentWidget;
          const cell = panel.content.widgets[0];
          cell.model.outputs.clear();
          cell.model.sharedModel.setSource(code);
          panel.content.activeCellIndex = 0;
          await app.commands.execute('notebook:run-cell');
          return JSON.stringify(cell.model.outputs.toJSON());
        }""",
        KERNEL_SETUP,
    )
    if "ready" not in out:
        raise SystemExit(f"the set-up cell failed in {path}: {out[:2000]}")


def report(name: str, times: dict[str, list[float]], guarded: bool) -> bool:
    sandboxed, plain = times["sandboxed.ipynb"], times["plain.ipynb"]
    ratio = statistics.median(sandboxed) / statistics.median(plain)
    ok = ratio <= TARGET
    print(name)
    print(f"    plain kernel:     p50 {statistics.median(plain):.1f} ms (n={len(plain)})")
    print(
        f"    sandboxed kernel: p50 {statistics.median(sandboxed):.1f} ms "
        f"(n={len(sandboxed)}; guarded output: {guarded})"
    )
    print(f"    ratio {ratio:.2f} (target ≤ {TARGET}): {'ok' if ok else 'OVER'}")
    return ok


def is_guarded(page: Page) -> bool:
    return bool(
        page.evaluate(
            "() => !!window.jupyterapp.shell.currentWidget.node"
            ".querySelector('.aiide-GuardedOutput')"
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="renders per phase")
    parser.add_argument("--phases", type=int, default=4, help="alternating phases per kernel")
    parser.add_argument("--mode", choices=("frontend", "kernel", "both"), default="both")
    args = parser.parse_args()
    cases = [
        ("1,000-row pandas table", table_bundle(), "table"),
        ("matplotlib figure (PNG)", figure_bundle(), "img"),
    ]
    order = ["sandboxed.ipynb", "plain.ipynb"]
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp, lab(Path(tmp)) as base, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(Path(tmp) / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        page = context.new_page()
        page.goto(f"{base}lab?token={TOKEN}", wait_until="domcontentloaded")
        page.wait_for_function("() => window.jupyterapp?.commands.hasCommand('aiide:open-chat')")
        page.evaluate("() => window.jupyterapp.restored")
        # The sandboxed notebook's renders must go through the isolation (checked once).
        open_notebook(page, "sandboxed.ipynb")
        verdicts = []
        if args.mode in ("frontend", "both"):
            print("front end: from the output model to a painted frame")
            for name, bundle, selector in cases:
                times: dict[str, list[float]] = {path: [] for path in order}
                render(page, "plain.ipynb", bundle, selector, 2)  # warm-up, both sides
                render(page, "sandboxed.ipynb", bundle, selector, 2)
                for phase in range(args.phases):
                    for path in order if phase % 2 == 0 else reversed(order):
                        times[path] += render(page, path, bundle, selector, args.rounds)
                verdicts.append(report(name, times, is_guarded(page)))
        if args.mode in ("kernel", "both"):
            print("from the kernel: from running the cell to a painted frame")
            for path in order:
                prepare_kernel(page, path)
            for name, _, selector in cases:
                times = {path: [] for path in order}
                for path in order:  # warm-up, both sides
                    run_in_kernel(page, path, selector, 2)
                for phase in range(args.phases):
                    for path in order if phase % 2 == 0 else reversed(order):
                        times[path] += run_in_kernel(page, path, selector, args.rounds)
                open_notebook(page, "sandboxed.ipynb")
                verdicts.append(report(name, times, is_guarded(page)))
        context.close()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    sys.exit(0 if all(verdicts) else 1)


if __name__ == "__main__":
    main()
