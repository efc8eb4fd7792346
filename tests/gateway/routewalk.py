"""A path that a route's regex matches, for driving every route of a real server."""

from __future__ import annotations

import re
from re import _constants as c  # type: ignore[attr-defined]
from re import _parser as p  # type: ignore[attr-defined]
from typing import Any


def sample(pattern: str) -> str:
    """The shortest non-empty-ish string the pattern matches (first branches, fewest
    repeats, a letter for classes). Enough for the route patterns of Jupyter servers."""
    out = _emit(p.parse(pattern))
    if not re.fullmatch(pattern, out):
        raise ValueError(f"cannot build a path for {pattern!r} (got {out!r})")
    return out


def _emit(items: Any) -> str:
    text = []
    for op, arg in items:
        text.append(_one(op, arg))
    return "".join(text)


def _one(op: Any, arg: Any) -> str:
    if op is c.LITERAL:
        return chr(arg)
    if op is c.NOT_LITERAL:
        return "a" if arg != ord("a") else "b"
    if op is c.ANY:
        return "a"
    if op is c.AT:
        return ""
    if op is c.SUBPATTERN:
        return _emit(arg[-1])
    if op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
        low, _high, body = arg
        return _emit(body) * int(low)
    if op is c.BRANCH:
        return _emit(arg[1][0])
    if op is c.IN:
        return _in(arg)
    if op is c.CATEGORY:
        return "0" if arg is c.CATEGORY_DIGIT else "a"
    raise ValueError(f"unsupported regex element {op}")


def _in(items: list[tuple[Any, Any]]) -> str:
    if items and items[0][0] is c.NEGATE:
        return "a"  # every class negated in routes excludes '/' or similar, never letters
    for op, arg in items:
        if op is c.LITERAL:
            return chr(arg)
        if op is c.RANGE:
            return chr(arg[0])
        if op is c.CATEGORY:
            return "0" if arg is c.CATEGORY_DIGIT else "a"
    return "a"
