"""One real JupyterHub for the hub tests (started once: a hub takes ~10 s, a spawn ~6 s), and
a real redis-server per module for the broker's shared state."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from optional import require
from servers import RedisServer

from aiide_server_ext.hub.broker.state import SharedState

from .harness import COURSE, INSTRUCTORS, STUDENTS, Hub, missing


@pytest.fixture(scope="session")
def hub() -> Iterator[Hub]:
    found = missing()
    if found is not None:
        require(*found)
    running = Hub().start()
    try:
        running.spawn(*STUDENTS, *INSTRUCTORS)
        yield running
    finally:
        running.stop()


@pytest.fixture
def course(hub: Hub) -> Iterator[Hub]:
    """The hub, its course's exam mode and budget put back as ``harness.py`` set them after
    the test (an instructor changes them through the course API). Modules whose tests
    change other settings override it."""
    yield hub
    reset = {"exam": COURSE["exam"], "budget": COURSE["budget"]}
    status, body = hub.request(
        "PATCH", hub.user_url("ian", "/aiide/api/course/ds101"), hub.login("ian"), reset
    )
    assert status == 200, body


# The broker's shared state against a real redis-server of the module, and without Redis.
@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    require("redis", shutil.which("redis-server") is not None, "redis-server is not installed")
    with RedisServer() as server:
        yield server.url


@pytest_asyncio.fixture(params=["redis", "memory"])
async def state(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[SharedState]:
    import redis.asyncio as aioredis

    if request.param == "redis":
        client = aioredis.from_url(redis_url)
        await client.flushdb()
        await client.aclose()
    shared = SharedState(redis_url if request.param == "redis" else "")
    yield shared
    await shared.close()
