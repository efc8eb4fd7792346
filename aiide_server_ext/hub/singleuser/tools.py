"""The course's agent tool policy, applied on top of the server's own ``ToolPolicy``.

A course's ``tools`` section (changeable at run time by its instructors) can only make
the agent stricter for its students, never looser:

- ``edits_need_approval: true``: notebook and file edits always wait for the student.
- ``network: false``: code never runs with network access; when this server's kernels
  have it, agent code execution is refused.
- ``execution: auto | approve | deny``: agent code execution at most this.
- ``deny: [tool, ...]``: these tools are refused.

``CourseGate`` learns the caller's course tools when it admits their run (one broker
call it makes anyway); the policy reads them here synchronously, per user.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

STRICTNESS = {"auto": 0, "approve": 1, "deny": 2}
EDIT_TOOLS = frozenset({"write_file"})


def course_decision(
    tools: Mapping[str, Any], tool: Any, action: str, *, network: bool
) -> tuple[str, str]:
    """(action, reason) after the course's rules; the stricter of the two wins."""
    wanted, reason = "auto", ""
    if tool.name in set(tools.get("deny") or ()):
        return "deny", f"your course does not allow the agent to use {tool.name}"
    if tools.get("edits_need_approval") and (tool.preview is not None or tool.name in EDIT_TOOLS):
        wanted = "approve"
    if tool.executes_code:
        if tools.get("network") is False and network:
            return "deny", (
                "your course runs code without network access; this server's kernels "
                "have it, so the agent may not run code here"
            )
        execution = str(tools.get("execution") or "auto")
        if STRICTNESS.get(execution, 1) > STRICTNESS[wanted]:
            wanted = execution if execution in STRICTNESS else "approve"
            if wanted == "deny":
                reason = "your course does not allow the agent to run code"
    if STRICTNESS[wanted] > STRICTNESS.get(action, 1):
        return wanted, reason
    return action, ""


class CourseToolPolicy:
    """Wraps the agent's ``ToolPolicy``: same interface, the course applied after it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.tools: dict[str, dict[str, Any]] = {}
        #: User -> why code execution is off for them now (exam mode), else absent.
        self.no_execution: dict[str, str] = {}
        #: tutoring.TutorGuard: assignments' locked and solution cells.
        self.tutor: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def learn(self, user: str, tools: Mapping[str, Any], no_execution: str = "") -> None:
        """The user's course tools; ``no_execution``: exam mode's message when it turns
        the agent's code execution off, so code calls are refused as the model asks for
        them, never put to the student for an approval the gate would then overrule."""
        self.tools[user] = dict(tools)
        if no_execution:
            self.no_execution[user] = no_execution
        else:
            self.no_execution.pop(user, None)

    def decide(
        self,
        tool: Any,
        arguments: dict[str, Any],
        caller: Any,
        *,
        network: bool = False,
        sandboxed: bool = True,
    ) -> Any:
        decision = self.inner.decide(tool, arguments, caller, network=network, sandboxed=sandboxed)
        exam = self.no_execution.get(caller.username)
        if exam and tool.executes_code:
            reason = f"{exam} The agent may not run code now; answer without running any."
            return dataclasses.replace(decision, action="deny", reason=reason, code="exam_mode")
        why = self.tutor.edit_refusal(tool, arguments, caller.username) if self.tutor else ""
        if why and decision.action != "deny":
            return dataclasses.replace(decision, action="deny", reason=why, code="tutor_mode")
        tools = self.tools.get(caller.username)
        if not tools or decision.action == "deny":
            return decision
        action, reason = course_decision(tools, tool, decision.action, network=network)
        if action == decision.action:
            return decision
        return dataclasses.replace(decision, action=action, reason=reason, code="denied")

    def over_limit(self, steps: int, tool_calls: int, tokens: int) -> str | None:
        result: str | None = self.inner.over_limit(steps, tool_calls, tokens)
        return result


def install(settings: Mapping[str, Any]) -> CourseToolPolicy | None:
    """Put the course policy in front of the agent's tool policy, through the agent's one
    seam for it (``AgentService.wrap_tool_policy``: runs and the MCP tools alike)."""
    service = settings.get("aiide_agent")
    if service is None or not hasattr(service, "wrap_tool_policy"):
        return None
    current = service.tool_policy
    if isinstance(current, CourseToolPolicy):
        return current
    policy: CourseToolPolicy = service.wrap_tool_policy(CourseToolPolicy)
    return policy
