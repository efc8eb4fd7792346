"""How much of a student's budget a model call may take, decided before it is made.

Counting tokens after the answer (as the provider reports them) let the last call of the
day pass the budget: 1,400 of 1,500 used, the next answer of 101 tokens, 1,501. So before
the call the broker reserves what the request can cost at most (its input, estimated
generously, plus the answer it asks for) against what is left of the budget, atomically
with the budget check (``SharedState.admit``), and lowers the request's answer limit
(``max_tokens``) to fit what was granted. The provider stops the answer there; the
reservation is settled against the real figures when the call is counted.

The input estimate is one token per three characters of the request's JSON: tokenizers
give about four for English and code, so the estimate errs high and the call fits.
"""

from __future__ import annotations

import json
from typing import Any

#: Characters per token when estimating a request's input (deliberately low: errs high).
CHARS_PER_TOKEN = 3
#: The answer an OpenAI-compatible request without a limit is assumed to ask for at most.
DEFAULT_ANSWER_TOKENS = 4096


def input_estimate(body: dict[str, Any]) -> int:
    parts = [body.get("system"), body.get("messages"), body.get("tools")]
    return len(json.dumps(parts, separators=(",", ":"))) // CHARS_PER_TOKEN + 1


def answer_limit(provider: str, body: dict[str, Any]) -> int:
    """The answer's token limit the request asks for (OpenAI's may be absent)."""
    keys = ("max_tokens",) if provider == "anthropic" else ("max_completion_tokens", "max_tokens")
    for key in keys:
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return DEFAULT_ANSWER_TOKENS


def reservation(provider: str, body: dict[str, Any]) -> tuple[int, int]:
    """(tokens to reserve, of which input): what the call can cost at most."""
    estimate = input_estimate(body)
    return estimate + answer_limit(provider, body), estimate


def fitted(provider: str, body: dict[str, Any], answer: int) -> dict[str, Any]:
    """The request with its answer limited to ``answer`` tokens (never raised)."""
    if answer >= answer_limit(provider, body) and (
        provider == "anthropic" or "max_tokens" in body or "max_completion_tokens" in body
    ):
        return body
    key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    return {**body, key: answer}
