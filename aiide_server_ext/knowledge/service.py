"""The knowledge service: what the routes, the agent's ``search_knowledge`` tool and the
contents hooks call. Plain Python over asyncio; blocking work goes to threads.

Every entry point takes the caller, and every read and write goes to that caller's
collection for this workspace: there is no code path that queries across users.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import posixpath
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from . import index as ix
from .chunking import ChunkError, Limits, chunk_file
from .embeddings import (
    CountingEmbedder,
    EmbeddingCall,
    EmbeddingError,
    ModelNotReady,
    collect_calls,
)
from .files import PathRefused, Skipped, Workspace
from .jobs import Job, JobQueue

log = logging.getLogger(__name__)
#: Consecutive files failing to embed before a job stops trying (endpoint down).
GIVE_UP_AFTER = 3
#: Files read, embedded and written together by bulk indexing (one transaction each).
GROUP_FILES = 32
#: Seconds between looks at a model installing in the background (an index job waits).
INSTALL_POLL = 1.0
#: Records metered embedding calls: (user, feature, calls). See ``Knowledge._meter``.
Meter = Callable[[str, str, list[EmbeddingCall]], Awaitable[None]]

NOT_INDEXED = (
    "nothing is indexed for you in this workspace yet: type /learn in the chat (or /learn "
    "<folder>), or POST /aiide/api/knowledge/index, then search again"
)


class NotIndexed(LookupError):
    """A person searched before indexing anything (the route answers 409 not_indexed)."""

    code = "not_indexed"


@dataclass
class Owner:
    user: str
    roots: list[str]


class KnowledgeService:
    """Search, index, drop; kept fresh by ``file_saved`` / ``file_renamed`` / ``file_deleted``."""

    def __init__(
        self,
        workspace: Workspace,
        store: ix.Store,
        embedder: CountingEmbedder,
        limits: Limits | None = None,
        on_progress: Callable[[Job], None] | None = None,
        index_on_save: bool = True,
        meter: Meter | None = None,
    ):
        self.workspace = workspace
        self.store = store
        self.embedder = embedder
        self.limits = limits or Limits()
        self.index_on_save = index_on_save
        self.meter = meter
        self.jobs = JobQueue(on_progress=on_progress)
        self._owners: dict[str, Owner] | None = None
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        #: The last Caller seen per user: background jobs (saves) meter to it, groups kept.
        self._callers: dict[str, Any] = {}

    @property
    def workspace_id(self) -> str:
        return self.workspace.root

    # --- the public API -----------------------------------------------------

    async def search(
        self,
        caller: Any,
        query: str,
        k: int = 8,
        obtain_model: bool = False,
        require_index: bool = False,
    ) -> list[dict[str, Any]]:
        """Best chunks of the caller's own index for ``query``, with citations.

        Raises EmbeddingError when the model cannot run (not installed, installing,
        endpoint down). ``obtain_model``: a user asked (the search route), so a missing
        local model starts installing; the agent's context lookups never start it.
        ``require_index``: raise NotIndexed when the caller has indexed nothing here, so
        a person is told what to do rather than shown an empty result (the agent's
        lookups take "nothing" for an answer).
        """
        self._callers[caller.username] = caller
        query = query.strip()
        if obtain_model:
            self._obtain_model()
        if not query:
            return []
        k = max(1, min(int(k), 50))
        col = await self._collection(caller.username, create=False)
        if col is None:
            if require_index:
                raise NotIndexed(NOT_INDEXED)
            return []
        [vector] = await self._metered(
            caller.username, "knowledge-search", self.embedder.embed, [query]
        )
        hits = await asyncio.to_thread(ix.search, col, vector, query, k)
        return [result_dict(hit) for hit in hits]

    async def index(self, caller: Any, path: str = "") -> dict[str, Any]:
        """Start indexing ``path`` (a file or folder; "" is the whole root) for the caller.

        Raises PathRefused for a path outside the root or missing. Returns the job's report.
        """
        self._callers[caller.username] = caller
        api_path = self.workspace.api_path(path)
        self.workspace.check(api_path)
        job = Job(caller.username, api_path, "request")
        return self.jobs.submit(job, self._index_job).as_dict()

    def known_caller(self, user: str) -> Any:
        """The Caller last seen for ``user`` (None before any request of theirs)."""
        return self._callers.get(user)

    def job(self, caller: Any, job_id: str) -> dict[str, Any] | None:
        job = self.jobs.get(job_id)
        return job.as_dict() if job and job.user == caller.username else None

    def list_jobs(self, caller: Any) -> list[dict[str, Any]]:
        return [j.as_dict() for j in self.jobs.of(caller.username)]

    async def wait(self, caller: Any, job_id: str, timeout: float | None = None) -> dict[str, Any]:
        job = self.jobs.get(job_id)
        if job is None or job.user != caller.username:
            raise KeyError(job_id)
        await asyncio.wait_for(job.done.wait(), timeout)
        return job.as_dict()

    async def settle(self, timeout: float = 60.0) -> None:
        """Until background updates (saves, renames) and queued jobs are all done."""

        async def quiet() -> None:
            while self._tasks or self.jobs.active():
                await asyncio.sleep(0.02)

        await asyncio.wait_for(quiet(), timeout)

    async def drop(self, caller: Any) -> bool:
        """Forget the caller's whole index for this workspace."""
        async with self._lock(caller.username, ""):
            dropped = await asyncio.to_thread(self.store.drop, caller.username, self.workspace_id)
            if self._owners is not None:
                self._owners.pop(caller.username, None)
            return dropped

    async def status(self, caller: Any) -> dict[str, Any]:
        problem = getattr(self.embedder.inner, "problem", lambda: None)()
        installer = getattr(self.embedder.inner, "installer", None)
        install = installer.report() if installer is not None else None
        if (
            installer is not None
            and problem
            and install
            and install["state"] in ("installing", "failed")
        ):
            problem = str(installer.not_ready())  # what is happening beats the fix
        out: dict[str, Any] = {
            "model": self.embedder.model_id,
            "model_problem": problem,
            # None when the model is not obtained automatically (another backend, or
            # c.Knowledge.auto_install_model = False); state "installing" with progress.
            "model_install": install,
            "workspace": self.workspace_id,
            "indexed": False,
            "roots": [],
            "chunks": 0,
            "jobs": [j.as_dict() for j in self.jobs.of(caller.username)[-5:]],
        }
        try:
            col = await self._collection(caller.username, create=False)
        except EmbeddingError as e:  # e.g. the endpoint is down: say so, do not fail
            out["model_problem"] = str(e)
            return out
        if col is not None:
            out.update(
                dimension=(col.metadata or {}).get("aiide_dim"),
                indexed=True,
                roots=ix.roots_of(col),
                chunks=await asyncio.to_thread(col.count),
            )
        return out

    # --- freshness (contents manager hooks) ---------------------------------

    def file_saved(self, os_path: str) -> None:
        api = self.workspace.to_api(os_path)
        if api is not None and self.index_on_save:
            self._spawn(self._for_owners(api, "save", self._file_job))

    def file_renamed(self, old: str, new: str) -> None:
        self._spawn(self._for_owners(old, "rename", self._rename_job, new=new))

    def file_deleted(self, path: str) -> None:
        self._spawn(self._for_owners(path, "delete", self._delete_job))

    def file_copied(self, path: str) -> None:
        self._spawn(self._for_owners(path, "save", self._index_job))

    async def check_models(self) -> None:
        """At start: indexes built by another model are rebuilt with the configured one."""
        owners = await self._load_owners()
        stale = [o for o in owners.values() if o.roots]
        for owner in stale:
            with contextlib.suppress(Exception):
                await self._collection(owner.user, create=False)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.jobs.stop()

    # --- internals ----------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _lock(self, user: str, path: str) -> asyncio.Lock:
        return self._locks.setdefault((user, path), asyncio.Lock())

    @contextlib.asynccontextmanager
    async def _locked(self, user: str, paths: list[str]) -> AsyncIterator[None]:
        """A file is written by one job at a time; locks taken in order (no deadlock)."""
        async with contextlib.AsyncExitStack() as stack:
            for path in sorted(set(paths)):
                await stack.enter_async_context(self._lock(user, path))
            yield

    async def _load_owners(self) -> dict[str, Owner]:
        if self._owners is None:
            found = await asyncio.to_thread(self.store.owners, self.workspace_id)
            self._owners = {user: Owner(user, roots) for user, roots, _ in found}
        return self._owners

    async def _for_owners(self, path: str, trigger: str, work: Any, new: str = "") -> None:
        """Queue ``work`` for every user whose index covers ``path``."""
        try:
            owners = await self._load_owners()
        except Exception as e:  # chromadb unavailable: saving must never fail because of us
            log.warning("knowledge: cannot update the index after %s of %s: %s", trigger, path, e)
            return
        for owner in list(owners.values()):
            if not any(ix.covers(root, path) for root in owner.roots):
                continue
            if self.jobs.pending(owner.user, path, trigger):
                continue
            job = Job(owner.user, path, trigger, detail=f"to {new}" if new else "")
            self.jobs.submit(job, work, lane="quick")

    async def _collection(self, user: str, create: bool) -> Any:
        try:
            return await asyncio.to_thread(self.store.collection, user, self.workspace_id, create)
        except ix.ModelChanged as changed:
            # Rebuilt with the configured model, never mixed: same roots, fresh vectors.
            col = await asyncio.to_thread(self.store.collection, user, self.workspace_id, True)
            await asyncio.to_thread(ix.set_roots, col, changed.roots)
            owners = await self._load_owners()
            owners[user] = Owner(user, changed.roots)
            for root in changed.roots:
                job = Job(user, root, "model-change", detail=f"model changed from {changed.old}")
                self.jobs.submit(job, self._index_job)
            return col

    async def _open(self, job: Job) -> Any:
        """The job's collection, or None with the reason (no model: nothing can be indexed).

        While the model installs in the background the job waits for it, saying so in
        its detail (the progress bar shows it), rather than failing a first ``/learn``.
        """
        detail = job.detail
        self._obtain_model()  # indexing needs the model: this is a use
        try:
            while True:
                try:
                    return await self._collection(job.user, create=True)
                except ModelNotReady as e:
                    if e.code != "model_installing":
                        raise
                    job.detail = f"waiting for the embedding model: {e}"
                    self.jobs.progress(job)
                    await asyncio.sleep(INSTALL_POLL)
                finally:
                    if not job.detail.startswith("failed"):
                        job.detail = detail
        except EmbeddingError as e:
            job.detail, job.code = f"failed: {e}", e.code
            log.warning("knowledge: cannot learn %s: %s", job.path or "/", e)
            return None

    def _obtain_model(self) -> None:
        obtain = getattr(self.embedder.inner, "obtain", None)
        if obtain is not None:
            obtain()

    async def _remember_root(self, col: Any, user: str, root: str) -> None:
        roots = ix.roots_of(col)
        if any(ix.covers(r, root) for r in roots):
            return
        roots = [r for r in roots if not ix.covers(root, r)] + [root]
        await asyncio.to_thread(ix.set_roots, col, roots)
        owners = await self._load_owners()
        owners[user] = Owner(user, roots)

    def _embed(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed(texts)

    async def _metered(self, user: str, feature: str, work: Any, *args: Any) -> Any:
        """``work(*args)`` in a thread; the embedding calls it made are metered to ``user``,
        whether it succeeds or fails halfway (the calls that were served are billed)."""
        with collect_calls() as calls:
            try:
                return await asyncio.to_thread(work, *args)
            finally:
                if calls and self.meter is not None:
                    try:
                        await self.meter(user, feature, list(calls))
                    except Exception as e:  # metering never fails the search or the job
                        log.warning("knowledge: usage of %s not recorded: %s", user, e)

    async def _index_job(self, job: Job) -> None:
        col = await self._open(job)
        if col is None:
            return
        try:
            scan = await asyncio.to_thread(self.workspace.scan, job.path)
        except PathRefused as e:  # gone: whatever was indexed there goes too
            removed = await self._remove_under(col, job.user, job.path)
            job.chunks_removed += removed
            job.detail = job.detail or str(e)
            return
        if job.trigger == "request":
            await self._remember_root(col, job.user, job.path)
        job.files_total, job.ignored = len(scan.files), scan.ignored
        for path, reason in scan.skipped:
            job.skip(path, reason)
        for path, reason in scan.errors:
            job.error(path, reason)
        failures, keep = 0, {p for p, _ in scan.errors}
        skipped: list[str] = []  # not attempted: the model kept failing
        files = scan.files
        for start in range(0, len(files), GROUP_FILES):
            if failures >= GIVE_UP_AFTER:
                skipped.extend(files[start:])
                break
            group = files[start : start + GROUP_FILES]
            outcomes = await self._index_group(col, job, group)
            for path in group:
                outcome = outcomes[path]
                failures = (
                    failures + 1
                    if outcome == "model_failed"
                    else (0 if outcome == "indexed" else failures)
                )
                if outcome == "not_attempted":
                    skipped.append(path)
                if outcome not in ("indexed", "skipped"):
                    keep.add(path)
            job.files_done += len(group)
            self.jobs.progress(job)
        if skipped:
            job.error(skipped[0], f"not attempted ({len(skipped)} files): the model keeps failing")
            job.detail, job.code = "failed: the embedding model is unavailable", "model_unavailable"
            keep.update(skipped)
        dim = self.embedder.dimension
        if dim and (col.metadata or {}).get("aiide_dim") != dim:  # recorded with the model
            await asyncio.to_thread(ix.set_metadata, col, aiide_dim=dim)
        present = set(scan.files) | keep
        indexed = await asyncio.to_thread(ix.indexed_paths, col, job.path)
        gone = [p for p in indexed if p not in present]
        if gone:
            job.chunks_removed += await asyncio.to_thread(ix.remove_paths, col, gone)

    def _prepare(self, job: Job, paths: list[str]) -> tuple[list[Any], dict[str, str]]:
        """Read and chunk (in a thread): the files to write, and the others' outcomes."""
        ready, outcomes = [], {}
        for path in paths:
            try:
                ready.append((path, chunk_file(path, self.workspace.read(path), self.limits)))
            except Skipped as e:
                (job.error if e.error else job.skip)(path, str(e))
                outcomes[path] = "broken" if e.error else "skipped"
            except ChunkError as e:
                job.error(path, str(e))
                outcomes[path] = "broken"
        return ready, outcomes

    async def _index_group(self, col: Any, job: Job, paths: list[str]) -> dict[str, str]:
        """Index files together: one embedding call and one write for the group.

        Outcome per path: indexed | skipped (by policy) | broken (old chunks kept) |
        model_failed | not_attempted.
        """
        async with self._locked(job.user, paths):
            ready, outcomes = await asyncio.to_thread(self._prepare, job, paths)
            dropped = [p for p, o in outcomes.items() if o == "skipped"]
            if dropped:  # was indexed, now binary or too large: its chunks go
                job.chunks_removed += await asyncio.to_thread(ix.remove_paths, col, dropped)
            if not ready:
                return outcomes
            try:
                results = await self._metered(
                    job.user, "knowledge-index", ix.write_files, col, ready, self._embed
                )
            except EmbeddingError as e:
                if len(ready) == 1:
                    job.error(ready[0][0], f"embedding failed: {e}")
                    return {**outcomes, ready[0][0]: "model_failed"}
                return {**outcomes, **await self._one_by_one(col, job, ready)}
        for path, result in results.items():
            job.chunks_added += result.added
            job.chunks_updated += result.updated
            job.chunks_removed += result.removed
            job.chunks_unchanged += result.unchanged
            outcomes[path] = "indexed"
        return outcomes

    async def _one_by_one(self, col: Any, job: Job, ready: list[Any]) -> dict[str, str]:
        """After a group failed to embed: which files fail (all of them, when it is down)."""
        outcomes: dict[str, str] = {}
        failures = 0
        for path, chunks in ready:
            if failures >= GIVE_UP_AFTER:
                outcomes[path] = "not_attempted"
                continue
            try:
                r = await self._metered(
                    job.user, "knowledge-index", ix.write_files, col, [(path, chunks)], self._embed
                )
            except EmbeddingError as e:
                job.error(path, f"embedding failed: {e}")
                outcomes[path], failures = "model_failed", failures + 1
                continue
            failures = 0
            outcomes[path] = "indexed"
            job.chunks_added += r[path].added
            job.chunks_updated += r[path].updated
            job.chunks_removed += r[path].removed
            job.chunks_unchanged += r[path].unchanged
        return outcomes

    async def _file_job(self, job: Job) -> None:
        col = await self._open(job)
        if col is None:
            return
        job.files_total = 1
        try:
            scan = await asyncio.to_thread(self.workspace.scan, job.path)
        except PathRefused:
            job.chunks_removed += await self._remove_under(col, job.user, job.path)
            return
        for path, reason in scan.skipped:
            job.skip(path, reason)
            job.chunks_removed += await asyncio.to_thread(ix.remove_paths, col, [path])
        for path, reason in scan.errors:
            job.error(path, reason)
        outcomes = await self._index_group(col, job, scan.files) if scan.files else {}
        if "model_failed" in outcomes.values():
            job.detail, job.code = "failed: the embedding model is unavailable", "model_unavailable"
        job.files_done = 1

    async def _rename_job(self, job: Job) -> None:
        col = await self._open(job)
        if col is None:
            return
        new = job.detail.removeprefix("to ")
        indexed = await asyncio.to_thread(ix.indexed_paths, col, job.path)
        job.files_total = len(indexed)
        for old in indexed:
            target = new + old[len(job.path) :]
            same_name = posixpath.basename(old) == posixpath.basename(target)
            async with self._locked(job.user, [old, target]):
                if same_name:  # a folder moved: the vectors move with it
                    job.chunks_updated += await asyncio.to_thread(ix.move_path, col, old, target)
                else:  # the file's name is part of what its chunks mean
                    job.chunks_removed += await asyncio.to_thread(ix.remove_paths, col, [old])
            if not same_name:
                await self._index_group(col, job, [target])
            job.files_done += 1
        roots = ix.roots_of(col)
        if any(ix.covers(job.path, r) for r in roots):
            moved = [new + r[len(job.path) :] if ix.covers(job.path, r) else r for r in roots]
            await asyncio.to_thread(ix.set_roots, col, moved)
            (await self._load_owners())[job.user] = Owner(job.user, moved)
        # Indexed under the new name if it now falls under a root but was not indexed.
        if not indexed and any(ix.covers(r, new) for r in ix.roots_of(col)):
            await self._file_job(Job(job.user, new, "save"))

    async def _delete_job(self, job: Job) -> None:
        col = await self._open(job)
        if col is None:
            return
        job.chunks_removed += await self._remove_under(col, job.user, job.path)

    async def _remove_under(self, col: Any, user: str, path: str) -> int:
        async with self._lock(user, path):
            indexed = await asyncio.to_thread(ix.indexed_paths, col, path)
            return await asyncio.to_thread(ix.remove_paths, col, list(indexed))


def result_dict(hit: ix.Hit) -> dict[str, Any]:
    """One search result as the routes and the agent's tool return it."""
    c = hit.chunk
    if c.cell_index >= 0:
        where = f"cell {c.cell_index + 1}" + (f" (id {c.cell_id})" if c.cell_id else "")
        if c.line_start > 1:
            where += f", lines {c.line_start}-{c.line_end}"
        citation = f"{c.path}, {where}"
    else:
        citation = f"{c.path}:{c.line_start}-{c.line_end}"
    return {
        "path": c.path,
        "kind": c.kind,
        "cell_id": c.cell_id or None,
        "cell_index": c.cell_index if c.cell_index >= 0 else None,
        "line_start": c.line_start,
        "line_end": c.line_end,
        "title": c.title,
        "score": hit.score,
        "similarity": None if hit.similarity is None else round(hit.similarity, 4),
        "exact_matches": hit.exact,
        "citation": citation,
        "text": c.text if len(c.text) <= 4000 else c.text[:4000] + " …",
    }
