"""Run code in a kernel and collect what it printed: the one thing most sandbox
tests need (through jupyter_client, or as ``Execution`` over a server's kernel websocket);
and ask over a kernel's channel socket, as the ``%ai`` magic does."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from jupyter_client import AsyncKernelManager


@dataclass
class Result:
    status: str
    stdout: str = ""
    stderr: str = ""
    error: str = ""
    outputs: list[dict[str, Any]] = field(default_factory=list)


async def run_code(km: AsyncKernelManager, code: str, timeout: float = 60) -> Result:
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        result = Result(status="")

        def hook(msg: dict[str, Any]) -> None:
            content = msg["content"]
            kind = msg["header"]["msg_type"]
            result.outputs.append({"type": kind, **content})
            if kind == "stream":
                if content["name"] == "stdout":
                    result.stdout += content["text"]
                else:
                    result.stderr += content["text"]
            elif kind == "error":
                result.error = f"{content['ename']}: {content['evalue']}"

        reply = await kc.execute_interactive(code, timeout=timeout, output_hook=hook)
        result.status = reply["content"]["status"]
        if not result.error and result.status == "error":
            result.error = f"{reply['content']['ename']}: {reply['content']['evalue']}"
        return result
    finally:
        kc.stop_channels()


async def ask_channel(socket_path: str, prompt: str = "hello") -> tuple[int, dict[str, Any]]:
    """One request over the kernel's channel, as ``aiide_kernel.magics`` sends it: the
    status and the JSON body of the answer."""
    reader, writer = await asyncio.open_unix_connection(socket_path)
    data = json.dumps({"prompt": prompt, "format": "text"}).encode()
    writer.write(
        b"POST /v1/ask HTTP/1.1\r\nHost: kernel\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(data) + data
    )
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 60)
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


class Execution:
    """One ``execute_request`` sent over a kernel's websocket (a server's
    ``/api/kernels/ID/channels``, whichever client sends it) and what came back for it.
    The reply (shell) and the output (iopub) travel on different channels: it is done when
    both the reply and iopub's "idle" for this request have come, in either order."""

    def __init__(self, code: str, *, username: str = "test", store_history: bool = False):
        self.msg_id = uuid.uuid4().hex
        header = {"msg_id": self.msg_id, "msg_type": "execute_request",
                  "session": uuid.uuid4().hex, "username": username, "version": "5.3",
                  "date": ""}  # fmt: skip
        content = {"code": code, "silent": False, "store_history": store_history,
                   "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}  # fmt: skip
        self.request = {"header": header, "parent_header": {}, "metadata": {},
                        "content": content, "channel": "shell", "buffers": []}  # fmt: skip
        self.stdout = ""  # the streams' text
        self.output = ""  # the streams' text and each error's "ename: evalue", in order
        self.errors: list[str] = []
        self.reply: dict[str, Any] | None = None
        self.idle = False

    @property
    def message(self) -> str:
        return json.dumps(self.request)

    @property
    def done(self) -> bool:
        return self.reply is not None and self.idle

    def take(self, frame: str | bytes) -> bool:
        """Folds in one frame from the socket (others' are passed over); ``done``."""
        msg = json.loads(frame)
        if msg.get("parent_header", {}).get("msg_id") != self.msg_id:
            return self.done
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            self.stdout += content["text"]
            self.output += content["text"]
        elif kind == "error":
            error = f"{content['ename']}: {content['evalue']}"
            self.errors.append(error)
            self.output += error
        elif kind == "execute_reply":
            self.reply = content
        elif kind == "status" and content["execution_state"] == "idle":
            self.idle = True
        return self.done
