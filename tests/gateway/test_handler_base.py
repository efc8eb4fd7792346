"""One handler base for aiide's routes (issue 14, item 2), checked on the running server's
own router, with the JupyterHub part loaded too: every ``/aiide/api/`` route renders its
errors through ``json_api.JsonApi``'s one ``write_error`` (``{code, message}``; aiide's
own routes through ``AiideAPIHandler`` on top of it), so a route written with its own
error path fails here; no module keeps a ``fail()`` helper of its own."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from servers import free_port
from traitlets.config import Config

from aiide_server_ext.json_api import JsonApi

from .test_routes import _routes

#: Routes of aiide that answer without the JSON base, with the reason.
OTHER_BASES = {
    "/aiide/api/chat/ws": "a WebSocket: errors are protocol 'error' events with a code",
}
PACKAGE = Path(__file__).parents[2] / "aiide_server_ext"


@pytest.fixture
def jp_server_config(jp_server_config: Config) -> Config:
    """With the JupyterHub part (course routes); its broker is a closed port."""
    jp_server_config.ServerApp.jpserver_extensions["aiide_server_ext.hub"] = True
    jp_server_config.AiideHub.broker_url = f"http://127.0.0.1:{free_port()}/"
    return jp_server_config


async def test_every_aiide_route_uses_the_one_error_path(jp_serverapp: Any) -> None:
    walked, other = [], []
    for pattern, cls, _path in _routes(jp_serverapp):
        if not pattern.startswith("/aiide/") or pattern in OTHER_BASES:
            continue
        handler = getattr(cls, "_aiide_guarded", cls)
        if not issubclass(handler, JsonApi):
            other.append((pattern, handler.__qualname__))
        walked.append(pattern)
    assert not other, f"routes with their own error path: {other}"
    assert any(p.startswith("/aiide/api/course") for p in walked), walked
    assert len(walked) > 20, walked


def test_no_module_writes_errors_through_its_own_fail_helper() -> None:
    """The broker keeps one ``fail`` that renders through the same ``write_error`` (for
    paths that cannot raise); nothing else defines one."""
    helpers = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if re.search(r"^\s*def fail\(", path.read_text(), re.MULTILINE)
    ]
    assert helpers == ["hub/broker/handlers.py"], helpers
