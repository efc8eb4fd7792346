"""A described provider's descriptor: loaded (shipped by name, or inline), overridden by
the provider's spec, checked whole at server start.

Every field is checked when the server starts, so a typo fails there with the field's
name (``DescriptorError``), not on a student's first chat: JMESPath expressions are
compiled, regexes compiled, template variables resolved against what exists. The format
is documented in docs/providers.md; the shipped ones are ``descriptors/*.json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Descriptor", "DescriptorError", "load", "shipped"]

from .base import DescriptorError
from .converters import CONVERTERS
from .templates import BUILTINS, merge, variables_in

DESCRIPTOR_DIR = Path(__file__).parent / "descriptors"
#: Keys of a provider spec that are the provider's, not overrides of its descriptor.
SPEC_KEYS = frozenset(
    {"kind", "descriptor", "api_key_env", "headers", "via_broker", "base_url", "api_key_file",
     "models"}
)  # fmt: skip
#: What a chunk (or a sync answer) can be mapped to, each by one JMESPath expression.
MAP_FIELDS = frozenset(
    {"text", "tool_calls", "input_tokens", "output_tokens", "cache_read_tokens",
     "cache_write_tokens", "stop", "model", "response_id", "error", "ignore"}
)  # fmt: skip
FORMATS = ("sse", "jsonl", "regex")
CODES = frozenset(
    {"provider_auth", "provider_rate_limited", "provider_overloaded", "provider_unavailable",
     "provider_bad_request", "provider_timeout", "provider_error"}
)  # fmt: skip
TOP_KEYS = frozenset(
    {"name", "description", "variables", "converter", "mode", "capabilities", "vision",
     "request", "stream", "sync", "stop_reasons", "errors", "auth", "max_line_bytes",
     "max_response_bytes", "idle_timeout"}
)  # fmt: skip


@dataclass(frozen=True)
class Mapping_:
    """JMESPath expressions, compiled, by the field they give."""

    exprs: dict[str, Any]

    def apply(self, chunk: Any) -> dict[str, Any]:
        out = {}
        for name, expr in self.exprs.items():
            value = expr.search(chunk)
            if value is not None and value != []:
                out[name] = value
        return out


@dataclass(frozen=True)
class Part:
    """How one mode (stream or sync) is asked and read."""

    url: str
    body: dict[str, Any]
    mapping: Mapping_
    format: str = "sse"
    done: str | None = None
    pattern: re.Pattern[bytes] | None = None


@dataclass(frozen=True)
class Descriptor:
    name: str
    converter: str
    mode: str
    method: str
    headers: dict[str, str]
    variables: dict[str, Any]
    stream: Part | None
    sync: Part | None
    stop_reasons: dict[str, str]
    errors: dict[str, Any]
    error_message: Any  # compiled JMESPath or None
    error_field: Any
    auth: dict[str, Any] | None
    auth_exprs: dict[str, Any] = field(default_factory=dict)
    capabilities: tuple[str, ...] = ("chat",)
    vision: bool = False
    max_line_bytes: int = 1 << 20
    max_response_bytes: int = 16 << 20
    idle_timeout: float | None = None

    @property
    def part(self) -> Part:
        part = self.stream if self.mode == "stream" else self.sync
        assert part is not None
        return part


def shipped() -> list[str]:
    """Names of the descriptors that ship with aiide."""
    return sorted(p.stem for p in DESCRIPTOR_DIR.glob("*.json"))


def raw_descriptor(provider: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The descriptor as JSON: shipped (by name) or inline, with the spec's overrides."""
    where = f"c.Agent.providers[{provider!r}]"
    chosen = spec.get("descriptor")
    if isinstance(chosen, str):
        path = DESCRIPTOR_DIR / f"{chosen}.json"
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", chosen) or not path.is_file():
            raise DescriptorError(
                f"{where}: descriptor: no shipped descriptor {chosen!r} "
                f"(shipped: {', '.join(shipped())}; or give one inline as an object)"
            )
        base = json.loads(path.read_text())
    elif isinstance(chosen, dict):
        base = dict(chosen)
    else:
        raise DescriptorError(f"{where}: descriptor: a shipped name or an object is required")
    overrides = {k: v for k, v in spec.items() if k not in SPEC_KEYS}
    out = merge(base, overrides)
    if spec.get("base_url"):
        out["variables"] = {**out.get("variables", {}), "base_url": str(spec["base_url"])}
    return dict(out)


