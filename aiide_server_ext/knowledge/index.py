"""The chromadb side: one collection per user and workspace, written incrementally.

Isolation is by collection, never by a metadata filter: a filter selecting 2% of 100k
rows makes a query ~20x slower, and a forgotten filter leaks. Chunk ids are derived
from (path, content hash), so an unchanged chunk keeps its id and its vector; only new
text reaches the model. Everything here blocks: callers run it in a thread.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .chunking import Chunk
from .embeddings import Embedder
from .lexical import IndexedCollection, Lexical

SCHEMA_VERSION = 1
PAGE = 5000
# The HNSW brute-force buffer and the flush threshold sized for bulk indexing: fewer,
# larger index rebuilds while a workspace is indexed (measured in benchmarks/knowledge.py).
HNSW = {"space": "cosine", "batch_size": 1000, "sync_threshold": 5000}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_QUOTED = re.compile(r"`([^`]+)`")
LEXICAL_WEIGHT = 0.3
LEXICAL_LIMIT = 20
CANDIDATES = 64
_STOPWORDS = """a about all also an and any are as at be been but by can could did do does doing for
    from get got had has have how i if in into is it its just me more most my no not of on
    one or our out over show so some than that the their them then there these they this
    those to too up us use used using want was we were what when where which while who why
    will with would you your find code file files notebook notebooks cell cells"""
STOPWORDS = frozenset(_STOPWORDS.split())


def collection_name(user: str, workspace: str) -> str:
    digest = hashlib.sha256(f"{user}\0{workspace}".encode()).hexdigest()[:32]
    return f"aiide-{digest}"


def chunk_id(path: str, text_hash: str, n: int) -> str:
    """Same path and text -> same id (``n`` tells identical chunks of one file apart)."""
    return hashlib.sha256(f"{path}\0{text_hash}\0{n}".encode()).hexdigest()[:32]


def to_metadata(chunk: Chunk) -> dict[str, Any]:
    # Few keys: each metadata key is a row chromadb writes and indexes on every add.
    # ``symbols`` is its own (list) key: finding a definition is an indexed lookup.
    ref = [chunk.cell_id, chunk.cell_index, chunk.line_start, chunk.line_end, chunk.title]
    meta: dict[str, Any] = {
        "path": chunk.path,
        "hash": chunk.hash,
        "kind": chunk.kind,
        "ref": json.dumps(ref, separators=(",", ":")),
    }
    if chunk.symbols:
        meta["symbols"] = list(chunk.symbols)
    return meta


def from_metadata(meta: dict[str, Any], text: str) -> Chunk:
    cell_id, cell_index, a, b, title = json.loads(str(meta["ref"]))[:5]
    symbols = tuple(str(s) for s in meta.get("symbols") or ())
    return Chunk(
        str(meta["path"]), str(meta["kind"]), text, cell_id, cell_index, a, b, title, symbols
    )


@dataclass
class FileResult:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0


@dataclass
class Hit:
    chunk: Chunk
    similarity: float | None = None
    exact: list[str] = field(default_factory=list)
    score: float = 0.0


class ModelChanged(Exception):
    """The collection was built by another model: it was dropped and must be rebuilt."""

    def __init__(self, name: str, old: str, roots: list[str]):
        super().__init__(f"{name}: built by {old}")
        self.old = old
        self.roots = roots


class Store:
    """The chromadb client (embedded, or a chroma server) and per-user collections.

    Embedded, each collection comes wrapped with its exact-text index (``lexical.py``,
    a file beside chromadb's folder); with a chroma server, which other servers may
    write too, lookups stay chromadb's own ``$contains``."""

    def __init__(
        self,
        embedder: Embedder,
        path: str | None = None,
        host: str | None = None,
        port: int = 8000,
        ssl: bool = False,
        headers: dict[str, str] | None = None,
    ):
        self.embedder = embedder
        self.path, self.host, self.port, self.ssl = path, host, port, ssl
        self.headers = headers or {}
        self._client: Any = None
        self._collections: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._lexical: Lexical | None = None

    def lexical(self) -> Lexical | None:
        """The exact-text index beside an embedded chromadb (None with a chroma server)."""
        with self._lock:
            if self._lexical is None and not self.host:
                folder = os.path.abspath(self.path or ".")
                self._lexical = Lexical(os.path.join(os.path.dirname(folder), "lexical.sqlite"))
            return self._lexical

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import chromadb
                from chromadb.config import Settings

                settings = Settings(anonymized_telemetry=False, allow_reset=False)
                if self.host:
                    self._client = chromadb.HttpClient(
                        host=self.host,
                        port=self.port,
                        ssl=self.ssl,
                        headers=self.headers,
                        settings=settings,
                    )
                else:
                    self._client = chromadb.PersistentClient(
                        path=self.path or ".", settings=settings
                    )
            return self._client

    def collection(self, user: str, workspace: str, create: bool = True) -> Any:
        """The caller's collection, or None. Raises ModelChanged after dropping a stale one."""
        name = collection_name(user, workspace)
        with self._lock:
            if name in self._collections:
                return self._collections[name]
            function = self.embedder.chroma_function()
            client = self.client()
            col = self._existing(client, name, function)
            model = (col.metadata or {}).get("aiide_model") if col is not None else None
            lexical = self.lexical()
            if col is not None and model != self.embedder.model_id:
                roots = roots_of(col)
                client.delete_collection(name)
                if lexical is not None:
                    lexical.drop(name)
                raise ModelChanged(name, str(model), roots)
            if col is None:
                if not create:
                    return None
                col = client.create_collection(
                    name,
                    embedding_function=function,
                    configuration={"hnsw": HNSW},
                    metadata={
                        "aiide_user": user,
                        "aiide_workspace": workspace,
                        "aiide_model": self.embedder.model_id,
                        "aiide_schema": SCHEMA_VERSION,
                        "aiide_roots": "[]",
                    },
                )
            if lexical is not None:
                col = IndexedCollection.open(col, lexical)
            self._collections[name] = col
            return col

    def _existing(self, client: Any, name: str, function: Any) -> Any:
        try:
            return client.get_collection(name, embedding_function=function)
        except ValueError as e:
            if "conflict" not in str(e).lower():
                raise
        except Exception as e:
            if "does not exist" in str(e) or "NotFound" in type(e).__name__:
                return None
            raise
        # Built with another embedding function: chromadb refuses to open it with ours.
        # Read its metadata without a function to learn the roots, then rebuild.
        return client.get_collection(name)

    def drop(self, user: str, workspace: str) -> bool:
        name = collection_name(user, workspace)
        with self._lock:
            self._collections.pop(name, None)
            lexical = self.lexical()
            if lexical is not None:
                lexical.drop(name)
            try:
                self.client().delete_collection(name)
            except Exception as e:
                if "does not exist" in str(e) or "NotFound" in type(e).__name__:
                    return False
                raise
            return True

    def owners(self, workspace: str) -> list[tuple[str, list[str], str]]:
        """(user, indexed roots, model) of every collection of this workspace."""
        out = []
        for col in self.client().list_collections():
            meta = col.metadata or {}
            if meta.get("aiide_workspace") == workspace and "aiide_user" in meta:
                roots = json.loads(str(meta.get("aiide_roots", "[]")))
                out.append((str(meta["aiide_user"]), roots, str(meta.get("aiide_model"))))
        return out


def roots_of(col: Any) -> list[str]:
    return list(json.loads(str((col.metadata or {}).get("aiide_roots", "[]"))))


def set_roots(col: Any, roots: Iterable[str]) -> None:
    set_metadata(col, aiide_roots=json.dumps(sorted(set(roots))))


def set_metadata(col: Any, **values: Any) -> None:
    meta = {k: v for k, v in (col.metadata or {}).items() if not k.startswith("hnsw:")}
    if any(meta.get(k) != v for k, v in values.items()):
        col.modify(metadata={**meta, **values})


def indexed_paths(col: Any, prefix: str = "") -> dict[str, int]:
    """Chunks per indexed path under ``prefix`` (a folder; "" for all)."""
    counts: dict[str, int] = {}
    offset = 0
    while True:
        got = col.get(include=["metadatas"], limit=PAGE, offset=offset)
        for meta in got["metadatas"]:
            path = str(meta["path"])
            if covers(prefix, path):
                counts[path] = counts.get(path, 0) + 1
        if len(got["ids"]) < PAGE:
            return counts
        offset += PAGE


def covers(root: str, path: str) -> bool:
    return not root or path == root or path.startswith(root.rstrip("/") + "/")


def wanted_ids(path: str, chunks: Sequence[Chunk]) -> dict[str, Chunk]:
    wanted: dict[str, Chunk] = {}
    seen: dict[str, int] = {}
    for chunk in chunks:
        n = seen[chunk.hash] = seen.get(chunk.hash, -1) + 1
        wanted[chunk_id(path, chunk.hash, n)] = chunk
    return wanted


def stored_state(col: Any, paths: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """path -> {chunk id: metadata} as stored now, in one read."""
    where = {"path": paths[0]} if len(paths) == 1 else {"path": {"$in": list(paths)}}
    got = col.get(where=where, include=["metadatas"])
    out: dict[str, dict[str, dict[str, Any]]] = {p: {} for p in paths}
    for cid, meta in zip(got["ids"], got["metadatas"], strict=True):
        out[str(meta["path"])][cid] = meta
    return out


def write_files(
    col: Any,
    files: Sequence[tuple[str, Sequence[Chunk]]],
    embed: Callable[[list[str]], list[list[float]]],
) -> dict[str, FileResult]:
    """Make each file's stored chunks exactly its ``chunks``; embeds only new text.

    One read, one embedding call and at most three writes for the whole group: every
    chromadb write is a transaction (~20 ms here), so writing file by file caps a
    workspace of small files at a few hundred chunks a second. Vectors are computed
    before anything is written, so a model that fails leaves every file as it was.
    """
    stored = stored_state(col, [path for path, _ in files])
    wanted = {path: wanted_ids(path, chunks) for path, chunks in files}
    new = [(p, i) for p, _ in files for i in wanted[p] if i not in stored[p]]
    texts = [wanted[p][i].text for p, i in new]
    vectors = embed(texts) if texts else []
    if new:
        col.upsert(
            ids=[i for _, i in new],
            embeddings=vectors,
            documents=texts,
            metadatas=[to_metadata(wanted[p][i]) for p, i in new],
        )
    moved = [
        (p, i)
        for p, _ in files
        for i in wanted[p]
        if i in stored[p] and stored[p][i] != to_metadata(wanted[p][i])
    ]
    if moved:  # same text at new lines or under a new heading: metadata only, no model
        col.update(
            ids=[i for _, i in moved], metadatas=[to_metadata(wanted[p][i]) for p, i in moved]
        )
    stale = [i for p, _ in files for i in stored[p] if i not in wanted[p]]
    if stale:
        col.delete(ids=stale)
    results = {}
    for path, _ in files:
        added = sum(1 for p, _ in new if p == path)
        updated = sum(1 for p, _ in moved if p == path)
        removed = sum(1 for i in stored[path] if i not in wanted[path])
        results[path] = FileResult(added, updated, removed, len(wanted[path]) - added - updated)
    return results


def write_file(
    col: Any, path: str, chunks: Sequence[Chunk], embed: Callable[[list[str]], list[list[float]]]
) -> FileResult:
    return write_files(col, [(path, chunks)], embed)[path]


def remove_paths(col: Any, paths: Sequence[str]) -> int:
    removed = 0
    for start in range(0, len(paths), 500):
        batch = list(paths[start : start + 500])
        got = col.get(where={"path": {"$in": batch}}, include=[])
        if got["ids"]:
            col.delete(ids=got["ids"])
            removed += len(got["ids"])
    return removed


def move_path(col: Any, old: str, new: str) -> int:
    """A rename keeps its vectors: re-keyed under the new path, nothing re-embedded."""
    got = col.get(where={"path": old}, include=["embeddings", "documents", "metadatas"])
    if not got["ids"]:
        return 0
    ids: list[str] = []
    metas: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for meta in got["metadatas"]:
        n = seen[meta["hash"]] = seen.get(meta["hash"], -1) + 1
        ids.append(chunk_id(new, str(meta["hash"]), n))
        metas.append({**meta, "path": new})
    col.upsert(ids=ids, embeddings=got["embeddings"], documents=got["documents"], metadatas=metas)
    col.delete(ids=[i for i in got["ids"] if i not in set(ids)])
    return len(ids)


def _codey(word: str) -> bool:
    inner_upper = any(c.isupper() for c in word[1:]) and any(c.islower() for c in word)
    return "_" in word or "." in word or any(c.isdigit() for c in word) or inner_upper


def identifiers(query: str) -> list[str]:
    """Query words that look like code (snake_case, CamelCase, dotted, `quoted`)."""
    quoted = _QUOTED.findall(query)
    words = _WORD.findall(_QUOTED.sub(" ", query))
    single = len(query.split()) == 1
    found = quoted + [w for w in words if single or _codey(w)]
    return list(dict.fromkeys(w.strip() for w in found if len(w.strip()) >= 3))


def _stem(word: str) -> str:
    """A prefix that also matches the word's other forms (substring search)."""
    for suffix, keep in (("ing", 4), ("ed", 4), ("es", 4), ("s", 4)):
        if word.endswith(suffix) and len(word) - len(suffix) >= keep:
            return word[: -len(suffix)]
    return word


def keywords(query: str) -> list[str]:
    """The informative plain words of a question, longest first (at most 6)."""
    codey = set(identifiers(query))
    words = [w.lower() for w in _WORD.findall(_QUOTED.sub(" ", query)) if w not in codey]
    kept = {_stem(w) for w in words if len(w) >= 3 and w not in STOPWORDS}
    return sorted(kept, key=lambda w: (-len(w), w))[:6]


def _matches(col: Any, word: str, limit: int) -> dict[str, Any]:
    """Chunks defining ``word`` (an indexed lookup); else those containing it verbatim.

    With the collection's side index (``lexical.py``) both lookups are indexed sqlite
    queries (under a millisecond at 100k chunks) for the ids, then chromadb gives those
    rows; without one (a chroma server), chromadb's metadata filter and ``$contains``
    (~55 ms at 100k chunks, so it runs only for identifiers nothing defines).
    """
    include = ["metadatas", "documents", "embeddings"]
    name = word.rsplit(".", 1)[-1]
    if isinstance(col, IndexedCollection):  # both lookups in the side index, then the rows
        ids = col.defining(name, limit) or col.contains(word, limit)
        if not ids:
            return {"ids": [], "metadatas": [], "documents": [], "embeddings": []}
        return col.get(ids=ids, include=include)  # type: ignore[no-any-return]
    got: dict[str, Any] = col.get(
        where={"symbols": {"$contains": name}}, limit=limit, include=include
    )
    if got["ids"]:
        return got
    return col.get(where_document={"$contains": word}, limit=limit, include=include)  # type: ignore[no-any-return]


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    import numpy as np

    va, vb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    denom = float(np.linalg.norm(va) * np.linalg.norm(vb)) or 1.0
    return float(va @ vb) / denom


#: chromadb's error for a query that reaches a vector segment not yet written to disk.
NOT_ON_DISK_YET = "Nothing found on disk"


def search(col: Any, query_vector: list[float], query: str, k: int) -> list[Hit]:
    """Vector similarity plus a lexical score, merged into one score per chunk.

    Candidates are the nearest vectors plus, through chromadb's full-text index, the
    chunks containing an identifier of the query exactly (the one place where words
    must match: ``normalize_readings`` is not "about" anything). Plain words re-rank
    the candidates by stem in Python: they are common, and a full-text lookup of a
    common word costs tens of milliseconds in a big store. Every candidate has its true
    cosine similarity; the lexical part adds up to ``LEXICAL_WEIGHT``.
    """
    total = col.count()
    if total == 0:
        return []  # nothing indexed (yet): no query of an empty vector index
    try:
        res = col.query(
            query_embeddings=[query_vector],
            n_results=min(max(k * 8, CANDIDATES), total),
            include=["metadatas", "documents", "distances"],
        )
    except Exception as e:
        if NOT_ON_DISK_YET not in str(e):
            raise
        # A collection being filled for the first time (a rebuild after a model change,
        # a first /learn) has its vector segment written to disk in the background; a
        # query in between finds none. Its chunks are still found by their text below.
        res = {"ids": [[]], "metadatas": [[]], "documents": [[]], "distances": [[]]}
    hits: dict[str, Hit] = {}
    for cid, meta, doc, dist in zip(
        res["ids"][0], res["metadatas"][0], res["documents"][0], res["distances"][0], strict=True
    ):
        hits[cid] = Hit(from_metadata(meta, doc), similarity=1.0 - float(dist))
    lexical: dict[str, float] = {}
    codes = identifiers(query)
    for word in codes:
        got = _matches(col, word, LEXICAL_LIMIT)
        rarity = _rarity(total, len(got["ids"]))
        for cid, meta, doc, vector in zip(
            got["ids"], got["metadatas"], got["documents"], got["embeddings"], strict=True
        ):
            hit = hits.get(cid)
            if hit is None:
                hit = hits[cid] = Hit(from_metadata(meta, doc), _cosine(query_vector, vector))
            hit.exact.append(word)
            defines = word.rsplit(".", 1)[-1] in hit.chunk.symbols
            lexical[cid] = lexical.get(cid, 0.0) + (3.0 if defines else 2.0) * rarity
    words = keywords(query)
    lowered = {cid: hit.chunk.text.lower() for cid, hit in hits.items()}
    for word in words:
        having = [cid for cid, text in lowered.items() if word in text]
        rarity = _rarity(len(lowered), len(having))
        for cid in having:
            lexical[cid] = lexical.get(cid, 0.0) + rarity
    possible = 3.0 * len(codes) + len(words) or 1.0
    for cid, hit in hits.items():
        lexical_part = LEXICAL_WEIGHT * lexical.get(cid, 0.0) / possible
        hit.score = round((hit.similarity or 0.0) + lexical_part, 4)
    return sorted(hits.values(), key=lambda h: -h.score)[:k]


def _rarity(total: int, found: int) -> float:
    """An IDF in [0.1, 1]: a word in every candidate says little."""
    return max(math.log((total + 1) / (found + 0.5)) / math.log(total + 1.5), 0.1)
