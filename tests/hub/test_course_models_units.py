"""Issue 21, finding 5 without a hub: the student's server takes the course's models from
the broker. A model configured locally but not allowed in the course (a stale default)
is never offered, picked or asked for, so the broker never refuses the student for it."""

from __future__ import annotations

from aiide_server_ext.agent.router import Router
from aiide_server_ext.hub.singleuser.gate import CourseModels
from aiide_server_ext.seams import Caller

STUDENT = Caller("alice", groups=frozenset({"students"}))
LOCAL = [  # what an older single-user config lists: sonnet first, the course's default
    {"name": "claude-sonnet", "provider": "anthropic", "model": "claude-sonnet-4-5",
     "capabilities": ["chat", "tools"]},
    {"name": "claude-haiku", "provider": "anthropic", "model": "claude-haiku-4-5-20251001",
     "capabilities": ["chat", "tools", "complete"]},
    {"name": "gpt-mini", "provider": "openai", "model": "gpt-4o-mini",
     "capabilities": ["chat", "tools"]},
]  # fmt: skip


def _router(models: CourseModels) -> Router:
    router = Router()
    providers = {"anthropic": {"kind": "anthropic"}, "openai": {"kind": "openai"}}
    router.setup(LOCAL, providers, values=None, allow_user_keys=False)  # type: ignore[arg-type]
    router.model_filter = models.permits
    return router


def test_only_the_courses_models_are_offered_and_picked() -> None:
    models = CourseModels()
    router = _router(models)
    models.learn({"models": ["claude-haiku-4-5", "gpt-4o-mini"]})  # the broker's api/me
    assert [m.name for m in router.available(STUDENT)] == ["claude-haiku", "gpt-mini"]
    assert router.candidates("chat", STUDENT)[0].name == "claude-haiku"  # not sonnet
    # The instructor narrows the list at run time: the next answer from the broker holds.
    models.learn({"models": ["gpt-4o-mini"]})
    assert [m.name for m in router.available(STUDENT)] == ["gpt-mini"]


def test_a_course_without_a_model_list_allows_every_configured_model() -> None:
    models = CourseModels()
    router = _router(models)
    assert len(router.available(STUDENT)) == 3  # not known yet: nothing hidden
    models.learn({"models": []})
    assert len(router.available(STUDENT)) == 3
    models.learn({"code": "broker_unavailable"})  # an answer without models changes nothing
    assert len(router.available(STUDENT)) == 3