def load(provider: str, spec: Mapping[str, Any]) -> Descriptor:
    """The checked descriptor of ``c.Agent.providers[provider]``; DescriptorError if not."""
    import jmespath
    from jmespath.exceptions import JMESPathError

    raw = raw_descriptor(provider, spec)
    where = f"c.Agent.providers[{provider!r}]"

    def invalid(path: str, why: str) -> DescriptorError:
        return DescriptorError(f"{where}: {path}: {why}")

    def expr(path: str, text: Any) -> Any:
        if not isinstance(text, str) or not text:
            raise invalid(path, "a JMESPath expression (a non-empty string) is required")
        try:
            return jmespath.compile(text)
        except JMESPathError as e:
            raise invalid(path, f"invalid JMESPath {text!r}: {e}") from None

    def obj(path: str, value: Any, required: bool = False) -> dict[str, Any]:
        if value is None and not required:
            return {}
        if not isinstance(value, dict):
            raise invalid(path, "an object is required")
        return value

    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise invalid(sorted(unknown)[0], f"unknown field (known: {', '.join(sorted(TOP_KEYS))})")
    converter = raw.get("converter", "openai")
    if converter not in CONVERTERS:
        raise invalid("converter", f"{converter!r} is not one of {', '.join(sorted(CONVERTERS))}")
    variables = obj("variables", raw.get("variables"))
    request = obj("request", raw.get("request"), required=True)
    auth = obj("auth", raw.get("auth")) or None
    known = set(BUILTINS) | set(variables) | ({"token"} if auth else set())

    def check_vars(path: str, template: Any, names: set[str]) -> None:
        for at, name in variables_in(template, path):
            if name in names or name.startswith(("env.", "user.")):
                continue
            raise invalid(
                at,
                f"unknown variable ${{{name}}} (known: {', '.join(sorted(names))}, "
                "env.NAME, user.NAME)",
            )

    check_vars("variables", variables, known - {"token"})
    method = str(request.get("method", "POST")).upper()
    if method not in ("POST", "GET", "PUT"):
        raise invalid("request.method", f"{method!r} is not POST, GET or PUT")
    url = request.get("url")
    if not isinstance(url, str) or not url:
        raise invalid("request.url", "a URL template is required")
    headers = obj("request.headers", request.get("headers"))
    body = obj("request.body", request.get("body"))
    check_vars("request", request, known)

    def part(name: str) -> Part | None:
        given = raw.get(name)
        if given is None:
            return None
        given = obj(name, given)
        check_vars(name, {k: v for k, v in given.items() if k in ("url", "body")}, known)
        mapping = {}
        for key, text in given.items():
            if key in MAP_FIELDS:
                mapping[key] = expr(f"{name}.{key}", text)
            elif key not in ("url", "body", "format", "done", "pattern"):
                raise invalid(f"{name}.{key}", f"unknown field (mappings: {sorted(MAP_FIELDS)})")
        if "text" not in mapping and "tool_calls" not in mapping:
            raise invalid(f"{name}.text", "a mapping for the answer's text is required")
        fmt = str(given.get("format", "sse" if name == "stream" else "json"))
        if name == "stream" and fmt not in FORMATS:
            raise invalid("stream.format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
        pattern = None
        if fmt == "regex":
            text = given.get("pattern")
            if not isinstance(text, str) or not text:
                raise invalid("stream.pattern", "a regex is required for format 'regex'")
            try:
                pattern = re.compile(text.encode())
            except re.error as e:
                raise invalid("stream.pattern", f"invalid regex: {e}") from None
        return Part(
            url=str(given.get("url") or url),
            body=merge(body, obj(f"{name}.body", given.get("body"))),
            mapping=Mapping_(mapping),
            format=fmt,
            done=given.get("done"),
            pattern=pattern,
        )

    stream, sync = part("stream"), part("sync")
    mode = str(raw.get("mode", "stream" if stream else "sync"))
    if mode not in ("stream", "sync"):
        raise invalid("mode", f"{mode!r} is not 'stream' or 'sync'")
    if (stream if mode == "stream" else sync) is None:
        raise invalid(mode, f"mode is {mode!r} but the descriptor has no {mode!r} section")
    stops = obj("stop_reasons", raw.get("stop_reasons"))
    for key, value in stops.items():
        if value not in ("end_turn", "tool_use", "max_tokens", "stop_sequence"):
            raise invalid(f"stop_reasons.{key}", f"{value!r} is not end_turn, tool_use, max_tokens "
                       "or stop_sequence")  # fmt: skip
    errors = obj("errors", raw.get("errors"))
    for section in ("status", "codes"):
        for key, code in obj(f"errors.{section}", errors.get(section)).items():
            if code not in CODES:
                raise invalid(f"errors.{section}.{key}", f"{code!r} is not one of {sorted(CODES)}")
    auth_exprs = {}
    if auth:
        for key in ("url",):
            if not isinstance(auth.get(key), str) or not auth[key]:
                raise invalid(f"auth.{key}", "a URL template is required")
        if not isinstance(auth.get("apply"), dict) or not auth["apply"]:
            raise invalid("auth.apply", "headers carrying the token are required, e.g. "
                       '{"authorization": "Bearer ${token}"}')  # fmt: skip
        check_vars("auth", {k: v for k, v in auth.items() if k != "apply"}, known - {"token"})
        check_vars("auth.apply", auth["apply"], known)
        auth_exprs["token"] = expr("auth.token", auth.get("token", "access_token"))
        auth_exprs["expires_in"] = expr("auth.expires_in", auth.get("expires_in", "expires_in"))
    capabilities = raw.get("capabilities", ["chat"])
    if not isinstance(capabilities, list) or not set(capabilities) <= {"chat", "tools", "complete"}:
        raise invalid("capabilities", "a list of chat, tools, complete is required")
    numbers = {}
    for key in ("max_line_bytes", "max_response_bytes", "idle_timeout"):
        if key in raw and (not isinstance(raw[key], int | float) or raw[key] <= 0):
            raise invalid(key, "a positive number is required")
        if key in raw:
            numbers[key] = raw[key]
    return Descriptor(
        name=str(raw.get("name") or provider),
        converter=converter,
        mode=mode,
        method=method,
        headers={str(k): str(v) for k, v in headers.items()},
        variables=variables,
        stream=stream,
        sync=sync,
        stop_reasons={str(k): str(v) for k, v in stops.items()},
        errors=errors,
        error_message=expr("errors.message", errors["message"]) if "message" in errors else None,
        error_field=expr("errors.field", errors["field"]) if "field" in errors else None,
        auth=auth,
        auth_exprs=auth_exprs,
        capabilities=tuple(capabilities),
        vision=bool(raw.get("vision", False)),
        **numbers,
    )
