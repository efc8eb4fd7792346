"""A database that cannot be written, even by root: every gateway write is a clear 503."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiide_server_ext.gateway.store import Store

from .conftest import need
from .helpers import Call, error


def _chattr(flag: str, *paths: Path) -> bool:
    tool = shutil.which("chattr")
    if tool is None:
        return False
    return subprocess.run([tool, flag, *map(str, paths)], capture_output=True).returncode == 0


@pytest.fixture
def read_only_db(tmp_path: Path) -> Iterator[str]:
    """A migrated database whose file and directory cannot be written, even by root."""
    directory = tmp_path / "ro"
    directory.mkdir()
    path = directory / "gateway.sqlite"
    store = Store(str(path))
    store.version()
    store.close()
    assert os.listdir(directory) == ["gateway.sqlite"]
    need(
        "immutable-files",
        _chattr("+i", path, directory),
        "cannot make files immutable here (chattr +i)",
    )
    try:
        yield str(path)
    finally:
        _chattr("-i", path, directory)


@pytest.fixture
def gateway_config(read_only_db: str) -> dict[str, Any]:
    return {"db_path": read_only_db}


async def test_a_read_only_database_is_a_503(call: Call) -> None:
    error(
        await call("POST", "/aiide/api/keys", jupyter=True, body={"name": "k"}),
        503,
        "store_read_only",
    )
    error(await call("GET", "/aiide/api/usage", jupyter=True), 503, "store_read_only")
    assert (await call("GET", "/aiide/api/auth/me", jupyter=True)).status == 200
