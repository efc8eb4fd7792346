"""The status bar's model state is what the agent can use (issue 20): a local
OpenAI-compatible server that needs no key is a model, a key no configured model uses
is not. A real server; its status route is what the status bar reads."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.xdist_group("agent")

#: An Ollama-style local server: no api_key_env, nothing in the environment.
KEYLESS = {"ollama": {"kind": "openai", "base_url": "http://127.0.0.1:11434/v1"}}
LOCAL = [{"name": "local-qwen", "provider": "ollama", "model": "qwen2.5-coder"}]


async def model_status(jp_fetch: Any) -> dict[str, Any]:
    r = await jp_fetch("aiide", "api", "status")
    status: dict[str, Any] = json.loads(r.body)["model"]
    return status


@pytest.fixture
def no_provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variables the status used to look for are unset (a newcomer's machine)."""
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.agent_config(providers=KEYLESS, models=LOCAL)
async def test_a_keyless_local_model_counts_as_a_model(
    jp_fetch: Any, no_provider_keys: None
) -> None:
    status = await model_status(jp_fetch)
    assert status["configured"] is True, status
    assert status["models"] == ["local-qwen"]
    assert status["help"] is None


@pytest.mark.agent_config(models=[{"name": "local", "provider": "local", "model": "llama-test"}])
async def test_a_key_that_no_configured_model_uses_is_no_model(
    jp_fetch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A key in the environment, but the one model's provider wants another one.
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-unused-0123456789")
    monkeypatch.delenv("AIIDE_T_OPENAI")
    status = await model_status(jp_fetch)
    assert status["configured"] is False, status
    assert status["models"] == []
    # The help names the key the configured model wants, not the built-in providers'.
    assert "AIIDE_T_OPENAI" in status["help"]
    assert "ANTHROPIC_API_KEY" not in status["help"]


@pytest.mark.agent_config(
    providers=KEYLESS,
    models=LOCAL,
    Router={"retry_base_delay": 0.01, "group_models": {"*": ["another-model"]}},
)
async def test_models_kept_from_the_caller_by_the_allow_list_say_so(
    jp_fetch: Any, no_provider_keys: None
) -> None:
    status = await model_status(jp_fetch)
    assert status["configured"] is False, status
    assert "allow-list" in status["help"]
