"""Scopes, roles and who holds them.

A credential carries scopes; its owner holds scopes through roles (from their
name or their groups). What a request may do is the intersection of the two, as
in JupyterHub, so a role change takes effect on tokens already issued.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import bad_request

ALL = "*"

SCOPES: dict[str, str] = {
    "chat": "chat with the assistant",
    "complete": "inline completions",
    "agent:run": "start and follow agent runs",
    "agent:execute": "let agent runs execute code in kernels",
    "agent:approve": "answer the paused calls of one's other credentials (e.g. an outside agent's)",
    "knowledge": "search and index the knowledge base",
    "kernels": "start, use and stop kernels and sessions (Jupyter's kernels APIs)",
    "contents:read": "read files and notebooks",
    "contents:write": "create, change and delete files and notebooks",
    "usage:read": "read one's own usage and remaining budget",
    "tokens": "create and revoke one's own API keys",
    "admin": "others' keys and usage, the audit log, terminals, server shutdown",
    "course": "change a course's policy (exam mode, budgets) and read its usage and audit",
}

#: Scopes the built-in 'user' role does not hold: granted only through roles that name them.
PRIVILEGED = frozenset({"admin", "course"})

BUILTIN_ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset({ALL}),
    "user": frozenset(s for s in SCOPES if s not in PRIVILEGED),
}


def parse_scopes(value: object, *, field: str = "scopes") -> frozenset[str]:
    """Scopes from a list or a space/comma separated string; unknown ones are refused."""
    if isinstance(value, str):
        items: list[object] = [s for s in value.replace(",", " ").split() if s]
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    else:
        raise bad_request("invalid_scopes", f"'{field}' must be a list of scope names")
    scopes: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            raise bad_request("invalid_scopes", f"'{field}' must be a list of scope names")
        if item != ALL and item not in SCOPES:
            known = ", ".join(sorted(SCOPES))
            raise bad_request("unknown_scope", f"unknown scope {item[:64]!r}; known: {known}")
        scopes.add(item)
    return frozenset(scopes)


def intersect(a: frozenset[str], b: frozenset[str]) -> frozenset[str]:
    """Scopes granted by both; ``*`` stands for every scope."""
    if ALL in a:
        return b
    if ALL in b:
        return a
    return a & b


def covers(held: frozenset[str], wanted: frozenset[str]) -> bool:
    return ALL in held or (ALL not in wanted and wanted <= held)


@dataclass(frozen=True)
class Policy:
    """Roles → scopes, users and groups → roles. Built from ``c.Gateway.*``."""

    roles: Mapping[str, frozenset[str]]
    user_roles: Mapping[str, tuple[str, ...]]
    group_roles: Mapping[str, tuple[str, ...]]
    user_groups: Mapping[str, tuple[str, ...]]
    default_roles: tuple[str, ...]
    owner: str
    owner_scopes: frozenset[str]

    @classmethod
    def from_config(
        cls,
        *,
        roles: Mapping[str, Iterable[str]],
        user_roles: Mapping[str, Iterable[str]],
        group_roles: Mapping[str, Iterable[str]],
        user_groups: Mapping[str, Iterable[str]],
        default_roles: Iterable[str],
        owner: str,
        owner_scopes: Iterable[str],
    ) -> Policy:
        """Validate everything up front: a typo in a scope must not silently grant less."""
        merged = dict(BUILTIN_ROLES)
        for name, scopes in roles.items():
            merged[name] = _config_scopes(scopes, f"c.Gateway.roles[{name!r}]")
        for where, table in (("user_roles", user_roles), ("group_roles", group_roles)):
            for key, names in table.items():
                for role in names:
                    if role not in merged:
                        raise ValueError(f"c.Gateway.{where}[{key!r}]: unknown role {role!r}")
        for role in default_roles:
            if role not in merged:
                raise ValueError(f"c.Gateway.default_roles: unknown role {role!r}")
        return cls(
            roles=merged,
            user_roles={k: tuple(v) for k, v in user_roles.items()},
            group_roles={k: tuple(v) for k, v in group_roles.items()},
            user_groups={k: tuple(v) for k, v in user_groups.items()},
            default_roles=tuple(default_roles),
            owner=owner,
            owner_scopes=_config_scopes(owner_scopes, "c.Gateway.owner_scopes"),
        )

    def groups_for(self, username: str, extra: Iterable[str] = ()) -> frozenset[str]:
        return frozenset(self.user_groups.get(username, ())) | frozenset(extra)

    def roles_for(
        self, username: str, groups: Iterable[str], *, member: bool = False
    ) -> frozenset[str]:
        """``member``: the owner too gets roles from groups (identity from JupyterHub)."""
        if username == self.owner and not member:
            return frozenset({"owner"})
        named = set(self.user_roles.get(username, ()))
        for group in groups:
            named.update(self.group_roles.get(group, ()))
        return frozenset(named or self.default_roles)

    def scopes_for(
        self, username: str, roles: Iterable[str], *, member: bool = False
    ) -> frozenset[str]:
        """What the user may ever do, whatever credential they present."""
        if username == self.owner and not member:
            return self.owner_scopes
        held: set[str] = set()
        for role in roles:
            held.update(self.roles.get(role, ()))
        return frozenset({ALL}) if ALL in held else frozenset(held)

    def fingerprint(self) -> str:
        """Stable digest of the policy, so a change between restarts can be audited."""
        return hashlib.sha256(json.dumps(self.describe(), sort_keys=True).encode()).hexdigest()

    def describe(self) -> dict[str, object]:
        return {
            "roles": {k: sorted(v) for k, v in self.roles.items()},
            "user_roles": {k: list(v) for k, v in self.user_roles.items()},
            "group_roles": {k: list(v) for k, v in self.group_roles.items()},
            "user_groups": {k: list(v) for k, v in self.user_groups.items()},
            "default_roles": list(self.default_roles),
            "owner": self.owner,
            "owner_scopes": sorted(self.owner_scopes),
        }


def _config_scopes(scopes: Iterable[str], where: str) -> frozenset[str]:
    unknown = sorted(s for s in scopes if s != ALL and s not in SCOPES)
    if unknown:
        raise ValueError(f"{where}: unknown scopes {unknown}; known: {sorted(SCOPES)}")
    return frozenset(scopes)
