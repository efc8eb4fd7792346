"""The OpenAPI 3.1 document for ``/aiide/api/*``, served at ``/aiide/api/openapi.json``.

The gateway documents its own routes and the foundation's; other parts add
theirs to ``settings["aiide_openapi_paths"]`` (path → OpenAPI path item). A test
compares the document with the routes the server really has, both ways.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiide_server_ext._version import __version__

from .routes import RouteTable


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _query(name: str, description: str, enum: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if enum:
        schema["enum"] = enum
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


STRINGS = {"type": "array", "items": {"type": "string"}}
COMMON = (400, 401, 403, 413, 429, 503)

PATHS: dict[str, Any] = {
    "/aiide/api/status": {
        "get": {
            "summary": "Server status: version, sandbox backends, model configuration",
            "responses": {"200": _json({"type": "object"})} | _errors(401, 403),
        }
    },
    "/aiide/api/kernels/{kernel_id}/events": {
        "parameters": [
            {"name": "kernel_id", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
        "get": {
            "summary": "Why a kernel died (OOM, limits), for the UI",
            "responses": {"200": _json({"type": "object"})} | _errors(401, 403, 404),
        },
    },
    "/aiide/api/auth/token": {
        "post": {
            "summary": "Exchange a Jupyter session or an API key for tokens",
            "requestBody": _body(_ref("TokenRequest")),
            "responses": {"201": _json(_ref("TokenResponse"), "Issued")} | _errors(*COMMON),
        }
    },
    "/aiide/api/auth/refresh": {
        "post": {
            "summary": "Rotate a refresh token (reuse revokes its family)",
            "security": [],
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["refresh_token"],
                    "properties": {"refresh_token": {"type": "string"}},
                }
            ),
            "responses": {"201": _json(_ref("TokenResponse"), "Rotated")} | _errors(*COMMON),
        }
    },
    "/aiide/api/auth/revoke": {
        "post": {
            "summary": "Revoke a token (one's own; an admin: anyone's)",
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["token"],
                    "properties": {"token": {"type": "string"}},
                }
            ),
            "responses": {"200": _json({"type": "object"})} | _errors(*COMMON),
        }
    },
    "/aiide/api/auth/me": {
        "get": {
            "summary": "The caller: user, effective scopes, groups, roles, rate limits",
            "responses": {"200": _json(_ref("Me"))} | _errors(401, 403),
        }
    },
    "/aiide/api/keys": {
        "get": {
            "summary": "List API keys (masked)",
            "parameters": [
                _query("user", "another user's keys (admin)"),
                _query("all", "everyone's keys (admin)", ["1", "true"]),
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {"keys": {"type": "array", "items": _ref("ApiKey")}},
                    }
                )
            }
            | _errors(*COMMON),
        },
        "post": {
            "summary": "Create an API key; the raw key is in this response only",
            "requestBody": _body(_ref("ApiKeyRequest")),
            "responses": {"201": _json(_ref("ApiKeyCreated"), "Created")} | _errors(*COMMON),
        },
    },
    "/aiide/api/keys/{key_id}": {
        "parameters": [
            {"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
        "delete": {
            "summary": "Revoke an API key",
            "responses": {"200": _json(_ref("ApiKey"))} | _errors(401, 403, 404, 503),
        },
    },
    "/aiide/api/users/{name}/credentials": {
        "parameters": [
            {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
        "delete": {
            "summary": "Revoke every credential of a user: API keys (and keys minted from "
            "them), refresh families and tokens, on every server sharing the database",
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "user": {"type": "string"},
                            "revoked_keys": {"type": "array", "items": {"type": "string"}},
                            "revoked_families": {"type": "integer"},
                        },
                    }
                )
            }
            | _errors(400, 401, 403, 503),
        },
    },
    "/aiide/api/usage": {
        "get": {
            "summary": "Usage and remaining budget (one's own; an admin: anyone's, aggregated)",
            "parameters": [
                _query("user", "a user, or * for everyone (admin)"),
                _query("group", "a group's members (admin)"),
                _query("by", "aggregate by", ["user", "group", "model", "day", "feature", "kind"]),
                _query("since", "ISO date/time, inclusive"),
                _query("until", "ISO date/time, exclusive"),
                _query("format", "json (default) or csv", ["json", "csv"]),
            ],
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {
                        "application/json": {"schema": _ref("Usage")},
                        "text/csv": {"schema": {"type": "string"}},
                    },
                }
            }
            | _errors(*COMMON),
        }
    },
    "/aiide/api/audit": {
        "get": {
            "summary": "The audit log (admin); JSON or JSON lines",
            "parameters": [
                _query("actor", "who acted"),
                _query("action", "e.g. token.issued"),
                _query("since", "ISO date/time"),
                _query("until", "ISO date/time"),
                _query("after_id", "page after this event id"),
                _query("limit", "1..5000, default 500"),
                _query("format", "json (default) or jsonl", ["json", "jsonl"]),
            ],
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "events": {"type": "array", "items": _ref("AuditEvent")}
                                },
                            }
                        },
                        "application/x-ndjson": {"schema": {"type": "string"}},
                    },
                }
            }
            | _errors(*COMMON),
        }
    },
    "/aiide/api/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {"200": _json({"type": "object"})} | _errors(401, 403),
        }
    },
}


def _op(summary: str, *errors: int, status: str = "200") -> dict[str, Any]:
    return {"summary": summary, "responses": {status: _json({"type": "object"})} | _errors(*errors)}


def _path_param(name: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}]


#: Both MCP server routes are one handler (``mcp.handlers.ServersHandler``): one description.
_MCP_SERVERS: dict[str, Any] = {
    "get": _op("Configured MCP servers: state, tools, skipped tools", 401, 403),
    "post": _op("Fetch the MCP servers' tool lists again", *COMMON),
}

#: Routes of the agent and knowledge parts, until they contribute their own entries
#: through ``settings["aiide_openapi_paths"]`` (which take precedence).
PART_PATHS: dict[str, Any] = {
    "/aiide/api/mcp": {
        "get": _op("MCP endpoint (streamable HTTP): server info", 401, 403),
        "post": _op("MCP endpoint (streamable HTTP): JSON-RPC requests", *COMMON),
    },
    "/aiide/api/mcp/approvals": {
        "get": _op("MCP tool calls awaiting the caller's approval", 401, 403),
        "post": _op("Answer an MCP approval (id in the body)", *COMMON),
    },
    "/aiide/api/mcp/servers": _MCP_SERVERS,
    "/aiide/api/mcp/servers/refresh": _MCP_SERVERS,
    "/aiide/api/mcp/approvals/{pending_id}": {
        "parameters": _path_param("pending_id"),
        "get": _op("MCP tool calls awaiting the caller's approval", 401, 403),
        "post": _op("Approve or reject one MCP tool call", *COMMON),
    },
    "/aiide/api/chat/ws": {
        "get": {
            "summary": "Chat WebSocket (messages and events: docs/protocol.md)",
            "responses": {"101": {"description": "WebSocket upgrade"}} | _errors(401, 403),
        }
    },
    "/aiide/api/complete": {"post": _op("Inline completion", *COMMON)},
    "/aiide/api/agent/conversations": {
        "get": {
            **_op(
                "The caller's conversations; with q, those whose title or text has q", 400, 401, 403
            ),
            "parameters": [_query("q", "search the caller's titles and turns (1..200 chars)")],
        }
    },
    "/aiide/api/agent/conversations/{cid}": {
        "parameters": _path_param("cid"),
        "get": _op("One conversation with its events", 401, 403, 404, 410),
        "patch": _op("Rename a conversation (body: {title}, 1..120 characters)", *COMMON, 404, 410),
        "delete": _op("Delete a conversation", 401, 403, 404, 410),
    },
    "/aiide/api/agent/conversations/{cid}/export": {
        "parameters": _path_param("cid"),
        "get": {
            **_op(
                "The conversation as a Markdown file or a notebook (attachment)",
                *(400, 401, 403, 404, 410),
            ),
            "parameters": [_query("format", "the file's format", ["markdown", "ipynb"])],
        },
    },
    "/aiide/api/agent/models": {"get": _op("Configured model providers and models", 401, 403)},
    "/aiide/api/agent/keys": {"get": _op("Which provider keys are set (never the keys)", 401, 403)},
    "/aiide/api/agent/keys/{provider}": {
        "parameters": _path_param("provider"),
        "put": _op("Set a provider key", *COMMON),
        "delete": _op("Remove a provider key", 401, 403, 404),
    },
    "/aiide/api/knowledge/index": {
        "get": _op("Index status", 401, 403),
        "post": _op("Index files", *COMMON),
        "delete": _op("Drop the index", 401, 403),
    },
    "/aiide/api/knowledge/jobs": {"get": _op("Indexing jobs", 401, 403)},
    "/aiide/api/knowledge/jobs/{job_id}": {
        "parameters": _path_param("job_id"),
        "get": _op("One indexing job", 401, 403, 404),
    },
    "/aiide/api/knowledge/search": {
        "get": _op("Search the index (409 not_indexed: nothing learned yet)", *COMMON, 409)
    },
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
    },
    "TokenRequest": {
        "type": "object",
        "properties": {
            "scopes": STRINGS,
            "ttl": {"type": "integer", "minimum": 1},
            "refresh": {"type": "boolean", "default": True},
            "user": {"type": "string", "description": "admin only"},
        },
    },
    "TokenResponse": {
        "type": "object",
        "required": ["access_token", "token_type", "expires_in", "scopes"],
        "properties": {
            "access_token": {"type": "string"},
            "token_type": {"const": "Bearer"},
            "expires_in": {"type": "integer"},
            "refresh_token": {"type": "string"},
            "refresh_expires_in": {"type": "integer"},
            "scopes": STRINGS,
        },
    },
    "Me": {
        "type": "object",
        "properties": {
            "user": {"type": "string"},
            "scopes": STRINGS,
            "groups": STRINGS,
            "roles": STRINGS,
            "via": {"type": "string", "enum": ["jupyter", "jupyterhub", "jwt", "apikey"]},
            "rate_limits": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "ApiKeyRequest": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "maxLength": 100},
            "scopes": STRINGS,
            "expires_in": {"type": ["number", "null"], "exclusiveMinimum": 0},
            "user": {"type": "string", "description": "admin only"},
        },
    },
    "ApiKey": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "user": {"type": "string"},
            "name": {"type": "string"},
            "masked": {"type": "string"},
            "scopes": STRINGS,
            "created_at": {"type": "number"},
            "created_by": {"type": "string"},
            "expires_at": {"type": ["number", "null"]},
            "last_used_at": {"type": ["number", "null"]},
            "revoked": {"type": "boolean"},
        },
    },
    "ApiKeyCreated": {
        "allOf": [
            _ref("ApiKey"),
            {"type": "object", "required": ["key"], "properties": {"key": {"type": "string"}}},
        ]
    },
    "Usage": {
        "type": "object",
        "properties": {
            "user": {"type": ["string", "null"]},
            "group": {"type": ["string", "null"]},
            "by": {"type": "string"},
            "currency": {"type": "string"},
            "rows": {"type": "array", "items": {"type": "object"}},
            "totals": {"type": "object"},
            "quotas": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "scope": {"type": "string"},
                        "metric": {"type": "string"},
                        "limit": {"type": "number"},
                        "used": {"type": "number"},
                        "remaining": {"type": "number"},
                        "resets_at": {"type": "string"},
                    },
                },
            },
        },
    },
    "AuditEvent": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "time": {"type": "string"},
            "actor": {"type": ["string", "null"]},
            "action": {"type": "string"},
            "target": {"type": "string"},
            "outcome": {"type": "string"},
            "detail": {"type": "object"},
        },
    },
}


METHODS = ("get", "put", "post", "patch", "delete")


def with_scopes(paths: Mapping[str, Any], routes: RouteTable) -> dict[str, Any]:
    """Each operation says what it needs (``x-aiide-scope``), from the route table."""
    out: dict[str, Any] = {}
    for path, item in paths.items():
        rule = routes.rule(path)
        out[path] = {
            k: ({**v, "x-aiide-scope": rule.required(k.upper())} if k in METHODS else v)
            for k, v in item.items()
        }
    return out


def document(
    extra_paths: Mapping[str, Any] | None = None, routes: RouteTable | None = None
) -> dict[str, Any]:
    paths = {**PATHS, **PART_PATHS, **(extra_paths or {})}
    error = {"content": {"application/json": {"schema": _ref("Error")}}}
    responses = {
        f"E{status}": {"description": description, **error}
        for status, description in {
            400: "Bad input; the code says which (invalid_json, unknown_scope, invalid_ttl…)",
            401: "Missing or bad credentials (token_expired, token_revoked, invalid_token…)",
            403: "Insufficient scope or not allowed (insufficient_scope, admin_required…)",
            404: "Not found",
            409: "Conflicts with the current state (not_indexed, already_decided…)",
            410: "Removed by the server's retention (conversation_expired)",
            413: "Body too large (body_too_large)",
            429: "Rate limited (rate_limited) or quota used up (quota_exceeded); see Retry-After",
            503: "Unavailable for now (store_busy, store_read_only, model_installing…)",
        }.items()
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "aiide server API",
            "version": __version__,
            "description": "Routes under /aiide/api. Errors are JSON {code, message}.",
        },
        "paths": with_scopes(paths, routes or RouteTable()),
        "components": {
            "schemas": SCHEMAS,
            "responses": responses,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT or aiide_ key"},
                "jupyterToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "token <Jupyter server token>",
                },
                "jupyterCookie": {"type": "apiKey", "in": "cookie", "name": "username-*"},
            },
        },
        "security": [{"bearer": []}, {"jupyterToken": []}, {"jupyterCookie": []}],
    }
