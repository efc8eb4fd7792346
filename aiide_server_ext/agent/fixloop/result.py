"""What a fix loop ends with, and the record of each attempt (its audit trail)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

VERIFIED, NOT_VERIFIED = "verified", "not_verified"

#: Why a loop ended (``FixResult.reason``), for people and for exit codes alike.
REASONS = {
    "fixed": "the notebook runs clean and its checks pass",
    "no_error": "nothing to fix: the cells ran without error and the checks pass",
    "max_attempts": "the error remains after the allowed attempts",
    "token_budget": "the token budget is spent",
    "repeated_patch": "the model proposed a patch it had already tried",
    "no_patch": "the model changed nothing",
    "patch_rejected": "the change was rejected",
    "cancelled": "cancelled",
    "kernel_failed": "the kernel failed",
    "model_failed": "the model's turn failed",
    "bad_input": "the request names no such cell",
}


@dataclass
class Failure:
    """A cell that failed: where, what, and whether a fix broke it."""

    cell_id: str
    ename: str
    evalue: str
    traceback: str = ""
    #: error | timeout | broke_downstream | check_failed
    kind: str = "error"

    def line(self) -> str:
        return f"cell {self.cell_id}: {self.ename}: {self.evalue}".rstrip(": ")


@dataclass
class Attempt:
    number: int
    error: dict[str, Any]
    #: One entry per changed cell: cell_id, op (replace|insert|delete), before, after.
    patch: list[dict[str, Any]] = field(default_factory=list)
    #: Who let each edit through: tool, decision (auto|approve|...), by.
    approvals: list[dict[str, Any]] = field(default_factory=list)
    #: verified | error | timeout | broke_downstream | check_failed | no_patch |
    #: repeated_patch | patch_rejected | cancelled | model_failed | kernel_failed
    result: str = ""
    detail: str = ""
    #: The cells re-run to verify, in order, and those whose outputs changed.
    reran: list[str] = field(default_factory=list)
    changed_outputs: list[str] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0
    kernel_seconds: float = 0.0
    #: The failure the verify step found (the next attempt's error), if any.
    failure: Failure | None = None

    @property
    def overhead(self) -> float:
        """The loop's own time in this attempt: not the model's, not the kernel's."""
        return max(0.0, self.seconds - self.model_seconds - self.kernel_seconds)


@dataclass
class FixResult:
    status: str
    reason: str
    message: str
    #: The cell asked about, and the cell whose error was fixed (an earlier one, maybe).
    target: str | None = None
    error_cell: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    tokens: int = 0
    #: Wall time of the whole loop (reproduce, attempts, verify), and of the reproduce.
    seconds: float = 0.0
    reproduce_seconds: float = 0.0

    @property
    def verified(self) -> bool:
        return self.status == VERIFIED

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for a, d in zip(self.attempts, out["attempts"], strict=True):
            d["overhead"] = round(a.overhead, 4)
        return out
