"""Live kernel state for the prompt: names, types, shapes, DataFrame schemas — never data.

One silent ``user_expressions`` request: nothing runs in the user's namespace, nothing is
added to it, history and execution counts are untouched, and only attributes of known
types are read (no ``repr`` of arbitrary objects, which could be slow or have effects).
"""

from __future__ import annotations

import ast
import json
from typing import Any

_SOURCE = r"""
import json as _json, types as _types
def _describe(v):
    t = type(v); mod = t.__module__ or ""; name = t.__name__
    d = {"type": name if mod == "builtins" else mod.split(".")[0] + "." + name}
    if mod.startswith("pandas") and name == "DataFrame":
        d["shape"] = list(v.shape)
        d["columns"] = {str(c): str(k) for c, k in list(v.dtypes.items())[:COLUMNS]}
    elif mod.startswith("pandas") and name == "Series":
        d["shape"] = list(v.shape); d["dtype"] = str(v.dtype)
    elif mod.startswith("numpy") and name == "ndarray":
        d["shape"] = list(v.shape); d["dtype"] = str(v.dtype)
    elif isinstance(v, (bool, int, float, complex)):
        d["value"] = repr(v)[:40]
    elif isinstance(v, str):
        d["len"] = len(v); d["value"] = v[:40]
    elif isinstance(v, (list, tuple, set, frozenset, dict)):
        d["len"] = len(v)
    return d
_skip = {"In", "Out", "exit", "quit", "get_ipython"}
_items, _size = [], 0
for _n, _v in list(ns.items()):
    if _n.startswith("_") or _n in _skip or isinstance(_v, (_types.ModuleType, type)):
        continue
    if callable(_v) and not hasattr(_v, "shape"):
        continue
    try:
        _e = [_n, _describe(_v)]
    except Exception:
        continue
    _size += len(_json.dumps(_e))
    if _size > MAXCHARS or len(_items) >= LIMIT:
        _items.append(["…", {"type": "more variables not shown"}])
        break
    _items.append(_e)
out = _json.dumps(_items)
"""


def expression(limit: int = 40, max_chars: int = 2000, columns: int = 30) -> str:
    """An expression evaluated in the user namespace that returns the state as JSON."""
    source = (
        _SOURCE.replace("COLUMNS", str(columns))
        .replace("MAXCHARS", str(max_chars))
        .replace("LIMIT", str(limit))
    )
    return f"(lambda: (exec({source!r}, _d := {{'ns': globals()}}), _d['out'])[1])()"


def parse(reply: dict[str, Any]) -> list[tuple[str, dict[str, Any]]] | None:
    """The user_expressions reply, or None when the kernel could not answer."""
    if reply.get("status") != "ok":
        return None
    data = reply.get("data", {}).get("text/plain", "")
    try:  # text/plain is the repr of the JSON string
        items = json.loads(ast.literal_eval(data))
    except (ValueError, SyntaxError, TypeError):
        return None
    return [(str(n), d) for n, d in items if isinstance(d, dict)]


def render(items: list[tuple[str, dict[str, Any]]]) -> str:
    lines = []
    for name, d in items:
        desc = d.get("type", "?")
        if "shape" in d:
            desc += " shape " + "x".join(str(s) for s in d["shape"])
        if "dtype" in d:
            desc += f" {d['dtype']}"
        if "len" in d:
            desc += f" len {d['len']}"
        if "value" in d:
            desc += f" = {d['value']!r}" if d.get("type") == "str" else f" = {d['value']}"
        if "columns" in d:
            desc += " columns: " + ", ".join(f"{c}:{t}" for c, t in d["columns"].items())
        lines.append(f"{name}: {desc}")
    return "\n".join(lines)
