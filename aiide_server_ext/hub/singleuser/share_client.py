"""The student's side of sharing a conversation (``sharing.py`` is the broker's side).

``POST /aiide/api/course-share/<conversation>`` on the student's own server: the server
takes the conversation from the student's own store (only theirs: the agent checks the
owner) as the chat's Markdown export and sends it to the broker with the student's hub
token. Only the student's own browser session can ask (it holds their cookie); nothing
is sent unless they do. ``GET /aiide/api/course-share`` lists what they share;
``DELETE /aiide/api/course-share/<share id>`` stops sharing it.
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.base.handlers import APIHandler
from tornado import web

from aiide_server_ext.json_api import JsonApi
from aiide_server_ext.seams import GateRefusal, gate_of


class CourseShareHandler(JsonApi, APIHandler):  # type: ignore[misc]
    auth_resource = "aiide"

    def _answer(self, status: int, body: Any) -> None:
        self.set_status(status)
        if status == 204:
            self.finish()
            return
        self.finish(body if isinstance(body, dict) else {"result": body})

    async def _broker(self, method: str, path: str, body: bytes | None = None) -> None:
        broker = self.settings["aiide_broker"]
        try:
            status, raw, _ = await broker.raw(method, path, body)
            reply = json.loads(raw) if raw else {}
        except GateRefusal as e:
            status, reply = e.status, e.as_dict()
        except ValueError:
            status, reply = (
                502,
                {"code": "broker_error", "message": "the broker did not answer JSON"},
            )
        self._answer(status, reply)

    def _caller(self) -> Any:
        caller = gate_of(self.settings).caller(self)
        if not caller.has_scope("chat"):
            raise web.HTTPError(403)
        return caller

    @web.authenticated
    async def get(self, ref: str | None = None) -> None:
        self._caller()
        await self._broker("GET", "api/shares")

    @web.authenticated
    async def post(self, ref: str | None = None) -> None:
        from aiide_server_ext.seams import ApiError

        caller = self._caller()
        agent = self.settings.get("aiide_agent")
        if ref is None or agent is None:
            self._answer(404, {"code": "not_found", "message": "name a conversation of yours"})
            return
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            body = None
        note = body.get("note", "") if isinstance(body, dict) else ""
        try:
            summary = agent.get_conversation(caller, ref)
            _, transcript = agent.export_conversation(caller, ref, "markdown")
        except ApiError as e:  # someone else's or an unknown conversation: 404
            self._answer(e.status, {"code": e.code, "message": e.message})
            return
        share = {"conversation": ref, "title": summary.get("title") or "", "note": note,
                 "transcript": transcript}  # fmt: skip
        await self._broker("POST", "api/shares", json.dumps(share).encode())

    @web.authenticated
    async def delete(self, ref: str | None = None) -> None:
        self._caller()
        if ref is None:
            self._answer(404, {"code": "not_found", "message": "name a share of yours"})
            return
        await self._broker("DELETE", f"api/shares/{ref}")


def share_routes(base: str) -> list[Any]:
    root = base.rstrip("/") + "/aiide/api/course-share"
    return [(root, CourseShareHandler), (root + r"/(?P<ref>[\w-]{1,100})", CourseShareHandler)]
