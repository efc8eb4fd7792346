"""Conversation search and rename queries on sqlite and PostgreSQL (the same SQL on both)."""

from __future__ import annotations

from typing import Any

from aiide_server_ext.agent.store import Store

from .conftest import Db


def hits(store: Store, owner: str, query: str) -> list[tuple[str, Any]]:
    return [(c["id"], text is not None) for c, text in store.search_conversations(owner, query, 50)]


def test_search_is_owner_scoped_case_insensitive_and_literal(db: Db) -> None:
    store = Store(db.agent_path(), url=db.url)
    try:
        store.create_conversation("a", "ann", "Sales Report")
        store.append_turn("a", "user", "what is 100% of x_1?", None)
        store.create_conversation("b", "bob", "sales too")
        store.append_turn("b", "assistant", [{"type": "text", "text": "100% of y"}], None)
        store.flush()
        assert hits(store, "ann", "SALES") == [("a", False)]
        assert hits(store, "ann", "100%") == [("a", True)]
        assert hits(store, "ann", "x_1") == [("a", True)]
        assert hits(store, "ann", "x%1") == []  # % is not a wildcard
        assert hits(store, "ann", "y") == []  # bob's answer stays bob's
        store.rename_conversation("a", "Q3 numbers")
        assert store.conversation("a")["title"] == "Q3 numbers"  # type: ignore[index]
        assert hits(store, "ann", "sales") == []
    finally:
        store.close()
