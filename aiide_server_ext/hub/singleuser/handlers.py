"""The course routes of a single-user server: ``/aiide/api/course`` (the caller's
policy), ``/aiide/api/course/<name>`` (instructors) and ``/aiide/api/course-admin/...``
(the instructor dashboard's API), each forwarded to the broker."""

from __future__ import annotations

from typing import Any

from jupyter_server.base.handlers import APIHandler
from tornado import web

from aiide_server_ext.json_api import JsonApi
from aiide_server_ext.seams import GateRefusal, gate_of

from .gate import BrokerClient, CourseGate, CourseModels


class CourseHandler(JsonApi, APIHandler):  # type: ignore[misc]
    """``/aiide/api/course`` (my policy) and ``/aiide/api/course/<name>`` (instructors):
    forwarded to the broker, which checks the instructor again with the hub."""

    auth_resource = "aiide"

    async def _forward(self, method: str, name: str | None) -> None:
        broker: BrokerClient = self.settings["aiide_broker"]
        gate = gate_of(self.settings)
        caller = gate.caller(self)
        if name is not None and not caller.has_scope("course"):
            await gate.audit(caller, "course.refused", f"course:{name}", "forbidden")
            self.set_status(403)
            self.finish(
                {"code": "insufficient_scope", "message": "changing a course needs 'course'"}
            )
            return
        path = "api/me" if name is None else f"api/courses/{name}"
        body = self.request.body if method == "PATCH" else None
        try:
            status, reply = await broker.call(method, path, body)
        except GateRefusal as e:
            status, reply = e.status, e.as_dict()
        if method == "PATCH" and status == 200 and isinstance(gate, CourseGate):
            reply["warnings"] = course_warnings(reply, gate.routers)
        self.set_status(status)
        self.finish(reply)

    @web.authenticated
    async def get(self, name: str | None = None) -> None:
        await self._forward("GET", name)

    @web.authenticated
    async def patch(self, name: str) -> None:
        await self._forward("PATCH", name)


def course_warnings(course: dict[str, Any], routers: list[Any]) -> list[dict[str, str]]:
    """What a course change turns off for its students that the instructor may not
    expect (the change is stored: the broker can serve it), shown with the change."""
    models = CourseModels()
    models.learn(course)
    lacking = models.no_completion(routers)
    return [{"code": lacking[0], "message": lacking[1]}] if lacking else []


class InstructorApiHandler(JsonApi, APIHandler):  # type: ignore[misc]
    """``GET /aiide/api/course-admin/{kind}`` (usage, limits, audit, courses; query passed on): the
    broker's instructor API, same-origin for the dashboard. Needs scope ``course`` here;
    the broker checks the instructor again with the hub."""

    auth_resource = "aiide"

    @web.authenticated
    async def get(self, kind: str) -> None:
        broker: BrokerClient = self.settings["aiide_broker"]
        gate = gate_of(self.settings)
        caller = gate.caller(self)
        if not caller.has_scope("course"):
            await gate.audit(caller, f"{kind}.read", "course-admin", "forbidden")
            self.set_status(403)
            self.finish({"code": "insufficient_scope", "message": "instructors only ('course')"})
            return
        query = self.request.query
        try:
            status, body, ctype = await broker.raw(
                "GET", f"api/{kind}" + (f"?{query}" * bool(query))
            )
        except GateRefusal as e:
            self.set_status(e.status)
            self.finish(e.as_dict())
            return
        self.set_status(status)
        self.set_header("Content-Type", ctype)
        self.finish(body)


def _openapi() -> dict[str, Any]:
    """This extension's routes for ``/aiide/api/openapi.json``."""
    from aiide_server_ext.gateway.openapi import _op, _path_param

    return {
        "/aiide/api/course": {"get": _op("The caller's course policy (from the broker)", 401, 503)},
        "/aiide/api/course/{name}": {
            "parameters": _path_param("name"),
            "get": _op("A course (instructors)", 401, 403, 404, 503),
            "patch": _op(
                "Change a course at run time: exam, budget, models, rate_limits, tools, "
                "student_budgets (a student's own budget; null: the course's) "
                "(instructors; audited)",
                400,
                401,
                403,
                503,
            ),
        },
        "/aiide/api/course-share": {
            "get": _op("The conversations the caller shares with their instructors", 401, 503)
        },
        "/aiide/api/course-share/{ref}": {
            "parameters": _path_param("ref"),
            "post": _op(
                "Share one's own conversation <ref> with one's instructors (a copy, audited; "
                "body {note})",
                401,
                404,
                409,
                413,
                503,
            ),
            "delete": _op("Stop sharing: the share <ref> is deleted (audited)", 401, 403, 404),
        },
        "/aiide/api/course-admin/{kind}": {
            "parameters": _path_param("kind"),
            "get": _op(
                "Instructor API: usage | limits | audit | courses | roster | export | help "
                "| shares | shares/<id> (JSON or ?format=csv)",
                401,
                403,
            ),
        },
    }
