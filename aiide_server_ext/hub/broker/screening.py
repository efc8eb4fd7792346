"""What a model request may carry through the broker, decided from the request itself.

Three checks, none of which trusts anything the caller says about the request:

- **Provider headers** (``forward_headers``): only an allow-listed ``anthropic-version``
  and the ``anthropic-beta`` values an admin listed reach the provider. A beta can turn
  on server-side tools (web search, code execution, MCP connectors) that the provider
  bills per use, outside the token budgets the broker meters.
- **Tool types** (``tool_refusal``): the same for tools declared in the body (a
  ``web_search_…`` tool needs no beta header): only client tools the student's own agent
  runs (``custom`` / ``function``, or types an admin listed) pass.
- **The completion shape** (``completion_refusal``): when exam mode turns chat and agent
  runs off but leaves inline completion on, the broker cannot ask the caller which
  feature a call is for (a student holding their own hub token would simply say
  "completion"). It checks what the call *is* instead: the inline completer's fixed
  instruction as the only system prompt, one user message of bounded text, no tools, no
  earlier turns, a small answer. A chat dressed up as a completion therefore gets exactly
  what the completion feature gives anyone who types the same text into a cell: nothing
  the instructor did not leave on (docs/hub.md, "Exam mode at the broker").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

#: ``anthropic-version`` values look like dates; anything else is not forwarded.
_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}")
#: Request fields the inline completer sends, per provider route (plus nothing else).
COMPLETION_FIELDS = {
    "anthropic": frozenset(
        {"model", "max_tokens", "messages", "system", "temperature", "stop_sequences", "stream"}
    ),
    "openai": frozenset(
        {"model", "max_tokens", "messages", "temperature", "stop", "stream", "stream_options"}
    ),
}
#: Tool types that are plain client tools on each route (no type at all counts as one).
CLIENT_TOOL_TYPES = {"anthropic": frozenset({"custom"}), "openai": frozenset({"function"})}


@functools.cache
def completion_instruction() -> str:
    """The system prompt the inline completer always sends (``agent/complete.py``)."""
    from aiide_server_ext.agent.complete import SYSTEM

    return SYSTEM


def forward_headers(
    headers: Mapping[str, str], allowed_betas: Iterable[str]
) -> tuple[dict[str, str], tuple[str, str] | None]:
    """(headers for the provider, refusal): the allow-listed provider headers only."""
    out = {"anthropic-version": "2023-06-01"}
    version = headers.get("anthropic-version", "").strip()
    if version:
        if not _VERSION.fullmatch(version):
            return out, ("header_not_allowed", f"anthropic-version {version[:40]!r} is not a date")
        out["anthropic-version"] = version
    beta = headers.get("anthropic-beta", "").strip()
    if beta:
        wanted = [b.strip() for b in beta.split(",") if b.strip()]
        refused = sorted(set(wanted) - set(allowed_betas))
        if refused:
            shown = ", ".join(r[:60] for r in refused[:5])
            return out, (
                "header_not_allowed",
                f"anthropic-beta {shown} is not allowed through the course's broker "
                "(c.BrokerApp.allowed_anthropic_betas): betas can bill outside the budget",
            )
        out["anthropic-beta"] = ",".join(wanted)
    return out, None


def tool_refusal(
    provider: str, body: Mapping[str, Any], allowed_types: Iterable[str]
) -> tuple[str, str] | None:
    """A tool of a type that is not a client tool (a provider-run, separately billed one)."""
    tools = body.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        return "invalid_request_error", "'tools' must be a list"
    allowed = CLIENT_TOOL_TYPES.get(provider, frozenset()) | set(allowed_types)
    for tool in tools:
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        if kind is not None and kind not in allowed:
            return "tool_not_allowed", (
                f"tool type {str(kind)[:60]!r} runs at the provider, billed outside the "
                "course's token budget; it is not allowed (c.BrokerApp.allowed_tool_types)"
            )
    return None


def completion_refusal(
    provider: str, body: Mapping[str, Any], max_tokens: int, max_prompt_chars: int
) -> str | None:
    """Why the call is not an inline completion (None: it is one)."""
    extra = set(body) - COMPLETION_FIELDS.get(provider, frozenset())
    if extra:
        return f"a completion carries no {sorted(extra)[0]!r}"
    wanted = body.get("max_tokens")
    if not isinstance(wanted, int) or isinstance(wanted, bool) or not 0 < wanted <= max_tokens:
        return f"a completion asks for at most {max_tokens} tokens"
    messages = body.get("messages")
    if not isinstance(messages, list):
        return "a completion is one user message"
    system: Any = body.get("system")
    if provider == "openai":
        first = messages[0] if messages else None
        if isinstance(first, Mapping) and first.get("role") == "system":
            system, messages = first.get("content"), messages[1:]
    if system != completion_instruction():
        return "a completion carries the completer's own instruction"
    if len(messages) != 1 or not isinstance(messages[0], Mapping):
        return "a completion is one user message"
    message = messages[0]
    if set(message) != {"role", "content"} or message.get("role") != "user":
        return "a completion is one user message"
    content = message.get("content")
    if not isinstance(content, str) or len(content) > max_prompt_chars:
        return f"a completion is text of at most {max_prompt_chars} characters"
    return None
