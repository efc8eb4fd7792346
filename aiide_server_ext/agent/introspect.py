"""Live kernel state for the prompt: names, types, shapes, DataFrame schemas — never data.

One silent ``user_expressions`` request: nothing runs in the user's namespace, nothing is
added to it, history and execution counts are untouched.

It runs in the user's kernel, among the user's objects, so it calls none of their code:
types come from ``type(v)`` (never ``v.__class__``, ``isinstance`` falls back to it), type
names through ``type``'s own descriptors (a metaclass cannot intercept them), ``len`` and
values only for exact builtin types (compared by identity: ``t in (int, ...)`` would
call a metaclass's ``__eq__``), shapes and schemas only for the exact pandas / numpy
types (a subclass may override ``shape``), column labels only when they are builtin
scalars, no ``hasattr``, no ``repr`` or ``str`` of anything user-defined.
"""

from __future__ import annotations

import ast
import json
from typing import Any

_SOURCE = r"""
import json as _json, sys as _sys, types as _types, itertools as _it
_M = _types.ModuleType
_name_of = type.__dict__["__name__"].__get__
_mod_of = type.__dict__["__module__"].__get__
_SCALARS = (bool, int, float, complex)
_SIZED = (str, bytes, list, tuple, set, frozenset, dict)
_LABELS = (str, int, float, bool)
def _is(t, group):  # identity: "t in group" would call a metaclass's __eq__
    return any(t is g for g in group)
def _lib(mod, *names):
    m = _sys.modules.get(mod)
    if type(m) is not _M:
        return [None] * len(names)
    d = m.__dict__
    return [d.get(n) for n in names]
_pd = _lib("pandas", "DataFrame", "Series")
_np = _lib("numpy", "ndarray", "dtype")
_ext = _sys.modules.get("pandas.api.extensions")
_ext = _ext.__dict__.get("ExtensionDtype") if type(_ext) is _M else None
def _typename(t):
    try:
        mod, name = _mod_of(t), _name_of(t)
    except Exception:
        return "?"
    if type(name) is not str:
        return "?"
    if type(mod) is not str or mod == "builtins":
        return name
    return mod.split(".")[0] + "." + name
def _dtype(k):
    t = type(k)
    if _np[1] is not None and issubclass(t, _np[1]):
        return str(k)
    if _ext is not None and issubclass(t, _ext) and _typename(t).startswith("pandas."):
        return str(k)
    return _typename(t)
def _label(c):
    return str(c) if _is(type(c), _LABELS) else "<" + _typename(type(c)) + ">"
def _describe(v):
    t = type(v)
    d = {"type": _typename(t)}
    if t is _pd[0] and t is not None:
        d["shape"] = [int(n) for n in v.shape]
        d["columns"] = {_label(c): _dtype(k) for c, k in _it.islice(v.dtypes.items(), COLUMNS)}
    elif (t is _pd[1] or t is _np[0]) and t is not None:
        d["shape"] = [int(n) for n in v.shape]; d["dtype"] = _dtype(v.dtype)
    elif _is(t, _SCALARS):
        d["value"] = repr(v)[:40]
    elif t is str:
        d["len"] = len(v); d["value"] = v[:40]
    elif _is(t, _SIZED):
        d["len"] = len(v)
    return d
_skip = {"In", "Out", "exit", "quit", "get_ipython"}
_items, _size = [], 0
for _n, _v in list(ns.items()):
    if type(_n) is not str or _n.startswith("_") or _n in _skip:
        continue
    if issubclass(type(_v), (_M, type)) or callable(_v):
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
            shape = d.get("shape") or []
            if len(shape) > 1 and isinstance(shape[1], int) and shape[1] > len(d["columns"]):
                desc += f", … ({shape[1] - len(d['columns'])} more)"
        lines.append(f"{name}: {desc}")
    return "\n".join(lines)
