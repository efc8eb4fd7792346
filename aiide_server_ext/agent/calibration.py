"""Token budgets in each model's own tokens: the 4-characters-a-token estimate, calibrated
per model from the input tokens its provider reports.

The estimate needs no tokenizer, but its error depends on the model and the text (code and
JSON run denser than prose). Every model call reports how many input tokens the request
was; against the characters that were sent, that is the model's characters per token.
Budgets are converted with it (``to_estimate``) instead of changing every count, so a
context budget of 6,000 means 6,000 of that model's tokens whatever the estimate's bias.
"""

from __future__ import annotations

import json
from typing import Any

from .images import block_tokens, has_images, replace_images

#: The estimate's characters per token (``context.tokens``).
ESTIMATE = 4.0


def request_chars(system: str, messages: list[dict[str, Any]], tools: list[Any]) -> int:
    """What a request sends that counts as input: system prompt, messages, tool schemas,
    in characters as the estimate counts them (no ASCII escapes)."""
    if has_images(messages):
        messages, taken = replace_images(messages, None)
        pictures = sum(block_tokens(b) for b in taken)
        return (
            len(system)
            + len(_compact(messages))
            + (len(_compact(tools)) if tools else 0)
            + int(pictures * ESTIMATE)
        )
    return len(system) + len(_compact(messages)) + (len(_compact(tools)) if tools else 0)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Calibration:
    """Characters per token per model: a moving average of what the provider reported."""

    def __init__(
        self,
        weight: float = 0.3,
        low: float = 1.5,
        high: float = 8.0,
        min_chars: int = 2000,
    ) -> None:
        self.weight = weight
        #: Outliers (a provider counting oddly, an image) cannot push the ratio past these.
        self.low, self.high = low, high
        #: Small requests say little: fixed per-message overhead dominates their count.
        self.min_chars = min_chars
        self.ratio: dict[str, float] = {}

    def observe(self, model: str, chars: int, input_tokens: int) -> None:
        if input_tokens <= 0 or chars < self.min_chars:
            return
        sample = min(max(chars / input_tokens, self.low), self.high)
        old = self.ratio.get(model)
        self.ratio[model] = sample if old is None else old + self.weight * (sample - old)

    def chars_per_token(self, model: str | None) -> float:
        return self.ratio.get(model or "", ESTIMATE)

    def to_estimate(self, model: str | None, budget: int) -> int:
        """A budget in the model's tokens, in the estimate's units."""
        return int(budget * self.chars_per_token(model) / ESTIMATE)

    def from_estimate(self, model: str | None, estimated: int) -> int:
        """An estimated count in the model's tokens."""
        return round(estimated * ESTIMATE / self.chars_per_token(model))
