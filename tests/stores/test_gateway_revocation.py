"""Revocation cascades on both dialects (sqlite and PostgreSQL): two servers share the
database, a key revoked on one ends its tokens, family and minted keys on the other."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aiide_server_ext.gateway.apikeys import ApiKeyService
from aiide_server_ext.gateway.errors import GatewayError
from aiide_server_ext.gateway.store import Store

from .conftest import Db, token_service

pytestmark = pytest.mark.asyncio


class Server:
    def __init__(self, db: Db) -> None:
        self.store = Store(db.gateway_path(), url=db.url)
        # every use reads revocations (what a short poll gives)
        self.tokens = token_service(self.store, revocation_refresh=0.0)
        self.keys = ApiKeyService(
            self.store, self.tokens.audit, cache_seconds=0.0, tokens=self.tokens
        )


@pytest.fixture
def servers(db: Db) -> Iterator[tuple[Server, Server]]:
    pair = (Server(db), Server(db))
    yield pair
    for server in pair:
        server.store.close()


async def test_a_key_revoked_on_one_server_ends_its_lineage_on_the_other(
    servers: tuple[Server, Server],
) -> None:
    one, two = servers
    raw, key = one.store.write(
        lambda c: one.keys.create_in(c, "ada", "ada", "root", frozenset({"chat"}), 3600)
    )
    principal = await two.keys.verify(raw)
    pair = one.store.write(
        lambda c: one.tokens.issue_in(
            c,
            "ada",
            frozenset({"chat"}),
            source=principal.source,
            source_expires_at=principal.source_expires_at,
        )
    )
    assert pair["refresh_expires_in"] <= 3600
    minted_raw, _ = one.store.write(
        lambda c: one.keys.create_in(
            c, "ada", "ada", "minted", frozenset({"chat"}), None, source=principal.source
        )
    )
    await two.tokens.verify_access(pair["access_token"])
    await one.keys.revoke("ada", False, key.id)
    for check in (
        two.tokens.verify_access(pair["access_token"]),
        two.tokens.rotate(pair["refresh_token"]),
        two.keys.verify(minted_raw),
    ):
        with pytest.raises(GatewayError) as e:
            await check
        assert e.value.status == 401


async def test_a_user_revoked_on_one_server_is_refused_on_the_other(
    servers: tuple[Server, Server],
) -> None:
    one, two = servers
    pair = one.store.write(lambda c: one.tokens.issue_in(c, "bo", frozenset({"chat"})))
    lone = one.store.write(
        lambda c: one.tokens.issue_in(c, "bo", frozenset({"chat"}), refresh=False)
    )
    await two.tokens.verify_access(lone["access_token"])
    from aiide_server_ext.gateway.revocation import revoke_user_in

    one.store.write(lambda c: revoke_user_in(c, "bo", one.tokens.clock(), "test"))
    with pytest.raises(GatewayError) as e:
        await two.tokens.verify_access(lone["access_token"])  # no family: the epoch ends it
    assert e.value.code == "user_revoked"
    with pytest.raises(GatewayError):
        await two.tokens.rotate(pair["refresh_token"])
