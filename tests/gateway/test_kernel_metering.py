"""Sandboxed kernel time, metered end to end for whoever started the kernel."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from .conftest import need
from .helpers import Call, claims, forge

pytestmark = pytest.mark.xdist_group("gateway")


@pytest.mark.usefixtures("aiide_kernelspec")
@pytest.mark.gateway_config(kernel_second_price=0.01)
async def test_sandboxed_kernel_time_is_metered_for_whoever_started_it(
    call: Call, gate: Any
) -> None:
    from aiide_kernel.backends import get_backend

    status = get_backend("bwrap").check()
    need("bubblewrap", status.available, f"bwrap unavailable: {status.detail}")
    token = forge(claims("rosa", scopes=["kernels", "usage:read"]))
    r = await call("POST", "/api/kernels", token=token, body={"name": "aiide-python"})
    assert r.status == 201, r.body
    await asyncio.sleep(0.5)
    r = await call("DELETE", f"/api/kernels/{r.json()['id']}", token=token)
    assert r.status == 204
    await gate.kernels.drain()
    usage = (await call("GET", "/aiide/api/usage?by=kind", token=token)).json()
    kernel = next(row for row in usage["rows"] if row["kind"] == "kernel")
    assert kernel["kernel_seconds"] > 0.4
    assert kernel["memory_gb_seconds"] > 0
    assert kernel["cost"] == pytest.approx(kernel["kernel_seconds"] * 0.01, rel=0.01)
