"""JupyterLab's extension manager runs pip as the server's user: on a server several people
use (JupyterHub, or the gateway configured for users other than the owner) it is read-only
unless an admin names a manager; a single-user server keeps JupyterLab's default.

A real Jupyter server with JupyterLab loaded; the manager is read from the page JupyterLab
serves (``extensionManager`` in its page config), as the lab in a browser reads it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from traitlets.config import Config

from .helpers import Call

PAGE_CONFIG = re.compile(
    rb'<script id="jupyter-config-data" type="application/json">(.*?)</script>', re.DOTALL
)


@pytest.fixture
def hub(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """True (``indirect`` parameter): the server starts as JupyterHub starts a user's
    server, with the hub's API token in its environment."""
    under_hub = bool(getattr(request, "param", False))
    if under_hub:
        monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "not-a-real-hub-token")
    else:
        monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    return under_hub


@pytest.fixture
def lab_traits(request: pytest.FixtureRequest) -> dict[str, Any]:
    """``c.LabApp`` config of a test (``indirect`` parameter)."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
def jp_server_config(jp_server_config: Config, hub: bool, lab_traits: dict[str, Any]) -> Config:
    jp_server_config.ServerApp.jpserver_extensions.update({"jupyterlab": True})
    for name, value in lab_traits.items():
        jp_server_config.LabApp[name] = value
    return jp_server_config


UNDER_HUB = pytest.mark.parametrize("hub", [True], indirect=True, ids=["hub"])


async def _manager(call: Call) -> dict[str, Any]:
    r = await call("GET", "/lab", jupyter=True)
    assert r.status == 200, r.body[:500]
    found = PAGE_CONFIG.search(r.body)
    assert found, "JupyterLab's page has no page config"
    return dict(json.loads(found.group(1))["extensionManager"])


@UNDER_HUB
async def test_under_jupyterhub_the_extension_manager_is_read_only(call: Call) -> None:
    manager = await _manager(call)
    assert manager["name"] == "read-only"
    assert manager["can_install"] is False
    # Even the owner (every scope) cannot make the server run pip.
    body = {"cmd": "install", "extension_name": "evil-extension"}
    r = await call("POST", "/lab/api/extensions", jupyter=True, body=body)
    assert r.status == 422, r.body
    assert "was blocked" in r.json()["message"]
    body = {"cmd": "uninstall", "extension_name": "jupyterlab_pygments"}
    r = await call("POST", "/lab/api/extensions", jupyter=True, body=body)
    assert r.status == 500, r.body  # JupyterLab's words for a refusal of its manager
    assert r.json()["message"] == "Extension removal not supported."


@pytest.mark.gateway_config(user_roles={"bob": ["user"]})
async def test_with_gateway_users_the_extension_manager_is_read_only(call: Call) -> None:
    assert (await _manager(call))["name"] == "read-only"


@UNDER_HUB
@pytest.mark.parametrize("lab_traits", [{"extension_manager": "pypi"}], indirect=True)
async def test_an_admin_who_names_a_manager_keeps_it(call: Call) -> None:
    manager = await _manager(call)
    assert manager["name"] == "PyPI"
    assert manager["can_install"] is True


async def test_a_single_user_server_keeps_jupyterlabs_default(call: Call) -> None:
    assert (await _manager(call))["name"] == "PyPI"
