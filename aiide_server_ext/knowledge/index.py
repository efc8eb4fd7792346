"""The chromadb side: one collection per user and workspace, written incrementally.

Isolation is by collection, never by a metadata filter: a filter selecting 2% of 100k
rows makes a query ~20x slower, and a forgotten filter leaks. Chunk ids are derived
from (path, content hash), so an unchanged chunk keeps its id and its vector; only new
text reaches the model. Everything here blocks: callers run it in a thread.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .chunking import Chunk
from .embeddings import Embedder

SCHEMA_VERSION = 1
PAGE = 5000
# The HNSW brute-force buffer and the flush threshold sized for bulk indexing: fewer,
# larger index rebuilds while a workspace is indexed (measured in benchmarks/knowledge.py).
HNSW = {"space": "cosine", "batch_size": 1000, "sync_threshold": 5000}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_QUOTED = re.compile(r"`([^`]+)`")


def collection_name(user: str, workspace: str) -> str:
    digest = hashlib.sha256(f"{user}\0{workspace}".encode()).hexdigest()[:32]
    return f"aiide-{digest}"


def chunk_id(path: str, text_hash: str, n: int) -> str:
    """Same path and text -> same id (``n`` tells identical chunks of one file apart)."""
    return hashlib.sha256(f"{path}\0{text_hash}\0{n}".encode()).hexdigest()[:32]


def to_metadata(chunk: Chunk) -> dict[str, Any]:
    # Few keys: each metadata key is a row chromadb writes and indexes on every add.
    ref = [chunk.cell_id, chunk.cell_index, chunk.line_start, chunk.line_end, chunk.title,
           list(chunk.symbols)]
    return {"path": chunk.path, "hash": chunk.hash, "kind": chunk.kind,
            "ref": json.dumps(ref, separators=(",", ":"))}


def from_metadata(meta: dict[str, Any], text: str) -> Chunk:
    cell_id, cell_index, a, b, title, symbols = json.loads(str(meta["ref"]))
    return Chunk(str(meta["path"]), str(meta["kind"]), text, cell_id, cell_index, a, b, title,
                 tuple(symbols))


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
    """The chromadb client (embedded, or a chroma server) and per-user collections."""

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

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import chromadb
                from chromadb.config import Settings

                settings = Settings(anonymized_telemetry=False, allow_reset=False)
                if self.host:
                    self._client = chromadb.HttpClient(
                        host=self.host, port=self.port, ssl=self.ssl,
                        headers=self.headers, settings=settings,
                    )
                else:
                    self._client = chromadb.PersistentClient(path=self.path, settings=settings)
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
            if col is not None and model != self.embedder.model_id:
                roots = roots_of(col)
                client.delete_collection(name)
                raise ModelChanged(name, str(model), roots)
            if col is None:
                if not create:
                    return None
                col = client.create_collection(
                    name,
                    embedding_function=function,
                    configuration={"hnsw": HNSW},
                    metadata={"aiide_user": user, "aiide_workspace": workspace,
                              "aiide_model": self.embedder.model_id,
                              "aiide_schema": SCHEMA_VERSION, "aiide_roots": "[]"},
                )
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
    meta = {k: v for k, v in (col.metadata or {}).items() if not k.startswith("hnsw:")}
    meta["aiide_roots"] = json.dumps(sorted(set(roots)))
    col.modify(metadata=meta)


def file_state(col: Any, path: str) -> dict[str, dict[str, Any]]:
    got = col.get(where={"path": path}, include=["metadatas"])
    return dict(zip(got["ids"], got["metadatas"], strict=True))


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


def plan(col: Any, path: str, chunks: Sequence[Chunk]) -> tuple[dict[str, Chunk], dict[str, Any]]:
    """(wanted chunks by id, what is stored for the path now)."""
    wanted: dict[str, Chunk] = {}
    seen: dict[str, int] = {}
    for chunk in chunks:
        n = seen[chunk.hash] = seen.get(chunk.hash, -1) + 1
        wanted[chunk_id(path, chunk.hash, n)] = chunk
    return wanted, file_state(col, path)


def write_file(
    col: Any, path: str, chunks: Sequence[Chunk], embed: Callable[[list[str]], list[list[float]]]
) -> FileResult:
    """Make the stored chunks of ``path`` exactly ``chunks``; embeds only new text.

    Vectors are computed before anything is written, so a model that fails leaves the
    file's previous chunks in place, whole.
    """
    wanted, stored = plan(col, path, chunks)
    new = [i for i in wanted if i not in stored]
    vectors = embed([wanted[i].text for i in new]) if new else []
    result = FileResult(added=len(new))
    if new:
        col.upsert(ids=new, embeddings=vectors, documents=[wanted[i].text for i in new],
                   metadatas=[to_metadata(wanted[i]) for i in new])
    moved = [i for i in wanted if i in stored and stored[i] != to_metadata(wanted[i])]
    if moved:  # same text at new lines or under a new heading: metadata only, no model
        col.update(ids=moved, metadatas=[to_metadata(wanted[i]) for i in moved])
    stale = [i for i in stored if i not in wanted]
    if stale:
        col.delete(ids=stale)
    result.updated, result.removed = len(moved), len(stale)
    result.unchanged = len(wanted) - len(new) - len(moved)
    return result


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
    ids, metas, seen = [], [], {}
    for meta in got["metadatas"]:
        n = seen[meta["hash"]] = seen.get(meta["hash"], -1) + 1
        ids.append(chunk_id(new, str(meta["hash"]), n))
        metas.append({**meta, "path": new})
    col.upsert(ids=ids, embeddings=got["embeddings"], documents=got["documents"],
               metadatas=metas)
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


def search(col: Any, query_vector: list[float], query: str, k: int) -> list[Hit]:
    """Vector similarity and exact identifier matches, merged by reciprocal rank."""
    n = min(max(k * 4, 20), max(col.count(), 1))
    res = col.query(query_embeddings=[query_vector], n_results=n,
                    include=["metadatas", "documents", "distances"])
    hits: dict[str, Hit] = {}
    vector_rank: list[str] = []
    for cid, meta, doc, dist in zip(res["ids"][0], res["metadatas"][0], res["documents"][0],
                                    res["distances"][0], strict=True):
        hits[cid] = Hit(from_metadata(meta, doc), similarity=1.0 - float(dist))
        vector_rank.append(cid)
    lexical: dict[str, float] = {}
    for word in identifiers(query):
        got = col.get(where_document={"$contains": word}, limit=50,
                      include=["metadatas", "documents"])
        for cid, meta, doc in zip(got["ids"], got["metadatas"], got["documents"], strict=True):
            hit = hits.setdefault(cid, Hit(from_metadata(meta, doc)))
            hit.exact.append(word)
            defines = word.rsplit(".", 1)[-1] in hit.chunk.symbols
            lexical[cid] = lexical.get(cid, 0.0) + (2.0 if defines else 1.0)
    lexical_rank = sorted(lexical, key=lambda c: (-lexical[c], vector_rank.index(c)
                                                  if c in vector_rank else len(vector_rank)))
    for ranking in (vector_rank, lexical_rank):
        for rank, cid in enumerate(ranking):
            hits[cid].score += 1.0 / (60 + rank)
    best = 2.0 / 60
    for hit in hits.values():
        hit.score = round(hit.score / best, 4)
    return sorted(hits.values(), key=lambda h: -h.score)[:k]
