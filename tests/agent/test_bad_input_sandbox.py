"""Bad input against a real server and real sandboxed kernels (issue 13, "Bad input"):
a workspace that vanishes, a notebook whose kernelspec is unknown, a kernel that floods
output. Each: a clear message, a responsive server, nothing written outside."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import pytest
from fakes import FakeAnthropic, Reply, ToolUse
from tornado.httpclient import HTTPClientError

from aiide_server_ext.agent.kernels import MAX_KEPT_OUTPUT_BYTES

from .chat import connect
from .test_agent_chat import read_notebook, write_notebook

pytestmark = pytest.mark.xdist_group("agent")

SANDBOXED = "aiide-python"


async def post_session(jp_fetch: Any, path: str, kernel: str) -> Any:
    body = {"path": path, "name": path, "type": "notebook", "kernel": {"name": kernel}}
    return await jp_fetch("api", "sessions", method="POST", body=json.dumps(body))


async def status_ok(jp_fetch: Any) -> None:
    response = await asyncio.wait_for(jp_fetch("aiide", "api", "status"), 10)
    assert response.code == 200


async def shutdown_all(jp_serverapp: Any) -> None:
    await jp_serverapp.kernel_manager.shutdown_all(now=True)


# --- a workspace that vanishes ------------------------------------------------------------


async def test_a_vanished_workspace_is_a_clear_error_from_the_provisioner(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path
) -> None:
    """The provisioner is given a working directory that is gone (deleted between the
    session's request and the kernel's start): it refuses, naming the folder, and
    creates nothing."""
    gone = jp_root_dir / "project"
    gone.mkdir()
    shutil.rmtree(gone)
    km = jp_serverapp.kernel_manager
    with pytest.raises(RuntimeError) as caught:
        await km.start_kernel(kernel_name=SANDBOXED, cwd=str(gone))
    message = str(caught.value)
    assert "project" in message and "does not exist" in message, message
    assert "Traceback" not in message
    assert not gone.exists()
    await status_ok(jp_fetch)
    kernels = await jp_fetch("api", "kernels")
    assert json.loads(kernels.body) == []  # no half-started kernel is listed


async def test_a_session_for_a_vanished_folder_starts_in_the_nearest_parent(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path
) -> None:
    """Jupyter's session API starts a notebook's kernel in the nearest folder that exists
    (``MappingKernelManager.cwd_for_path``): a notebook whose folder is gone gets a
    sandboxed kernel confined to that parent; the folder is not recreated."""
    response = await post_session(jp_fetch, "gone/deeper/nb.ipynb", SANDBOXED)
    assert response.code == 201
    kid = json.loads(response.body)["kernel"]["id"]
    cwd = await run_in_kernel(jp_serverapp, kid, "import os; print(os.getcwd())")
    assert cwd.strip() == str(jp_root_dir)
    assert not (jp_root_dir / "gone").exists()
    await status_ok(jp_fetch)
    await shutdown_all(jp_serverapp)
    assert not (jp_root_dir / "gone").exists()


async def run_in_kernel(jp_serverapp: Any, kid: str, code: str, timeout: float = 60) -> str:
    client = jp_serverapp.kernel_manager.get_kernel(kid).client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=timeout)
        out: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            if msg["header"]["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["header"]["msg_type"] == "error":
                out.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")

        await client.execute_interactive(code, timeout=timeout, output_hook=hook)
        return "".join(out)
    finally:
        client.stop_channels()


async def test_a_workspace_deleted_while_its_kernel_runs(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path
) -> None:
    """The notebook's folder is deleted under a running sandboxed kernel: writes there
    fail inside the kernel, the server answers, and nothing recreates the folder on the
    host (not the kernel, not the sandbox's mounts, not its shutdown)."""
    project = jp_root_dir / "project"
    project.mkdir()
    response = await post_session(jp_fetch, "project/nb.ipynb", SANDBOXED)
    kid = json.loads(response.body)["kernel"]["id"]
    assert "ready" in await run_in_kernel(jp_serverapp, kid, "print('ready')")
    shutil.rmtree(project)
    out = await run_in_kernel(
        jp_serverapp,
        kid,
        "try:\n    open('after.txt', 'w').write('x')\n    print('wrote')\n"
        "except OSError as e:\n    print('refused', type(e).__name__)",
    )
    assert "refused FileNotFoundError" in out, out  # the kernel lives on, its cwd gone
    await status_ok(jp_fetch)
    assert not project.exists()
    await shutdown_all(jp_serverapp)
    assert not project.exists()
    await status_ok(jp_fetch)


# --- a notebook whose kernelspec is unknown -----------------------------------------------


async def test_a_session_with_an_unknown_kernelspec_is_jupyters_501(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path
) -> None:
    """Jupyter answers 501 with {"message": "The 'no-such-kernel' kernel is not available.
    Please pick another suitable kernel instead, or install that kernel.", "short_message":
    "no-such-kernel not found"}: no kernel starts, none other is substituted."""
    write_notebook(jp_root_dir)
    with pytest.raises(HTTPClientError) as caught:
        await post_session(jp_fetch, "nb.ipynb", "no-such-kernel")
    assert caught.value.code == 501
    assert caught.value.response is not None
    body = json.loads(caught.value.response.body)
    assert "'no-such-kernel' kernel is not available" in body["message"]
    assert body["short_message"] == "no-such-kernel not found"
    assert "Traceback" not in caught.value.response.body.decode()
    assert list(jp_serverapp.kernel_manager.list_kernel_ids()) == []
    await status_ok(jp_fetch)


def write_unknown_kernel_notebook(root: Path) -> None:
    write_notebook(root, cells=[("c1", "import sys; print('ran in', sys.executable)")])
    path = root / "nb.ipynb"
    nb = json.loads(path.read_text())
    nb["metadata"]["kernelspec"] = {
        "name": "no-such-kernel",
        "display_name": "Gone",
        "language": "python",
    }
    path.write_text(json.dumps(nb))


async def test_the_agent_on_a_notebook_naming_an_unknown_kernelspec(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_serverapp: Any,
    jp_root_dir: Path,
    fake_anthropic: FakeAnthropic,
) -> None:
    """run_cell / execute_code on a notebook whose metadata names a kernel not installed
    here: a clear ``unknown_kernel`` tool error naming it, no kernel started (the code is
    not run in the headless kernel instead), the run ends normally."""
    write_unknown_kernel_notebook(jp_root_dir)
    fake_anthropic.push(
        Reply(
            tools=[
                ToolUse("run_cell", {"path": "nb.ipynb", "cell_id": "c1"}, id="toolu_run"),
                ToolUse("execute_code", {"path": "nb.ipynb", "code": "1"}, id="toolu_exec"),
            ]
        ),
        Reply(text="done"),
    )
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="run it")
    await chat.approve_next()
    await chat.approve_next()
    assert (await chat.until("run_finished", timeout=120))["status"] == "completed"
    results = {r["call_id"]: r for r in chat.of("tool_result")}
    assert set(results) == {"toolu_run", "toolu_exec"}
    for result in results.values():
        assert not result["ok"] and result["error"]["code"] == "unknown_kernel", result
        assert "'no-such-kernel'" in result["content"] and "not run" in result["content"]
        assert "Traceback" not in result["content"]
    assert list(jp_serverapp.kernel_manager.list_kernel_ids()) == []
    assert read_notebook(jp_root_dir).cells[0].outputs == []
    await status_ok(jp_fetch)


