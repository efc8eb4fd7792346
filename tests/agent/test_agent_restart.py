"""``kill -9`` of a server while a run waits for approval: a new server picks the run up."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from fakes import FakeAnthropic, FakeOpenAI, Reply
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

from .chat import Chat
from .conftest import KEY, OAI_KEY, agent_config
from .test_agent_chat import INSERT, NEW_CELL, read_notebook, write_notebook

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("agent")]
TOKEN = "restart-test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, tmp: Path, anthropic_url: str, openai_url: str) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.root = tmp / "root"
        self.root.mkdir(exist_ok=True)
        config = {
            "ServerApp": {
                "jpserver_extensions": {"aiide_server_ext": True},
                "token": TOKEN,
                "root_dir": str(self.root),
                "port": self.port,
                "ip": "127.0.0.1",
                "open_browser": False,
                "allow_root": True,
            },
            "AiideExtension": {"prewarm_kernels": False},
            "Knowledge": {"enabled": False},
            "KernelPool": {"size": 0},
            "Agent": agent_config(anthropic_url, openai_url),
        }
        self.config = tmp / "jupyter_server_config.json"
        self.config.write_text(json.dumps(config))
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        env = {
            **os.environ,
            "AIIDE_T_ANTHROPIC": KEY,
            "AIIDE_T_OPENAI": OAI_KEY,
            "JUPYTER_CONFIG_DIR": str(self.tmp / "config"),
            "JUPYTER_DATA_DIR": str(self.tmp / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.tmp / "runtime"),
        }
        log = open(self.tmp / "server.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", f"--config={self.config}"],
            env=env,
            stdout=log,
            stderr=log,
            cwd=self.tmp,
        )
        client = AsyncHTTPClient()
        for _ in range(300):
            try:
                r = await client.fetch(
                    f"http://127.0.0.1:{self.port}/aiide/api/agent/models",
                    headers={"Authorization": f"token {TOKEN}"},
                    raise_error=False,
                )
                if r.code == 200:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.1)
        raise AssertionError(
            "server did not start: " + (self.tmp / "server.log").read_text()[-3000:]
        )

    async def chat(self) -> Chat:
        request = HTTPRequest(
            f"ws://127.0.0.1:{self.port}/aiide/api/chat/ws",
            headers={"Authorization": f"token {TOKEN}"},
        )
        chat = Chat(await websocket_connect(request))
        assert (await chat.recv())["type"] == "hello"
        return chat

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest_asyncio.fixture
async def server(
    tmp_path: Path, afake_anthropic: FakeAnthropic, afake_openai: FakeOpenAI
) -> AsyncIterator[Server]:
    srv = Server(tmp_path, afake_anthropic.url, afake_openai.url)
    yield srv
    srv.stop()
    log = tmp_path / "server.log"
    if log.exists():  # shown by pytest when the test failed
        print("server.log:", log.read_text(errors="replace")[-6000:])


async def test_kill_9_while_awaiting_approval_then_restart_approve_and_complete(
    server: Server, afake_anthropic: FakeAnthropic
) -> None:
    write_notebook(server.root)
    afake_anthropic.push(
        Reply(text="Adding it.", tools=[INSERT]), Reply(text="Done after the restart.")
    )
    await server.start()
    chat = await server.chat()
    await chat.send(type="chat", text="add a cell", context={"notebook": "nb.ipynb"})
    ask = await chat.until("approval_required")
    server.kill()

    await server.start()
    chat = await server.chat()
    await chat.send(type="resume", conversation_id=ask["conversation_id"], after_seq=0)
    replayed = await chat.until("approval_required")
    assert replayed == ask  # exactly what the first server sent
    await chat.until("resumed")
    await chat.decide(ask)
    result = await chat.until("tool_result")
    assert result["ok"], result
    done = await chat.until("run_finished")
    assert done["status"] == "completed" and done["text"] == "Done after the restart."
    assert done["seq"] > ask["seq"]
    assert [c.id for c in read_notebook(server.root).cells] == ["c1", NEW_CELL]
    # The model's second call carried the whole transcript from before the crash.
    assert [m["role"] for m in afake_anthropic.requests[1].body["messages"]] == [
        "user",
        "assistant",
        "user",
    ]


async def test_a_run_cut_mid_stream_fails_as_interrupted_after_restart(
    server: Server, afake_anthropic: FakeAnthropic
) -> None:
    afake_anthropic.push(Reply(text=" ".join(["w"] * 400), delay=0.02))
    await server.start()
    chat = await server.chat()
    await chat.send(type="chat", text="talk", task="chat")
    token = await chat.until("token")
    for _ in range(5):
        await chat.until("token")
    server.kill()
    await server.start()
    chat = await server.chat()
    await chat.send(type="resume", conversation_id=token["conversation_id"], after_seq=0)
    error = await chat.until("error")
    assert error["code"] == "interrupted"
    seqs = [m["seq"] for m in chat.received if m.get("seq")]
    assert seqs == list(range(1, seqs[-1] + 1))  # everything sent survived: no gap
    assert (await chat.until("run_finished"))["status"] == "failed"
    await chat.send(
        type="chat", conversation_id=token["conversation_id"], text="again", task="chat"
    )
    assert (await chat.until("run_finished"))["status"] == "completed"
