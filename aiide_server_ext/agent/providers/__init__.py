"""Model providers behind one streaming interface (``base.Provider``)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .anthropic import AnthropicProvider
from .base import (
    ModelRequest,
    Provider,
    ProviderError,
    RetryPolicy,
    Stop,
    StreamEvent,
    TextDelta,
    ToolRequest,
    Usage,
    close_stream,
    stream_with_retries,
)
from .openai_compat import OpenAICompatProvider

if TYPE_CHECKING:
    from .descriptor import Descriptor

__all__ = [
    "ModelRequest",
    "Provider",
    "ProviderError",
    "RetryPolicy",
    "Stop",
    "StreamEvent",
    "TextDelta",
    "ToolRequest",
    "Usage",
    "build_provider",
    "close_stream",
    "describe",
    "expand",
    "stream_with_retries",
]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*)(?::-([^}]*))?\}")


def expand(template: str, lookup: Callable[[str], str | None]) -> str:
    """``${NAME}`` / ``${NAME:-default}``; unknown names become the default or ''."""

    def sub(match: re.Match[str]) -> str:
        value = lookup(match.group(1))
        return value if value is not None else (match.group(2) or "")

    return _VAR.sub(sub, template)


def build_provider(name: str, spec: Mapping[str, Any], timeouts: Mapping[str, Any]) -> Provider:
    """One provider from ``c.Agent.providers[name]``; URLs expand from the environment."""
    kind = str(spec.get("kind", "anthropic"))
    base_url = expand(str(spec.get("base_url", "")), os.environ.get) or None
    common: dict[str, Any] = {
        "connect_timeout": float(timeouts.get("connect_timeout", 10.0)),
        "idle_timeout": float(timeouts.get("idle_timeout", 60.0)),
    }
    if kind == "anthropic":
        return AnthropicProvider(
            name,
            base_url,
            prompt_caching=bool(spec.get("prompt_caching", True)),
            **common,
        )
    if kind == "openai":
        return OpenAICompatProvider(name, base_url or "https://api.openai.com/v1", **common)
    if kind == "described":
        from .described import DescribedProvider  # lazy: jmespath, aiohttp

        return DescribedProvider(name, describe(name, spec), **common)
    raise ValueError(f"provider {name}: unknown kind {kind!r} (anthropic, openai or described)")


def describe(name: str, spec: Mapping[str, Any]) -> Descriptor:
    """The checked descriptor of a ``described`` provider (``DescriptorError`` naming the
    field when it is invalid); the server checks every one at start."""
    from .descriptor import load

    if spec.get("base_url"):  # ${VAR} from the environment, as for the other kinds
        spec = {**spec, "base_url": expand(str(spec["base_url"]), os.environ.get)}
    return load(name, spec)
