"""Under a hub, the agent's model providers go through the broker.

Every provider of kind ``anthropic``, ``openai`` or ``described`` configured for the agent
(``c.Agent.providers``, including the defaults) is pointed at the broker's route for
its kind, with the student's hub token (``$JUPYTERHUB_API_TOKEN``) as its API key:

- ``anthropic`` -> ``<broker>/anthropic`` (the Messages API)
- ``openai`` -> ``<broker>/openai/v1`` (``/chat/completions``, OpenAI-compatible)
- ``described`` -> ``<broker>/described/<name>`` (the Messages API; the broker runs the
  provider configured under the same name in its ``upstreams``)

The broker adds the provider key, which therefore never exists in the student's server.
A provider whose spec says ``"via_broker": False`` (say, a keyless model on the
student's own machine) is left alone: the course's budgets do not apply to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Provider kind -> the broker's route for it.
ROUTES = {"anthropic": "anthropic", "openai": "openai/v1"}
TOKEN_ENV = "JUPYTERHUB_API_TOKEN"  # noqa: S105 (the variable's name, not a secret)


def broker_specs(
    specs: Mapping[str, Mapping[str, Any]], broker_url: str
) -> dict[str, dict[str, Any]]:
    """The provider specs with every routable provider pointed at the broker."""
    out: dict[str, dict[str, Any]] = {}
    for name, spec in specs.items():
        kind = str(spec.get("kind", "anthropic"))
        if spec.get("via_broker", True) is False:
            out[name] = dict(spec)
        elif kind in ROUTES:
            base = broker_url.rstrip("/") + "/" + ROUTES[kind]
            out[name] = {**spec, "base_url": base, "api_key_env": TOKEN_ENV}
        elif kind == "described":
            # The broker runs the described provider (its key, its auth pre-flight) and
            # answers as the Messages API: this server keeps no credential of it.
            base = broker_url.rstrip("/") + f"/described/{name}"
            out[name] = {"kind": "described", "descriptor": "anthropic-messages",
                         "base_url": base, "api_key_env": TOKEN_ENV}  # fmt: skip
        else:
            out[name] = dict(spec)
    return out


def install(settings: Mapping[str, Any], broker_url: str) -> list[str]:
    """Reroute the agent's router (before any provider is built; built ones are
    dropped). Returns the names of the providers now going through the broker."""
    service = settings.get("aiide_agent")
    router = getattr(service, "router", None)
    if router is None:
        return []
    router.provider_specs = broker_specs(router.provider_specs, broker_url)
    router._providers.clear()
    return sorted(
        name
        for name, spec in router.provider_specs.items()
        if spec.get("api_key_env") == TOKEN_ENV
        and str(spec.get("kind", "anthropic")) in (*ROUTES, "described")
    )
