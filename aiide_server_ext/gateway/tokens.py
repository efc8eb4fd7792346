"""JWT access and refresh tokens.

Algorithms are pinned here per issuer (HS256 for our own tokens, RS256/ES256 for
configured SSO issuers), never taken from a token; required claims are enforced;
PyJWT refuses keys below the RFC minimum (``enforce_minimum_key_length``). A
refresh token is single use: presenting a used one revokes its whole family.
Revocations live in the gateway database and are mirrored in memory, refreshed every few
seconds so that other servers sharing the file see them.

Tokens remember their source (claim ``src``: the API key they were exchanged with) and
never outlive it (``exp`` and the refresh family's horizon are capped at the source's
expiry, carried as ``sxp``); revoking the source, or the user, ends them (``revocation.py``).
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..stores.errors import StoreError
from .errors import GatewayError, bad_request, forbidden, unauthenticated, unavailable
from .revocation import revoke_family_in, source_alive_in
from .scopes import ALL, SCOPES
from .signing import MIN_SECRET_BYTES

if TYPE_CHECKING:
    import jwt

    from aiide_server_ext.stores.conn import Conn

    from .audit import AuditLog
    from .store import Store

ACCESS = "access"
REFRESH = "refresh"
LOCAL_ALGORITHM = "HS256"
SSO_ALGORITHMS = ("RS256", "ES256")
REQUIRED_CLAIMS = ["exp", "nbf", "iat", "sub", "aud", "iss", "jti"]
SSO_REQUIRED_CLAIMS = ["exp", "iat", "sub", "aud", "iss"]
MAX_TOKEN_CHARS = 8192
JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Principal:
    """A verified credential: whose it is and the scopes it carries by itself."""

    username: str
    scopes: frozenset[str]
    via: str
    credential_id: str
    groups: frozenset[str] = frozenset()
    family: str = ""
    expires_at: float | None = None
    #: The credential this one came from ("apikey:<id>"; "" for a session or SSO).
    source: str = ""
    #: When the source expires: nothing derived from this credential may live longer.
    source_expires_at: float | None = None
    issued_at: float | None = None
    #: The outside issuer that vouched for this identity ("" for our own tokens and keys).
    issuer: str = ""


@dataclass(frozen=True)
class SsoIssuer:
    """An external identity provider whose tokens we verify with its public key."""

    issuer: str
    algorithm: str
    public_key: str
    audience: str
    trust_groups: bool = True

    @classmethod
    def from_config(cls, issuer: str, entry: Mapping[str, Any], audience: str) -> SsoIssuer:
        algorithm = str(entry.get("algorithm", "RS256"))
        if algorithm not in SSO_ALGORITHMS:
            raise ValueError(f"c.Gateway.sso_issuers[{issuer!r}]: algorithm must be RS256 or ES256")
        key = str(entry.get("public_key", ""))
        if not key and entry.get("public_key_file"):
            with open(str(entry["public_key_file"])) as f:
                key = f.read()
        if "PUBLIC KEY" not in key or "PRIVATE" in key:
            raise ValueError(f"c.Gateway.sso_issuers[{issuer!r}]: needs a PEM public key")
        return cls(
            issuer=issuer,
            algorithm=algorithm,
            public_key=key,
            audience=str(entry.get("audience", audience)),
            trust_groups=bool(entry.get("trust_groups", True)),
        )


def _pyjwt() -> jwt.PyJWT:
    import jwt  # ≈100 ms with cryptography: only when the first token is seen

    return jwt.PyJWT(options={"enforce_minimum_key_length": True})


def _refusal(e: Exception) -> GatewayError | StoreError:
    import jwt

    if isinstance(e, (GatewayError, StoreError)):
        return e
    if isinstance(e, jwt.ExpiredSignatureError):
        return unauthenticated("token_expired", "the token has expired")
    if isinstance(e, jwt.ImmatureSignatureError):
        return unauthenticated("token_not_yet_valid", "the token is not valid yet (nbf/iat)")
    if isinstance(e, jwt.InvalidAudienceError):
        return unauthenticated("invalid_audience", "the token is for another audience")
    if isinstance(e, jwt.InvalidIssuerError):
        return unauthenticated("invalid_issuer", "the token is from an unknown issuer")
    if isinstance(e, jwt.MissingRequiredClaimError):
        return unauthenticated("missing_claim", f"the token lacks the required '{e.claim}' claim")
    if isinstance(e, jwt.InvalidKeyError):
        return unauthenticated("invalid_token", "the token's signing key is not acceptable")
    return unauthenticated("invalid_token", "the token is malformed or its signature is invalid")


class TokenService:
    """Issues, verifies, rotates and revokes tokens."""

    def __init__(
        self,
        store: Store,
        audit: AuditLog,
        secret: Callable[[], bytes],
        *,
        issuer: str,
        audience: str,
        access_ttl: int,
        refresh_ttl: int,
        max_ttl: int,
        leeway: float,
        sso: Sequence[SsoIssuer] = (),
        owner: str = "",
        revocation_refresh: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.audit = audit
        self._load_secret = secret
        self._secret: bytes | None = None
        self._jwt: jwt.PyJWT | None = None
        self.issuer = issuer
        self.audience = audience
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.max_ttl = max_ttl
        self.leeway = leeway
        self.sso = {s.issuer: s for s in sso}
        #: The server owner's name, which no outside issuer may claim (``subject``).
        self.owner = owner
        self.revocation_refresh = revocation_refresh
        self.clock = clock
        self._verified: OrderedDict[bytes, Principal] = OrderedDict()
        self._revoked: set[str] = set()
        self._revoked_families: set[str] = set()
        self._revoked_sources: set[str] = set()
        #: username -> revocation epoch: their tokens issued at or before it are refused.
        self._revoked_users: dict[str, float] = {}
        self._revocations_at = -1e9
        self._revocations_since = 0.0

    # -- keys ----------------------------------------------------------------------

    @property
    def pyjwt(self) -> jwt.PyJWT:
        if self._jwt is None:
            self._jwt = _pyjwt()
        return self._jwt

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            try:
                self._secret = self._load_secret()
            except OSError as e:  # e.g. the data directory is read-only
                raise unavailable(
                    "signing_key_unavailable", f"the JWT signing secret cannot be read: {e}"
                ) from None
        return self._secret

    def secret_problem(self) -> str | None:
        if len(self.secret) < MIN_SECRET_BYTES:
            return (
                f"the JWT signing secret is {len(self.secret)} bytes; HS256 needs at least "
                f"{MIN_SECRET_BYTES} (RFC 7518 §3.2): tokens are neither issued nor accepted"
            )
        return None

    # -- issuing ---------------------------------------------------------------------

    def ttl(self, value: object) -> int:
        if value is None:
            return self.access_ttl
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad_request("invalid_ttl", "'ttl' must be a number of seconds")
        if value < 1:
            raise bad_request("invalid_ttl", "'ttl' must be positive (at least 1 second)")
        if value > self.max_ttl:
            raise bad_request("ttl_too_long", f"'ttl' may be at most {self.max_ttl} seconds")
        return int(value)

    def _encode(self, claims: dict[str, Any]) -> str:
        problem = self.secret_problem()
        if problem:
            raise unavailable("signing_key_too_short", problem)
        return self.pyjwt.encode(claims, self.secret, algorithm=LOCAL_ALGORITHM)

    def _claims(
        self,
        username: str,
        scopes: frozenset[str],
        typ: str,
        ttl: int,
        family: str,
        source: str = "",
        source_expires_at: float | None = None,
    ) -> dict[str, Any]:
        now = int(self.clock())
        exp = now + ttl
        if source_expires_at is not None:
            exp = min(exp, int(source_expires_at))  # never outlive the source
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": username,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": uuid.uuid4().hex,
            "typ": typ,
            "scopes": sorted(scopes),
        }
        if family:
            claims["fam"] = family
        if source:
            claims["src"] = source
        if source_expires_at is not None:
            claims["sxp"] = int(source_expires_at)
        return claims

    def issue_in(
        self,
        conn: Conn,
        username: str,
        scopes: frozenset[str],
        *,
        ttl: int | None = None,
        refresh: bool = True,
        family: str = "",
        source: str = "",
        source_expires_at: float | None = None,
    ) -> dict[str, Any]:
        """Inside the caller's transaction, so the refresh row and the audit land together.

        ``source``/``source_expires_at``: the credential presented (an API key), which
        the tokens and their family remember and never outlive."""
        access_ttl = self.access_ttl if ttl is None else ttl
        if source_expires_at is not None and source_expires_at <= self.clock():
            raise unauthenticated("api_key_expired", "the credential these come from has expired")
        family = family or (uuid.uuid4().hex if refresh else "")
        access = self._claims(
            username, scopes, ACCESS, access_ttl, family, source, source_expires_at
        )
        out: dict[str, Any] = {
            "access_token": self._encode(access),
            "token_type": "Bearer",
            "expires_in": access["exp"] - access["iat"],
            "scopes": sorted(scopes),
        }
        if refresh:
            claims = self._claims(
                username, scopes, REFRESH, self.refresh_ttl, family, source, source_expires_at
            )
            conn.execute(
                "INSERT INTO refresh_tokens (jti, family, username, scopes, issued_at, expires_at,"
                " source) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    claims["jti"],
                    family,
                    username,
                    " ".join(sorted(scopes)),
                    claims["iat"],
                    claims["exp"],
                    source,
                ),
            )
            out["refresh_token"] = self._encode(claims)
            out["refresh_expires_in"] = claims["exp"] - claims["iat"]
        return out

    # -- verifying -------------------------------------------------------------------

    def decode(
        self, token: str, *, typ: str | None, verify_exp: bool = True
    ) -> tuple[dict[str, Any], SsoIssuer | None]:
        """Verified claims and their SSO issuer (None: ours), or a 401 naming what is wrong."""
        if len(token) > MAX_TOKEN_CHARS or not JWT_SHAPE.match(token):
            raise unauthenticated("invalid_token", "the token is malformed")
        try:
            unverified = self.pyjwt.decode(token, options={"verify_signature": False})
        except Exception as e:
            raise _refusal(e) from None
        iss = unverified.get("iss")
        sso = self.sso.get(iss) if isinstance(iss, str) and iss != self.issuer else None
        if sso is None and iss is not None and iss != self.issuer:
            raise unauthenticated("invalid_issuer", "the token is from an unknown issuer")
        key: str | bytes
        if sso is None:
            problem = self.secret_problem()
            if problem:
                raise unauthenticated("invalid_token", problem)
            key, algorithm, required = self.secret, LOCAL_ALGORITHM, REQUIRED_CLAIMS
            audience, issuer = self.audience, self.issuer
        else:
            key, algorithm, required = sso.public_key, sso.algorithm, SSO_REQUIRED_CLAIMS
            audience, issuer = sso.audience, sso.issuer
        try:
            claims = self.pyjwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=audience,
                issuer=issuer,
                leeway=self.leeway,
                options={
                    "require": required,
                    "verify_signature": True,
                    "verify_exp": verify_exp,
                    "verify_nbf": True,
                    "verify_iat": True,
                    "verify_aud": True,
                    "verify_iss": True,
                    "strict_aud": sso is None,
                    "enforce_minimum_key_length": True,
                },
            )
        except Exception as e:
            raise _refusal(e) from None
        if typ is not None and sso is None and claims.get("typ") != typ:
            raise unauthenticated("wrong_token_type", f"a {typ} token is needed here")
        if sso is not None and (typ == REFRESH or str(claims.get("typ", "")).lower() == REFRESH):
            raise unauthenticated(
                "wrong_token_type", "an SSO token is usable as an access token only"
            )
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 256:
            raise unauthenticated("invalid_token", "the token's subject is not a user name")
        return claims, sso

    def principal(self, claims: dict[str, Any], sso: SsoIssuer | None) -> Principal:
        raw = claims.get("scopes", claims.get("scope", [])) if sso else claims.get("scopes")
        if isinstance(raw, str):
            raw = raw.split()
        if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
            raise unauthenticated("invalid_token", "the token's scopes claim is not a list")
        scopes = frozenset(s for s in raw if s == ALL or s in SCOPES)
        if sso is not None:
            scopes -= {ALL}  # an outside issuer may grant named scopes, never everything
        groups: frozenset[str] = frozenset()
        if sso is not None and sso.trust_groups and isinstance(claims.get("groups"), list):
            groups = frozenset(str(g) for g in claims["groups"])
        return Principal(
            username=self.subject(claims["sub"], sso),
            scopes=scopes,
            via="jwt",
            credential_id=str(claims.get("jti", "")),
            groups=groups,
            family=str(claims.get("fam", "")),
            expires_at=float(claims["exp"]),
            source=str(claims.get("src", "")) if sso is None else "",
            source_expires_at=_number(claims.get("sxp")) if sso is None else None,
            issued_at=_number(claims.get("iat")),
            issuer=sso.issuer if sso is not None else "",
        )

    def subject(self, sub: str, sso: SsoIssuer | None) -> str:
        """The user a token speaks for. An outside issuer's ``sub`` equal to the owner's
        name is someone else (an issuer does not decide who owns this server):
        ``<sub>@<issuer>``, with the roles, limits and revocations of that name."""
        if sso is not None and self.owner and sub == self.owner:
            return f"{sub}@{sso.issuer}"
        return sub

    async def verify_access(self, token: str) -> Principal:
        await self._refresh_revocations()
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._verified.get(digest)
        if cached is not None and cached.expires_at is not None:
            if self.clock() <= cached.expires_at + self.leeway:
                self._check_revoked(cached.credential_id, cached.family)
                self._check_lineage(cached)
                return cached
            del self._verified[digest]
        principal = self.principal(*self.decode(token, typ=ACCESS))
        self._check_revoked(principal.credential_id, principal.family)
        self._check_lineage(principal)
        self._verified[digest] = principal
        if len(self._verified) > 4096:
            self._verified.popitem(last=False)
        return principal

    def _check_revoked(self, jti: str, family: str) -> None:
        if jti in self._revoked or (family and family in self._revoked_families):
            raise unauthenticated("token_revoked", "the token has been revoked")

    def _check_lineage(self, principal: Principal) -> None:
        """Refused once its source key or its user was revoked (the cascade)."""
        if principal.source and principal.source in self._revoked_sources:
            raise unauthenticated(
                "source_revoked", "the credential this token came from has been revoked"
            )
        epoch = self._revoked_users.get(principal.username)
        if epoch is not None and (principal.issued_at is None or principal.issued_at <= epoch):
            raise unauthenticated("user_revoked", "every credential of this user was revoked")

    async def revoked_since(
        self,
        username: str,
        since: float,
        *,
        credential_id: str = "",
        family: str = "",
        source: str = "",
        source_expires_at: float | None = None,
    ) -> str | None:
        """Why a credential seen at ``since`` no longer holds (a refusal code), or None.

        For what outlives a request made with it, e.g. a kernel it started."""
        await self._refresh_revocations()
        if credential_id in self._revoked or (family and family in self._revoked_families):
            return "token_revoked"
        if source and source in self._revoked_sources:
            return "source_revoked"
        if source_expires_at is not None and self.clock() >= source_expires_at:
            return "source_expired"
        epoch = self._revoked_users.get(username)
        if epoch is not None and since <= epoch:
            return "user_revoked"
        return None

    def note_revoked(
        self, sources: Sequence[str] = (), user: tuple[str, float] | None = None
    ) -> None:
        """What this server just revoked, effective here before the next poll."""
        self._revoked_sources.update(sources)
        if user is not None:
            name, at = user
            self._revoked_users[name] = max(at, self._revoked_users.get(name, at))

    async def _refresh_revocations(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._revocations_at < self.revocation_refresh:
            return
        self._revocations_at = now
        since = self._revocations_since - 60  # overlap: other servers' clocks differ a bit

        def load(c: Conn) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
            jtis = c.execute(
                "SELECT jti, revoked_at FROM revoked_tokens WHERE revoked_at >= ?", (since,)
            ).fetchall()
            fams = c.execute(
                "SELECT family, revoked_at FROM revoked_families WHERE revoked_at >= ?", (since,)
            ).fetchall()
            sources = c.execute(
                "SELECT source, revoked_at FROM revoked_sources WHERE revoked_at >= ?", (since,)
            ).fetchall()
            users = c.execute(
                "SELECT username, revoked_at FROM revoked_users WHERE revoked_at >= ?", (since,)
            ).fetchall()
            return jtis, fams, sources, users

        try:
            jtis, fams, sources, users = await self.store.aread(load)
        except (GatewayError, StoreError):
            if self._revocations_since == 0.0:
                raise  # never loaded: refuse rather than accept revoked tokens
            return  # keep the last known set; the store error is logged
        for jti, at in jtis:
            self._revoked.add(jti)
            self._revocations_since = max(self._revocations_since, at)
        for fam, at in fams:
            self._revoked_families.add(fam)
            self._revocations_since = max(self._revocations_since, at)
        for source, at in sources:
            self._revoked_sources.add(source)
            self._revocations_since = max(self._revocations_since, at)
        for name, at in users:
            self.note_revoked(user=(name, float(at)))
            self._revocations_since = max(self._revocations_since, at)
        self._revocations_since = max(self._revocations_since, 1.0)

    # -- refresh and revoke ------------------------------------------------------------

    async def rotate(self, token: str) -> dict[str, Any]:
        """New access + refresh tokens for an unused refresh token; reuse revokes the family."""
        claims, _ = self.decode(token, typ=REFRESH)
        await self._refresh_revocations(force=True)
        family = str(claims.get("fam", ""))
        self._check_revoked(claims["jti"], family)
        lineage = self.principal(claims, None)
        self._check_lineage(lineage)
        now = self.clock()

        def rotate_in(c: Conn) -> tuple[str, dict[str, Any] | None]:
            row = c.execute(
                "SELECT family, username, scopes, used_at, source FROM refresh_tokens"
                " WHERE jti = ?",
                (claims["jti"],),
            ).fetchone()
            if row is None or row[0] != family or row[1] != claims["sub"]:
                return "unknown", None
            # Read from the store, not the cache: a key revoked or expired on any server
            # ends its family here, even before this server's next poll.
            if row[4] != lineage.source or not source_alive_in(c, row[4], now):
                revoke_family_in(c, family, now, "source revoked or expired")
                self.audit.append(
                    c, row[1], "token.refresh_refused", f"family:{family}", "source_revoked"
                )
                return "source", None
            # Conditional: of two servers rotating the same token at once, one wins.
            used = (
                row[3] is not None
                or not c.execute(
                    "UPDATE refresh_tokens SET used_at = ? WHERE jti = ? AND used_at IS NULL",
                    (now, claims["jti"]),
                ).rowcount
            )
            if used:
                revoke_family_in(c, family, now, "refresh token reused")
                self.audit.append(
                    c, row[1], "token.refresh_reused", f"family:{family}", "family_revoked"
                )
                return "reused", None
            scopes = frozenset(row[2].split())
            pair = self.issue_in(
                c,
                row[1],
                scopes,
                family=family,
                source=lineage.source,
                source_expires_at=lineage.source_expires_at,
            )
            self.audit.append(c, row[1], "token.refreshed", f"family:{family}", "issued")
            return "ok", pair

        outcome, pair = await self.store.awrite(rotate_in)
        if outcome == "reused":
            self._revoked_families.add(family)
            raise unauthenticated(
                "refresh_token_reused",
                "this refresh token was already used; all tokens of its family are now revoked",
            )
        if outcome == "source":
            self._revoked_families.add(family)
            raise unauthenticated(
                "source_revoked", "the credential this token came from was revoked or expired"
            )
        if outcome != "ok" or pair is None:
            raise unauthenticated("invalid_token", "unknown refresh token")
        return pair

    async def revoke(self, actor: str, is_admin: bool, token: str) -> dict[str, Any]:
        claims, sso = self.decode(token, typ=None, verify_exp=False)
        subject = self.subject(claims["sub"], sso)
        if subject != actor and not is_admin:
            raise forbidden("not_your_token", "only an admin may revoke another user's token")
        jti = str(claims.get("jti", ""))
        family = str(claims.get("fam", ""))
        if not jti:
            raise bad_request("invalid_token", "the token has no jti to revoke")
        refresh = claims.get("typ") == REFRESH
        now = self.clock()

        def revoke_in(c: Conn) -> None:
            c.execute(
                "INSERT INTO revoked_tokens VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (jti, float(claims["exp"]), now, f"revoked by {actor}"),
            )
            if refresh and family:
                revoke_family_in(c, family, now, f"revoked by {actor}")
            self.audit.append(
                c,
                actor,
                "token.revoked",
                f"user:{subject}",
                "revoked",
                {"jti": jti, "type": claims.get("typ", "sso"), "family": family},
            )

        await self.store.awrite(revoke_in)
        self._revoked.add(jti)
        if refresh and family:
            self._revoked_families.add(family)
        return {"revoked": True, "jti": jti, "family_revoked": bool(refresh and family)}


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def looks_like_jwt(value: str) -> bool:
    return bool(JWT_SHAPE.match(value)) and value.count(".") == 2
