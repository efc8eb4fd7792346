"""What the aiide front end costs the user, measured in a real browser, in one run.

    .venv/bin/python benchmarks/ui_latency.py [--keys 200] [--rounds 20]

Starts the fake Anthropic API (tests/fakes, its own process), ``jupyter lab`` with
aiide pointed at it, and Debian's chromium (playwright; no browser download), then:

  (a) keystroke to paint in a notebook cell, with aiide's inline completion enabled
      vs disabled (alternating phases, same notebook, same typing rhythm). A keystroke
      is timed from the key event to the first frame painted after it (rAF, then a
      task). Target: p95 within 5 ms of the disabled run.
  (b) chat: time from pressing Enter to the first streamed token painted, against the
      server-side first token (the ``ts`` of the first ``token`` event, same machine
      clock). The difference is the front end's share: delivery, parsing, Markdown
      rendering and paint. Target: ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _support import free_port, lab_folders, notebook, running_lab, stop
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (the tests' own launch flags)

KEY = "sk-ant-bench-" + uuid.uuid4().hex
TOKEN = uuid.uuid4().hex
COMPLETER = "@jupyterlab/completer-extension:inline-completer"
TYPED = "def total(values):\n    result = 0\n    for v in values:\n        result += v\n"

#: In the page: time each keystroke to the first frame painted after it.
KEY_PROBE = """() => {
  window.__keys = [];
  document.addEventListener('keydown', e => {
    const t0 = e.timeStamp;
    requestAnimationFrame(() => setTimeout(() => window.__keys.push(performance.now() - t0), 0));
  }, true);
}"""

#: In the page: when Enter sends, and when each answer's first text is painted (epoch ms).
CHAT_PROBE = """() => {
  const now = () => performance.timeOrigin + performance.now();
  window.__sends = []; window.__paints = [];
  document.addEventListener('keydown', e => {
    if (e.key === 'Enter' && e.target.classList.contains('aiide-Composer-input')) {
      window.__sends.push(performance.timeOrigin + e.timeStamp);
    }
  }, true);
  const seen = new WeakSet();
  const log = document.querySelector('#aiide-chat .aiide-Transcript');
  new MutationObserver(() => {
    const answers = log.querySelectorAll('.aiide-Answer');
    const last = answers[answers.length - 1];
    if (last && !seen.has(last) && last.textContent.trim()) {
      seen.add(last);
      requestAnimationFrame(() => setTimeout(() => window.__paints.push(now()), 0));
    }
  }).observe(log, { childList: true, subtree: true, characterData: true });
}"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def summary(values: list[float]) -> str:
    return (
        f"n={len(values)} p50={statistics.median(values):.1f} ms "
        f"p95={pct(values, 95):.1f} ms max={max(values):.1f} ms"
    )


