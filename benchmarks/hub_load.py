"""A class on one machine: N students through hub -> their server -> broker -> fake model.

Starts the tests' real JupyterHub (tests/hub/harness.py: configurable-http-proxy, dummy
authenticator, local spawner, the aiide broker as a hub service, Redis, the fake Anthropic
API), spawns N student servers, starts one sandboxed kernel (``aiide-python``) per student
and runs ``1+1`` in it, then measures:

  (a) every student chats at once over their server's WebSocket (through the hub's proxy):
      failed requests, and lost tokens (each answer checked word by word);
  (b) added latency of the broker: the same streaming model request, N at once, straight
      to the fake vs through the broker (first byte and complete answer; p50/p99);
  (c) memory per idle student: PSS of their server + kernel process trees.

Everything listens on 127.0.0.1, and the run stops by itself (``--deadline`` seconds);
every process it starts is stopped at the end.

``--broker-only`` measures (b) alone: no student servers or kernels are started (the
students exist in the hub and hold tokens), which takes a minute instead of ten.

Usage: python benchmarks/hub_load.py [--students 50] [--rounds 3] [--deadline 900]
       [--broker-only] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tornado.httpclient import AsyncHTTPClient, HTTPRequest  # noqa: E402
from tornado.websocket import websocket_connect  # noqa: E402

WORDS = 60
ANSWER = " ".join(f"w{i}" for i in range(WORDS))
BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 200,
    "stream": True,
    "messages": [{"role": "user", "content": "x"}],
}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def pss_kb(pid: int) -> int:
    """Proportional set size of a process and its descendants (shared pages split)."""
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (survives a loaded machine, unlike latency)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


async def start_kernel(hub: Any, user: str) -> bool:
    """One sandboxed kernel per student, running ``1+1`` (so it is really up)."""
    token = hub.login(user)
    status, kernel = await asyncio.to_thread(
        hub.request, "POST", hub.user_url(user, "/api/kernels"), token, {"name": "aiide-python"}
    )
    if status != 201:
        print(f"  kernel for {user}: {status} {kernel}", file=sys.stderr)
        return False
    url = hub.url.replace("http", "ws", 1) + f"/user/{user}/api/kernels/{kernel['id']}/channels"
    ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {token}"}))
    msg_id = os.urandom(8).hex()
    ws.write_message(
        json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": user,
                       "session": msg_id, "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": "1+1", "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False},
        })
    )  # fmt: skip
    try:
        while True:
            frame = await asyncio.wait_for(ws.read_message(), 120)
            if frame is None:
                return False
            m = json.loads(frame)
            if m.get("parent_header", {}).get("msg_id") == msg_id:
                if m["msg_type"] == "execute_result":
                    return bool(m["content"]["data"]["text/plain"] == "2")
                if m["msg_type"] == "error":
                    return False
    finally:
        ws.close()


async def chat_once(hub: Any, user: str) -> tuple[bool, int, float]:
    """(answer complete and in order, words received, seconds)."""
    token = hub.login(user)
    url = hub.url.replace("http", "ws", 1) + f"/user/{user}/aiide/api/chat/ws"
    t0 = time.perf_counter()
    ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {token}"}))
    text, ok = "", False
    try:
        ws.write_message(json.dumps({"type": "chat", "id": "m", "text": "hi", "task": "chat"}))
        while True:
            frame = await asyncio.wait_for(ws.read_message(), 120)
            if frame is None:
                break
            event = json.loads(frame)
            if event["type"] == "token":
                text += event.get("text", "")
            elif event["type"] == "run_finished":
                ok = True
                break
            elif event["type"] == "error" and (event.get("run_id") or event.get("reply_to")):
                print(f"  {user}: {event.get('code')}: {event.get('message')}", file=sys.stderr)
                break
    except (TimeoutError, OSError) as e:
        print(f"  {user}: {type(e).__name__}", file=sys.stderr)
    finally:
        ws.close()
    words = text.split()
    return ok and words == ANSWER.split(), len(words), time.perf_counter() - t0


async def stream(client: Any, url: str, key: str) -> tuple[float, float, bool, int]:
    """(first byte, complete, ok, answer words received in order) for one model request."""
    first: list[float] = []
    body: list[bytes] = []
    t0 = time.perf_counter()

    def on_chunk(chunk: bytes) -> None:
        if not first:
            first.append(time.perf_counter() - t0)
        body.append(chunk)

    r = await client.fetch(
        url, method="POST", body=json.dumps(BODY), raise_error=False, request_timeout=120,
        headers={"x-api-key": key, "anthropic-version": "2023-06-01",
                 "content-type": "application/json"},
        streaming_callback=on_chunk,
    )  # fmt: skip
    took = time.perf_counter() - t0
    text = ""
    for line in b"".join(body).split(b"\n"):
        if line.startswith(b"data:"):
            delta = json.loads(line[5:]).get("delta") or {}
            text += delta.get("text", "") if delta.get("type") == "text_delta" else ""
    words = text.split()
    ok = r.code == 200 and words == ANSWER.split()
    return (first[0] if first else 0.0), took, ok, len(words)


async def broker_vs_direct(hub: Any, students: list[str], rounds: int) -> dict[str, Any]:
    from tests.hub.harness import PROVIDER_KEY

    client = AsyncHTTPClient(force_instance=True, max_clients=len(students) * 2)
    direct_url = hub.fake_url + "/v1/messages"
    broker_url = hub.broker_url + "anthropic/v1/messages"
    out: dict[str, list[float]] = {k: [] for k in ("d_first", "d_all", "b_first", "b_all")}
    failed = lost = 0
    pids = {"broker": hub.broker_pid(), "hub": hub.hub_pid()}
    cpu: list[dict[str, float]] = []  # per round: process -> CPU seconds in its broker half
    try:
        for _ in range(rounds):
            direct = await asyncio.gather(
                *(stream(client, direct_url, PROVIDER_KEY) for _ in students)
            )
            before = {k: cpu_seconds(p) for k, p in pids.items()}
            broker = await asyncio.gather(
                *(stream(client, broker_url, hub.login(u)) for u in students)
            )
            await asyncio.sleep(0.2)  # the last batched usage write
            cpu.append({k: cpu_seconds(p) - before[k] for k, p in pids.items()})
            for side, results in (("d", direct), ("b", broker)):
                for first, total, ok, words in results:
                    out[side + "_first"].append(first)
                    out[side + "_all"].append(total)
                    failed += not ok
                    lost += WORDS - min(words, WORDS)
    finally:
        client.close()
    return {"failed": failed, "lost": lost, "cpu": cpu, **out}


async def measure(hub: Any, students: list[str], rounds: int) -> None:
    t0 = time.monotonic()
    kernels = await asyncio.gather(*(start_kernel(hub, u) for u in students))
    print(f"kernels: {sum(kernels)}/{len(students)} sandboxed kernels ran 1+1 "
          f"({time.monotonic() - t0:.1f} s)")  # fmt: skip
    await asyncio.sleep(5)  # let servers and kernels settle before measuring idle memory
    _, users = await asyncio.to_thread(hub.hub_api, "GET", "/users")
    pids = [u["servers"][""]["state"]["pid"] for u in users if u["name"] in students]
    pss = [pss_kb(p) / 1024 for p in pids]
    print(f"memory per idle student (server + kernel, PSS): median {statistics.median(pss):.0f}"
          f" MB, max {max(pss):.0f} MB, total {sum(pss) / 1024:.2f} GB for {len(pss)}")  # fmt: skip

    failed = lost = 0
    seconds: list[float] = []
    for _ in range(rounds):
        results = await asyncio.gather(*(chat_once(hub, u) for u in students))
        for ok, words, took in results:
            failed += not ok
            lost += WORDS - min(words, WORDS)
            seconds.append(took)
    total = rounds * len(students)
    print(f"chats: {total} ({len(students)} at once x {rounds}): {failed} failed, {lost} of "
          f"{total * WORDS} tokens lost; complete answer p50 {statistics.median(seconds):.2f} s, "
          f"p99 {pct(seconds, 99):.2f} s")  # fmt: skip

    await report_broker(hub, students, rounds)


async def report_broker(hub: Any, students: list[str], rounds: int, profile: str = "") -> None:
    spy = None
    if profile:  # the broker's stacks, sampled (py-spy), collapsed: one line per stack
        import shutil
        import subprocess

        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        argv = [exe, "record", "-p", str(hub.broker_pid()), "-f", "raw", "-r", "250", "-o", profile]
        spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL)  # noqa: ASYNC220
        await asyncio.sleep(1.0)
    try:
        r = await broker_vs_direct(hub, students, rounds)
    finally:
        if spy is not None:
            import signal

            spy.send_signal(signal.SIGINT)
            spy.wait(30)
    n = len(students)
    total = 2 * rounds * n
    failed, lost = r["failed"], r["lost"]
    print(f"model streams, {n} at once x {rounds} rounds (direct and via broker): "
          f"{failed} of {total} failed, {lost} of {total * WORDS} tokens lost")  # fmt: skip
    # Round 1 includes the broker's hub look-up of each token (cached for 30 s after).
    parts = [("all rounds", slice(None))]
    if rounds > 1:
        parts += [("round 1 (identity cold)", slice(0, n)), ("rounds 2+ (warm)", slice(n, None))]
    for title, part in parts:
        print(f" {title}:")
        for label, d, b in (("first byte", "d_first", "b_first"), ("complete", "d_all", "b_all")):
            dv, bv = r[d][part], r[b][part]
            dm, dp = statistics.median(dv) * 1000, pct(dv, 99) * 1000
            bm, bp = statistics.median(bv) * 1000, pct(bv, 99) * 1000
            print(f"  {label:10s} direct p50 {dm:7.1f} ms p99 {dp:7.1f} ms | "
                  f"via broker p50 {bm:7.1f} ms p99 {bp:7.1f} ms | "
                  f"added p50 {bm - dm:+7.1f} ms p99 {bp - dp:+7.1f} ms")  # fmt: skip
    # CPU time survives a loaded machine where latency does not: per model call, by round.
    for i, used in enumerate(r["cpu"]):
        per = ", ".join(f"{k} {v / n * 1000:.2f} ms" for k, v in used.items())
        print(f" CPU per call through the broker, round {i + 1}: {per}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average (1, 5, 15 min) at the end: {load}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--deadline", type=float, default=900.0, help="Seconds, then stop.")
    parser.add_argument(
        "--broker-only", action="store_true", help="Only broker vs direct (no servers, kernels)."
    )
    parser.add_argument(
        "--profile", default="", help="py-spy samples of the broker (collapsed) to this file."
    )
    args = parser.parse_args()

    from tests.hub.harness import Hub, missing

    why = missing()
    if why:
        sys.exit(why)

    class LoadHub(Hub):
        def singleuser(self) -> dict[str, Any]:
            """The product's defaults where the tests shorten them: the model SDK preloaded
            after start, 5 s for the broker."""
            config = super().singleuser()
            config["Agent"]["preload"] = True
            config["AiideHub"]["timeout"] = 5.0
            return config

    students = [f"s{i:03d}" for i in range(args.students)]
    started = time.monotonic()
    hub = LoadHub(students=(*students, "carol"))
    # The broker's defaults (the tests shorten them for outages).
    hub.identity_cache, hub.hub_timeout = 30.0, 3.0
    hub.start()
    try:
        # Budgets out of the way: this measures load, not limits.
        hub.request("PUT", hub.fake_url + "/_fake/default", "", {"text": ANSWER})
        unlimited = {"budget": {"daily_tokens": 10**9, "weekly_tokens": 10**9},
                    "rate_limits": {"model": "100000/minute"}}  # fmt: skip
        status, body = hub.request(
            "PATCH", hub.broker_url + "api/courses/ds101", hub.login("ian"), unlimited
        )
        assert status == 200, body
        left = args.deadline - (time.monotonic() - started)
        if args.broker_only:
            for u in students:  # tokens before the clock starts (hub API calls)
                hub.login(u)
            run = report_broker(hub, students, args.rounds, args.profile)
            asyncio.run(asyncio.wait_for(run, max(60.0, left)))
            return
        t0 = time.monotonic()
        for i in range(0, len(students), 10):  # ten at a time: spawns are CPU-bound
            hub.spawn(*students[i : i + 10], timeout=300)
        print(f"hub: {len(students)} student servers up in {time.monotonic() - t0:.0f} s")
        left = args.deadline - (time.monotonic() - started)
        asyncio.run(asyncio.wait_for(measure(hub, students, args.rounds), max(60.0, left)))
    finally:
        hub.stop()


if __name__ == "__main__":
    main()
