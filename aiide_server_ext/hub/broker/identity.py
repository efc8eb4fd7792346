"""Who calls the broker: a hub-issued token, checked with the hub; groups from the hub.

The caller's token says who they are (``GET /hub/api/user`` with that token). Their
groups, hub roles and admin flag come from the hub too: from that same answer when the
token may read them about its owner (a student's own tokens may), otherwise with the
broker's own service token, so nothing the caller sends can claim a group or role, and a
token restricted to hide them does not hide the student from their course. Answers are
cached briefly (``cache_seconds``).

Hub roles join the group-based policy through ``role_groups`` (hub role -> groups it
counts as, e.g. ``{"instructor": ["instructors"]}``): a user holding the hub role
``instructor`` teaches every course whose ``instructors`` list that group, exactly as a
member of the group would.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: What a user model must hold to decide about the caller without a second hub call
#: (``roles`` too when hub roles map to groups: a server's own token cannot read them).
_NEEDED = ("groups", "admin")
#: JupyterHub answers lists page by page (with where the next page starts) given this.
_PAGINATED = "application/jupyterhub-pagination+json"
#: Connections to the hub kept open and used at once.
HUB_CONNECTIONS = 8
#: The last part of ``cache_seconds`` in which a token in use is looked up again ahead.
REFRESH_AHEAD = 0.25
#: Background look-ups in flight (kept so they are not collected).
_REFRESHING: set[asyncio.Future[None]] = set()
_AUTH = re.compile(r"^\s*(?:bearer|token)\s+(\S+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class HubCaller:
    name: str
    #: Hub groups, plus the groups their hub roles count as (``role_groups``).
    groups: frozenset[str]
    admin: bool = False
    #: Hub role names (JupyterHub's, e.g. ``user``, ``admin``, or custom ``instructor``).
    roles: frozenset[str] = frozenset()


class HubUnavailable(Exception):
    pass


#: Headers that would claim an identity; the broker takes identity from the hub only, so a
#: request carrying one is a forgery attempt (nothing legitimate on the path sends them).
CLAIM_HEADERS = ("x-forwarded-user", "x-remote-user", "remote-user", "x-jupyterhub-user",
                 "x-aiide-user", "x-auth-request-user", "x-auth-request-groups")  # fmt: skip


def identity_claims(headers: Any) -> dict[str, str]:
    """Identity or group claims a caller sent (header name -> value, shortened)."""
    found: dict[str, str] = {}
    for name, value in headers.get_all():
        low = name.lower()
        if low in CLAIM_HEADERS or (
            low.startswith("x-") and any(w in low for w in ("group", "role", "scope"))
        ):
            found[low] = str(value)[:200]
    return found


def trusted_networks(proxies: Iterable[str]) -> tuple[Any, ...]:
    """``c.BrokerApp.trusted_proxies`` as networks; a bad entry names itself."""
    import ipaddress

    out = []
    for entry in proxies:
        try:
            out.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"c.BrokerApp.trusted_proxies: {entry!r} is not an IP address or network"
            ) from None
    return tuple(out)


def client_ip(peer: str | None, forwarded_for: str | None, trusted: tuple[Any, ...]) -> str:
    """The caller's address for the audit trail. ``X-Forwarded-For`` counts only when the
    connection comes from a trusted proxy, and then only its addresses added by trusted
    proxies: walking from the right, the first address that is not a trusted proxy is the
    client (whatever a student wrote further left is their own claim)."""
    import ipaddress

    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in trusted)

    current = peer or ""
    if not trusted or not forwarded_for or not is_trusted(current):
        return current
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return current  # garbage from here on: the last trusted hop is all we know
        current = hop
        if not is_trusted(hop):
            return hop
    return current


def fingerprint(token: str) -> str:
    """A short, one-way name for a token in the audit trail (never the token)."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def token_of(headers: Any) -> str | None:
    """The hub token from ``Authorization`` or ``x-api-key`` (what the model SDKs send)."""
    m = _AUTH.match(headers.get("Authorization", ""))
    if m:
        return m.group(1)
    key = headers.get("x-api-key", "").strip()
    return key or None


