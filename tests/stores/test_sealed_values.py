"""Users' own keys sealed at rest (docs/security.md, *Secrets at rest*): each claim there
has its test here, against the agent's real store on sqlite and PostgreSQL."""

from __future__ import annotations

import base64
import logging
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from aiide_server_ext.agent.errors import AgentError
from aiide_server_ext.agent.store import Store
from aiide_server_ext.stores.errors import StoreError
from aiide_server_ext.stores.sealing import KEY_ENV, PREFIX, Sealer, load_server_key

from .conftest import Db

KEY = "sk-ant-personal-0123456789abcdef"


def sealer(byte: bytes = b"k", source: str = "test key") -> Sealer:
    return Sealer(byte * 32, source)


def file_bytes(path: str) -> bytes:
    """The sqlite file and whatever sits beside it (log, shared memory)."""
    out = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(path + suffix):
            out += Path(path + suffix).read_bytes()
    return out


def raw_value(store: Store, user: str, name: str) -> str:
    assert store.db is not None
    row = store.db.execute(
        "SELECT value FROM user_values WHERE username = ? AND name = ?", (user, name)
    ).fetchone()
    return str(row[0])


def test_a_stored_key_is_sealed_in_the_database(db: Db) -> None:
    store = Store(db.agent_path(), url=db.url, sealer=sealer())
    store.set_user_value("ada", "key:anthropic", KEY)
    stored = raw_value(store, "ada", "key:anthropic")
    assert stored.startswith(PREFIX) and KEY not in stored
    assert store.user_value("ada", "key:anthropic") == KEY
    # Sealing is randomised: the same key stored twice never reads the same.
    store.set_user_value("bob", "key:anthropic", KEY)
    assert raw_value(store, "bob", "key:anthropic") != stored
    store.close()
    if not db.url:
        assert KEY.encode() not in file_bytes(db.agent_path())


def test_plain_rows_of_an_older_server_are_sealed_at_start_and_leave_no_trace(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(tmp_path / "agent.sqlite")
    Store(path, sealer=sealer()).close()  # the schema
    with sqlite3.connect(path) as raw:  # what a server from before sealing wrote
        raw.execute("INSERT INTO user_values VALUES ('ada', 'key:anthropic', ?)", (KEY,))
        raw.execute("INSERT INTO user_values VALUES ('ada', 'TEAM_TOKEN', 'team-secret-42')")
    assert KEY.encode() in file_bytes(path)
    with caplog.at_level(logging.DEBUG):
        store = Store(path, sealer=sealer())
    assert store.user_value("ada", "key:anthropic") == KEY
    assert store.user_value("ada", "TEAM_TOKEN") == "team-secret-42"
    assert raw_value(store, "ada", "key:anthropic").startswith(PREFIX)
    assert "sealed 2 per-user values" in caplog.text
    assert KEY not in caplog.text and "team-secret-42" not in caplog.text
    # The old pages were overwritten, not just freed, and the log was emptied.
    assert KEY.encode() not in file_bytes(path)
    assert b"team-secret-42" not in file_bytes(path)
    assert Store(path, sealer=sealer()).seal_plain_values() == 0  # nothing left to do


def test_plain_rows_are_sealed_on_postgresql_too(pg_url: str) -> None:
    store = Store("", url=pg_url, sealer=sealer())
    assert store.db is not None
    store.db.execute("INSERT INTO user_values VALUES ('ada', 'key:local', ?)", (KEY,))
    again = Store("", url=pg_url, sealer=sealer())
    assert raw_value(again, "ada", "key:local").startswith(PREFIX)
    assert again.user_value("ada", "key:local") == KEY


def test_another_server_key_is_a_clear_error_not_garbage(
    db: Db, caplog: pytest.LogCaptureFixture
) -> None:
    Store(db.agent_path(), url=db.url, sealer=sealer(b"k")).set_user_value(
        "ada", "key:anthropic", KEY
    )
    with caplog.at_level(logging.WARNING):
        other = Store(db.agent_path(), url=db.url, sealer=sealer(b"x", "/srv/other_key"))
    assert "1 stored per-user values were sealed with another server key" in caplog.text
    with pytest.raises(AgentError) as e:
        other.user_value("ada", "key:anthropic")
    assert e.value.code == "secret_unreadable" and e.value.status == 500
    assert sealer(b"k").key_id in e.value.message and other.sealer is not None
    assert other.sealer.key_id in e.value.message and "/srv/other_key" not in e.value.message
    assert "/srv/other_key" in caplog.text  # where the key came from: for the admin
    assert KEY not in e.value.message and KEY not in caplog.text


def test_a_value_moved_to_another_users_row_does_not_open(db: Db) -> None:
    store = Store(db.agent_path(), url=db.url, sealer=sealer())
    store.set_user_value("admin", "key:anthropic", KEY)
    stolen = raw_value(store, "admin", "key:anthropic")
    store._w("INSERT INTO user_values VALUES ('mallory', 'key:anthropic', ?)", (stolen,))
    store.flush()
    with pytest.raises(AgentError) as e:
        store.user_value("mallory", "key:anthropic")
    assert e.value.code == "secret_unreadable" and "another user's row" in e.value.message
    assert store.user_value("admin", "key:anthropic") == KEY


def test_without_a_server_key_values_are_neither_stored_nor_read(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "agent.sqlite"))
    with pytest.raises(StoreError) as e:
        store.set_user_value("ada", "key:anthropic", KEY)
    assert e.value.code == "no_server_key"


def test_the_generated_key_file_is_0600_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    path = tmp_path / "data" / "aiide" / "secret_key"
    first = load_server_key(str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_server_key(str(path)).key_id == first.key_id
    assert base64.urlsafe_b64encode(first._key).decode() not in repr(first)
    path.chmod(0o644)
    load_server_key(str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_environment_key_wins_and_a_bad_one_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = base64.urlsafe_b64encode(b"e" * 32).decode()
    monkeypatch.setenv(KEY_ENV, key)
    got = load_server_key(str(tmp_path / "secret_key"))
    assert got.key_id == Sealer(b"e" * 32, "x").key_id and got.source == f"${KEY_ENV}"
    assert not (tmp_path / "secret_key").exists()
    monkeypatch.setenv(KEY_ENV, "too-short")
    with pytest.raises(ValueError, match=r"\$AIIDE_SECRET_KEY: the server key must be 32"):
        load_server_key(str(tmp_path / "secret_key"))
    monkeypatch.delenv(KEY_ENV)
    (tmp_path / "bad_key").write_text("not base64 at all!")
    with pytest.raises(ValueError, match="bad_key: the server key must be 32"):
        load_server_key(str(tmp_path / "bad_key"))


def test_a_configured_key_file_is_hidden_from_kernels() -> None:
    from traitlets.config import Config

    from aiide_kernel.launch.recipe import server_secret_paths

    config = Config({"Agent": {"secret_key_file": "/srv/aiide/secret_key"}})
    assert "/srv/aiide/secret_key" in server_secret_paths(config)
