"""Which models the broker can serve: an instructor's switch of the course's models is
checked here before it is stored, so a class is never moved to a model whose every call
would fail (students would read a provider error for what is a misconfiguration).

A provider route serves the model ids starting with one of its prefixes: the upstream
spec's ``models`` list (``c.BrokerApp.upstreams.<name>.models``), else the defaults below;
it can serve them only with a key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: Model id prefixes each provider route serves when its upstream spec lists none.
DEFAULT_SERVED = {
    "anthropic": ("claude-",),
    "openai": ("gpt-", "chatgpt-", "o1", "o3", "o4"),
}


def served(name: str, spec: Mapping[str, Any]) -> tuple[str, ...]:
    listed = spec.get("models")
    if isinstance(listed, list):
        return tuple(str(m) for m in listed)
    return DEFAULT_SERVED.get(name, ())


def key_source(spec: Mapping[str, Any]) -> str:
    """Where the broker looked for a provider's key (never the key)."""
    if spec.get("api_key_file"):
        return f"its api_key_file {spec['api_key_file']} is empty"
    env = str(spec.get("api_key_env") or "")
    if env:
        return f"{env} is not set in the broker's environment"
    return "neither api_key_file nor api_key_env is configured"


def unservable(
    models: Iterable[str],
    upstreams: Mapping[str, Mapping[str, Any]],
    keys: Mapping[str, str | None],
) -> list[str]:
    """Why each model the broker cannot serve cannot be served (empty: all can)."""
    reasons = []
    for model in models:
        serving = [n for n, spec in upstreams.items() if model.startswith(served(n, spec))]
        if any(keys.get(n) for n in serving):
            continue
        if serving:
            why = "; ".join(f"{n}: {key_source(upstreams[n])}" for n in serving)
            reasons.append(f"{model}: the broker has no key for {' or '.join(serving)} ({why})")
            continue
        known = "; ".join(
            f"{n} serves {', '.join(p + '*' for p in served(n, spec)) or 'nothing'}"
            for n, spec in upstreams.items()
        )
        reasons.append(
            f"{model}: no provider configured at the broker serves it ({known or 'none'}; "
            "list a provider's models in c.BrokerApp.upstreams.<name>.models)"
        )
    return reasons
