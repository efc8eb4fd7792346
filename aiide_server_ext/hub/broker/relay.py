"""The broker's model routes: checked, keyed, streamed through, metered.

``POST <prefix>/anthropic/v1/messages`` (Anthropic Messages API) and
``POST <prefix>/openai/v1/chat/completions`` (OpenAI-compatible, streaming or not) take
the student's hub token as their "API key", apply the student's courses (exam mode,
allowed models, budget, rate limit), put the provider's real key on the request and relay
the answer chunk by chunk, each chunk flushed as it arrives. Tokens are counted from the
``usage`` the provider reports in the stream as it passes.

Cost per call on this path: the identity (cached), one Redis round trip before the
stream (``SharedState.admit``), one shared batch write after it (``Recorder``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from tornado.iostream import StreamClosedError

from ..course import Effective
from .durable import StateUnavailable
from .handlers import BrokerHandler
from .recorder import Event
from .reserve import fitted, reservation
from .screening import completion_refusal, forward_headers, tool_refusal
from .service import budget_refusal, model_refusal
from .state import Usage

log = logging.getLogger("aiide.broker")
#: Response headers passed back from the provider.
PASS_HEADERS = (
    "content-type", "request-id", "x-request-id", "retry-after",
    "anthropic-ratelimit-requests-limit", "x-ratelimit-limit-requests",
)  # fmt: skip
#: Attempts to decide on current course changes while instructors keep changing them.
_ATTEMPTS = 3
#: An upstream error body is read this far for the broker's log and audit (never relayed).
MAX_ERROR_BYTES = 64 * 1024
#: Upstream error status -> (error.type both SDKs know, aiide code, what the student reads).
UPSTREAM_ERRORS = {
    401: ("authentication_error", "provider_auth",
          "the provider refused the course's key; tell your instructor"),
    403: ("permission_error", "provider_auth",
          "the provider refused the course's key; tell your instructor"),
    429: ("rate_limit_error", "provider_rate_limited",
          "the provider is rate limiting the course's key; try again shortly"),
    529: ("overloaded_error", "provider_overloaded",
          "the provider is overloaded; try again in a minute"),
}  # fmt: skip


class ModelHandler(BrokerHandler):
    """One provider's model route; subclasses say where and how to call it."""

    provider = ""
    #: The provider's answer while it is being relayed.
    _upstream: Any = None
    #: Tokens of the student's budget reserved for this call (``reserve.py``).
    _granted = 0

    def on_connection_close(self) -> None:
        """The student went away: hang up on the provider now (it may be mid-answer, or
        silent for minutes), so the call ends and is metered for what was generated."""
        if self._upstream is not None:
            self._upstream.close()

    def body_limit(self) -> int:
        return int(self.broker.app.max_body_bytes)

    def upstream_found(self) -> tuple[dict[str, Any], str] | None:
        """(spec, key) of the configured provider this route calls; None: none with a key."""
        return self.broker.upstream(self.provider)

    def upstream_label(self) -> str:
        return self.provider

    def upstream_request(
        self, spec: dict[str, Any], key: str, body: dict[str, Any], headers: dict[str, str]
    ) -> Any:
        """(url, headers, body bytes) for the provider; ``headers``: the allow-listed
        provider headers of the request (``screening.forward_headers``)."""
        raise NotImplementedError

    def counter(self, body: dict[str, Any]) -> Any:
        raise NotImplementedError

    async def post(self) -> None:
        self.request.body = self.body()
        try:
            body = json.loads(self.request.body or b"{}")
            model = str(body.get("model", ""))
        except (ValueError, AttributeError):
            self.fail(400, "invalid_request_error", "the body must be a JSON object")
            return
        app = self.broker.app
        headers, refused = forward_headers(self.request.headers, app.allowed_anthropic_betas)
        refused = refused or tool_refusal(self.provider, body, app.allowed_tool_types)
        if refused is not None:
            await self.audit("model.refused", f"model:{model}", refused[0], {"ip": self.ip})
            self.fail(400, *refused, kind="invalid_request_error")
            return
        found = self.upstream_found()
        if found is None:
            # A misconfiguration, not an outage: a 4xx, so the student's server neither
            # retries nor reports the provider as overloaded; the message says what is wrong.
            why = f"the broker has no {self.upstream_label()} key configured"
            await self.audit("model.refused", f"model:{model}", "no_provider", {"why": why})
            log.error("aiide broker: %s asked for %s but %s", self.caller.name, model, why)
            message = f"{model} cannot be used: {why}; tell your instructor"
            self.fail(400, "no_provider", message, kind="invalid_request_error")
            return
        if await self.admit(model, body):
            await self._forward(found, body, model, headers)

    def _refusal(
        self, policy: Effective, model: str, body: dict[str, Any]
    ) -> tuple[int, str, str] | None:
        outside = self.broker.outside_refusal(self.caller, policy)
        if outside is not None:
            return (403, *outside)
        return _course_refusal(policy, model, self.provider, body, self.broker.app)

    async def admit(self, model: str, body: dict[str, Any]) -> bool:
        """The course's answer for this call; False once a refusal has been sent."""
        b, caller = self.broker, self.caller
        target = f"model:{model}"
        try:
            for attempt in range(_ATTEMPTS):
                version, policy = await b.policy_for(caller, refresh=attempt > 0)
                refusal = self._refusal(policy, model, body)
                if refusal is not None and attempt == 0 and b.state.redis_url:
                    continue  # refuse only on current changes (exam may have just ended)
                if refusal is not None:
                    await self.refused(*refusal, target)
                    return False
                reserve, estimate = reservation(self.provider, body)
                admission = await b.state.admit(
                    caller.name, version, policy.budget(), self._limit(policy), reserve
                )
                if admission is not None:
                    break
            else:  # changed on every attempt: as if unavailable (closed: refuse)
                raise StateUnavailable("course changes keep changing")
        except StateUnavailable as e:
            if b.app.redis_failure_mode == "closed":
                message = f"usage limits cannot be checked ({e}); try again later"
                await self.audit("model.refused", target, "broker_unavailable")
                self.fail(503, "broker_unavailable", message)
                return False
            log.warning("aiide broker: %s; failing open", e)
            refusal = self._refusal(b.file_policy(caller), model, body)  # no budgets, no limits
            if refusal is not None:
                await self.refused(*refusal, target)
            return refusal is None
        if admission.decision is not None:
            for k, v in admission.decision.headers().items():
                self.set_header(k, v)
        if admission.code == "budget_exceeded":
            _, message = budget_refusal(policy, admission.used) or ("", "budget used up")
            await self.refused(402, "budget_exceeded", message, target)
            return False
        if admission.code == "rate_limited":
            await self.count(**{"limit:rate_limited": 1})
            text = policy.rate_limit("model") or b.app.rate_limit
            self.fail(429, "rate_limited", f"rate limit for model calls ({text}) reached")
            return False
        return await self._fit(admission.granted, estimate, body, target)

    async def _fit(self, granted: int, estimate: int, body: dict[str, Any], target: str) -> bool:
        """Under a budget: the answer limited to what was reserved for it, so the call
        cannot pass the budget; a request whose input alone would is refused."""
        if not granted:
            return True  # no budget applies
        if granted - estimate < 1:
            caller = self.caller
            await self.record(usage=[Usage(caller.name, caller.groups, reserved=granted)])
            message = (
                f"only {granted} tokens of your budget are left, not enough for this request "
                f"(about {estimate} tokens of input); ask your instructor or wait for the "
                "next period"
            )
            await self.refused(402, "budget_exceeded", message, target)
            return False
        self._granted = granted
        new = fitted(self.provider, body, granted - estimate)
        if new is not body:
            body.update(new)
            self.request.body = json.dumps(body).encode()
        return True

    def _limit(self, policy: Effective) -> Any:
        from aiide_server_ext.gateway.ratelimit import RateLimit

        text = policy.rate_limit("model") or self.broker.app.rate_limit
        return RateLimit.parse(text) if text else None

    async def _forward(
        self,
        found: tuple[dict[str, Any], str],
        body: dict[str, Any],
        model: str,
        provider_headers: dict[str, str],
    ) -> None:
        import aiohttp

        url, headers, data = self.upstream_request(*found, body, provider_headers)
        # Plain bytes from the provider: the usage in them is read on the way through.
        headers["accept-encoding"] = "identity"
        counter = self.counter(body)
        status, outcome = 0, "ok"
        try:
            async with self.broker.http().post(url, data=data, headers=headers) as r:
                self._upstream, status = r, r.status
                if r.status != 200:
                    outcome = await self._upstream_error(r, model)
                    return
                self.set_status(r.status)
                for name in PASS_HEADERS:
                    if name in r.headers:
                        self.set_header(name, r.headers[name])
                async for chunk in r.content.iter_any():
                    counter.feed(chunk)
                    self.write(chunk)
                    await self.flush()  # no added buffering: each chunk goes out now
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            if not self._headers_written:
                log.warning("aiide broker: %s unreachable: %s", self.provider, e)
                outcome = "provider_unavailable"
                self.fail(502, outcome, f"the {self.provider} provider is unreachable")
        except StreamClosedError:
            pass  # the student went away; leaving the block closes the upstream call
        finally:
            self._upstream = None
            if status == 200:
                counter.settle()
            await self._meter(model, counter, outcome)
        if not self._finished:
            self.finish()

    async def _upstream_error(self, r: Any, model: str) -> str:
        """The provider refused: its body (which may echo the key, the request or the
        provider's internals) goes to the broker's log and audit, redacted; the student
        gets the status, a stable code and a message of ours."""
        raw = await r.content.read(MAX_ERROR_BYTES)
        detail = self.broker.redactor.text(raw.decode(errors="replace"))
        log.warning(
            "aiide broker: %s answered %s to %s's call: %s",
            self.provider, r.status, self.caller.name, detail[:2000],
        )  # fmt: skip
        kind, code, message = UPSTREAM_ERRORS.get(
            r.status,
            ("api_error", "provider_error", "the provider failed to answer; try again")
            if r.status >= 500
            else ("invalid_request_error", "provider_rejected",
                  "the provider refused the request; the broker's log has the details"),
        )  # fmt: skip
        if "retry-after" in r.headers:
            self.set_header("retry-after", r.headers["retry-after"])
        await self.audit(
            "model.failed", f"model:{model}", code, {"status": r.status, "upstream": detail}
        )
        self.fail(r.status, code, f"{message} (HTTP {r.status})", kind=kind)
        return code

    async def _meter(self, model: str, counter: Any, outcome: str = "ok") -> None:
        caller = self.caller
        tokens = {"input_tokens": counter.input_tokens, "output_tokens": counter.output_tokens}
        metrics = {"input": counter.input_tokens, "output": counter.output_tokens, "calls": 1}
        used = sum(tokens.values())
        detail: dict[str, Any] = dict(tokens)
        if counter.estimated and counter.output_tokens:
            detail["estimated"] = True
        await self.record(
            usage=[Usage(caller.name, caller.groups, used, metrics, reserved=self._granted)],
            events=[Event(caller.name, "model.used", f"model:{model}", outcome, detail)],
        )


