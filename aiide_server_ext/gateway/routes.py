"""Route → scope: the one table that decides what every route of the server needs.

Handlers of JupyterLab, of Jupyter itself and of other extensions do not all call
``@authorized``, and some of aiide's ask for no scope; so scopes are enforced per route
(``guard.py``), whatever the handler does. A route is matched by its pattern as tornado
holds it (base URL and trailing ``$`` removed): a key ending in ``*`` is a prefix, any
other key is the exact pattern; the longest matching key wins. A route nobody mapped
needs ``admin`` (fail closed); ``c.Gateway.route_scopes`` maps other extensions' routes.

Requirements: a scope name (``a|b``: either one), or

- ``public``: no credential (login page, static files, the refresh route);
- ``authenticated``: any authenticated caller;
- ``owner``: the server's owner holding ``contents:write``, or ``admin`` (settings and
  workspaces of a server belong to its owner; on a shared server others may not
  rewrite them);
- ``not_found``: the catch-all; 404 with a code.

Reads are ``GET`` and ``HEAD``; every other verb is a write (``OPTIONS`` is a CORS
preflight, which carries no credential and is left to the handler).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .scopes import SCOPES

PUBLIC = "public"
AUTHENTICATED = "authenticated"
OWNER = "owner"
NOT_FOUND = "not_found"
ADMIN = "admin"
KINDS = frozenset({PUBLIC, AUTHENTICATED, OWNER, NOT_FOUND})
READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class RouteScope:
    key: str
    read: str
    write: str
    why: str = ""

    def required(self, method: str) -> str:
        return self.read if method in READ_METHODS else self.write


#: (route key, read, write, why). Keep sorted by area; the docs table is generated from it.
DEFAULT_ROUTES: tuple[tuple[str, str, str, str], ...] = (
    # -- aiide ------------------------------------------------------------------------------
    ("/aiide/api/status", AUTHENTICATED, ADMIN, "version, sandbox and model configuration"),
    ("/aiide/api/kernels/*", "kernels", "kernels", "why a kernel died"),
    ("/aiide/api/auth/token", AUTHENTICATED, AUTHENTICATED, "exchange; the API checks scopes"),
    ("/aiide/api/auth/refresh", ADMIN, PUBLIC, "the refresh token in the body is the credential"),
    ("/aiide/api/auth/revoke", AUTHENTICATED, AUTHENTICATED, "one's own tokens"),
    ("/aiide/api/auth/me", AUTHENTICATED, ADMIN, "who am I"),
    ("/aiide/api/keys*", "tokens", "tokens", "one's own API keys (others': admin)"),
    ("/aiide/api/users/*", ADMIN, ADMIN, "revoke every credential of a user"),
    ("/aiide/api/usage", "usage:read", ADMIN, "one's own usage (others': admin)"),
    ("/aiide/api/audit", ADMIN, ADMIN, "the audit log"),
    ("/aiide/api/openapi.json", AUTHENTICATED, ADMIN, "the API description"),
    ("/aiide/api/chat/ws", "chat", "chat", "the chat socket"),
    ("/aiide/api/complete", "complete", "complete", "inline completion"),
    ("/aiide/api/agent/conversations*", "chat", "chat", "one's own conversations"),
    ("/aiide/api/agent/models", AUTHENTICATED, ADMIN, "model names only"),
    ("/aiide/api/agent/keys*", "chat", "chat", "one's own provider keys"),
    ("/aiide/api/mcp", "agent:run", "agent:run", "outside agents' tool calls"),
    (
        "/aiide/api/mcp/approvals*",
        "agent:run|agent:approve",
        "agent:run|agent:approve",
        "paused calls of one's own agents; who may answer: docs/gateway.md",
    ),
    ("/aiide/api/mcp/servers*", "agent:run", "agent:run", "MCP servers the agent uses"),
    ("/aiide/api/knowledge/*", "knowledge", "knowledge", "the knowledge index"),
    ("/aiide/api/course", AUTHENTICATED, ADMIN, "one's own course policy (under JupyterHub)"),
    ("/aiide/api/course/*", "course", "course", "a course's policy (instructors)"),
    ("/aiide/api/course-admin/*", "course", ADMIN, "the broker's instructor API"),
    ("/aiide/api/course-share*", "chat", "chat", "conversations one shares with instructors"),
    # -- jupyter_server ---------------------------------------------------------------------
    ("/", AUTHENTICATED, ADMIN, "redirects to the default URL"),
    ("/login", PUBLIC, PUBLIC, "the login form"),
    ("/logout", PUBLIC, PUBLIC, "ends the session"),
    ("/oauth_callback", PUBLIC, PUBLIC, "JupyterHub's login comes back here"),
    ("/.*/", PUBLIC, PUBLIC, "redirects without the trailing slash"),
    ("(.*)", NOT_FOUND, NOT_FOUND, "no such route"),
    ("/(robots\\.txt|favicon\\.ico)", PUBLIC, ADMIN, "static"),
    ("/(robots\\.txt)", PUBLIC, ADMIN, "static"),
    ("/(favicon\\.ico)", PUBLIC, ADMIN, "static"),
    ("/static/*", PUBLIC, ADMIN, "static files"),
    ("/metrics", ADMIN, ADMIN, "Prometheus metrics of the whole server"),
    ("/api", PUBLIC, ADMIN, "the server's version"),
    ("/api/spec.yaml", AUTHENTICATED, ADMIN, "the REST API description"),
    ("/api/status", AUTHENTICATED, ADMIN, "server activity"),
    ("/api/me", AUTHENTICATED, ADMIN, "who am I"),
    ("/api/resolvePath", "contents:read", ADMIN, "resolves a path in the root"),
    ("/api/config/*", AUTHENTICATED, ADMIN, "front-end config shared by every user"),
    ("/api/contents*", "contents:read", "contents:write", "files and notebooks"),
    ("/api/notebooks/*", "contents:read", "contents:write", "old contents URL"),
    ("/api/kernels*", "kernels", "kernels", "kernels and their channels"),
    ("/api/kernelspecs*", "kernels", "kernels", "kernel specs"),
    ("/kernelspecs/*", "kernels", "kernels", "kernel spec resources"),
    ("/api/sessions*", "kernels", "kernels", "sessions start kernels"),
    ("/nbconvert/*", "contents:read", "contents:read", "export"),
    ("/api/nbconvert", "contents:read", ADMIN, "export formats"),
    ("/api/security/csp-report", ADMIN, AUTHENTICATED, "browsers report CSP violations"),
    ("/api/shutdown", ADMIN, ADMIN, "stops the server"),
    ("/api/events", AUTHENTICATED, ADMIN, "server events"),
    ("/api/events/subscribe", AUTHENTICATED, ADMIN, "server events"),
    ("/view*", "contents:read", ADMIN, "files in the browser"),
    ("/files/*", "contents:read", ADMIN, "raw files"),
    ("/api/terminals*", ADMIN, ADMIN, "terminals are a shell on the server"),
    ("/terminals/*", ADMIN, ADMIN, "terminals are a shell on the server"),
    ("/lsp/*", "contents:read", "contents:write", "language servers read the files"),
    # -- JupyterLab -------------------------------------------------------------------------
    (
        "/(?P<mode>lab|doc)(?P<workspace>/workspaces/[a-zA-Z0-9\\-\\_]+)?(?P<tree>/tree/.*)?",
        AUTHENTICATED,
        ADMIN,
        "the lab page",
    ),
    ("/lab/.*", AUTHENTICATED, ADMIN, "the lab's 404 page"),
    ("/lab/extensions/*", PUBLIC, ADMIN, "prebuilt extensions' static files"),
    ("/static/lab/*", PUBLIC, ADMIN, "the lab's static files"),
    ("/lab/api/build", AUTHENTICATED, ADMIN, "rebuilds the lab (runs node on the server)"),
    ("/lab/api/extensions", ADMIN, ADMIN, "the extension manager installs with pip"),
    ("/lab/api/plugins", AUTHENTICATED, ADMIN, "disables plugins for every user"),
    ("/lab/api/update", AUTHENTICATED, ADMIN, "update check"),
    ("/lab/api/news", AUTHENTICATED, ADMIN, "news feed"),
    ("/lab/api/settings*", AUTHENTICATED, OWNER, "settings shared by every user of the server"),
    ("/lab/api/workspaces*", AUTHENTICATED, OWNER, "workspaces shared by every user"),
    ("/lab/api/translations*", AUTHENTICATED, ADMIN, "language packs"),
    ("/lab/api/listings/*", AUTHENTICATED, ADMIN, "extension listings"),
    ("/lab/api/themes/*", PUBLIC, ADMIN, "theme stylesheets"),
    ("/lab/api/licenses/*", AUTHENTICATED, ADMIN, "third-party licenses"),
)

#: A route nobody mapped: fail closed.
UNMAPPED = RouteScope("", ADMIN, ADMIN, "nobody mapped this route")


def check_requirement(value: str, where: str) -> str:
    for name in value.split("|"):
        if name not in KINDS and name not in SCOPES:
            raise ValueError(f"{where}: unknown scope {name!r}; known: {sorted(SCOPES)}")
    return value


class RouteTable:
    """Route patterns → requirements; ``overrides`` (``c.Gateway.route_scopes``) win."""

    def __init__(self, overrides: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.routes: dict[str, RouteScope] = {
            key: RouteScope(key, read, write, why) for key, read, write, why in DEFAULT_ROUTES
        }
        for key, spec in (overrides or {}).items():
            where = f"c.Gateway.route_scopes[{key!r}]"
            unknown = set(spec) - {"read", "write"}
            if unknown:
                raise ValueError(f"{where}: only 'read' and 'write', not {sorted(unknown)}")
            old = self.routes.get(key, UNMAPPED)
            self.routes[key] = RouteScope(
                key,
                check_requirement(spec.get("read", old.read), where),
                check_requirement(spec.get("write", old.write), where),
                "c.Gateway.route_scopes",
            )
        self._exact = {k: v for k, v in self.routes.items() if not k.endswith("*")}
        #: Prefixes, longest first, so the first that matches is the most specific.
        self._prefixes = sorted(
            ((k[:-1], v) for k, v in self.routes.items() if k.endswith("*")),
            key=lambda kv: -len(kv[0]),
        )

    def lookup(self, pattern: str) -> RouteScope | None:
        """The entry for a normalised route pattern, or None if nobody mapped it."""
        exact = self._exact.get(pattern)
        if exact is not None:
            return exact
        for prefix, entry in self._prefixes:
            if pattern.startswith(prefix):
                return entry
        return None

    def rule(self, pattern: str) -> RouteScope:
        return self.lookup(pattern) or UNMAPPED


def normalise(pattern: str, base_url: str) -> str:
    """A router's pattern without the base URL and the trailing ``$``."""
    base = base_url.rstrip("/")
    if base and pattern.startswith(base + "/"):
        pattern = pattern[len(base) :]
    return pattern[:-1] if pattern.endswith("$") else pattern


def markdown(table: RouteTable | None = None, keys: Iterable[str] | None = None) -> str:
    """The route → scope table of docs/gateway.md (a test keeps the two equal)."""
    table = table or RouteTable()
    lines = ["| route | read (GET) | write (POST, PUT, PATCH, DELETE) | why |", "|---|---|---|---|"]
    for key in keys or table.routes:
        entry = table.routes[key]
        route = key.replace("|", "\\|")
        read, write = (r.replace("|", " or ") for r in (entry.read, entry.write))
        lines.append(f"| `{route}` | {read} | {write} | {entry.why} |")
    lines.append(f"| anything else | {UNMAPPED.read} | {UNMAPPED.write} | {UNMAPPED.why} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # the table for docs/gateway.md
    print(markdown(), end="")
