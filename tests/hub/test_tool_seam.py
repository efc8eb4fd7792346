"""The course tool policy goes in through the agent's one seam (``wrap_tool_policy``):
agent runs and the MCP server's tools then decide with the same, stricter policy."""

from __future__ import annotations

from typing import Any

import pytest
from traitlets.config import Config

from aiide_server_ext.agent.tools import TOOLS
from aiide_server_ext.hub.singleuser import tools
from aiide_server_ext.seams import Caller

pytestmark = pytest.mark.xdist_group("hub")


@pytest.fixture
def jp_server_config() -> Config:
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"aiide_server_ext": True}},
            "AiideExtension": {"prewarm_kernels": False},
            "Knowledge": {"enabled": False},
            "KernelPool": {"size": 0},
            # The server alone would let students write files without asking.
            "ToolPolicy": {"roles": {"student": {"low": "auto", "medium": "auto", "high": "auto"}}},
        }
    )


def _settings(serverapp: Any) -> dict[str, Any]:
    for ext in serverapp.extension_manager.extension_apps.get("aiide_server_ext", ()):
        if "aiide_agent" in ext.settings:
            return dict(ext.settings)
    return dict(serverapp.web_app.settings)


def test_the_course_policy_wraps_runs_and_mcp_tools_through_one_seam(jp_serverapp: Any) -> None:
    settings = _settings(jp_serverapp)
    service, mcp = settings["aiide_agent"], settings["aiide_mcp"]
    student = Caller("alice", frozenset({"*"}), roles=frozenset({"student"}))
    write = TOOLS["write_file"]
    assert mcp.policy.decide(write, {"path": "a.txt"}, student).action == "auto"

    policy = tools.install(settings)
    assert isinstance(policy, tools.CourseToolPolicy)
    assert service.tool_policy is policy and service.engine.policy is policy
    assert mcp.policy is policy  # the MCP tools decide with the course policy too
    assert tools.install(settings) is policy  # installing again wraps nothing twice

    policy.learn("alice", {"edits_need_approval": True})
    assert mcp.policy.decide(write, {"path": "a.txt"}, student).action == "approve"
    policy.learn("alice", {"deny": ["write_file"]})
    decision = service.engine.policy.decide(write, {"path": "a.txt"}, student)
    assert decision.action == "deny" and "does not allow" in decision.reason
