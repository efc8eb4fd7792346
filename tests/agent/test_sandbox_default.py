"""The sandbox is the default path (issue 13, item 2): new notebooks get the sandboxed
kernel, unsandboxed kernelspecs say so (or are hidden), and the agent runs no code in a
kernel the server did not start through the sandbox provisioner unless an admin opts in.

Against a real server (pytest-jupyter) with real kernels: ``python3`` is the plain
ipykernel, which runs as the server's user.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeAnthropic, Reply, ToolUse
from tornado.httpclient import HTTPClientError

from aiide_server_ext.kernelspecs import UNSANDBOXED_SUFFIX

from .chat import connect
from .test_agent_chat import write_notebook

pytestmark = pytest.mark.xdist_group("sandbox")

#: Code an agent should never get to run as the server's user.
LEAK = "open('leaked.txt', 'w').write('ran')"


async def start_session(jp_fetch: Any, path: str, kernel: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"path": path, "name": path, "type": "notebook", "kernel": {}}
    if kernel is not None:
        body["kernel"] = {"name": kernel}
    r = await jp_fetch("api", "sessions", method="POST", body=json.dumps(body))
    session: dict[str, Any] = json.loads(r.body)
    return session


@asynccontextmanager
async def notebook_on(jp_fetch: Any, root: Path, kernel: str) -> AsyncIterator[dict[str, Any]]:
    """``nb.ipynb`` with a session on ``kernel``, deleted (kernel and all) afterwards."""
    write_notebook(root)
    session = await start_session(jp_fetch, "nb.ipynb", kernel)
    try:
        yield session
    finally:
        await jp_fetch("api", "sessions", session["id"], method="DELETE")


def call_once(fake: FakeAnthropic, tool: str, args: dict[str, Any]) -> None:
    """The model asks for one tool call, then answers with text whatever came back."""
    fake.push(Reply(tools=[ToolUse(tool, args)]), Reply(text="done"))


# -- the kernel a new notebook gets -------------------------------------------------------


async def test_the_default_kernel_is_the_sandboxed_one(jp_fetch: Any) -> None:
    specs = json.loads((await jp_fetch("api", "kernelspecs")).body)
    assert specs["default"] == "aiide-python"
    assert specs["kernelspecs"]["aiide-python"]["spec"]["display_name"] == "Python 3 (sandboxed)"


async def test_unsandboxed_kernelspecs_are_labelled(jp_fetch: Any) -> None:
    specs = json.loads((await jp_fetch("api", "kernelspecs")).body)["kernelspecs"]
    assert specs["python3"]["spec"]["display_name"].endswith(UNSANDBOXED_SUFFIX)
    one = json.loads((await jp_fetch("api", "kernelspecs", "python3")).body)
    assert one["spec"]["display_name"].endswith(UNSANDBOXED_SUFFIX)


async def test_a_session_without_a_kernel_name_starts_the_sandboxed_kernel(
    jp_fetch: Any, jp_serverapp: Any
) -> None:
    from aiide_kernel.provisioner import SandboxProvisioner

    session = await start_session(jp_fetch, "new.ipynb", None)
    try:
        assert session["kernel"]["name"] == "aiide-python"
        manager = jp_serverapp.kernel_manager.get_kernel(session["kernel"]["id"])
        assert isinstance(manager.provisioner, SandboxProvisioner)
    finally:
        await jp_fetch("api", "sessions", session["id"], method="DELETE")


@pytest.mark.agent_config(MappingKernelManager={"default_kernel_name": "python3"})
async def test_a_default_kernel_the_admin_configured_is_kept(jp_fetch: Any) -> None:
    specs = json.loads((await jp_fetch("api", "kernelspecs")).body)
    assert specs["default"] == "python3"


@pytest.mark.agent_config(
    AiideExtension={"prewarm_kernels": False, "hide_unsandboxed_kernels": True}
)
async def test_hiding_unsandboxed_kernels_removes_them(jp_fetch: Any) -> None:
    specs = json.loads((await jp_fetch("api", "kernelspecs")).body)
    assert set(specs["kernelspecs"]) == {"aiide-python"}
    assert specs["default"] == "aiide-python"
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("api", "kernelspecs", "python3")
    assert e.value.code == 404
    with pytest.raises(HTTPClientError):
        await start_session(jp_fetch, "plain.ipynb", "python3")


# -- the agent in a notebook whose kernel is not sandboxed --------------------------------


async def test_agent_code_in_an_unsandboxed_notebook_is_refused(
    jp_fetch: Any, jp_ws_fetch: Any, jp_root_dir: Path, fake_anthropic: FakeAnthropic
) -> None:
    async with notebook_on(jp_fetch, jp_root_dir, "python3"):
        call_once(fake_anthropic, "execute_code", {"path": "nb.ipynb", "code": LEAK})
        chat = await connect(jp_ws_fetch)
        await chat.send(type="chat", text="run it", context={"notebook": "nb.ipynb"})
        call = await chat.until("tool_call")
        assert call["decision"] == "deny"
        result = await chat.until("tool_result")
        assert result["error"]["code"] == "kernel_not_sandboxed"
        assert "sandboxed kernel" in result["error"]["message"]
        assert (await chat.until("run_finished"))["status"] == "completed"
        assert not chat.of("approval_required")
        # Kernel-state introspection did not run in that kernel either.
        prompt = fake_anthropic.requests[0].body["messages"][-1]["content"][0]["text"]
        assert "not read: this notebook's kernel is not sandboxed" in prompt
    assert not (jp_root_dir / "leaked.txt").exists()


async def test_a_cell_run_in_an_open_unsandboxed_notebook_never_reaches_the_browser(
    jp_fetch: Any, jp_ws_fetch: Any, jp_root_dir: Path, fake_anthropic: FakeAnthropic
) -> None:
    async with notebook_on(jp_fetch, jp_root_dir, "python3"):
        call_once(fake_anthropic, "run_cell", {"path": "nb.ipynb", "cell_id": "c1"})
        chat = await connect(jp_ws_fetch)
        await chat.send(type="notebook_open", path="nb.ipynb")
        await chat.send(type="chat", text="run c1")
        result = await chat.until("tool_result")
        assert result["error"]["code"] == "kernel_not_sandboxed"
        await chat.until("run_finished")
        assert not chat.of("notebook_execute")


async def test_the_browser_is_told_which_sandboxed_kernel_to_run_in(
    jp_fetch: Any, jp_ws_fetch: Any, jp_root_dir: Path, fake_anthropic: FakeAnthropic
) -> None:
    async with notebook_on(jp_fetch, jp_root_dir, "aiide-python") as session:
        call_once(fake_anthropic, "run_cell", {"path": "nb.ipynb", "cell_id": "c1"})
        chat = await connect(jp_ws_fetch)
        await chat.send(type="notebook_open", path="nb.ipynb")
        await chat.send(type="chat", text="run c1")
        ask = await chat.approve_next()
        assert ask["risk"] == "run" and "outside_sandbox" not in ask
        run = await chat.until("notebook_execute")
        assert run["kernel_id"] == session["kernel"]["id"]


@pytest.mark.agent_config(ToolPolicy={"allow_unsandboxed_kernels": True})
async def test_an_admin_opt_in_makes_it_network_risk_and_says_so(
    jp_fetch: Any, jp_ws_fetch: Any, jp_root_dir: Path, fake_anthropic: FakeAnthropic
) -> None:
    async with notebook_on(jp_fetch, jp_root_dir, "python3"):
        call_once(fake_anthropic, "execute_code", {"path": "nb.ipynb", "code": LEAK})
        chat = await connect(jp_ws_fetch)
        await chat.send(type="chat", text="run it")
        ask = await chat.until("approval_required")
        assert ask["risk"] == "network" and ask["outside_sandbox"] is True
        await chat.decide(ask)
        result = await chat.until("tool_result", timeout=60)
        assert result["ok"], result
        await chat.until("run_finished")
    # What an admin allowed ran as the server's user, in the notebook's own directory.
    assert (jp_root_dir / "leaked.txt").read_text() == "ran"


@pytest.mark.agent_config(ToolPolicy={"roles": {"*": {"low": "auto", "medium": "auto"}}})
async def test_auto_approval_does_not_extend_to_unsandboxed_kernels(
    jp_fetch: Any, jp_ws_fetch: Any, jp_root_dir: Path, fake_anthropic: FakeAnthropic
) -> None:
    """Roles that run code without asking still get kernel_not_sandboxed."""
    async with notebook_on(jp_fetch, jp_root_dir, "python3"):
        call_once(fake_anthropic, "execute_code", {"path": "nb.ipynb", "code": LEAK})
        chat = await connect(jp_ws_fetch)
        await chat.send(type="chat", text="run it")
        result = await chat.until("tool_result")
        assert result["error"]["code"] == "kernel_not_sandboxed"
        await chat.until("run_finished")
    assert not (jp_root_dir / "leaked.txt").exists()


# -- the decision, without a server: every policy layered on ToolPolicy keeps it -----------


def _decide(policy: Any, sandboxed: bool) -> Any:
    from aiide_server_ext.agent.tools import TOOLS
    from aiide_server_ext.seams import Caller

    caller = Caller(username="ada", scopes=frozenset({"*"}))
    return policy.decide(TOOLS["execute_code"], {"code": "1"}, caller, sandboxed=sandboxed)


def test_policy_files_and_courses_cannot_turn_the_refusal_into_a_run() -> None:
    from aiide_server_ext.headless.policy_file import FilePolicy
    from aiide_server_ext.hub.singleuser.tools import CourseToolPolicy

    files = FilePolicy()
    files.tool_actions = {"execute_code": "auto"}
    course = CourseToolPolicy(files)
    course.learn("ada", {"execution": "approve"})
    for policy in (files, course):
        refused = _decide(policy, sandboxed=False)
        assert (refused.action, refused.code) == ("deny", "kernel_not_sandboxed")
        assert _decide(policy, sandboxed=True).action != "deny"


def test_with_the_opt_in_a_course_keeps_the_outside_sandbox_mark() -> None:
    from traitlets.config import Config

    from aiide_server_ext.agent.tool_policy import ToolPolicy
    from aiide_server_ext.hub.singleuser.tools import CourseToolPolicy

    inner = ToolPolicy(config=Config({"ToolPolicy": {"allow_unsandboxed_kernels": True}}))
    course = CourseToolPolicy(inner)
    course.learn("ada", {"execution": "deny"})
    assert _decide(inner, sandboxed=False).outside_sandbox
    assert _decide(inner, sandboxed=False).risk == "network"
    denied = _decide(course, sandboxed=False)
    assert denied.action == "deny" and denied.code == "denied"
    course.learn("ada", {"execution": "approve"})
    assert _decide(course, sandboxed=False).outside_sandbox


# -- what counts as sandboxed: server-side facts only ----------------------------------


def test_kernelspecs_are_sandboxed_by_provisioner_or_gateway_launcher() -> None:
    from aiide_kernel.launch.kernelspec import gateway_kernelspec
    from aiide_server_ext.kernelspecs import spec_is_sandboxed

    shipped = json.loads(
        (Path(__file__).parents[2] / "share/kernels/aiide-python/kernel.json").read_text()
    )
    assert spec_is_sandboxed(shipped)
    gateway = gateway_kernelspec("/opt/py/bin/python", "docker")
    assert spec_is_sandboxed(gateway)
    assert spec_is_sandboxed({"name": "aiide-python", "spec": gateway})  # a REST model
    plain = {"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]}
    assert not spec_is_sandboxed(plain)
    assert not spec_is_sandboxed({"metadata": {"kernel_provisioner": "aiide-sandbox"}})
    assert not spec_is_sandboxed(None)


@pytest.mark.asyncio
async def test_a_gateway_kernel_is_judged_by_the_gateways_kernelspec() -> None:
    from jupyter_server.gateway.managers import GatewayKernelManager

    from aiide_kernel.launch.kernelspec import gateway_kernelspec
    from aiide_server_ext.agent.kernels import KernelRunner

    specs = {
        "aiide-python": {"name": "aiide-python", "spec": gateway_kernelspec("/py", "bwrap")},
        "python3": {"name": "python3", "spec": {"argv": ["python", "-m", "ipykernel"]}},
    }

    class GatewaySpecs:
        async def get_kernel_spec(self, name: str) -> dict[str, Any]:
            return specs[name]

    class Kernels:
        kernel_spec_manager = GatewaySpecs()
        kernels: dict[str, Any] = {}

        def get_kernel(self, kid: str) -> Any:
            return self.kernels[kid]

    km = Kernels()
    for name in specs:
        remote = GatewayKernelManager.__new__(GatewayKernelManager)
        remote.kernel_name = name
        km.kernels[name] = remote
    runner = KernelRunner(km, None, "/", "aiide-python")
    assert await runner.kernel_sandboxed("aiide-python")
    assert not await runner.kernel_sandboxed("python3")
    assert not await runner.kernel_sandboxed("unknown")


@pytest.mark.asyncio
async def test_a_headless_run_on_a_plain_kernel_runs_no_code(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: Any
) -> None:
    """``jupyter aiide run --kernel python3 --yes``: even "yes to everything" is refused."""
    from headless.runs import aiide, read_lines, write_config, write_nb

    tmp_path.chmod(0o755)
    cfg = write_config(tmp_path, afake_anthropic.url, afake_openai.url)
    write_nb(tmp_path / "nb.ipynb", [("code", "x = 1")])
    afake_anthropic.push(
        Reply(tools=[ToolUse("execute_code", {"code": LEAK}, id="toolu_leak0001")]),
        Reply(text="refused"),
    )
    code, _, err = await aiide(
        "run",
        "nb.ipynb",
        "--goal",
        "g",
        "--kernel",
        "python3",
        "--yes",
        "--config",
        str(cfg),
        cwd=tmp_path,
    )
    assert code == 0, err
    trace = read_lines(tmp_path / "nb.aiide.trace.jsonl")
    results = [r for r in trace if r.get("event") == "tool_result"]
    assert results and "kernel_not_sandboxed" in json.dumps(results)
    assert not (tmp_path / "leaked.txt").exists()
