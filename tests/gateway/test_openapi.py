"""The OpenAPI document is served and matches the routes the server really has."""

from __future__ import annotations

import re
from typing import Any

from tornado import web

from .helpers import Call

VERBS = ("get", "post", "put", "patch", "delete")


def _routes(router: Any) -> list[tuple[str, Any]]:
    found = []
    for rule in getattr(router, "rules", []):
        target = rule.target
        if hasattr(target, "rules"):
            found += _routes(target)
        elif isinstance(target, type) and hasattr(rule.matcher, "regex"):
            found.append((rule.matcher.regex.pattern, target))
    return found


def _openapi_path(pattern: str, base_url: str) -> str | None:
    path = pattern.rstrip("$")
    if not path.startswith(base_url + "aiide/api/"):
        return None
    path = "/" + path[len(base_url) :]
    return re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", path).replace("\\.", ".")


def _verbs(handler: type) -> set[str]:
    return {v for v in VERBS if getattr(handler, v) is not getattr(web.RequestHandler, v)}


async def test_the_document_is_served(call: Call) -> None:
    r = await call("GET", "/aiide/api/openapi.json", jupyter=True)
    assert r.status == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    assert "/aiide/api/auth/token" in doc["paths"]
    assert doc["components"]["schemas"]["Error"]["required"] == ["code", "message"]


async def test_the_document_matches_the_servers_routes_and_verbs(
    call: Call, jp_serverapp: Any, jp_base_url: str
) -> None:
    doc = (await call("GET", "/aiide/api/openapi.json", jupyter=True)).json()
    served: dict[str, set[str]] = {}
    for pattern, handler in _routes(jp_serverapp.web_app.default_router):
        path = _openapi_path(pattern, jp_base_url)
        if path is not None:
            served.setdefault(path, set()).update(_verbs(handler))
    documented = {p: {v for v in item if v in VERBS} for p, item in doc["paths"].items()}
    assert sorted(documented) == sorted(served)
    assert documented == served


async def test_every_reference_resolves(call: Call) -> None:
    doc = (await call("GET", "/aiide/api/openapi.json", jupyter=True)).json()
    text = str(doc)
    for ref in set(re.findall(r"#/components/(\w+)/(\w+)", text)):
        assert ref[1] in doc["components"][ref[0]], ref
