"""Cell-level notebook patches (insert / replace / delete / move), applied to nbformat dicts.

Every op names its cell and the source it expects, so a patch never overwrites an edit
it did not see: a mismatch is a conflict. Applying the same patch twice is harmless.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from .errors import ToolError


def source_of(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def ensure_ids(nb: dict[str, Any]) -> None:
    """nbformat < 4.5 notebooks have no cell ids: give them some (saved with the patch)."""
    for cell in nb.get("cells", []):
        if not cell.get("id"):
            cell["id"] = uuid.uuid4().hex[:8]
    if nb.get("nbformat", 4) == 4 and nb.get("nbformat_minor", 0) < 5:
        nb["nbformat_minor"] = 5


def index_of(nb: dict[str, Any], cell_id: str) -> int:
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("id") == cell_id:
            return i
    raise ToolError("not_found", f"no cell {cell_id!r} in the notebook")


def new_cell(cell_id: str, cell_type: str, source: str) -> dict[str, Any]:
    cell: dict[str, Any] = {"id": cell_id, "cell_type": cell_type, "metadata": {}, "source": source}
    if cell_type == "code":
        cell.update(outputs=[], execution_count=None)
    return cell


def _check(nb: dict[str, Any], op: dict[str, Any]) -> int:
    i = index_of(nb, op["cell_id"])
    if source_of(nb["cells"][i]) != op["expected_source"]:
        raise ToolError(
            "conflict", f"cell {op['cell_id']} changed since it was read: read it again"
        )
    return i


def _after(nb: dict[str, Any], after_id: str | None) -> int:
    return 0 if after_id is None else index_of(nb, after_id) + 1


def apply_patch(nb: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A new notebook with the patch applied (the input is left alone)."""
    out = copy.deepcopy(nb)
    ensure_ids(out)
    cells: list[dict[str, Any]] = out.setdefault("cells", [])
    for op in patch["ops"]:
        kind = op["op"]
        if kind == "insert":
            cell = op["cell"]
            existing = [c for c in cells if c.get("id") == cell["id"]]
            if existing:
                if source_of(existing[0]) != cell["source"]:
                    raise ToolError("conflict", f"a different cell {cell['id']} already exists")
                continue  # already applied
            cells.insert(
                _after(out, op["after_id"]), new_cell(cell["id"], cell["cell_type"], cell["source"])
            )
        elif kind == "replace":
            i = index_of(out, op["cell_id"])
            if source_of(cells[i]) == op["source"]:
                continue  # already applied
            i = _check(out, op)
            cells[i]["source"] = op["source"]
            if op.get("cell_type") and op["cell_type"] != cells[i]["cell_type"]:
                cells[i] = new_cell(cells[i]["id"], op["cell_type"], op["source"])
            elif cells[i]["cell_type"] == "code":
                cells[i].update(outputs=[], execution_count=None)
        elif kind == "delete":
            if not any(c.get("id") == op["cell_id"] for c in cells):
                continue  # already applied
            del cells[_check(out, op)]
        elif kind == "move":
            cell = cells.pop(index_of(out, op["cell_id"]))
            cells.insert(_after(out, op["after_id"]), cell)
        else:
            raise ToolError("validation_error", f"unknown patch op {kind!r}")
    return out


def describe(patch: dict[str, Any]) -> str:
    parts = []
    for op in patch["ops"]:
        if op["op"] == "insert":
            where = f"after {op['after_id']}" if op["after_id"] else "at the top"
            parts.append(f"inserted cell {op['cell']['id']} {where}")
        elif op["op"] == "replace":
            parts.append(f"replaced the source of cell {op['cell_id']}")
        elif op["op"] == "delete":
            parts.append(f"deleted cell {op['cell_id']}")
        else:
            parts.append(f"moved cell {op['cell_id']}")
    return "; ".join(parts)
