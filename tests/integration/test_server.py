"""The extension inside a real Jupyter server: routes, and a notebook cell run in a
sandboxed kernel through the same REST + WebSocket API JupyterLab uses."""

from __future__ import annotations

import asyncio
import gc
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kernelrun import Execution
from sandbox_support import require_memory_limit
from tornado.httpclient import HTTPClientError

pytestmark = pytest.mark.xdist_group("sandbox")


async def test_status_reports_version_backends_and_model_help(
    jp_fetch: Any, no_model_key: None
) -> None:
    from aiide_server_ext import __version__

    r = await jp_fetch("aiide", "api", "status")
    body = json.loads(r.body)
    assert body["version"] == __version__
    assert set(body["sandbox"]["backends"]) == {"bwrap", "docker"}
    assert body["sandbox"]["default_backend"] == "bwrap"
    bwrap = body["sandbox"]["backends"]["bwrap"]
    assert bwrap["available"] is True, bwrap
    assert body["model"]["configured"] is False
    assert "ANTHROPIC_API_KEY" in body["model"]["help"]


async def test_status_says_model_configured_without_revealing_the_key(
    jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-value")
    r = await jp_fetch("aiide", "api", "status")
    assert json.loads(r.body)["model"]["configured"] is True
    assert b"sk-ant-secret-value" not in r.body


@pytest.fixture
def gc_threshold_restored() -> Iterator[tuple[int, ...]]:
    before = gc.get_threshold()
    gc.set_threshold(700, *before[1:])  # Python's default, as in a fresh server process
    yield before
    gc.set_threshold(*before)


async def test_server_runs_young_collections_less_often(
    gc_threshold_restored: tuple[int, ...], jp_serverapp: Any
) -> None:
    """The config's threshold is in force once aiide is loaded (see benchmarks/chat_stream.py)."""
    from aiide_server_ext.app import AiideExtension

    assert gc.get_threshold()[0] == AiideExtension.gc_young_threshold.default_value == 7000
    assert gc.get_threshold()[1:] == gc_threshold_restored[1:]


def test_a_negative_gc_threshold_is_refused_by_name() -> None:
    from traitlets import TraitError

    from aiide_server_ext.app import AiideExtension

    with pytest.raises(TraitError, match="gc_young_threshold"):
        AiideExtension(gc_young_threshold=-1)


async def test_routes_require_authentication(jp_fetch: Any) -> None:
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("aiide", "api", "status", headers={"Authorization": "token wrong"})
    assert e.value.code in (401, 403)


async def test_events_of_an_unknown_kernel_is_404(jp_fetch: Any) -> None:
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("aiide", "api", "kernels", str(uuid.uuid4()), "events")
    assert e.value.code == 404


async def _run_cell(ws: Any, code: str, timeout: float = 60) -> tuple[str, str]:
    run = Execution(code, store_history=True)
    await ws.write_message(run.message)
    async with asyncio.timeout(timeout):
        while not run.take(await ws.read_message()):
            pass
    assert run.reply is not None
    return run.reply["status"], run.stdout


async def test_notebook_cell_runs_in_a_sandboxed_kernel(
    jp_fetch: Any, jp_ws_fetch: Any, jp_root_dir: Any
) -> None:
    r = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "aiide-python"}))
    kernel = json.loads(r.body)
    ws = await jp_ws_fetch("api", "kernels", kernel["id"], "channels")
    try:
        status, out = await _run_cell(
            ws, "import os; print(os.environ.get('AIIDE_SANDBOX'), os.getcwd(), 6 * 7)"
        )
    finally:
        ws.close()
        await jp_fetch("api", "kernels", kernel["id"], method="DELETE")
    assert status == "ok"
    assert out.split() == ["bwrap", str(jp_root_dir), "42"]


async def test_oom_death_is_reported_through_the_events_route(
    jp_fetch: Any, jp_ws_fetch: Any
) -> None:
    require_memory_limit()
    r = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "aiide-python"}))
    kernel_id = json.loads(r.body)["id"]
    ws = await jp_ws_fetch("api", "kernels", kernel_id, "channels")
    try:
        await ws.write_message(Execution("x = []\nwhile True: x.append(b'y' * 2**26)").message)
        events: list[dict[str, str]] = []
        async with asyncio.timeout(60):
            while not events:
                await asyncio.sleep(0.5)
                r = await jp_fetch("aiide", "api", "kernels", kernel_id, "events")
                events = json.loads(r.body)["events"]
        assert events[0]["kind"] == "died"
        assert "512 MiB memory limit" in events[0]["message"]
        # The server restarts the kernel by itself and it runs code again (a request sent
        # while the restart is under way may go unanswered: ask again until one is).
        async with asyncio.timeout(90):
            while True:
                try:
                    status, out = await _run_cell(ws, "print(6 * 7)", timeout=5)
                except TimeoutError:
                    continue
                if status == "ok":
                    break
        assert out.strip() == "42"
    finally:
        ws.close()
        await jp_fetch("api", "kernels", kernel_id, method="DELETE")
