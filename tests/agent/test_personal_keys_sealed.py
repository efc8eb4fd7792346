"""Personal provider keys through a real server: sealed in its database, used for the
call, never shown or logged; a server key that changed is a clear error (security.md,
*Secrets at rest*)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeAnthropic, FakeOpenAI

from aiide_server_ext.agent.store import Store
from aiide_server_ext.stores.sealing import Sealer

from .chat import connect

pytestmark = pytest.mark.xdist_group("agent")

MINE = "sk-ant-mine-sealed-0123456789"
LOCAL = "sk-local-mine-sealed-9876543210"


def database(jp_serverapp: Any) -> str:
    return os.path.join(jp_serverapp.data_dir, "aiide", "agent.sqlite")


def on_disk(path: str) -> bytes:
    return b"".join(Path(path + s).read_bytes() for s in ("", "-wal") if os.path.exists(path + s))


async def put_key(jp_fetch: Any, provider: str, key: str) -> None:
    await jp_fetch(
        "aiide", "api", "agent", "keys", provider, method="PUT", body=json.dumps({"key": key})
    )


@pytest.mark.agent_config(allow_user_keys=True)
async def test_personal_keys_are_sealed_on_disk_used_and_never_logged(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_serverapp: Any,
    fake_anthropic: FakeAnthropic,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_anthropic.api_key = MINE
    await put_key(jp_fetch, "anthropic", MINE)
    await put_key(jp_fetch, "local", LOCAL)  # any provider by name, whatever its kind
    listing = json.loads((await jp_fetch("aiide", "api", "agent", "keys")).body)
    assert listing == {
        "keys": [
            {"provider": "anthropic", "set": True, "hint": "…6789"},
            {"provider": "local", "set": True, "hint": "…3210"},
        ]
    }
    disk = on_disk(database(jp_serverapp))
    assert b"aiide-sealed:v1:" in disk  # the rows are there, sealed
    assert MINE.encode() not in disk and LOCAL.encode() not in disk
    key_file = Path(jp_serverapp.data_dir) / "aiide" / "secret_key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="hi", task="chat")
    assert (await chat.until("run_finished"))["status"] == "completed"
    assert fake_anthropic.requests, "the fake was called with the personal key"
    assert all(MINE not in json.dumps(m) for m in chat.received)
    assert MINE not in caplog.text and LOCAL not in caplog.text


@pytest.mark.agent_config(allow_user_keys=True)
async def test_a_key_sealed_under_another_server_key_is_a_clear_error(
    jp_fetch: Any, jp_ws_fetch: Any, jp_serverapp: Any, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.api_key = MINE
    await put_key(jp_fetch, "anthropic", MINE)
    # As if the server key had been replaced since the key was stored.
    other = Store(database(jp_serverapp), sealer=Sealer(b"o" * 32, "an old key"))
    assert other.db is not None
    (user,) = other.db.execute("SELECT username FROM user_values").fetchone()
    other.set_user_value(user, "key:anthropic", MINE)
    other.close()
    listing = json.loads((await jp_fetch("aiide", "api", "agent", "keys")).body)
    assert listing == {"keys": [{"provider": "anthropic", "set": True, "unreadable": True}]}
    chat = await connect(jp_ws_fetch)
    await chat.send(type="chat", text="hi", task="chat")
    error = await chat.until("error")
    assert error["code"] == "secret_unreadable"
    assert error["message"].startswith("your key for 'anthropic': it was sealed with server key")
    assert jp_serverapp.data_dir not in error["message"]  # no server paths to users
    assert MINE not in json.dumps(chat.received)
    assert not fake_anthropic.requests  # nothing was sent with a garbled key
