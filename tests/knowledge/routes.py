"""Helpers for the route tests (a real Jupyter server via pytest-jupyter)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from traitlets.config import Config


def server_config(data: Path, **knowledge: Any) -> Config:
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"aiide_server_ext": True}},
            "AiideExtension": {"prewarm_kernels": False},
            "KernelPool": {"size": 0},
            "Knowledge": {"data_dir": str(data), "warm_up_delay": -1.0, **knowledge},
        }
    )


async def call(jp_fetch: Any, *path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    kwargs.setdefault("raise_error", False)
    r = await jp_fetch("aiide", "api", "knowledge", *path, **kwargs)
    return r.code, json.loads(r.body) if r.body else {}


async def finished(jp_fetch: Any, job_id: str, timeout: float = 60) -> dict[str, Any]:
    for _ in range(int(timeout / 0.05)):
        code, job = await call(jp_fetch, "jobs", job_id)
        assert code == 200, job
        if job["status"] in ("done", "failed"):
            return job
        await asyncio.sleep(0.05)
    raise TimeoutError(job_id)
