"""How aiide turns the gateway on for an installed server: a config file of its own.

jupyter_server reads only ``jpserver_extensions`` from ``jupyter_server_config.d``;
the extension's own ``jupyter_aiide_server_ext_config.json`` is merged into the
server's config when the extension links, before the identity provider and the
authorizer are created, and anything the user configures still wins.
"""

from __future__ import annotations

import json
import urllib.request

import pytest
from servers import JupyterServer

from .conftest import AUTHORIZER, IDP
from .helpers import SECRET, claims, forge

pytestmark = pytest.mark.xdist_group("gateway")

EXTENSION_CONFIG = {
    "ServerApp": {"identity_provider_class": IDP, "authorizer_class": AUTHORIZER},
}


def _get(url: str, token: str) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_extension_config_file_installs_the_hooks_and_json_logs() -> None:
    files = {"jupyter_aiide_server_ext_config.json": EXTENSION_CONFIG}
    config = {"Gateway": {"signing_secret": SECRET, "json_logs": True}}
    with JupyterServer(config, files=files) as server:
        status, me = _get(server.url + "/aiide/api/auth/me", forge(claims("xena")))
        assert (status, me["user"], me["via"]) == (200, "xena", "jwt")
        status, _ = _get(server.url + "/api/contents", forge(claims("xena", scopes=["chat"])))
        assert status == 403
        _get(server.url + "/aiide/api/auth/me", forge(claims("xena", exp=1)))
        log = server.log()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(entry.get("logger") == "ServerApp" for entry in lines)
    assert SECRET not in log
