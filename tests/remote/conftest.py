"""Fixtures: one Enterprise Gateway and one Jupyter server in front of it per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox_support import require_backend

from .harness import Gateway, Server, install_gateway


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    require_backend("bwrap")
    venv = install_gateway()
    home = tmp_path_factory.mktemp("eg")
    gw = Gateway(venv=venv, home=home)
    try:
        yield gw.start()
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def server(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home: Path = tmp_path_factory.mktemp("js")
    srv = Server(home=home, gateway_url=gateway.url, gateway_token=gateway.token)
    try:
        yield srv.start()
    finally:
        srv.stop()
