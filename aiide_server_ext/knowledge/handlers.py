"""Routes of the knowledge index: thin tornado handlers over ``KnowledgeService``.

Search returns file contents, so the routes are authorised as the ``contents``
resource (whoever may not read files may not search them), then admitted by the
gateway under the ``knowledge`` scope and rate class.
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..seams import Caller, GateRefusal, gate_of
from .embeddings import EmbeddingError, ModelNotReady
from .files import PathRefused
from .service import KnowledgeService


class KnowledgeHandler(APIHandler):  # type: ignore[misc]
    auth_resource = "contents"

    @property
    def service(self) -> KnowledgeService:
        service: KnowledgeService | None = self.settings.get("aiide_knowledge")
        if service is None:
            raise web.HTTPError(404, "the knowledge index is turned off")
        return service

    async def admit(self) -> Caller | None:
        """The caller, or None after answering the gateway's refusal."""
        gate = gate_of(self.settings)
        caller = gate.caller(self)
        try:
            await gate.admit(caller, "knowledge", scope="knowledge")
        except GateRefusal as e:
            self.fail(e.status, e.code, e.message, e.headers)
            return None
        return caller

    def fail(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.set_status(status)
        for name, value in (headers or {}).items():
            self.set_header(name, value)
        self.finish(json.dumps({"code": code, "message": message, **extra}))

    def reply(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(body))


class IndexHandler(KnowledgeHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        caller = await self.admit()
        if caller:
            self.reply(await self.service.status(caller))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        caller = await self.admit()
        if not caller:
            return
        body = self.get_json_body() or {}
        path = body.get("path", "")
        if not isinstance(path, str):
            return self.fail(400, "bad_request", "path must be a string")
        try:
            job = await self.service.index(caller, path)
        except PathRefused as e:
            return self.fail(400, "path_refused", str(e))
        await gate_of(self.settings).audit(caller, "knowledge.index", path or "/", "accepted")
        self.reply(job, status=202)

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        caller = await self.admit()
        if caller:
            dropped = await self.service.drop(caller)
            await gate_of(self.settings).audit(caller, "knowledge.drop", "/", "ok")
            self.reply({"dropped": dropped})


class JobsHandler(KnowledgeHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str | None = None) -> None:
        caller = await self.admit()
        if not caller:
            return
        if not job_id:
            return self.reply({"jobs": self.service.list_jobs(caller)})
        job = self.service.job(caller, job_id)
        if job is None:  # another user's job is as absent as a made-up id
            return self.fail(404, "not_found", f"no job {job_id}")
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
        caller = await self.admit()
        if not caller:
            return
        query = self.get_query_argument("q", "")
        try:
            k = int(self.get_query_argument("k", "8"))
        except ValueError:
            return self.fail(400, "bad_request", "k must be an integer")
        try:
            results = await self.service.search(caller, query, k, obtain_model=True)
        except ModelNotReady as e:  # installing in the background: the UI shows progress
            headers = {"Retry-After": str(retry_after(e.install))}
            return self.fail(503, e.code, str(e), headers, install=e.install)
        except EmbeddingError as e:
            return self.fail(503, e.code, str(e))
        self.reply({"query": query, "results": results})


default_handlers = [
    (r"/aiide/api/knowledge/index", IndexHandler),
    (r"/aiide/api/knowledge/jobs", JobsHandler),
    (r"/aiide/api/knowledge/jobs/(?P<job_id>[0-9a-f]+)", JobsHandler),
    (r"/aiide/api/knowledge/search", SearchHandler),
]
