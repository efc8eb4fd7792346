"""Every route of the running server checks its scope, whether or not its handler does.

The server here loads JupyterLab and jupyter_lsp beside aiide, so the routes walked are
those a user's ``jupyter lab`` has. Keys are minted by the owner for other users.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado.httpclient import AsyncHTTPClient
from tornado.web import StaticFileHandler
from traitlets.config import Config

from aiide_server_ext.gateway.audit import AuditQuery
from aiide_server_ext.gateway.routes import (
    AUTHENTICATED,
    NOT_FOUND,
    OWNER,
    PUBLIC,
    RouteTable,
    markdown,
)

from .helpers import Call, Reply, error
from .routewalk import sample

DOCS = Path(__file__).parents[2] / "docs" / "gateway.md"
SANITIZER = "/lab/api/settings/@jupyterlab/apputils-extension:sanitizer"


@pytest.fixture
def jp_server_config(jp_server_config: Config) -> Config:
    """The gateway's server, with JupyterLab's and the LSP's routes too."""
    jp_server_config.ServerApp.jpserver_extensions.update({"jupyterlab": True, "jupyter_lsp": True})
    return jp_server_config


async def mint_bob(new_key: Any) -> str:
    """The issue's reproduction: a key for ``bob`` that may only read his usage."""
    return str((await new_key(user="bob", scopes=["usage:read"]))["key"])


async def test_bob_cannot_install_lab_extensions(call: Call, new_key: Any) -> None:
    bob = await mint_bob(new_key)
    body = {"cmd": "install", "extension_name": "evil-extension"}
    error(
        await call("POST", "/lab/api/extensions", token=bob, body=body), 403, "insufficient_scope"
    )


async def test_bob_cannot_rewrite_the_lab_settings_every_user_shares(
    call: Call, new_key: Any
) -> None:
    bob = await mint_bob(new_key)
    body = {"raw": '{"allowedSchemes": ["javascript"]}'}
    error(await call("PUT", SANITIZER, token=bob, body=body), 403, "insufficient_scope")


async def test_bob_cannot_rewrite_a_workspace(call: Call, new_key: Any) -> None:
    bob = await mint_bob(new_key)
    body = {"data": {}, "metadata": {"id": "default"}}
    r = await call("PUT", "/lab/api/workspaces/default", token=bob, body=body)
    error(r, 403, "insufficient_scope")


async def test_bob_cannot_read_conversations(call: Call, new_key: Any) -> None:
    bob = await mint_bob(new_key)
    r = await call("GET", "/aiide/api/agent/conversations", token=bob)
    error(r, 403, "insufficient_scope")
    assert "chat" in r.headers["WWW-Authenticate"]


async def test_bob_cannot_list_mcp_approvals(call: Call, new_key: Any) -> None:
    bob = await mint_bob(new_key)
    error(await call("GET", "/aiide/api/mcp/approvals", token=bob), 403, "insufficient_scope")


async def test_bob_still_reads_his_usage(call: Call, new_key: Any) -> None:
    bob = await mint_bob(new_key)
    assert (await call("GET", "/aiide/api/usage", token=bob)).status == 200


async def test_a_user_with_contents_write_still_cannot_change_shared_settings(
    call: Call, new_key: Any
) -> None:
    carol = (await new_key(user="carol", scopes=["contents:read", "contents:write"]))["key"]
    r = await call("PUT", SANITIZER, token=carol, body={"raw": "{}"})
    error(r, 403, "insufficient_scope")
    assert (await call("GET", "/api/contents", token=carol)).status == 200


async def test_the_owner_still_changes_the_lab_settings_and_workspaces(call: Call) -> None:
    body = {"data": {}, "metadata": {"id": "default"}}
    r = await call("PUT", "/lab/api/workspaces/default", jupyter=True, body=body)
    assert r.status == 204, r.body


def _code(r: Any) -> str | None:
    try:
        return r.code  # type: ignore[no-any-return]
    except ValueError:  # not JSON: no code
        return None


