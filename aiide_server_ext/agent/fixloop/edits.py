"""What each attempt's edits came to, read from its run's events: the same for the
headless fix and the fix in the chat, so both audit an attempt alike."""

from __future__ import annotations

from typing import Any

#: The tools whose calls change the notebook: what a fix attempt's patch is made of.
EDIT_TOOLS = ("insert_cell", "replace_cell", "delete_cell")


def record_edit(body: dict[str, Any], edits: list[dict[str, Any]], by_call: dict[str, Any]) -> bool:
    """Notes an edit tool's call (in ``edits``, found again by call id in ``by_call``) or
    its result; False when ``body`` is neither. An error noted before the result (a
    rejection's reason) is kept."""
    kind = body.get("type")
    if kind == "tool_call" and body.get("name") in EDIT_TOOLS:
        args = body.get("arguments") or {}
        edit = {
            "tool": body["name"],
            "cell_id": args.get("cell_id") or args.get("after_id"),
            "decision": body.get("decision"),
            "by": "policy" if body.get("decision") == "auto" else None,
            "ok": False,
        }
        by_call[body["call_id"]] = edit
        edits.append(edit)
        return True
    if kind == "tool_result" and body.get("call_id") in by_call:
        edit = by_call[body["call_id"]]
        edit["ok"] = bool(body.get("ok"))
        if not body.get("ok"):
            edit.setdefault("error", str(body.get("error") or body.get("content") or "")[:300])
        return True
    return False
