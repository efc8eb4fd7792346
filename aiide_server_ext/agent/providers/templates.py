"""``${name}`` templates of a described provider: a URL, headers, a JSON body.

A JSON string that is exactly ``${name}`` becomes the variable's JSON value (a list of
messages, a number, a bool), and a key whose value is absent (None) is left out of the
body, so one template serves requests with and without tools or a temperature. Inside a
longer string a value is written as text (``"Bearer ${token}"``). ``${name:-default}``
gives a default. Names are checked when the descriptor is loaded, never at request time:
a template that names an unknown variable fails the server's start (``variables_in``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.\-]*)(?::-([^}]*))?\}")

#: What the request gives every template (``described.py`` fills them per call).
BUILTINS = frozenset(
    {
        "model", "max_tokens", "temperature", "stop", "system", "messages", "tools",
        "prompt", "stream", "user", "api_key", "base_url",
    }
)  # fmt: skip
#: Request values put in a URL percent-encoded (a Bedrock model id has a ':').
URL_QUOTED = frozenset({"model", "user"})

Lookup = Callable[[str], Any]


def variables_in(template: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(field path, variable name) for every ``${name}`` in a JSON template."""
    if isinstance(template, str):
        for match in VAR.finditer(template):
            yield where, match.group(1)
    elif isinstance(template, dict):
        for key, value in template.items():
            yield from variables_in(value, f"{where}.{key}" if where else str(key))
    elif isinstance(template, list):
        for n, value in enumerate(template):
            yield from variables_in(value, f"{where}[{n}]")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def render_text(template: str, lookup: Lookup, *, url: bool = False) -> str:
    """A template as text: every variable written in (absent ones as their default or '')."""

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = lookup(name)
        if value is None:
            return default or ""
        text = _text(value)
        return quote(text, safe="") if url and name in URL_QUOTED else text

    return VAR.sub(sub, template)


def render_header(template: str, lookup: Lookup) -> str | None:
    """A header's value; None (no header) when a variable in it without a default is
    absent: ``Bearer ${api_key}`` is not sent for a provider without a key."""
    for match in VAR.finditer(template):
        if match.group(2) is None and lookup(match.group(1)) is None:
            return None
    return render_text(template, lookup)


def render(template: Any, lookup: Lookup) -> Any:
    """A JSON template with values in; None for a whole-string variable that is absent."""
    if isinstance(template, str):
        whole = VAR.fullmatch(template)
        if whole is not None:
            value = lookup(whole.group(1))
            if value is None and whole.group(2) is not None:
                return whole.group(2)
            return value
        return render_text(template, lookup)
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            rendered = render(value, lookup)
            if rendered is not None:
                out[key] = rendered
        return out
    if isinstance(template, list):
        return [v for v in (render(item, lookup) for item in template) if v is not None]
    return template


def merge(base: Any, over: Any) -> Any:
    """``over`` deep-merged onto ``base`` (dicts merge; anything else replaces; a None in
    ``over`` removes the key)."""
    if not isinstance(base, dict) or not isinstance(over, dict):
        return over
    out = dict(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), value) if key in out else value
    return out