@contextmanager
def servers(tmp: Path) -> Iterator[tuple[str, str]]:
    """The fake model and ``jupyter lab`` (with aiide) in their own processes."""
    fake_port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    fake = subprocess.Popen(
        [sys.executable, "-m", "fakes.fake_anthropic", "--port", str(fake_port),
         "--api-key", KEY, "--default-text", "Hello there, this is the answer."],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    dirs = lab_folders(tmp)
    notebook(dirs["root"], "bench.ipynb", "python3", "Python 3")
    lab_env = {
        **os.environ,
        "ANTHROPIC_API_KEY": KEY,
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{fake_port}",
    }
    try:
        with running_lab(dirs, lab_env, TOKEN) as base:
            yield base, f"http://127.0.0.1:{fake_port}"
    finally:
        stop(fake, "the fake model")


def completions_seen(fake: str) -> int:
    """Completion requests that reached the (fake) model so far."""
    with urllib.request.urlopen(f"{fake}/_fake/requests", timeout=10) as resp:
        requests = json.loads(resp.read())["requests"]
    return sum("<CURSOR>" in json.dumps(r["body"]) for r in requests)


def set_completion(base: str, enabled: bool) -> None:
    """The same switch a user flips in Settings > Inline Completer > aiide."""
    raw = json.dumps({"providers": {"aiide": {"enabled": enabled}}})
    req = urllib.request.Request(
        f"{base}lab/api/settings/{COMPLETER}",
        data=json.dumps({"raw": raw}).encode(),
        method="PUT",
        headers={"Authorization": f"token {TOKEN}"},
    )
    urllib.request.urlopen(req, timeout=10)


def open_lab(page: Page, base: str, path: str) -> None:
    page.goto(f"{base}lab/tree/{path}?token={TOKEN}", wait_until="domcontentloaded")
    page.wait_for_function("() => window.jupyterapp?.commands.hasCommand('aiide:open-chat')")
    page.evaluate("() => window.jupyterapp.restored")
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()


def type_phase(page: Page, base: str, enabled: bool, keys: int) -> list[float]:
    set_completion(base, enabled)
    open_lab(page, base, "bench.ipynb")
    page.evaluate(KEY_PROBE)
    editor = page.locator(".jp-NotebookPanel .jp-Cell").first.locator(".cm-content")
    editor.click()
    typed = 0
    while typed < keys:
        for line in TYPED.splitlines(keepends=True):
            if not editor.evaluate("el => el.contains(document.activeElement)"):
                editor.click()  # keys in command mode would run notebook shortcuts
                page.keyboard.press("Control+End")
            # Bursts at a brisk typing pace, with pauses that let a suggestion arrive.
            page.keyboard.type(line.rstrip("\n"), delay=60)
            page.wait_for_timeout(400)
            page.keyboard.press("Enter")
            typed += len(line)
        page.keyboard.press("Control+a")
        page.keyboard.press("Delete")
    page.wait_for_timeout(300)
    values: list[float] = page.evaluate("() => window.__keys")
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save').then(() => null)")
    return values


def keystrokes(page: Page, base: str, fake: str, keys: int) -> None:
    off: list[float] = []
    on: list[float] = []
    asked = {False: 0, True: 0}
    for _ in range(2):  # alternate, so drift hits both sides alike
        for enabled, values in ((False, off), (True, on)):
            before = completions_seen(fake)
            values += type_phase(page, base, enabled, keys // 2)
            asked[enabled] += completions_seen(fake) - before
    print("(a) keystroke to paint in a notebook cell")
    print(f"    inline completion disabled: {summary(off)}; {asked[False]} completion requests")
    print(f"    inline completion enabled:  {summary(on)}; {asked[True]} completion requests")
    delta = pct(on, 95) - pct(off, 95)
    ratio = pct(on, 95) / pct(off, 95)
    verdict = "OK" if delta <= 5 else "OVER TARGET"
    print(
        f"    p95 enabled - disabled = {delta:+.1f} ms (ratio {ratio:.2f}; target ≤ 5 ms)", verdict
    )


def chat(page: Page, base: str, rounds: int) -> None:
    firsts: dict[str, float] = {}

    def on_socket(ws: Any) -> None:
        def frame(payload: Any) -> None:
            message = json.loads(payload) if isinstance(payload, str) else {}
            if message.get("type") == "token" and message["run_id"] not in firsts:
                firsts[message["run_id"]] = message["ts"] * 1000

        if "/aiide/api/chat/ws" in ws.url:
            ws.on("framereceived", frame)

    page.on("websocket", on_socket)
    open_lab(page, base, "bench.ipynb")
    page.evaluate("() => window.jupyterapp.commands.execute('aiide:open-chat').then(() => null)")
    page.locator("#aiide-chat .aiide-Connection[data-state=open]").wait_for()
    page.evaluate(CHAT_PROBE)
    box = page.locator("#aiide-chat .aiide-Composer-input")
    done = page.locator("#aiide-chat .aiide-Finished")
    for i in range(rounds + 1):  # the first question warms up (imports, lazy parsers)
        box.fill(f"Question {i}")
        box.press("Enter")
        done.nth(i).wait_for()
    sends: list[float] = page.evaluate("() => window.__sends")
    paints: list[float] = page.evaluate("() => window.__paints")
    server = list(firsts.values())
    n = min(len(sends), len(paints), len(server))
    cold = paints[0] - server[0]
    to_paint = [paints[i] - sends[i] for i in range(1, n)]
    to_server = [server[i] - sends[i] for i in range(1, n)]
    overhead = [paints[i] - server[i] for i in range(1, n)]
    print("(b) chat: Enter to the first token painted")
    print(f"    first question of the page (cold): front-end share {cold:.1f} ms")
    print(f"    Enter -> server-side first token: {summary(to_server)}")
    print(f"    Enter -> first token painted:     {summary(to_paint)}")
    print(f"    front-end share (painted - server first token): {summary(overhead)}")
    ratio = statistics.median(to_paint) / statistics.median(to_server)
    verdict = "OK" if pct(overhead, 95) <= 50 else "OVER TARGET"
    print(f"    ratio painted/server (p50) {ratio:.2f}; target share ≤ 50 ms: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200, help="keystrokes per setting")
    parser.add_argument("--rounds", type=int, default=20, help="chat questions")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        servers(Path(tmp)) as (base, fake),
        sync_playwright() as pw,
    ):
        context = pw.chromium.launch_persistent_context(
            str(Path(tmp) / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        page = context.new_page()
        keystrokes(page, base, fake, args.keys)
        chat(page, base, args.rounds)
        context.close()


if __name__ == "__main__":
    main()
