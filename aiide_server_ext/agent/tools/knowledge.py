"""``search_knowledge``: the caller's own knowledge index (the knowledge part), with citations.

The model reads each passage under its bracketed citation label; the UI gets the same
citations structured (``tool_result.citations``, docs/protocol.md) and turns them into
links that open the file at the cell or line.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import ToolError
from .base import Tool, ToolEnv, ToolResult

log = logging.getLogger("aiide.agent")

#: Passages the model is shown per search (the tool's ``k`` default).
DEFAULT_K = 5


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def citation_of(hit: dict[str, Any]) -> dict[str, Any] | None:
    """The protocol's ``Citation`` of one search result; None without a path."""
    path = hit.get("path")
    if not isinstance(path, str) or not path:
        return None
    cell_id = hit.get("cell_id")
    return {
        "path": path,
        "cell_id": cell_id if isinstance(cell_id, str) and cell_id else None,
        "cell_index": _int_or_none(hit.get("cell_index")),
        "line_start": _int_or_none(hit.get("line_start")),
        "line_end": _int_or_none(hit.get("line_end")),
        "title": str(hit.get("title") or ""),
        "label": str(hit.get("citation") or path),
    }


def citations_of(hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Citations of the hits, once each (two chunks of one cell cite it once)."""
    seen: set[str] = set()
    out = []
    for hit in hits:
        citation = citation_of(hit)
        if citation is not None and citation["label"] not in seen:
            seen.add(citation["label"])
            out.append(citation)
    return out


def render_hits(hits: list[dict[str, Any]], limit: int = 6000) -> str:
    parts = [
        f"[{h.get('citation', h.get('path', '?'))}]\n{h.get('text', '').strip()}" for h in hits
    ]
    text = "\n\n".join(parts)
    return text if len(text) <= limit else text[:limit] + " …"


async def search_knowledge(env: ToolEnv, args: dict[str, Any]) -> ToolResult:
    from ...knowledge.embeddings import EmbeddingError  # a small module: no chromadb import

    if env.knowledge is None:
        raise ToolError("tool_failed", "this server has no knowledge index")
    try:
        hits = await env.knowledge.search(env.caller, args["query"], int(args.get("k", DEFAULT_K)))
    except EmbeddingError as e:
        # The model (and the user reading the card) must learn why, e.g. "embedding
        # endpoint … unreachable" or the install command: the message carries no secret.
        raise ToolError("tool_failed", f"knowledge search failed: {e}") from None
    except Exception as e:  # a bug or chromadb trouble: details go to the server log only
        log.warning("aiide: search_knowledge failed: %s", e, exc_info=True)
        raise ToolError("tool_failed", f"knowledge search failed ({type(e).__name__})") from None
    if not hits:
        return ToolResult("no matches (nothing indexed matches; the user can run /learn)")
    return ToolResult(render_hits(hits), citations=citations_of(hits))


KNOWLEDGE_TOOLS = [
    Tool(
        "search_knowledge",
        "Search the user's indexed files and notebooks; returns passages, each under its "
        "citation in brackets. When an answer uses a passage, cite it with that exact "
        "bracketed label, e.g. [analysis.ipynb, cell 3 (id c3)]: the user sees it as a link.",
        {
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1, "maxLength": 500},
                "k": {"type": "integer", "minimum": 1, "maximum": 20},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        "read",
        search_knowledge,
    )
]
