"""Which model answers: candidates per task by capability, preference and group allow-list,
retries per candidate, fallback to the next on outage (announced in the stream), metering.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from traitlets import Dict, Float, Int
from traitlets.config import LoggingConfigurable

from ..seams import Caller, Gate
from .calibration import ESTIMATE, Calibration, request_chars
from .errors import AgentError, redact
from .providers import (
    ModelRequest,
    Provider,
    ProviderError,
    RetryPolicy,
    StreamEvent,
    TextDelta,
    ToolRequest,
    Usage,
    build_provider,
    close_stream,
    describe,
    expand,
    stream_with_retries,
)

#: What a task needs from a model.
TASK_NEEDS = {
    "agent": {"chat", "tools"},
    "chat": {"chat"},
    "complete": {"complete"},
    "summarise": {"chat"},
}

DEFAULT_PROVIDERS: dict[str, dict[str, Any]] = {
    "anthropic": {
        "kind": "anthropic",
        "base_url": "${ANTHROPIC_BASE_URL}",
        "api_key_env": "ANTHROPIC_API_KEY",
    },
    "openai": {
        "kind": "openai",
        "base_url": "${OPENAI_BASE_URL:-https://api.openai.com/v1}",
        "api_key_env": "OPENAI_API_KEY",
    },
}

DEFAULT_MODELS: list[dict[str, Any]] = [
    {
        "name": "claude-sonnet",
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "capabilities": ["chat", "tools"],
        "cost": 3.0,
        "latency": 2.0,
    },
    {
        "name": "claude-haiku",
        "provider": "anthropic",
        "model": "claude-haiku-4-5",
        "capabilities": ["chat", "tools", "complete"],
        "cost": 1.0,
        "latency": 1.0,
    },
    {
        "name": "gpt-4o-mini",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "capabilities": ["chat", "tools", "complete"],
        "vision": True,
        "cost": 0.6,
        "latency": 1.0,
    },
]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    provider: str
    model: str
    capabilities: frozenset[str]
    cost: float = 1.0
    latency: float = 1.0
    max_output_tokens: int = 4096
    #: The model accepts images (plots of the cells in context go into the prompt).
    vision: bool = False

    @classmethod
    def from_config(cls, entry: dict[str, Any], kind: str = "") -> ModelSpec:
        """``kind``: the provider's; Claude models see images unless ``"vision": false``,
        an OpenAI-compatible model only when it says ``"vision": true``."""
        vision = entry.get("vision")
        return cls(
            name=str(entry["name"]),
            provider=str(entry["provider"]),
            model=str(entry.get("model", entry["name"])),
            capabilities=frozenset(entry.get("capabilities", ["chat", "tools"])),
            cost=float(entry.get("cost", 1.0)),
            latency=float(entry.get("latency", 1.0)),
            max_output_tokens=int(entry.get("max_output_tokens", 4096)),
            vision=bool(kind == "anthropic" if vision is None else vision),
        )

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "provider": self.provider,
            "capabilities": sorted(self.capabilities),
        }


def _with_defaults(entry: dict[str, Any], descriptor: Any) -> dict[str, Any]:
    """A model of a described provider: its capabilities and vision default to what the
    descriptor declares the API can do."""
    if descriptor is None:
        return entry
    defaults = {"capabilities": list(descriptor.capabilities), "vision": descriptor.vision}
    return {**defaults, **entry}


class UserValues(Protocol):
    def user_value(self, username: str, name: str) -> str | None:
        """A value the user stored in settings (their own key, a header variable)."""
        ...


OnNotice = Callable[[str, str], Awaitable[None]]


class Router(LoggingConfigurable):  # type: ignore[misc]
    """``c.Router.*``: how a model is picked and retried."""

    task_preference = Dict(
        {"agent": "quality", "chat": "quality", "complete": "latency", "summarise": "cost"},
        config=True,
        help="Per task: 'quality' (the configured order), 'latency' or 'cost' (ascending).",
    )
    group_models = Dict(
        {},
        config=True,
        help="Admin allow-list: group name -> model names its members may use. Users in no "
        "listed group may use every model unless a '*' entry lists theirs.",
    )
    max_retries = Int(2, config=True, help="Retries per model on 429/529/5xx/connect errors.")
    retry_base_delay = Float(0.5, config=True, help="First backoff (s) when no Retry-After.")
    retry_max_wait = Float(
        20.0,
        config=True,
        help="A Retry-After longer than this (s) is not waited for: fall back instead.",
    )
    connect_timeout = Float(10.0, config=True, help="Seconds to connect to a provider.")
    idle_timeout = Float(
        60.0, config=True, help="Seconds without a stream event before the call is a stall."
    )

    def setup(
        self,
        models: list[dict[str, Any]],
        providers: dict[str, dict[str, Any]],
        values: UserValues,
        allow_user_keys: bool,
    ) -> None:
        described = {
            name: describe(name, spec)
            for name, spec in providers.items()
            if spec.get("kind") == "described"
        }  # checked now: an invalid descriptor fails the server's start, naming the field
        self.models = [
            ModelSpec.from_config(
                _with_defaults(m, described.get(str(m.get("provider", "")))),
                str(providers.get(m.get("provider", ""), {}).get("kind", "")),
            )
            for m in models
        ]
        self.provider_specs = providers
        self.values = values
        self.allow_user_keys = allow_user_keys
        self._providers: dict[str, Provider] = {}
        self.calibration = Calibration()
        #: A further say on which models a caller may use (under a hub: the course's
        #: allowed models, from the broker); None: the configured list alone.
        self.model_filter: Callable[[ModelSpec, Caller], bool] | None = None

    def sees_images(self, name: str) -> bool:
        spec = next((m for m in self.models if m.name == name), None)
        return spec is not None and spec.vision

    def tokenizer_of(self, name: str) -> str | None:
        """The calibration key of a configured model: its provider and provider-side id."""
        spec = next((m for m in self.models if m.name == name), None)
        return f"{spec.provider}/{spec.model}" if spec is not None else None

    # -- choosing ----------------------------------------------------------------
    def api_key(self, provider: str, caller: Caller) -> str | None:
        if self.allow_user_keys:
            own = self.values.user_value(caller.username, f"key:{provider}")
            if own:
                return own
        env = str(self.provider_specs.get(provider, {}).get("api_key_env", ""))
        return os.environ.get(env) if env else None

    def _usable(self, spec: ModelSpec, caller: Caller) -> bool:
        pspec = self.provider_specs.get(spec.provider)
        if pspec is None:
            return False
        return not pspec.get("api_key_env") or bool(self.api_key(spec.provider, caller))

    def _allowed(self, spec: ModelSpec, caller: Caller) -> bool:
        lists = [self.group_models[g] for g in caller.groups if g in self.group_models]
        if not lists and "*" in self.group_models:
            lists = [self.group_models["*"]]
        if self.model_filter is not None and not self.model_filter(spec, caller):
            return False
        return not lists or any(spec.name in names for names in lists)

    def available(self, caller: Caller) -> list[ModelSpec]:
        return [m for m in self.models if self._allowed(m, caller) and self._usable(m, caller)]

    def candidates(
        self, task: str, caller: Caller, requested: str | None = None
    ) -> list[ModelSpec]:
        needs = TASK_NEEDS[task]
        found = [m for m in self.available(caller) if needs <= m.capabilities]
        preference = self.task_preference.get(task, "quality")
        if preference in ("latency", "cost"):
            found.sort(key=lambda m: getattr(m, preference))
        if requested is not None:
            chosen = [m for m in found if m.name == requested]
            if not chosen:
                raise AgentError("unknown_model", f"model {requested!r} is not available to you")
            found = chosen + [m for m in found if m.name != requested]
        if not found:
            raise AgentError(
                "no_model",
                f"no model is configured for {task} (set ANTHROPIC_API_KEY or c.Agent.models)",
                503,
            )
        return found

    def provider(self, name: str) -> Provider:
        if name not in self._providers:
            timeouts = {"connect_timeout": self.connect_timeout, "idle_timeout": self.idle_timeout}
            self._providers[name] = build_provider(name, self.provider_specs[name], timeouts)
        return self._providers[name]

    def _headers(self, provider: str, caller: Caller) -> dict[str, str]:
        templates = self.provider_specs.get(provider, {}).get("headers") or {}

        def lookup(name: str) -> str | None:
            own = self.values.user_value(caller.username, name) if self.allow_user_keys else None
            return own if own is not None else os.environ.get(name)

        return {str(k): expand(str(v), lookup) for k, v in templates.items()}

    def _values(self, caller: Caller) -> Callable[[str], str | None] | None:
        """The caller's stored values, for ``${user.NAME}`` (when users may store them)."""
        if not self.allow_user_keys:
            return None
        username, values = caller.username, self.values
        return lambda name: values.user_value(username, name)

    # -- calling -----------------------------------------------------------------
    async def stream(
        self,
        candidates: list[ModelSpec],
        caller: Caller,
        build: Callable[[ModelSpec], ModelRequest],
        *,
        gate: Gate,
        feature: str,
        on_notice: OnNotice | None = None,
        on_estimate: Callable[[Usage], None] | None = None,
    ) -> AsyncIterator[tuple[ModelSpec, StreamEvent]]:
        """Stream from the first candidate that answers; meter every call. A call that
        ends before its provider reported usage is metered by an estimate, also given to
        ``on_estimate`` (the stream's consumer may be gone by then)."""
        policy = RetryPolicy(self.max_retries, self.retry_base_delay, 8.0, self.retry_max_wait)
        last: ProviderError | None = None
        for n, spec in enumerate(candidates):
            key = self.api_key(spec.provider, caller)
            request = build(spec)
            request.headers = self._headers(spec.provider, caller)
            request.user = caller.username
            request.values = self._values(caller)

            async def on_retry(
                e: ProviderError, wait: float, attempt: int, spec: ModelSpec = spec
            ) -> None:
                if on_notice is not None:
                    await on_notice(
                        "retry", f"{spec.name}: {e.code}, retry {attempt} in {wait:.1f}s"
                    )

            started = metered = False
            written = 0  # characters of answer received, for a stream that ends early
            events = stream_with_retries(
                self.provider(spec.provider), request, key, policy, on_retry
            )
            try:
                async for event in events:
                    if isinstance(event, Usage):
                        self.calibration.observe(
                            f"{spec.provider}/{spec.model}",
                            request_chars(request.system, request.messages, request.tools),
                            event.input_tokens,
                        )
                        metered = True
                        await gate.record_model_usage(
                            caller,
                            provider=spec.provider,
                            model=spec.model,
                            feature=feature,
                            input_tokens=event.input_tokens,
                            output_tokens=event.output_tokens,
                            cache_read_tokens=event.cache_read_tokens,
                            cache_write_tokens=event.cache_write_tokens,
                        )
                    elif isinstance(event, TextDelta):
                        written += len(event.text)
                    elif isinstance(event, ToolRequest):
                        written += len(event.raw)
                    started = True
                    yield spec, event
                return
            except ProviderError as e:
                e.message = redact(e.message, [key or ""])
                self.log.warning("aiide: model %s failed: %s (%s)", spec.name, e.code, e.message)
                if started or e.code == "provider_bad_request":
                    raise
                last = e
                if n + 1 < len(candidates) and on_notice is not None:
                    nxt = candidates[n + 1].name
                    await on_notice(
                        "fallback", f"{spec.name} is unavailable ({e.code}); using {nxt}"
                    )
            finally:
                await close_stream(events)
                if started and not metered:
                    # Stopped by the user, or failed mid-way: the provider was sent the
                    # request and streamed part of an answer, and bills both. It reports
                    # usage only at the end, so count what it was sent and what came back.
                    usage = await self._meter_estimate(
                        caller, spec, request, written, gate, feature
                    )
                    if on_estimate is not None:
                        on_estimate(usage)
        assert last is not None
        raise last

    async def _meter_estimate(
        self,
        caller: Caller,
        spec: ModelSpec,
        request: ModelRequest,
        written: int,
        gate: Gate,
        feature: str,
    ) -> Usage:
        model = f"{spec.provider}/{spec.model}"
        sent = request_chars(request.system, request.messages, request.tools)
        input_tokens = self.calibration.from_estimate(model, round(sent / ESTIMATE))
        output_tokens = self.calibration.from_estimate(model, -(-written // int(ESTIMATE)))
        self.log.info(
            "aiide: %s stream for %s ended early: metered an estimate (%d in, %d out)",
            spec.name,
            caller.username,
            input_tokens,
            output_tokens,
        )
        await gate.record_model_usage(
            caller,
            provider=spec.provider,
            model=spec.model,
            feature=feature,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )
        return Usage(input_tokens, output_tokens)

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()
