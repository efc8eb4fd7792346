"""What each gateway route does, as plain methods (the tornado handlers only adapt).

Bodies are validated strictly: an unknown field, a wrong type, an unknown scope
or a non-positive TTL is a 400 with a stable code before anything is written.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Mapping
from typing import Any

from aiide_server_ext.seams import Caller
from aiide_server_ext.stores.conn import Conn

from .apikeys import expires_in, for_user
from .audit import AuditQuery, to_jsonl
from .errors import bad_request, forbidden
from .gate import GatewayGate
from .metering import AMOUNTS, GROUP_BY, UsageQuery, to_csv
from .scopes import ALL, covers, parse_scopes

MAX_AUDIT_ROWS = 5000


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def fields(body: Mapping[str, Any], allowed: Iterable[str]) -> Mapping[str, Any]:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise bad_request("unknown_field", f"unknown field(s): {', '.join(unknown)[:200]}")
    return body


def string(body: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request("missing_field", f"'{name}' is required")
        return None
    if not isinstance(value, str) or not value:
        raise bad_request("invalid_field", f"'{name}' must be a non-empty string")
    return value


def timestamp(value: str | None, name: str) -> float | None:
    """ISO date or date-time (UTC unless it says otherwise)."""
    if not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request("invalid_date", f"'{name}' must be an ISO date or date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


class GatewayAPI:
    def __init__(self, gate: GatewayGate) -> None:
        self.gate = gate

    def _admin(self, caller: Caller) -> bool:
        return caller.has_scope("admin")

    def _requested_scopes(self, caller: Caller, value: object) -> frozenset[str]:
        scopes = caller.scopes if value is None else parse_scopes(value)
        if not covers(caller.scopes, scopes):
            missing = sorted(scopes - caller.scopes) if ALL not in scopes else [ALL]
            raise forbidden("scope_escalation", f"you do not hold: {', '.join(missing)}")
        return scopes

    # -- tokens ---------------------------------------------------------------------------

    async def exchange(self, caller: Caller, body: Mapping[str, Any]) -> dict[str, Any]:
        """A Jupyter session or an API key → access (+ refresh) token."""
        fields(body, ("scopes", "ttl", "refresh", "user"))
        via = str(caller.extra.get("via", ""))
        if via == "jwt":
            raise forbidden(
                "exchange_not_allowed",
                "a token cannot be exchanged for new tokens; use a Jupyter session or an API key",
            )
        user = string(body, "user") or caller.username
        if user != caller.username and not self._admin(caller):
            raise forbidden("admin_required", "only an admin may issue tokens for another user")
        scopes = self._requested_scopes(caller, body.get("scopes"))
        ttl = self.gate.tokens.ttl(body.get("ttl"))
        refresh = body.get("refresh", True)
        if not isinstance(refresh, bool):
            raise bad_request("invalid_field", "'refresh' must be true or false")

        # A key's tokens and refresh family remember it and never outlive it.
        source = str(caller.extra.get("source") or "") if via == "apikey" else ""
        source_expires_at = _float(caller.extra.get("source_expires_at")) if source else None

        def issue(c: Conn) -> dict[str, Any]:
            pair = self.gate.tokens.issue_in(
                c,
                user,
                scopes,
                ttl=ttl,
                refresh=refresh,
                source=source,
                source_expires_at=source_expires_at,
            )
            self.gate.audit_log.append(
                c,
                caller.username,
                "token.issued",
                f"user:{user}",
                "issued",
                {"via": via, "scopes": sorted(scopes), "ttl": ttl, "refresh": refresh},
            )
            return pair

        return await self.gate.store.awrite(issue)

    async def refresh(self, body: Mapping[str, Any]) -> dict[str, Any]:
        fields(body, ("refresh_token",))
        token = string(body, "refresh_token", required=True)
        assert token is not None
        return await self.gate.tokens.rotate(token)

    async def revoke(self, caller: Caller, body: Mapping[str, Any]) -> dict[str, Any]:
        fields(body, ("token",))
        token = string(body, "token", required=True)
        assert token is not None
        return await self.gate.tokens.revoke(caller.username, self._admin(caller), token)

    def me(self, caller: Caller) -> dict[str, Any]:
        limits = {
            rc: limit.describe()
            for rc in sorted(set(self.gate.limits.defaults) | self.gate.resource_classes.keys())
            if (limit := self.gate.limits.for_caller(caller.roles, rc)) is not None
        }
        exempt = self.gate.is_owner(caller) and not self.gate.limit_owner
        return {
            "user": caller.username,
            "scopes": sorted(caller.scopes),
            "groups": sorted(caller.groups),
            "roles": sorted(caller.roles),
            "via": caller.extra.get("via"),
            "rate_limits": {} if exempt else limits,
        }

    # -- API keys -------------------------------------------------------------------------

    async def create_key(self, caller: Caller, body: Mapping[str, Any]) -> dict[str, Any]:
        fields(body, ("name", "scopes", "expires_in", "user"))
        name = string(body, "name", required=True)
        assert name is not None
        user = for_user(caller.username, self._admin(caller), body.get("user"))
        if user != caller.username and body.get("scopes") is not None:
            scopes = parse_scopes(
                body["scopes"]
            )  # an admin's grant; the owner's roles still cap it
        else:
            scopes = self._requested_scopes(caller, body.get("scopes"))
        expires = expires_in(body.get("expires_in"))
        source, not_after = self._minted_by_token(caller)
        raw, key = await self.gate.store.awrite(
            lambda c: self.gate.keys.create_in(
                c, caller.username, user, name, scopes, expires, source=source, not_after=not_after
            )
        )
        return {"key": raw, **key.public()}

    @staticmethod
    def _minted_by_token(caller: Caller) -> tuple[str, float | None]:
        """(source, latest expiry) of a key minted with a JWT or a key: it may not outlive it.

        A key (or a token from a key) passes that key on: revoking it revokes the new key,
        whose expiry is capped at the key's. A token with no key behind it (a Jupyter
        session's, an SSO token) cannot be revoked through a key, so the new key ends with
        the token; a longer-lived key needs the Jupyter session itself (re-authentication)."""
        via = caller.extra.get("via")
        if via == "apikey":
            return str(caller.extra.get("source") or ""), _float(
                caller.extra.get("source_expires_at")
            )
        if via != "jwt":
            return "", None
        source = str(caller.extra.get("source") or "")
        if source:
            return source, _float(caller.extra.get("source_expires_at"))
        return "", _float(caller.extra.get("expires_at"))

    async def revoke_user(self, caller: Caller, username: str) -> dict[str, Any]:
        """Admin: end every key, refresh family and token of a user, on every server."""
        if not self._admin(caller):
            raise forbidden("admin_required", "only an admin may revoke a user's credentials")
        return await self.gate.revoke_user(caller, username)

    async def list_keys(self, caller: Caller, user: str | None, everyone: bool) -> dict[str, Any]:
        if everyone and not self._admin(caller):
            raise forbidden("admin_required", "only an admin may list everyone's keys")
        owner = None if everyone else for_user(caller.username, self._admin(caller), user)
        keys = await self.gate.keys.list_keys(owner)
        return {"keys": [k.public() for k in keys]}

    async def revoke_key(self, caller: Caller, key_id: str) -> dict[str, Any]:
        key = await self.gate.keys.revoke(caller.username, self._admin(caller), key_id)
        return {**key.public(), "revoked": True}

    # -- usage and audit --------------------------------------------------------------------

    async def usage(self, caller: Caller, args: Mapping[str, str | None]) -> tuple[str, str]:
        """(content type, body): JSON with remaining budget, or CSV."""
        fmt = args.get("format") or "json"
        if fmt not in ("json", "csv"):
            raise bad_request("invalid_format", "'format' must be json or csv")
        user, group = args.get("user"), args.get("group")
        admin = self._admin(caller)
        if (group or (user and user != caller.username)) and not admin:
            raise forbidden("admin_required", "only an admin may read others' usage")
        everyone = admin and (user == "*" or (bool(group) and not user))
        users = None if everyone else (user or caller.username,)
        query = UsageQuery(
            users=users,
            group=group or None,
            by=args.get("by") or ("user" if users is None else "model"),
            since=timestamp(args.get("since"), "since"),
            until=timestamp(args.get("until"), "until"),
        )
        # Names in a report are whatever callers sent (users, models): redact like logs.
        rows = self.gate.redactor.obj(await self.gate.meter.report(query))
        if fmt == "csv":
            return "text/csv; charset=utf-8", to_csv(rows, query.by)
        totals = {k: round(sum(r[k] for r in rows), 6) for k in AMOUNTS}
        body: dict[str, Any] = {
            "user": self.gate.redactor.text(users[0]) if users and len(users) == 1 else None,
            "group": self.gate.redactor.text(group) if group else None,
            "by": query.by,
            "group_by_options": list(GROUP_BY),
            "currency": self.gate.meter.prices.currency,
            "rows": rows,
            "totals": totals,
        }
        if users and users[0] == caller.username and not self.gate.exempt(caller):
            statuses = await self.gate.quotas.status(caller.username, caller.groups)
            body["quotas"] = [s.as_dict() for s in statuses]
        else:
            body["quotas"] = []
        return "application/json", json.dumps(body)

    async def audit(self, args: Mapping[str, str | None]) -> tuple[str, str]:
        fmt = args.get("format") or "json"
        if fmt not in ("json", "jsonl"):
            raise bad_request("invalid_format", "'format' must be json or jsonl")
        try:
            limit = int(args.get("limit") or 500)
            after = int(args.get("after_id") or 0)
        except ValueError:
            raise bad_request("invalid_field", "'limit' and 'after_id' must be integers") from None
        if not 1 <= limit <= MAX_AUDIT_ROWS or after < 0:
            raise bad_request("invalid_field", f"'limit' must be 1..{MAX_AUDIT_ROWS}")
        events = await self.gate.audit_log.query(
            AuditQuery(
                actor=args.get("actor") or None,
                action=args.get("action") or None,
                since=timestamp(args.get("since"), "since"),
                until=timestamp(args.get("until"), "until"),
                after_id=after,
                limit=limit,
            )
        )
        if fmt == "jsonl":
            return "application/x-ndjson", to_jsonl(events)
        return "application/json", json.dumps({"events": events})
