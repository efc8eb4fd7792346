"""The policy file of a headless run: what runs by itself, what is asked, what is refused,
the pre-answers to approvals, and the run's limits. TOML or JSON::

    [risk]                # read|edit|run|write|network or low|medium|high -> auto|approve|deny
    medium = "auto"
    [tools]               # per tool, over the risk table
    write_file = "deny"
    [approvals]           # answers to 'approve': approve | reject | ask | stop
    default = "ask"
    run_cell = "approve"
    [limits]
    max_steps = 10
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from traitlets.config import Config

from ..agent.tool_policy import Decision, ToolPolicy
from ..agent.tools.base import Tool
from ..seams import Caller

ACTIONS = ("auto", "approve", "deny")
ANSWERS = ("approve", "reject", "ask", "stop")
#: A risk or a tier of them (c.ToolPolicy.roles).
RISKS = ("read", "edit", "run", "write", "network", "low", "medium", "high")
LIMITS = ("max_steps", "max_tool_calls", "max_tokens")


class PolicyFileError(ValueError):
    """A policy file that does not parse or says something impossible."""


@dataclass
class PolicyFile:
    risk: dict[str, str] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    approvals: dict[str, str] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)
    path: str | None = None
    text: str = ""

    @classmethod
    def load(cls, path: str | None) -> PolicyFile:
        if path is None:
            return cls()
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise PolicyFileError(f"cannot read the policy file {path!r}: {e.strerror}") from None
        try:
            data = json.loads(text) if path.endswith(".json") else _toml(text)
        except ValueError as e:
            raise PolicyFileError(f"the policy file {path!r} does not parse: {e}") from None
        return cls.from_dict(data, path, text)

    @classmethod
    def from_dict(cls, data: Any, path: str | None = None, text: str = "") -> PolicyFile:
        if not isinstance(data, dict):
            raise PolicyFileError("the policy file must be a table/object")
        unknown = set(data) - {"risk", "tools", "approvals", "limits"}
        if unknown:
            raise PolicyFileError(f"unknown policy sections: {', '.join(sorted(unknown))}")
        risk = _table(data, "risk", ACTIONS)
        if set(risk) - set(RISKS):
            raise PolicyFileError(f"[risk] keys are {', '.join(RISKS)}")
        limits = data.get("limits") or {}
        if not isinstance(limits, dict) or set(limits) - set(LIMITS):
            raise PolicyFileError(f"[limits] keys are {', '.join(LIMITS)}")
        for k, v in limits.items():
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise PolicyFileError(f"[limits] {k} must be a positive integer")
        return cls(
            risk=risk,
            tools=_table(data, "tools", ACTIONS),
            approvals=_table(data, "approvals", ANSWERS),
            limits=dict(limits),
            path=path,
            text=text,
        )

    def answer_for(self, tool: str) -> str:
        return self.approvals.get(tool) or self.approvals.get("default") or "ask"

    def config(self, base: Config, max_steps: int | None) -> Config:
        """``c.ToolPolicy`` for this run: the file's risk table over everyone's defaults."""
        c = Config()
        c.merge(base)
        if self.risk:
            roles = dict(ToolPolicy(config=base).roles)
            roles["*"] = {**roles.get("*", {}), **self.risk}
            c.ToolPolicy.roles = roles
        for k, v in self.limits.items():
            setattr(c.ToolPolicy, k, v)
        if max_steps is not None:
            c.ToolPolicy.max_steps = max_steps
        return c

    def describe(self) -> dict[str, Any]:
        return {
            "file": self.path,
            "risk": self.risk,
            "tools": self.tools,
            "approvals": self.approvals,
            "limits": self.limits,
        }


def _toml(text: str) -> Any:
    try:
        import tomllib  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError:  # Python 3.10
        raise PolicyFileError("TOML policy files need Python 3.11: use a .json file") from None
    return tomllib.loads(text)


def _table(data: dict[str, Any], name: str, allowed: tuple[str, ...]) -> dict[str, str]:
    table = data.get(name) or {}
    if not isinstance(table, dict):
        raise PolicyFileError(f"[{name}] must be a table")
    for k, v in table.items():
        if v not in allowed:
            raise PolicyFileError(f"[{name}] {k} = {v!r}: expected one of {', '.join(allowed)}")
    return {str(k): str(v) for k, v in table.items()}


#: What ``write_file`` may not write in a headless run: notebooks are changed through the
#: cell tools (confined to the run's output), and traces are the run's record.
PROTECTED_SUFFIXES = (".ipynb", ".trace.jsonl")


class FilePolicy(ToolPolicy):
    """The UI's policy (roles, safety fence, limits) with the file's per-tool overrides."""

    tool_actions: dict[str, str] = {}

    def decide(
        self,
        tool: Tool,
        arguments: dict[str, Any],
        caller: Caller,
        *,
        network: bool = False,
        sandboxed: bool = True,
    ) -> Decision:
        base = super().decide(tool, arguments, caller, network=network, sandboxed=sandboxed)
        path = str(arguments.get("path", "")).strip().lower()
        if tool.name == "write_file" and path.endswith(PROTECTED_SUFFIXES):
            return dataclasses.replace(
                base,
                action="deny",
                code="protected_file",
                reason=f"write_file does not write notebooks or run traces ({path}): change "
                "the output notebook with the cell tools",
            )
        override = self.tool_actions.get(tool.name)
        if (
            override is None
            or base.reason.startswith("refused by the safety fence")
            or base.code == "kernel_not_sandboxed"
        ):
            return base
        reason = "refused by the policy file" if override == "deny" else ""
        return dataclasses.replace(base, action=override, reason=reason, code="denied")
