"""Routes of the knowledge index: thin tornado handlers over ``KnowledgeService``.

Search returns file contents, so the routes are authorised as the ``contents``
resource (whoever may not read files may not search them), then admitted by the
gateway under the ``knowledge`` scope and rate class.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..api_handler import AiideAPIHandler
from ..seams import ApiError, Caller
from .embeddings import EmbeddingError, ModelNotReady
from .files import PathRefused
from .service import KnowledgeService, NotIndexed


class KnowledgeHandler(AiideAPIHandler):
    auth_resource = "contents"

    @property
    def service(self) -> KnowledgeService:
        service: KnowledgeService | None = self.settings.get("aiide_knowledge")
        if service is None:
            raise ApiError(404, "not_found", "the knowledge index is turned off")
        return service

    async def admit_knowledge(self) -> Caller:
        return await self.admit("knowledge", scope="knowledge")


class IndexHandler(KnowledgeHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        caller = await self.admit_knowledge()
        self.reply(await self.service.status(caller))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        caller = await self.admit_knowledge()
        body = self.json_body({}, object_only=True)
        path = body.get("path", "")
        if not isinstance(path, str):
            raise ApiError(400, "bad_request", "path must be a string")
        try:
            job = await self.service.index(caller, path)
        except PathRefused as e:
            raise ApiError(400, "path_refused", str(e)) from None
        await self.gate.audit(caller, "knowledge.index", path or "/", "accepted")
        self.reply(job, status=202)

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        caller = await self.admit_knowledge()
        dropped = await self.service.drop(caller)
        await self.gate.audit(caller, "knowledge.drop", "/", "ok")
        self.reply({"dropped": dropped})


class JobsHandler(KnowledgeHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str | None = None) -> None:
        caller = await self.admit_knowledge()
        if not job_id:
            return self.reply({"jobs": self.service.list_jobs(caller)})
        job = self.service.job(caller, job_id)
        if job is None:  # another user's job is as absent as a made-up id
            raise ApiError(404, "not_found", f"no job {job_id}")
        self.reply(job)


def retry_after(install: dict[str, Any]) -> int:
    """Seconds before asking again: soon while installing, at the retry after a failure."""
    if install.get("state") == "failed":
        return max(1, int(install.get("retry_in") or 0))
    return 2


class SearchHandler(KnowledgeHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        caller = await self.admit_knowledge()
        query = self.get_query_argument("q", "")
        try:
            k = int(self.get_query_argument("k", "8"))
        except ValueError:
            raise ApiError(400, "bad_request", "k must be an integer") from None
        try:
            results = await self.service.search(
                caller, query, k, obtain_model=True, require_index=True
            )
        except NotIndexed as e:  # not an empty result: the person is told what to do
            raise ApiError(409, e.code, str(e)) from None
        except ModelNotReady as e:  # installing in the background: the UI shows progress
            headers = {"Retry-After": str(retry_after(e.install))}
            raise ApiError(503, e.code, str(e), headers, install=e.install) from None
        except EmbeddingError as e:
            raise ApiError(503, e.code, str(e)) from None
        self.reply({"query": query, "results": results})


default_handlers = [
    (r"/aiide/api/knowledge/index", IndexHandler),
    (r"/aiide/api/knowledge/jobs", JobsHandler),
    (r"/aiide/api/knowledge/jobs/(?P<job_id>[0-9a-f]+)", JobsHandler),
    (r"/aiide/api/knowledge/search", SearchHandler),
]
