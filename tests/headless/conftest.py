"""Headless runs, %ai and their fixtures: the agent suite's fakes and server config."""

from __future__ import annotations

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
    pytest_configure,
)
