"""Errors with the protocol's stable codes (docs/protocol.md, "Error codes")."""

from __future__ import annotations

from ..seams import ApiError


class AgentError(ApiError):
    """A failure the client is told about: ``code`` is stable, ``message`` is for people.

    Not a ``GateRefusal``: a tool run tells the model about the gate's refusals but
    fails the run on these."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(status, code, message)


class ToolError(Exception):
    """A tool failure the model is told about (the run goes on)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def redact(text: str, secrets: list[str]) -> str:
    """Remove secrets (keys) from text that may reach a log, an event or the browser."""
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, "[redacted]")
    return text
