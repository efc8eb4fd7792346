"""The exact-text side of search: an sqlite FTS5 trigram index of each collection's
chunk texts, kept beside chromadb and in step with it.

Why: ``search`` looks up the chunks that contain an identifier of the question verbatim
(``normalize_readings`` is not "about" anything, so vectors miss it). chromadb's
``where_document={"$contains": ...}`` answers that from its own trigram index, but at
100k chunks one lookup took ~55 ms (of a 181 ms search; its trigram lists of a common
prefix are as long as the collection, and the call goes through its query planner and
bindings), while the same substring query against a plain FTS5 trigram table takes well
under a millisecond. Same semantics: a trigram phrase query matches the exact substring,
case-sensitive (``case_sensitive 1``), like ``$contains``; queries are at least three
characters (``index.identifiers``).

It also answers the two other questions ``search`` asked chromadb on every identifier
query, each a few milliseconds there and far more on a busy machine (its calls contend
for the CPU): which chunks *define* a name (their ``symbols`` metadata, here an indexed
table) and how many chunks the collection holds.

``IndexedCollection`` wraps a chromadb collection: every write through it (add, upsert,
update of documents, delete) is mirrored here under one lock per collection, so the two
cannot interleave differently; a collection whose row count differs from the table's
(an index built before this existed, a crash between the two writes) is rebuilt from
chromadb when opened. Chunk ids are content-addressed (path, text hash), so a matching
count with a stale text cannot arise from an upsert. Everything here blocks: callers
run it in a thread, as with chromadb.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("aiide.knowledge")

PAGE = 5000
#: The tables' layout; a file of another version is emptied, so every collection is
#: rebuilt from chromadb when it next opens (its count no longer matches).
VERSION = 2
#: FTS5 trigram queries need three characters; shorter words are not looked up here.
MIN_CHARS = 3


def _table(collection: str) -> str:
    """A safe table name for a collection name (any characters)."""
    return "t" + hashlib.sha256(collection.encode()).hexdigest()[:24]


def _phrase(text: str) -> str:
    """``text`` as one FTS5 phrase: matched as an exact substring by the trigram index."""
    return '"' + text.replace('"', '""') + '"'


class Lexical:
    """One sqlite file, three tables per collection: ``<t>_ids`` maps chunk ids to
    rowids, ``<t>`` (FTS5, trigram) holds the texts under those rowids, ``<t>_sym`` the
    names each chunk defines."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._lock = threading.RLock()
        self._ready: set[str] = set()
        if self._db.execute("PRAGMA user_version").fetchone()[0] != VERSION:
            names = self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 't*'"
            ).fetchall()
            for (name,) in names:
                self._db.execute(f'DROP TABLE IF EXISTS "{name}"')
            self._db.execute(f"PRAGMA user_version = {VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _create(self, collection: str) -> str:
        t = _table(collection)
        if t not in self._ready:
            self._db.execute(f"CREATE TABLE IF NOT EXISTS {t}_ids (cid TEXT PRIMARY KEY)")
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS {t}_sym (name TEXT NOT NULL, ref INTEGER NOT NULL)"
            )
            self._db.execute(f"CREATE INDEX IF NOT EXISTS {t}_sym_name ON {t}_sym (name)")
            self._db.execute(f"CREATE INDEX IF NOT EXISTS {t}_sym_ref ON {t}_sym (ref)")
            self._db.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS {t} USING fts5("
                "body, tokenize='trigram case_sensitive 1', columnsize=0)"
            )
            self._ready.add(t)
        return t

    def count(self, collection: str) -> int:
        with self._lock:
            t = self._create(collection)
            return int(self._db.execute(f"SELECT count(*) FROM {t}_ids").fetchone()[0])  # noqa: S608

    def put(
        self,
        collection: str,
        ids: Sequence[str],
        texts: Sequence[str],
        symbols: Sequence[Sequence[str]] | None = None,
    ) -> None:
        """Add or replace chunks (an id already here gets the new text and names)."""
        if not ids:
            return
        names: Sequence[Sequence[str]] = symbols if symbols is not None else [()] * len(ids)
        with self._lock:
            t = self._create(collection)
            self._db.execute("BEGIN")
            try:
                self._delete(t, ids)
                for cid, text, defined in zip(ids, texts, names, strict=True):
                    rowid = self._db.execute(
                        f"INSERT INTO {t}_ids (cid) VALUES (?)",  # noqa: S608
                        (cid,),
                    ).lastrowid
                    self._db.execute(
                        f"INSERT INTO {t} (rowid, body) VALUES (?, ?)",  # noqa: S608
                        (rowid, text or ""),
                    )
                    self._db.executemany(
                        f"INSERT INTO {t}_sym (name, ref) VALUES (?, ?)",  # noqa: S608
                        [(str(name), rowid) for name in dict.fromkeys(defined)],
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self._lock:
            t = self._create(collection)
            self._db.execute("BEGIN")
            try:
                self._delete(t, ids)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _delete(self, t: str, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), 500):
            batch = list(ids[start : start + 500])
            marks = ",".join("?" * len(batch))
            rows = self._db.execute(
                f"SELECT rowid FROM {t}_ids WHERE cid IN ({marks})",  # noqa: S608
                batch,
            ).fetchall()
            if rows:
                rowids = [r[0] for r in rows]
                rmarks = ",".join("?" * len(rowids))
                for table, key in ((t, "rowid"), (f"{t}_sym", "ref"), (f"{t}_ids", "rowid")):
                    self._db.execute(
                        f"DELETE FROM {table} WHERE {key} IN ({rmarks})",  # noqa: S608
                        rowids,
                    )

    def drop(self, collection: str) -> None:
        with self._lock:
            t = _table(collection)
            for table in (t, f"{t}_ids", f"{t}_sym"):
                self._db.execute(f"DROP TABLE IF EXISTS {table}")
            self._ready.discard(t)

    def contains(self, collection: str, text: str, limit: int) -> list[str]:
        """Ids of up to ``limit`` chunks containing ``text`` exactly (case-sensitive)."""
        if len(text) < MIN_CHARS:
            raise ValueError(f"a lexical lookup needs {MIN_CHARS} characters or more")
        with self._lock:
            t = self._create(collection)
            rows = self._db.execute(
                f"SELECT i.cid FROM {t} f JOIN {t}_ids i ON i.rowid = f.rowid"  # noqa: S608
                f" WHERE {t} MATCH ? LIMIT ?",
                (_phrase(text), limit),
            ).fetchall()
        return [str(r[0]) for r in rows]

    def defining(self, collection: str, name: str, limit: int) -> list[str]:
        """Ids of up to ``limit`` chunks whose ``symbols`` hold ``name`` (exactly)."""
        with self._lock:
            t = self._create(collection)
            rows = self._db.execute(
                f"SELECT i.cid FROM {t}_sym s JOIN {t}_ids i ON i.rowid = s.ref"  # noqa: S608
                " WHERE s.name = ? LIMIT ?",
                (name, limit),
            ).fetchall()
        return [str(r[0]) for r in rows]

    def rebuild(self, collection: str, col: Any) -> int:
        """This collection's tables made again from chromadb's documents and metadata."""
        with self._lock:
            self.drop(collection)
            offset = total = 0
            while True:
                got = col.get(include=["documents", "metadatas"], limit=PAGE, offset=offset)
                self.put(collection, got["ids"], got["documents"], symbols_of(got["metadatas"]))
                total += len(got["ids"])
                if len(got["ids"]) < PAGE:
                    break
                offset += PAGE
        return total


