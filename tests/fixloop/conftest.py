"""The fix loop's tests use the agent suite's fakes and kernelspec (as the headless ones do)."""

from __future__ import annotations

from agent.conftest import (  # noqa: F401  (fixtures shared with the agent suite)
    afake_anthropic,
    afake_openai,
    aiide_kernelspec,
)
