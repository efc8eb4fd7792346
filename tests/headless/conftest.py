"""Headless runs, %ai and their fixtures: the agent suite's fakes and server config; and
the issue's acceptance, "replay of every test run reproduces its outputs": after each test
that passed, every trace its runs left is replayed (no model) and must differ nowhere."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from agent.conftest import (  # noqa: F401  (fixtures shared with the agent suite)
    KEY,
    OAI_KEY,
    afake_anthropic,
    afake_openai,
    agent_config,
    aiide_kernelspec,
    fake_anthropic,
    fake_openai,
    jp_server_config,
)
from agent.conftest import pytest_configure as agent_configure

from .runs import replay_sync


def pytest_configure(config: pytest.Config) -> None:
    agent_configure(config)
    config.addinivalue_line(
        "markers",
        "replay(exit_code, reason): what replaying this test's runs must give, when it is "
        "not 0 (the same outputs everywhere); the reason says why",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[Any]:
    report = yield
    if report.when == "call":
        item.stash[PASSED] = report.passed
    return report


PASSED = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def replay_every_run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    """Each trace the test's runs left replays to the same outputs (exit 0), or to what
    the test's ``replay`` mark says, with its reason."""
    yield
    if not request.node.stash.get(PASSED, False):
        return  # a failed test says what went wrong; a replay would only add noise
    mark = request.node.get_closest_marker("replay")
    expected = mark.kwargs.get("exit_code", 0) if mark else 0
    config = tmp_path / "aiide_config.json"
    for trace in sorted(tmp_path.rglob("*.trace.jsonl")):
        text = trace.read_text()
        if '"type": "execute"' not in text:
            continue  # the run executed nothing (its kernel never started): nothing to redo
        code, err = replay_sync(trace, config if config.exists() else None)
        assert code == expected, f"replay of {trace.name} (exit {code}):\n{err}"
        if expected == 0:
            assert " 0 differ" in err, err
