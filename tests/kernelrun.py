"""Run code in a kernel and collect what it printed: the one thing most sandbox
tests need."""

from __future__ import annotations

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