def _routes(gate_server: Any) -> list[tuple[str, Any, str]]:
    """(normalised pattern, handler class, a path that reaches it) for every route."""
    guard = gate_server.web_app.settings["aiide_route_guard"]
    base = gate_server.base_url.rstrip("/")
    rules = list(guard.rules())
    found = []
    for pattern, _cls, _regex in rules:
        # The catch-all (no leading '/') gets a path nobody routes.
        path = base + (sample(pattern) if pattern.startswith("/") else "/no/such/route")
        # tornado takes the first rule that matches: that one decides what is needed.
        first, cls = next((p, c) for p, c, r in rules if r.match(path))
        found.append((first, cls, path[len(base) :]))
    return found


async def test_every_route_of_the_server_has_a_mapping(jp_serverapp: Any) -> None:
    """A route added without a line in routes.py fails here (it would need admin)."""
    table = RouteTable()
    unmapped = [p for p, _, _ in _routes(jp_serverapp) if table.lookup(p) is None]
    assert not unmapped, f"routes without a scope in gateway/routes.py: {unmapped}"


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_every_route_refuses_a_key_without_its_scope(
    jp_serverapp: Any, call: Call, new_key: Any, method: str
) -> None:
    bob = await mint_bob(new_key)
    table = RouteTable()
    checked = 0
    for pattern, cls, path in _routes(jp_serverapp):
        need = table.rule(pattern).required(method)
        if need in (PUBLIC, AUTHENTICATED) or "usage:read" in need.split("|"):
            continue
        if issubclass(cls, StaticFileHandler) and method != "GET":
            continue  # Jupyter's own robots.txt route lacks its 'path' and fails to construct
        r = await call(method, path, token=bob, body={} if method == "POST" else None)
        expected: tuple[int, str | None] = (
            (404, "not_found") if need == NOT_FOUND else (403, "insufficient_scope")
        )
        if method not in cls.SUPPORTED_METHODS:  # tornado answers before any handler code
            expected = (405, None)
        assert (r.status, _code(r)) == expected, (method, path, need, r.status, r.body[:200])
        checked += 1
    assert checked > 40


async def test_every_route_refuses_an_anonymous_caller(
    jp_serverapp: Any, http_server_client: Any, jp_http_port: int
) -> None:
    table = RouteTable()
    client = AsyncHTTPClient(force_instance=True)
    base = f"http://127.0.0.1:{jp_http_port}{jp_serverapp.base_url.rstrip('/')}"
    for pattern, cls, path in _routes(jp_serverapp):
        need = table.rule(pattern).required("GET")
        if need in (PUBLIC, NOT_FOUND) or "GET" not in cls.SUPPORTED_METHODS:
            continue
        r = await client.fetch(base + path, raise_error=False, follow_redirects=False)
        if r.code == 302:  # a browser's page: to the login form, nothing served
            assert "/login?next=" in r.headers["Location"], (path, r.headers)
            continue
        reply = Reply(r.code, r.headers, r.body or b"")
        assert (r.code, _code(reply)) == (401, "unauthenticated"), (path, r.code, r.body[:200])
    client.close()


class ForeignHandler(APIHandler):  # type: ignore[misc]
    """Another extension's route that never calls ``@authorized``."""

    async def get(self) -> None:
        self.finish({"secret": "served"})


@pytest.fixture
def foreign_route(jp_serverapp: Any, jp_base_url: str) -> str:
    path = "/foreignext/api/thing"
    jp_serverapp.web_app.add_handlers(".*$", [(url_path_join(jp_base_url, path), ForeignHandler)])
    return path