class HubIdentity:
    def __init__(
        self,
        api_url: str,
        api_token: str,
        cache_seconds: float = 30.0,
        timeout: float = 5.0,
        role_groups: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.api_token = api_token
        self.role_groups = {str(k): frozenset(v) for k, v in (role_groups or {}).items()}
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self._cache: dict[str, tuple[float, HubCaller | None]] = {}
        #: Concurrent look-ups of one token share one hub round trip (a class starting at
        #: once must not queue 50 identical requests behind the client's connection limit).
        self._pending: dict[str, asyncio.Future[HubCaller | None]] = {}
        self._client: Any = None
        self._members: tuple[float, dict[str, HubCaller]] | None = None

    def _http(self) -> Any:
        """aiohttp with kept-alive connections: a look-up reuses a connection to the hub
        instead of opening one (tornado's simple client opened one per call, which both
        the broker and the hub paid for on every new token)."""
        if self._client is None:
            import aiohttp

            timeout = aiohttp.ClientTimeout(total=self.timeout, sock_connect=self.timeout)
            # The hub answers one request at a time (one process): a few kept connections
            # serve a class's burst of new tokens as fast as 50 would, without opening 50.
            connector = aiohttp.TCPConnector(limit=HUB_CONNECTIONS, keepalive_timeout=60.0)
            self._client = aiohttp.ClientSession(timeout=timeout, connector=connector)
        return self._client

    async def _get(self, path: str, token: str, accept: str = "") -> tuple[int, Any]:
        import json

        import aiohttp

        headers = {"Authorization": f"token {token}"}
        if accept:
            headers["Accept"] = accept
        try:
            async with self._http().get(self.api_url + path, headers=headers) as r:
                code = r.status
                body = await r.read() if code == 200 else b""
        except (OSError, aiohttp.ClientError, asyncio.TimeoutError) as e:
            # a hub that hangs: a timeout; one that is down: refused
            raise HubUnavailable(f"the hub is unreachable: {e or type(e).__name__}") from None
        if code >= 500:
            raise HubUnavailable(f"the hub answered {code}")
        return code, json.loads(body or b"null") if code == 200 else None

    async def identify(self, token: str) -> HubCaller | None:
        """Who the token is: from the cache while its answer is younger than
        ``cache_seconds``; in the last part of that time a token in use is looked up again
        in the background (refresh ahead), so a student who keeps calling never waits for
        the hub, and a revoked token is still refused at most ``cache_seconds`` after its
        last look-up, as before."""
        key = hashlib.sha256(token.encode()).hexdigest()
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            if hit[0] - now < self.cache_seconds * REFRESH_AHEAD and key not in self._pending:
                task = asyncio.ensure_future(self._refresh(key, token))
                _REFRESHING.add(task)
                task.add_done_callback(_REFRESHING.discard)
            return hit[1]
        return await self._shared(key, token)

    async def _refresh(self, key: str, token: str) -> None:
        import contextlib

        # The cached answer stands until it expires; then the next call asks again.
        with contextlib.suppress(HubUnavailable):
            await self._shared(key, token)

    async def _shared(self, key: str, token: str) -> HubCaller | None:
        """One hub round trip for concurrent look-ups of one token."""
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[HubCaller | None] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            caller = await self._lookup(key, token)
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        else:
            future.set_result(caller)
            return caller
        finally:
            del self._pending[key]

    async def _lookup(self, key: str, token: str) -> HubCaller | None:
        now = time.monotonic()
        caller: HubCaller | None = None
        code, model = await self._get("/user", token)
        if code == 200 and isinstance(model, dict) and model.get("kind", "user") == "user":
            name = str(model["name"])
            full = model
            needed = (*_NEEDED, "roles") if self.role_groups else _NEEDED
            if not all(k in model for k in needed):  # the token may not read them: ask
                code, full = await self._get(f"/users/{name}", self.api_token)
                if code != 200 or not isinstance(full, dict) or "groups" not in full:
                    raise HubUnavailable(f"the hub did not say which groups {name} is in ({code})")
            caller = self.caller_from(full)
        if len(self._cache) > 10000:
            self._cache.clear()
        self._cache[key] = (now + self.cache_seconds, caller)
        return caller

    async def members(self) -> dict[str, HubCaller]:
        """Every hub user with their groups and roles (the broker's service token, page by
        page), cached like identities: who is in which course, for scoping what instructors
        read. Needs the broker's hub role to hold ``list:users`` and ``read:users:groups``."""
        cached = self._members
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        found: dict[str, HubCaller] = {}
        offset = 0
        while True:
            code, page = await self._get(
                f"/users?offset={offset}&limit=200", self.api_token, _PAGINATED
            )
            if code != 200 or not isinstance(page, dict):
                raise HubUnavailable(f"the hub did not list its users ({code})")
            items = page.get("items") or []
            for model in items:
                caller = self.caller_from(model)
                found[caller.name] = caller
            following = (page.get("_pagination") or {}).get("next")
            if not items or not following:
                break
            offset = int(following.get("offset", offset + len(items)))
        self._members = (time.monotonic() + self.cache_seconds, found)
        return found

    def caller_from(self, model: Mapping[str, Any]) -> HubCaller:
        """A hub user model as a caller, hub roles mapped to groups by ``role_groups``."""
        roles = frozenset(str(r) for r in model.get("roles") or ())
        groups = {str(g) for g in model.get("groups") or ()}
        for role in roles:
            groups |= self.role_groups.get(role, frozenset())
        return HubCaller(str(model["name"]), frozenset(groups), bool(model.get("admin")), roles)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