def _course_refusal(
    policy: Effective, model: str, provider: str, body: dict[str, Any], app: Any
) -> tuple[int, str, str] | None:
    refusal = model_refusal(policy)
    if refusal is not None:
        return (403, *refusal)
    chat_off = policy.refusal("chat")
    if chat_off is not None and policy.refusal("complete") is None:
        # Exam mode left completion on: the call passes only as what a completion is.
        why = completion_refusal(
            provider, body, app.completion_max_tokens, app.completion_max_prompt_chars
        )
        if why is not None:
            code, message = chat_off
            return 403, code, f"{message} (only inline completion is on: {why})"
    if not policy.model_allowed(model):
        return 403, "model_not_allowed", f"model {model!r} is not allowed in your course"
    return None


class MessagesHandler(ModelHandler):
    """``POST <prefix>/anthropic/v1/messages``."""

    provider = "anthropic"

    def upstream_request(
        self, spec: dict[str, Any], key: str, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[str, dict[str, str], bytes]:
        url = str(spec.get("base_url") or "https://api.anthropic.com").rstrip("/")
        out = {**headers, "x-api-key": key, "content-type": "application/json"}
        return url + "/v1/messages", out, self.request.body

    def counter(self, body: dict[str, Any]) -> UsageCounter:
        return UsageCounter(streaming=bool(body.get("stream")))


class ChatCompletionsHandler(ModelHandler):
    """``POST <prefix>/openai/v1/chat/completions``: an OpenAI-compatible provider
    (``upstreams["openai"]``, ``base_url`` ending in ``/v1`` as the OpenAI SDK takes it).

    A streaming call always asks the provider for ``stream_options.include_usage``, so
    its tokens are metered whatever the client asked for (the extra last chunk has no
    choices, which OpenAI clients expect). A provider that still reports no usage is
    metered by an estimate (about four characters a token) and audited as estimated."""

    provider = "openai"

    def upstream_request(
        self, spec: dict[str, Any], key: str, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[str, dict[str, str], bytes]:
        url = str(spec.get("base_url") or "https://api.openai.com/v1").rstrip("/")
        data: bytes = self.request.body
        if body.get("stream"):
            options = body.get("stream_options")
            options = dict(options) if isinstance(options, dict) else {}
            if options.get("include_usage") is not True:
                options["include_usage"] = True
                data = json.dumps({**body, "stream_options": options}).encode()
        headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        return url + "/chat/completions", headers, data

    def counter(self, body: dict[str, Any]) -> OpenAIUsageCounter:
        return OpenAIUsageCounter(body)


#: A JSON answer is kept this far (for its ``usage``) while it is relayed.
MAX_JSON_BYTES = 16 * 1024 * 1024


class UsageCounter:
    """Reads Anthropic ``usage`` as the answer passes: SSE line by line (never held), a
    JSON answer whole at the end (``settle``; it may span lines)."""

    estimated = False

    def __init__(self, streaming: bool = True) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.streaming = streaming
        self._tail = b""
        self._body = bytearray()

    def feed(self, chunk: bytes) -> None:
        if not self.streaming:
            if len(self._body) < MAX_JSON_BYTES:
                self._body += chunk
            return
        lines = (self._tail + chunk).split(b"\n")
        self._tail = lines.pop()
        for line in lines:
            self._line(line)

    def _line(self, line: bytes) -> None:
        text = line[5:] if line.startswith(b"data:") else line
        if not self.wanted(text):
            return
        try:
            event = json.loads(text)
        except ValueError:
            return
        if isinstance(event, dict):
            self.event(event)

    def wanted(self, text: bytes) -> bool:
        return b'"usage"' in text

    def settle(self) -> None:
        """The answer is over (a successful one): count what is left."""
        if self._tail:
            self._line(self._tail)
            self._tail = b""
        if self._body:
            try:
                event = json.loads(bytes(self._body))
            except ValueError:
                event = None
            self._body = bytearray()
            if isinstance(event, dict):
                self.event(event)

    def event(self, event: dict[str, Any]) -> None:
        usage = (event.get("message") or {}).get("usage") or event.get("usage") or {}
        if event.get("type") in ("message_start", "message", None) or "message" in event:
            # Anthropic's input_tokens leaves out what the prompt cache read or wrote: a
            # student's budget counts every input token, as the agent's metering does.
            sent = sum(
                int(usage.get(k) or 0)
                for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
            )
            self.input_tokens = max(self.input_tokens, sent)
        self.output_tokens = max(self.output_tokens, int(usage.get("output_tokens") or 0))


class OpenAIUsageCounter(UsageCounter):
    """``usage.prompt_tokens``/``completion_tokens`` from the last stream chunk or the
    JSON answer; an estimate from the text when the provider sends none."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(streaming=bool(body.get("stream")))
        self._prompt_chars = len(json.dumps([body.get("messages"), body.get("tools")]))
        self._answer_chars = 0
        self._reported = False

    def wanted(self, text: bytes) -> bool:
        return b'"usage"' in text or b'"content"' in text or b'"arguments"' in text

    def event(self, event: dict[str, Any]) -> None:
        usage = event.get("usage")
        if isinstance(usage, dict) and usage.get("completion_tokens") is not None:
            self._reported = True
            self.input_tokens = max(self.input_tokens, int(usage.get("prompt_tokens") or 0))
            self.output_tokens = max(self.output_tokens, int(usage["completion_tokens"] or 0))
        for choice in event.get("choices") or ():
            part = choice.get("delta") or choice.get("message") or {}
            self._answer_chars += len(str(part.get("content") or ""))
            for call in part.get("tool_calls") or ():
                self._answer_chars += len(str((call.get("function") or {}).get("arguments", "")))

    def settle(self) -> None:
        """No usage reported by the end: estimate, so every answer counts against budgets."""
        super().settle()
        if not self._reported:
            self.estimated = True
            self.input_tokens = max(1, self._prompt_chars // 4)
            self.output_tokens = max(1, self._answer_chars // 4) if self._answer_chars else 0


def relay_handlers(prefix: str, kw: dict[str, Any]) -> list[Any]:
    return [
        (prefix + "anthropic/v1/messages", MessagesHandler, kw),
        (prefix + "openai/v1/chat/completions", ChatCompletionsHandler, kw),
    ]
