"""The embedding model is obtained on first use, in the background, from the same cached
offline build ``jupyter aiide models install`` makes: a real server, an empty models dir."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from optional import require
from traitlets.config import Config

from aiide_server_ext.knowledge import model_install as mi
from aiide_server_ext.knowledge.embeddings import MODEL_NAME

from .corpus import write_corpus
from .routes import call, finished, server_config

pytestmark = pytest.mark.xdist_group("knowledge")

# Read now: pytest-jupyter gives each test a fresh HOME, which has no build cache.
CACHE = mi.cache_root()


@pytest.fixture(autouse=True)
def real_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's install finds the build `make model` cached, as on a user's machine
    after a first install: a copy of seconds, never a torch download in a test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(CACHE.parent.parent))


def cached_artefact() -> None:
    folder = CACHE / f"{MODEL_NAME}-{mi.inputs_key()}"
    found = (folder / mi.STAMP).exists()
    require("embedding-model", found, f"no cached model build for these inputs in {folder}")


async def install_state(jp_fetch: Any, want: str, timeout: float = 120) -> dict[str, Any]:
    """Polls the status route, as the UI does, until the install reaches ``want``."""
    report: dict[str, Any] = {}
    for _ in range(int(timeout / 0.1)):
        code, status = await call(jp_fetch, "index")
        assert code == 200, status
        report = status["model_install"]
        if report["state"] == want:
            return status
        await asyncio.sleep(0.1)
    raise TimeoutError(f"install still {report}")


@contextlib.contextmanager
def tiny_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path``: a real ENOSPC, not a simulated one."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


class TestFirstUse:
    @pytest.fixture
    def release(self, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
        """The server's install (the real one, from the cache) starts when this is set,
        so a test can ask while it is still installing."""
        release = threading.Event()
        real_install = mi.install

        def held_install(*args: Any, **kwargs: Any) -> Path:
            release.wait(60)
            return real_install(*args, **kwargs)

        monkeypatch.setattr(mi, "install", held_install)
        return release

    @pytest.fixture
    def jp_server_config(self, jp_root_dir: Path, tmp_path: Path) -> Config:
        write_corpus(jp_root_dir)
        return server_config(tmp_path / "knowledge", models_dir=str(tmp_path / "models"))

    async def test_the_first_search_says_the_model_is_installing_then_that_nothing_is_indexed(
        self, jp_fetch: Any, jp_serverapp: Any, tmp_path: Path, release: threading.Event
    ) -> None:
        """Never a 200 with no results before anything could be found: first the install
        (held until the test has asked), then "nothing indexed", then the answer."""
        cached_artefact()
        code, status = await call(jp_fetch, "index")
        assert status["model_install"]["state"] == "idle"  # a server start is not a use

        code, body = await call(jp_fetch, "search", params={"q": "sensor data"})
        assert code == 503, body
        assert body["code"] == "model_installing", body
        assert "being installed in the background" in body["message"]
        assert body["install"]["state"] == "installing"
        release.set()
        status = await install_state(jp_fetch, "ready")
        assert status["model_problem"] is None
        assert status["model_install"]["progress"] == 1.0

        # The model is there, the index is not: say what to do, not "no results".
        code, body = await call(jp_fetch, "search", params={"q": "sensor data"})
        assert code == 409, body
        assert body["code"] == "not_indexed", body
        assert "/learn" in body["message"]

        _, job = await call(jp_fetch, "index", method="POST", body=json.dumps({"path": ""}))
        assert (await finished(jp_fetch, job["id"], timeout=120))["status"] == "done"
        code, body = await call(jp_fetch, "search", params={"q": "clean the sensor data"})
        assert code == 200 and body["results"], body
        assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [MODEL_NAME]

    async def test_a_learn_while_the_model_installs_waits_for_it(
        self, jp_fetch: Any, jp_serverapp: Any, release: threading.Event
    ) -> None:
        cached_artefact()
        _, job = await call(jp_fetch, "index", method="POST", body=json.dumps({"path": ""}))
        for _ in range(100):
            _, report = await call(jp_fetch, "jobs", job["id"])
            if "waiting for the embedding model" in report.get("detail", ""):
                break
            await asyncio.sleep(0.05)
        assert "waiting for the embedding model" in report["detail"], report
        release.set()
        assert (await finished(jp_fetch, job["id"], timeout=120))["status"] == "done"
        code, body = await call(jp_fetch, "search", params={"q": "clean the sensor data"})
        assert code == 200 and body["results"], body


class TestNotAUse:
    @pytest.fixture
    def jp_server_config(self, tmp_path: Path) -> Config:
        config = server_config(tmp_path / "knowledge", models_dir=str(tmp_path / "models"))
        config.Knowledge.warm_up_delay = 0.0
        return config

    async def test_server_start_and_the_agents_context_lookups_do_not_install(
        self, jp_fetch: Any, jp_serverapp: Any, tmp_path: Path
    ) -> None:
        from aiide_server_ext.knowledge.embeddings import EmbeddingError
        from aiide_server_ext.seams import Caller

        await asyncio.sleep(1.0)  # the warm-up has run
        service = jp_serverapp.web_app.settings["aiide_knowledge"]
        # What the agent does for context on every question: no build for someone who
        # never used knowledge, and the message says how to get the model.
        with pytest.raises(EmbeddingError, match="installs it in the background"):
            await service.search(Caller("alice"), "anything")
        _, status = await call(jp_fetch, "index")
        assert status["model_install"]["state"] == "idle"
        assert not (tmp_path / "models").exists()


class TestTurnedOff:
    @pytest.fixture
    def jp_server_config(self, tmp_path: Path) -> Config:
        return server_config(
            tmp_path / "knowledge",
            models_dir=str(tmp_path / "models"),
            auto_install_model=False,
        )

    async def test_without_auto_install_search_says_which_command_to_run(
        self, jp_fetch: Any, tmp_path: Path
    ) -> None:
        code, body = await call(jp_fetch, "search", params={"q": "anything"})
        assert code == 503 and body["code"] == "model_unavailable"
        assert "jupyter aiide models install" in body["message"]
        _, status = await call(jp_fetch, "index")
        assert status["model_install"] is None
        assert not (tmp_path / "models").exists()


class TestNoDiskSpace:
    @pytest.fixture
    def jp_server_config(self, tmp_path: Path) -> Config:
        return server_config(
            tmp_path / "knowledge",
            models_dir=str(tmp_path / "disk" / "models"),
            auto_install_retry_seconds=0.5,
        )

    async def test_a_full_disk_fails_cleanly_and_a_later_search_retries(
        self, jp_fetch: Any, tmp_path: Path
    ) -> None:
        cached_artefact()
        with tiny_disk(tmp_path / "disk", "1m") as disk:
            code, body = await call(jp_fetch, "search", params={"q": "anything"})
            # The 1 MB fill up at once: the search may already see the failure.
            assert code == 503, body
            assert body["code"] in ("model_installing", "model_install_failed"), body
            status = await install_state(jp_fetch, "failed")
            report = status["model_install"]
            assert "no space left" in report["error"]
            assert "no space left" in status["model_problem"]
            # Nothing half-installed: no model folder, no staging folder left behind.
            assert list((disk / "models").iterdir()) == []

            code, body = await call(jp_fetch, "search", params={"q": "anything"})
            assert code == 503, body
            if body["code"] == "model_install_failed":  # within the retry delay
                assert "tried again" in body["message"]

            # Space freed: the next search after the delay tries again and succeeds.
            subprocess.run(["mount", "-o", "remount,size=300m", str(disk)], check=True)
            await asyncio.sleep(0.6)
            code, body = await call(jp_fetch, "search", params={"q": "anything"})
            assert code in (200, 503), body
            status = await install_state(jp_fetch, "ready")
            assert status["model_install"]["attempts"] >= 2
            code, body = await call(jp_fetch, "search", params={"q": "anything"})
            # The model works now; nothing was indexed in this test.
            assert (code, body["code"]) == (409, "not_indexed"), body


def test_the_report_follows_the_steps_and_a_failure_waits_for_the_retry_delay(
    tmp_path: Path,
) -> None:
    """The installer's own bookkeeping, with an install that stops where told (a cold
    build takes minutes: its steps are shown from ``progress`` calls like these)."""
    import threading

    from aiide_server_ext.knowledge.installer import ModelInstaller

    started, release = threading.Event(), threading.Event()

    def install(models_dir: Path, *, log: Any, progress: Any) -> Path:
        progress("environment")
        started.set()
        release.wait(10)
        progress("export")
        raise mi.ModelInstallError("pip could not reach the index")

    now = [100.0]
    installer = ModelInstaller(tmp_path, retry_seconds=30, install=install, clock=lambda: now[0])
    installer.ensure()
    assert started.wait(10)
    installer.ensure()  # one install at a time
    report = installer.report()
    assert (report["state"], report["step"], report["steps"]) == ("installing", 1, 4)
    assert 0 < report["progress"] < 1
    not_ready = installer.not_ready()
    assert not_ready.code == "model_installing"
    assert "step 1 of 4: installing torch" in str(not_ready)

    release.set()
    assert installer.wait(10)
    report = installer.report()
    assert (report["state"], report["error"], report["retry_in"]) == (
        "failed",
        "pip could not reach the index",
        30.0,
    )
    assert installer.not_ready().code == "model_install_failed"
    installer.ensure()  # too early: no second attempt yet
    assert installer.attempts == 1
    now[0] += 31
    installer.ensure()
    assert installer.attempts == 2
    assert installer.wait(10)
