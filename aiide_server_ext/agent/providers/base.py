"""The one streaming interface every model provider implements, and retries around it.

Runs, completion and summaries only see these types, so a provider is a small adapter and
the router can swap one for another mid-conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolRequest:
    """A tool call the model asked for. ``arguments`` is None when its JSON was invalid."""

    id: str
    name: str
    arguments: dict[str, Any] | None
    raw: str
    error: str | None = None


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    #: What the provider says answered: its model id (a dated version where the alias
    #: asked for moves), the response id and, where sent, the backend's fingerprint. For
    #: the record of a run (headless provenance); not part of what the usage is.
    model: str = field(default="", compare=False)
    response_id: str = field(default="", compare=False)
    fingerprint: str = field(default="", compare=False)


@dataclass(frozen=True)
class Stop:
    #: end_turn | tool_use | max_tokens | stop_sequence
    reason: str


StreamEvent = TextDelta | ToolRequest | Usage | Stop


@dataclass
class ModelRequest:
    """Provider-neutral request; ``messages`` use Anthropic-style content blocks."""

    model: str
    system: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    max_tokens: int = 1024
    temperature: float | None = None
    stop_sequences: list[str] | None = None
    #: Extra HTTP headers, already expanded for this caller (``${var}`` templates).
    headers: dict[str, str] = field(default_factory=dict)
    #: Fill-in-the-middle: (prefix, suffix) for providers that can send them as such
    #: (``/v1/completions``); ``system``/``messages`` stay the chat prompt, used by every
    #: other provider and as the fallback when a server refuses FIM.
    fim: tuple[str, str] | None = None
    #: Who asks (``${user}`` in a described provider's templates; its token cache's key).
    user: str = ""
    #: The asker's own stored values (``${user.NAME}`` in a described provider's templates).
    values: Callable[[str], str | None] | None = field(default=None, repr=False)


class DescriptorError(ValueError):
    """An invalid described provider (``descriptor.py``); the message names the provider
    and the field. Here, not there, so the server can catch it without importing more."""


class ProviderError(Exception):
    """A typed provider failure. ``code`` is one of the protocol's ``provider_*`` codes."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.retryable = retryable


def error_for_status(status: int, message: str, headers: Mapping[str, str]) -> ProviderError:
    retry_after = parse_retry_after(headers)
    if status in (401, 403):
        return ProviderError("provider_auth", message, status=status)
    if status == 429:
        return ProviderError(
            "provider_rate_limited", message, status=status, retry_after=retry_after, retryable=True
        )
    if status in (503, 529):
        return ProviderError(
            "provider_overloaded", message, status=status, retry_after=retry_after, retryable=True
        )
    if status >= 500:
        return ProviderError("provider_unavailable", message, status=status, retryable=True)
    return ProviderError("provider_bad_request", message, status=status)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """``retry-after-ms``, ``retry-after`` seconds, or an HTTP date."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        if "retry-after-ms" in lower:
            return max(0.0, float(lower["retry-after-ms"]) / 1000)
        value = lower.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def classify_exception(exc: BaseException) -> ProviderError:
    """Transport errors from any HTTP stack, recognised by name (httpx, httpx2, tornado)."""
    name = type(exc).__name__
    if "Timeout" in name:
        return ProviderError("provider_timeout", "the model stream stalled", retryable=True)
    if "Connect" in name or isinstance(exc, ConnectionError):
        return ProviderError("provider_unavailable", "cannot reach the provider", retryable=True)
    return ProviderError("provider_error", f"the model stream broke ({name})", retryable=True)


@contextlib.contextmanager
def provider_errors(
    translate: Callable[[Exception], ProviderError | None] | None = None,
) -> Iterator[None]:
    """Every provider's stream runs inside this: a ``ProviderError`` passes, a client
    library's own error becomes one (``translate``), anything else is a transport error."""
    try:
        yield
    except ProviderError:
        raise
    except Exception as e:
        raise (translate(e) if translate is not None else None) or classify_exception(e) from None


def parse_arguments(raw: str) -> tuple[dict[str, Any] | None, str | None]:
    """Tool arguments as the model sent them: a dict, or the reason they are unusable."""
    if not raw.strip():
        return {}, None
    try:
        value = json.loads(raw)
    except ValueError as e:
        return None, f"arguments are not valid JSON: {e}"
    if not isinstance(value, dict):
        return None, "arguments must be a JSON object"
    return value, None


async def close_stream(stream: object) -> None:
    """Close an async generator now (its upstream connection with it) rather than when it
    is collected: a stopped answer stops costing at once. Anything without ``aclose`` is
    left alone."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


class Provider(Protocol):
    name: str
    kind: str

    def stream(self, request: ModelRequest, api_key: str | None) -> AsyncIterator[StreamEvent]:
        """Stream one model call. Raises ProviderError."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0
    #: A Retry-After longer than this is not waited for: the router falls back instead.
    max_wait: float = 20.0


OnRetry = Callable[[ProviderError, float, int], Awaitable[None]]


async def stream_with_retries(
    provider: Provider,
    request: ModelRequest,
    api_key: str | None,
    policy: RetryPolicy,
    on_retry: OnRetry | None = None,
) -> AsyncIterator[StreamEvent]:
    """Retry failures that happen before the first event (never duplicate streamed text)."""
    attempt = 0
    while True:
        started = False
        try:
            async for event in provider.stream(request, api_key):
                started = True
                yield event
            return
        except ProviderError as e:
            if started or not e.retryable or attempt >= policy.max_retries:
                raise
            backoff = min(policy.base_delay * 2**attempt, policy.max_delay)
            wait = e.retry_after if e.retry_after is not None else backoff * random.uniform(0.5, 1)
            if wait > policy.max_wait:
                raise
            attempt += 1
            if on_retry is not None:
                await on_retry(e, wait, attempt)
            await asyncio.sleep(wait)
