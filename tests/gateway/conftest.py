"""A real Jupyter server with the gateway wired into jupyter_server's auth hooks.

``@pytest.mark.gateway_config(**traits)`` sets ``c.Gateway.*`` for one test (capitalised
keys: whole config sections, e.g. ``Agent={...}``).
``call`` makes each request with a fresh HTTP client, so no login cookie from a
previous request can vouch for the next one.
"""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from optional import require
from traitlets.config import Config

from .helpers import OWNER, SECRET, Call, key_maker, server_client

IDP = "aiide_server_ext.gateway.identity.GatewayIdentityProvider"
AUTHORIZER = "aiide_server_ext.gateway.authorizer.GatewayAuthorizer"
KERNELSPEC = Path(__file__).parents[2] / "share" / "kernels" / "aiide-python"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gateway_config(**traits): c.Gateway config for a test")


def need(component: str, available: bool, why: str) -> None:
    """Skip when something the test needs is missing here; under CI that is a failure."""
    require(component, available, why)


@pytest.fixture
def gateway_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("gateway_config")
    return dict(marker.kwargs) if marker else {}


@pytest.fixture
def jp_server_config(jp_root_dir: Path, gateway_config: dict[str, Any]) -> Config:
    jp_root_dir.chmod(0o755)
    sections = {k: gateway_config.pop(k) for k in list(gateway_config) if k[0].isupper()}
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"aiide_server_ext": True},
                "identity_provider_class": IDP,
                "authorizer_class": AUTHORIZER,
            },
            "AiideExtension": {"prewarm_kernels": False},
            "KernelPool": {"size": 0},
            "Gateway": {"signing_secret": SECRET, "owner": OWNER, **gateway_config},
            **sections,
        }
    )


@pytest.fixture
def call(jp_serverapp: Any, http_server_client: Any, jp_http_port: int, jp_base_url: str) -> Call:
    return server_client(jp_serverapp, jp_http_port, jp_base_url)


@pytest.fixture
def issue(call: Call) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Tokens through the owner's Jupyter session (``user=`` issues for someone else)."""

    async def _issue(**body: Any) -> dict[str, Any]:
        r = await call("POST", "/aiide/api/auth/token", jupyter=True, body=body)
        assert r.status == 201, r.body
        return dict(r.json())

    return _issue


@pytest.fixture
def new_key(call: Call) -> Callable[..., Awaitable[dict[str, Any]]]:
    return key_maker(call)


@pytest.fixture
def gate(jp_serverapp: Any) -> Any:
    return jp_serverapp.web_app.settings["aiide_gate"]


@pytest.fixture
def aiide_kernelspec(jp_env_jupyter_path: Path) -> None:
    shutil.copytree(KERNELSPEC, jp_env_jupyter_path / "kernels" / "aiide-python")


@pytest.fixture
def redis_url() -> Iterator[str]:
    from servers import RedisServer

    need("redis", shutil.which("redis-server") is not None, "redis-server is not installed")
    with RedisServer() as server:
        yield server.url
