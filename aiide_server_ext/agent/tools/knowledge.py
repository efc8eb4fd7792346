"""``search_knowledge``: the caller's own knowledge index (the knowledge part), with citations."""

from __future__ import annotations

from typing import Any

from ..errors import ToolError
from .base import Tool, ToolEnv, ToolResult


def render_hits(hits: list[dict[str, Any]], limit: int = 6000) -> str:
    parts = [
        f"[{h.get('citation', h.get('path', '?'))}]\n{h.get('text', '').strip()}" for h in hits
    ]
    text = "\n\n".join(parts)
    return text if len(text) <= limit else text[:limit] + " …"


async def search_knowledge(env: ToolEnv, args: dict[str, Any]) -> ToolResult:
    if env.knowledge is None:
        raise ToolError("tool_failed", "this server has no knowledge index")
    try:
        hits = await env.knowledge.search(env.caller, args["query"], int(args.get("k", 5)))
    except Exception as e:  # the embedding model may be missing or its endpoint down
        raise ToolError("tool_failed", f"knowledge search failed ({type(e).__name__})") from None
    return ToolResult(render_hits(hits) or "no matches")


KNOWLEDGE_TOOLS = [
    Tool(
        "search_knowledge",
        "Search the user's indexed files and notebooks; returns passages with citations.",
        {
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1, "maxLength": 500},
                "k": {"type": "integer", "minimum": 1, "maximum": 20},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        "low",
        search_knowledge,
    )
]