# --- a kernel that floods output ----------------------------------------------------------

CHUNKED = (
    "from IPython.display import HTML, display\n"
    "chunk = '<b>x</b>' * 131072\n"  # 1 MiB
    "for _ in range(100):\n"
    "    display(HTML(chunk))\n"
    "print('end of flood')\n"
)
SINGLE = (
    "from IPython.display import HTML, display\n"
    "display(HTML('<b>x</b>' * 13_107_200))\n"  # 100 MiB in one message
    "print('end of flood')\n"
)


@pytest.mark.parametrize("code", [CHUNKED, SINGLE], ids=["chunks", "single"])
async def test_a_kernel_flooding_html_is_capped(
    code: str,
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_serverapp: Any,
    jp_root_dir: Path,
    fake_anthropic: FakeAnthropic,
) -> None:
    """100 MB of HTML from the sandboxed kernel while the agent runs the cell headless:
    the server keeps at most ``MAX_KEPT_OUTPUT_BYTES`` of it, the tool result says it was
    cut, the notebook written back is bounded, memory stays bounded and status answers."""
    write_notebook(jp_root_dir, cells=[("c1", code)])
    process = psutil.Process()
    before = process.memory_info().rss
    fake_anthropic.push(
        Reply(tools=[ToolUse("run_cell", {"path": "nb.ipynb", "cell_id": "c1"})]),
        Reply(text="flooded"),
    )
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="run it")
    await chat.approve_next()
    peak = [before]
    done = asyncio.Event()

    async def probe() -> int:
        answers = 0
        while not done.is_set():
            await status_ok(jp_fetch)
            answers += 1
            peak[0] = max(peak[0], process.memory_info().rss)
            await asyncio.sleep(0.1)
        return answers

    prober = asyncio.ensure_future(probe())
    result = await chat.until("tool_result", timeout=300)
    done.set()
    answers = await prober
    assert (await chat.until("run_finished", timeout=60))["status"] == "completed"
    assert result["ok"], result["content"][:500]
    assert "output cut" in result["content"], result["content"][-500:]
    assert len(result["content"]) < 10_000
    assert answers >= 1
    size = (jp_root_dir / "nb.ipynb").stat().st_size
    assert size < MAX_KEPT_OUTPUT_BYTES * 2, size
    outputs = read_notebook(jp_root_dir).cells[0].outputs
    assert "output cut" in outputs[-1]["text"]
    after = process.memory_info().rss
    mib = 1024 * 1024
    assert peak[0] - before < 300 * mib, (before // mib, peak[0] // mib)
    assert after - before < 300 * mib, (before // mib, after // mib)
    await status_ok(jp_fetch)
    await shutdown_all(jp_serverapp)
