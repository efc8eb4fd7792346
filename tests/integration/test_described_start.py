"""A described provider's descriptor is checked when the server starts: a real
``jupyter server`` with an invalid one exits, its log naming the provider and the field;
with a valid one it serves."""

from __future__ import annotations

import urllib.request
from typing import Any

from servers import JupyterServer


def agent(providers: dict[str, Any]) -> dict[str, Any]:
    models = [{"name": "gw", "provider": "gw", "model": "m"}]
    return {"Agent": {"providers": providers, "models": models, "preload": False}}


def test_an_invalid_descriptor_stops_the_server_naming_the_field() -> None:
    bad = {"gw": {"kind": "described", "descriptor": "text-api", "base_url": "http://h",
                  "stream": {"text": "choices[0"}}}  # fmt: skip
    server = JupyterServer(agent(bad))
    try:
        server.start()
        assert server.proc is not None
        code = server.proc.wait(60)
        log = server.log()
    finally:
        server.__exit__(None, None, None)
    assert code != 0, log[-2000:]
    assert "c.Agent.providers['gw']: stream.text: invalid JMESPath 'choices[0'" in log


def test_an_unknown_template_variable_stops_the_server() -> None:
    bad = {"gw": {"kind": "described", "descriptor": "azure-openai", "base_url": "http://h",
                  "request": {"headers": {"api-key": "${apikey}"}}}}  # fmt: skip
    server = JupyterServer(agent(bad))
    try:
        server.start()
        assert server.proc is not None
        code = server.proc.wait(60)
        log = server.log()
    finally:
        server.__exit__(None, None, None)
    assert code != 0
    assert "request.headers.api-key: unknown variable ${apikey}" in log


def test_a_valid_descriptor_serves() -> None:
    good = {"gw": {"kind": "described", "descriptor": "ollama", "base_url": "http://h"}}
    with JupyterServer(agent(good)) as server:
        request = urllib.request.Request(
            server.url + "/aiide/api/agent/models",
            headers={"Authorization": f"token {server.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            assert b'"gw"' in r.read()