class IndexedCollection:
    """A chromadb collection whose writes are mirrored in a ``Lexical`` index; reads and
    everything else go to the collection itself."""

    def __init__(self, col: Any, lexical: Lexical) -> None:
        self._col = col
        self.lexical = lexical
        self.lock = threading.RLock()

    @classmethod
    def open(cls, col: Any, lexical: Lexical) -> IndexedCollection:
        """The wrapper, after rebuilding the side index if it is out of step."""
        wrapped = cls(col, lexical)
        with wrapped.lock:
            have, want = lexical.count(col.name), col.count()
            if have != want:
                log.info(
                    "aiide knowledge: rebuilding the exact-text index of %s (%d of %d chunks)",
                    col.name,
                    have,
                    want,
                )
                lexical.rebuild(col.name, col)
        return wrapped

    def __getattr__(self, name: str) -> Any:
        return getattr(self._col, name)

    def contains(self, text: str, limit: int) -> list[str]:
        return self.lexical.contains(self._col.name, text, limit)

    def defining(self, name: str, limit: int) -> list[str]:
        return self.lexical.defining(self._col.name, name, limit)

    def count(self) -> int:
        """The chunks held (the side index's count: it is in step, and cheaper to ask)."""
        return self.lexical.count(self._col.name)

    def add(self, ids: Sequence[str], documents: Sequence[str] | None = None, **kw: Any) -> Any:
        with self.lock:
            out = self._col.add(ids=ids, documents=documents, **kw)
            self._put(ids, documents, kw.get("metadatas"))
            return out

    def upsert(self, ids: Sequence[str], documents: Sequence[str] | None = None, **kw: Any) -> Any:
        with self.lock:
            out = self._col.upsert(ids=ids, documents=documents, **kw)
            self._put(ids, documents, kw.get("metadatas"))
            return out

    def update(self, ids: Sequence[str], documents: Sequence[str] | None = None, **kw: Any) -> Any:
        with self.lock:
            if documents is None and kw.get("metadatas") is None:
                return self._col.update(ids=ids, **kw)
            out = self._col.update(ids=ids, documents=documents, **kw)
            if documents is None:  # new metadata only: each chunk keeps its stored text
                documents = self._col.get(ids=list(ids), include=["documents"])["documents"]
            self._put(ids, documents, kw.get("metadatas"))
            return out

    def delete(self, ids: Sequence[str] | None = None, **kw: Any) -> Any:
        with self.lock:
            if ids is None:  # by a filter: learn which ids go first
                ids = self._col.get(include=[], **kw)["ids"]
                if not ids:
                    return None
            out = self._col.delete(ids=list(ids))
            self.lexical.delete(self._col.name, list(ids))
            return out

    def _put(self, ids: Sequence[str], documents: Any, metadatas: Any) -> None:
        texts = [str(d or "") for d in documents] if documents is not None else [""] * len(ids)
        names = symbols_of(metadatas) if metadatas is not None else None
        self.lexical.put(self._col.name, list(ids), texts, names)


def symbols_of(metadatas: Sequence[Any] | None) -> list[list[str]]:
    """The names each chunk defines (its ``symbols`` metadata, a list)."""
    return [
        [str(x) for x in (m.get("symbols") or [])] if isinstance(m, dict) else []
        for m in metadatas or []
    ]