async def test_a_route_nobody_mapped_needs_admin(
    call: Call, new_key: Any, foreign_route: str, gate: Any
) -> None:
    bob = await mint_bob(new_key)
    carol = (await new_key(user="carol", scopes=["chat", "contents:read", "kernels"]))["key"]
    for token in (bob, carol):
        r = await call("GET", foreign_route, token=token)
        error(r, 403, "insufficient_scope")
        assert 'scope="admin"' in r.headers["WWW-Authenticate"]
        assert b"served" not in r.body
    admin = (await new_key(scopes=["admin"]))["key"]
    assert (await call("GET", foreign_route, token=admin)).status == 200
    assert (await call("GET", foreign_route, jupyter=True)).status == 200
    events = await gate.audit_log.query(AuditQuery(action="route.refused"))
    assert {(e["actor"], e["target"]) for e in events} >= {
        ("bob", f"GET /a%40b{foreign_route}"),
        ("carol", f"GET /a%40b{foreign_route}"),
    }
    assert events[-1]["detail"]["route"] == "unmapped"


@pytest.mark.gateway_config(route_scopes={"/foreignext/api/*": {"read": "contents:read"}})
async def test_an_admin_maps_another_extensions_route(
    call: Call, new_key: Any, foreign_route: str
) -> None:
    bob = await mint_bob(new_key)
    reader = (await new_key(user="dana", scopes=["contents:read"]))["key"]
    assert (await call("GET", foreign_route, token=reader)).status == 200
    error(await call("GET", foreign_route, token=bob), 403, "insufficient_scope")


async def test_an_unknown_route_is_a_404_with_a_code_and_audited(call: Call, gate: Any) -> None:
    for kwargs in ({}, {"jupyter": True}):
        r = await call("POST", "/no/such/route", body={"x": 1}, **kwargs)
        error(r, 404, "not_found")
    events = await gate.audit_log.query(AuditQuery(action="route.unknown"))
    assert events and events[-1]["target"] == "POST /a%40b/no/such/route"


def test_a_route_scope_naming_an_unknown_scope_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="unknown scope 'contents:reed'"):
        RouteTable({"/x/*": {"read": "contents:reed"}})
    with pytest.raises(ValueError, match="only 'read' and 'write'"):
        RouteTable({"/x/*": {"get": "admin"}})


def test_the_owner_rule_is_used_for_settings_and_workspaces_only() -> None:
    table = RouteTable()
    owners = {k for k, v in table.routes.items() if OWNER in (v.read, v.write)}
    assert owners == {"/lab/api/settings*", "/lab/api/workspaces*"}


def test_docs_gateway_md_shows_the_route_table() -> None:
    assert markdown() in DOCS.read_text(), "regenerate: python -m aiide_server_ext.gateway.routes"


@pytest.mark.gateway_config(enabled=False)
async def test_without_the_gateway_nothing_is_hooked_and_jupyter_decides(
    jp_serverapp: Any, call: Call
) -> None:
    assert getattr(jp_serverapp.web_app, "_aiide_route_guard", None) is None
    assert "aiide_route_guard" not in jp_serverapp.web_app.settings
    body = {"data": {}, "metadata": {"id": "default"}}
    r = await call("PUT", "/lab/api/workspaces/default", jupyter=True, body=body)
    assert r.status == 204, r.body
    assert (await call("GET", "/api/contents")).status == 403  # Jupyter's own refusal


async def test_the_owners_jupyter_token_passes_every_check(call: Call) -> None:
    """A single user's ``jupyter lab`` with the gateway on and no configuration."""
    for method, path in (("GET", "/aiide/api/audit"), ("GET", "/api/terminals")):
        assert (await call(method, path, jupyter=True)).status == 200, path


async def test_the_openapi_document_names_each_operations_scope(call: Call) -> None:
    paths = (await call("GET", "/aiide/api/openapi.json", jupyter=True)).json()["paths"]
    ops = {
        (path, method): op["x-aiide-scope"]
        for path, item in paths.items()
        for method, op in item.items()
        if method in ("get", "put", "post", "patch", "delete")
    }
    assert ops[("/aiide/api/agent/conversations", "get")] == "chat"
    assert ops[("/aiide/api/mcp/approvals/{pending_id}", "post")] == "agent:run|agent:approve"
    assert ops[("/aiide/api/auth/refresh", "post")] == "public"
    assert ops[("/aiide/api/audit", "get")] == "admin"
    assert all(scope != "" for scope in ops.values())
