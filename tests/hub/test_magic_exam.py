"""``%ai`` (route class ``magic``) is the chat feature for a course: exam mode and the
course budget refuse it as they refuse the chat (it was admitted as ``chat`` before)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aiide_server_ext.hub.singleuser.gate import CourseGate
from aiide_server_ext.seams import Caller, GateRefusal, OpenGate


class Broker:
    def __init__(self, policy: dict[str, Any]) -> None:
        self.policy = policy
        self.asked: list[str] = []

    async def me(self, feature: str) -> dict[str, Any]:
        self.asked.append(feature)
        return self.policy


def test_exam_mode_on_chat_refuses_the_magic() -> None:
    broker = Broker({"exam": {"disabled": ["chat"], "message": "ds101: exam"}})
    gate = CourseGate(OpenGate(), broker)  # type: ignore[arg-type]
    with pytest.raises(GateRefusal) as e:
        asyncio.run(gate.admit(Caller(username="s1"), "magic", scope="chat"))
    assert (e.value.status, e.value.code) == (403, "exam_mode")
    assert broker.asked == ["chat"]


def test_a_spent_course_budget_refuses_the_magic() -> None:
    refusal = {"code": "budget_exhausted", "message": "the course budget is spent"}
    gate = CourseGate(OpenGate(), Broker({"budget_refusal": refusal}))  # type: ignore[arg-type]
    with pytest.raises(GateRefusal) as e:
        asyncio.run(gate.admit(Caller(username="s1"), "magic", scope="chat"))
    assert (e.value.status, e.value.code) == (429, "budget_exhausted")
