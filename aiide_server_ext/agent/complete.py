"""Inline completion: a small prompt, the fastest allowed model, a short timeout."""

from __future__ import annotations

import asyncio
from typing import Any

from ..seams import Caller, Gate
from .errors import AgentError
from .providers import ModelRequest, TextDelta, Usage
from .router import ModelSpec, Router

SYSTEM = (
    "You complete code. Reply with only the text to insert at <CURSOR>: no explanation, "
    "no code fences, no repetition of the surrounding code."
)


def check(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("prefix"), str):
        raise AgentError("bad_message", "'prefix' (string) is required")
    for name in ("suffix", "language", "path"):
        if name in body and not isinstance(body[name], str):
            raise AgentError("bad_message", f"'{name}' must be a string")
    max_tokens = body.get("max_tokens", 128)
    if (
        not isinstance(max_tokens, int)
        or isinstance(max_tokens, bool)
        or not 1 <= max_tokens <= 1024
    ):
        raise AgentError("bad_message", "'max_tokens' must be an integer in 1..1024")
    return {**body, "max_tokens": max_tokens}


def strip_fences(text: str) -> str:
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text


class Completer:
    def __init__(
        self, router: Router, *, timeout: float, prefix_chars: int = 3000, suffix_chars: int = 1000
    ) -> None:
        self.router = router
        self.timeout = timeout
        self.prefix_chars = prefix_chars
        self.suffix_chars = suffix_chars

    async def complete(self, caller: Caller, body: dict[str, Any], gate: Gate) -> dict[str, Any]:
        candidates = self.router.candidates("complete", caller)
        language = body.get("language") or "python"
        prompt = (
            f"```{language}\n{body['prefix'][-self.prefix_chars :]}<CURSOR>"
            f"{body.get('suffix', '')[: self.suffix_chars]}\n```"
        )

        def build(spec: ModelSpec) -> ModelRequest:
            return ModelRequest(
                model=spec.model,
                system=SYSTEM,
                messages=[{"role": "user", "content": prompt}],
                max_tokens=body["max_tokens"],
                temperature=0.0,
            )

        parts: list[str] = []
        usage = Usage(0, 0)
        model = candidates[0].name

        async def run() -> None:
            nonlocal usage, model
            async for spec, event in self.router.stream(
                candidates, caller, build, gate=gate, feature="complete"
            ):
                model = spec.name
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                elif isinstance(event, Usage):
                    usage = event

        try:
            await asyncio.wait_for(run(), self.timeout)
        except asyncio.TimeoutError:
            raise AgentError("timeout", f"no completion within {self.timeout:g}s", 504) from None
        return {
            "completion": strip_fences("".join(parts)),
            "model": model,
            "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens},
        }
