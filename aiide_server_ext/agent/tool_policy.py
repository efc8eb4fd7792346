"""``c.ToolPolicy``: whether a tool call runs by itself, waits for the user's approval, or
is refused.

Risk per call, by what the tool does: read < edit < run < write < network (reads; notebook
edits; sandboxed execution; file writes and cell deletes; execution with the network or
outside the sandbox). The approval card shows it. Roles map a risk, or its tier (low: read;
medium: edit, run; high: write, network; MCP tools are rated by tier), to auto / approve /
deny; a safety fence of deny patterns; per-run limits. Code for a notebook whose kernel is
not sandboxed is refused (``kernel_not_sandboxed``) unless an admin allows it; then it is
network risk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from traitlets import Bool, Dict, Int, List, Unicode
from traitlets.config import LoggingConfigurable

from ..kernelspecs import NOT_SANDBOXED
from ..safe_regex import Pattern, fence_pattern
from ..seams import Caller
from .tools.base import Tool

#: Characters of a call's JSON arguments the safety fence checks; larger calls are refused.
MAX_FENCE_CHARS = 4_000_000
STRICTNESS = {"auto": 0, "approve": 1, "deny": 2}
#: The risks, least first, and the tier a role table may name instead (its older keys).
RISK_TIERS = {"read": "low", "edit": "medium", "run": "medium", "write": "high", "network": "high"}


@dataclass(frozen=True)
class Decision:
    risk: str
    action: str  # auto | approve | deny
    reason: str = ""
    #: The error code of a refusal.
    code: str = "denied"
    #: Allowed to run in a kernel that is not sandboxed (said so on the approval card).
    outside_sandbox: bool = False


class ToolPolicy(LoggingConfigurable):  # type: ignore[misc]
    """``c.ToolPolicy.*``: what the agent may do without asking."""

    roles = Dict(
        {
            "student": {"low": "auto", "medium": "approve", "high": "deny"},
            "*": {"low": "auto", "medium": "approve", "high": "approve"},
        },
        config=True,
        help="Role (or group) name -> {risk: auto|approve|deny}. A risk is read, edit, run, "
        "write or network, or a tier naming several: low (read), medium (edit, run), high "
        "(write, network); a risk listed itself wins over its tier. A caller with several "
        "listed roles gets the strictest answer; '*' is for everyone else.",
    )
    deny_patterns = List(
        Unicode(),
        [
            r"\brm\s+-[a-zA-Z]*[rR][a-zA-Z]*\s+(/|~/?|\$HOME/?)(?:$|[^\w.-])",
            r"\bmkfs(\.\w+)?\b",
            r":\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:",
            r"/etc/(shadow|sudoers)",
            r"\bdd\s+if=.*\bof=/dev/",
        ],
        config=True,
        help="Safety fence: a tool call whose arguments match one of these regular "
        "expressions is refused whatever the role allows.",
    )
    allow_unsandboxed_kernels = Bool(
        False,
        config=True,
        help="Let the agent run code (run_cell, execute_code) in notebooks whose kernel is "
        "not sandboxed (e.g. 'python3'): such calls are network risk, so they wait for "
        "approval (per roles) and the approval card says they run outside the sandbox. "
        "Off: they are refused with kernel_not_sandboxed and the chat offers to switch the "
        "notebook to the sandboxed kernel. Kernel-state introspection never runs in an "
        "unsandboxed kernel.",
    )
    max_steps = Int(20, config=True, help="Model calls per run.")
    max_tool_calls = Int(50, config=True, help="Tool calls per run.")
    max_tokens = Int(500_000, config=True, help="Input + output tokens per run.")

    @cached_property
    def _fence(self) -> list[Pattern]:
        # RE2, linear in the text: a crafted 64 KB argument cannot stall the check.
        return [fence_pattern(p) for p in self.deny_patterns]

    def decide(
        self,
        tool: Tool,
        arguments: dict[str, Any],
        caller: Caller,
        *,
        network: bool = False,
        sandboxed: bool = True,
    ) -> Decision:
        """``sandboxed``: whether the kernel a code-running tool would use is sandboxed
        (decided by the server from its kernel manager, see ``KernelRunner.sandboxed``)."""
        outside = tool.executes_code and not sandboxed
        if outside and not self.allow_unsandboxed_kernels:
            return Decision("network", "deny", NOT_SANDBOXED, code="kernel_not_sandboxed")
        risk = "network" if tool.executes_code and (network or outside) else tool.risk
        text = json.dumps(arguments, ensure_ascii=False)
        if len(text) > MAX_FENCE_CHARS:  # bounded before any pattern runs
            why = f"arguments too large for the safety fence ({len(text):,} > {MAX_FENCE_CHARS:,})"
            return Decision(risk, "deny", why)
        for pattern in self._fence:
            if pattern.search(text):
                return Decision(risk, "deny", f"refused by the safety fence ({pattern.pattern})")
        names = [r for r in (*sorted(caller.roles), *sorted(caller.groups)) if r in self.roles]
        tables = [self.roles[n] for n in names] or [self.roles.get("*", {})]
        tier = RISK_TIERS.get(risk, risk)
        actions = [str(t.get(risk, t.get(tier, "approve"))) for t in tables]
        action = max(actions, key=lambda a: STRICTNESS.get(a, 1))
        if action not in STRICTNESS:
            action = "approve"
        reason = f"{risk}-risk tools are not allowed for your role" if action == "deny" else ""
        return Decision(risk, action, reason, outside_sandbox=outside)

    def over_limit(self, steps: int, tool_calls: int, tokens: int) -> str | None:
        if steps >= self.max_steps:
            return f"the run reached its limit of {self.max_steps} steps"
        if tool_calls > self.max_tool_calls:
            return f"the run reached its limit of {self.max_tool_calls} tool calls"
        if tokens >= self.max_tokens:
            return f"the run reached its limit of {self.max_tokens} tokens"
        return None
