"""``%ai`` answered for real: the kernel channel's responder.

A kernel asks over its private unix socket (``aiide_kernel.channel``); the answer comes
as the identity that started the kernel through the server (recorded by the gateway at
kernel start), with that caller's scopes, model list, rate limits (route class ``magic``)
and quotas, through the same gate as the UI (metering, audit as ``agent.magic``) and the
same router (fallback, retries). The server owner answers only for kernels no request
started (none of a user's kernels): otherwise code in a kernel could escape its starter's
limits through the owner's exemption. One model call, no tools: the magic wants an answer
in a format, not a run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from ..seams import Caller, Gate, GateRefusal
from .complete import strip_fences
from .errors import AgentError
from .providers import ModelRequest, ProviderError, TextDelta, Usage
from .router import ModelSpec, Router

log = logging.getLogger("aiide.agent")

FORMATS = {
    "code": "Reply with only Python code for a notebook cell: no explanation, no code fences.",
    "markdown": "Reply in concise Markdown.",
    "text": "Reply in plain text, no Markdown.",
}
SYSTEM = (
    "You are aiide, answering a question asked with the %ai magic inside a Jupyter kernel. "
    "Variables are described by type, shape and columns only; you do not see their data."
)
MAX_PROMPT = 100_000
MAX_VARIABLES = 50
ROUTE_CLASS = "magic"


def check(body: dict[str, Any]) -> dict[str, Any]:
    """The request, or AgentError saying what is wrong with it."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise AgentError("bad_message", "'prompt' must be a non-empty string")
    if len(prompt) > MAX_PROMPT:
        raise AgentError("too_large", f"the prompt is over {MAX_PROMPT} characters", 413)
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise AgentError("bad_message", "'model' must be a string")
    fmt = body.get("format") or "markdown"
    if fmt not in FORMATS:
        raise AgentError("bad_message", f"'format' must be one of {', '.join(FORMATS)}")
    variables = body.get("variables") or {}
    if not isinstance(variables, dict) or len(variables) > MAX_VARIABLES:
        raise AgentError("bad_message", f"'variables' must be an object of at most {MAX_VARIABLES}")
    return {"prompt": prompt, "model": model or None, "format": fmt, "variables": variables}


def build_prompt(prompt: str, variables: dict[str, Any]) -> str:
    if not variables:
        return prompt
    described = "\n".join(
        f"- {name}: {json.dumps(info, ensure_ascii=False)[:2000]}"
        for name, info in variables.items()
    )
    return f"{prompt}\n\nVariables in the kernel (summaries, not data):\n{described}"


class KernelAsk:
    """Answers ``POST /v1/ask`` from a kernel channel."""

    def __init__(
        self,
        router: Router,
        gate: Gate,
        owner: Callable[[], Caller],
        *,
        max_output_tokens: int = 2048,
        guard: Callable[[], Any] = lambda: None,
    ) -> None:
        self.router = router
        self.gate = gate
        self.owner = owner
        self.max_output_tokens = max_output_tokens
        #: A course's tutoring (hub ``tutoring.TutorGuard``), asked at each request: may
        #: refuse (exam, or code in tutor mode) or add the tutor's instructions.
        self.guard = guard

    def caller(self, kernel_id: str) -> Caller:
        """Who started the kernel; the server owner only when no request did."""
        find = _gate_method(self.gate, "kernel_caller")
        started = find(kernel_id) if find is not None else None
        return started if isinstance(started, Caller) else self.owner()

    async def _revoked(self, kernel_id: str) -> str | None:
        check_revoked = _gate_method(self.gate, "kernel_caller_revoked")
        if check_revoked is None:
            return None
        code: str | None = await check_revoked(kernel_id)
        return code

    async def respond(
        self, kernel_id: str, path: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        if path != "ask":
            return 404, {"code": "not_found", "message": f"no channel route {path!r}"}
        caller = self.caller(kernel_id)
        try:
            revoked = await self._revoked(kernel_id)
            if revoked:
                raise GateRefusal(
                    401,
                    revoked,
                    "the credential this kernel was started with has been revoked or has "
                    "expired; %ai no longer answers in it",
                )
            # Limits first: every request counts, a malformed or oversized one included.
            await self.gate.admit(caller, ROUTE_CLASS, scope="chat")
            request = check(body)
            guard = self.guard()
            if guard is not None:
                request = await guard.magic(kernel_id, request)
            reply = await self.answer(caller, request)
        except GateRefusal as e:
            await self._audit(caller, kernel_id, "refused", {"code": e.code})
            return e.status, e.as_dict()
        except AgentError as e:
            await self._audit(caller, kernel_id, "refused", {"code": e.code})
            return e.status, {"code": e.code, "message": e.message}
        except ProviderError as e:
            await self._audit(caller, kernel_id, "failed", {"code": e.code})
            return 503, {"code": e.code, "message": e.message}
        await self._audit(caller, kernel_id, "ok", {"model": reply["model"], **reply["usage"]})
        return 200, reply

    async def answer(self, caller: Caller, request: dict[str, Any]) -> dict[str, Any]:
        candidates = self.router.candidates("chat", caller, request["model"])
        fmt = request["format"]
        content = build_prompt(request["prompt"], request["variables"])

        def build(spec: ModelSpec) -> ModelRequest:
            return ModelRequest(
                model=spec.model,
                system=f"{SYSTEM}\n{FORMATS[fmt]}" + str(request.get("system_extra") or ""),
                messages=[{"role": "user", "content": content}],
                max_tokens=min(self.max_output_tokens, spec.max_output_tokens),
            )

        parts: list[str] = []
        usage = Usage(0, 0)
        model = candidates[0].name
        async for spec, event in self.router.stream(
            candidates, caller, build, gate=self.gate, feature="magic"
        ):
            model = spec.name
            if isinstance(event, TextDelta):
                parts.append(event.text)
            elif isinstance(event, Usage):
                usage = event
        text = "".join(parts)
        if fmt == "code":
            text = strip_fences(text.strip()).strip("\n")
        return {
            "text": text,
            "format": fmt,
            "model": model,
            "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens},
        }

    async def _audit(
        self, caller: Caller, kernel_id: str, outcome: str, detail: dict[str, Any]
    ) -> None:
        try:
            await self.gate.audit(caller, "agent.magic", f"kernel:{kernel_id}", outcome, detail)
        except Exception:  # an audit failure must not lose the answer
            log.exception("aiide: audit of %%ai failed")


def _gate_method(gate: Any, name: str) -> Callable[..., Any] | None:
    """A gateway method through wrapping gates (the agent's late-bound one, a course's)."""
    for _ in range(8):
        found = getattr(gate, name, None)
        if callable(found):
            return found  # type: ignore[no-any-return]
        inner = getattr(gate, "inner_gate", None)
        if not callable(inner):
            return None
        try:
            gate = inner()
        except NotImplementedError:
            return None
    return None


def owner_caller(gate: Gate, fallback: str) -> Caller:
    """The server owner as the gate knows them (``GatewayGate.owner``); without a gateway,
    the server's user with every scope, as ``OpenGate`` treats Jupyter's own login."""
    owner = getattr(gate, "owner", None)
    return owner if isinstance(owner, Caller) else Caller(username=fallback)
