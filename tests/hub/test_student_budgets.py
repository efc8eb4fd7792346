"""Per-student budgets: an instructor gives one student a budget of their own (more or
less than the course's), at run time, audited; only instructors may; bad input is refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .chat import chat, error_of, text_of
from .harness import BODY, COURSE, Hub

pytestmark = pytest.mark.xdist_group("hub")

PLENTY = 10_000_000


@pytest.fixture
def course(hub: Hub) -> Iterator[Hub]:
    yield hub
    reset = {"budget": COURSE["budget"], "student_budgets": {"alice": None, "bob": None}}
    status, body = hub.request(
        "PATCH", hub.broker_url + "api/courses/ds101", hub.login("ian"), reset
    )
    assert status == 200, body
    assert body["student_budgets"] == {} and "student_budgets" not in body["changes"], body


def _patch(hub: Hub, change: Any, user: str = "ian") -> tuple[int, Any]:
    """The change as the dashboard sends it: through the user's own server."""
    return hub.request(
        "PATCH", hub.user_url(user, "/aiide/api/course/ds101"), hub.login(user), change
    )


def _used_today(hub: Hub, user: str) -> int:
    status, me = hub.request("GET", hub.broker_url + "api/me", hub.login(user))
    assert status == 200, me
    return int(me["used"]["daily_tokens"])


def _spend(hub: Hub, user: str) -> None:
    """A model call straight to the broker, so the student has used tokens today."""
    status, reply = hub.request("POST", hub.broker_url + "anthropic/v1/messages",
                                hub.login(user), BODY)  # fmt: skip
    assert status == 200, reply


def test_a_student_with_a_higher_budget_keeps_chatting_while_another_is_refused(
    course: Hub,
) -> None:
    hub = course
    for user in ("alice", "bob"):
        _spend(hub, user)
    status, body = _patch(
        hub,
        {"budget": {"daily_tokens": 1}, "student_budgets": {"alice": {"daily_tokens": PLENTY}}},
    )
    assert status == 200, body
    assert body["budget"]["daily_tokens"] == 1
    assert body["student_budgets"] == {"alice": {"daily_tokens": PLENTY}}

    # The course's budget (1 token) refuses bob; alice's own lets her chat on, twice.
    error = error_of(chat(hub.url, "bob", hub.login("bob"), "over budget"))
    assert error is not None and error["code"] == "budget_exceeded", error
    assert "token budget for today (1 tokens) is used up" in error["message"]
    for text in ("more please", "and more"):
        events = chat(hub.url, "alice", hub.login("alice"), text)
        assert error_of(events) is None, events
        assert text_of(events)
    _, me = hub.request("GET", hub.broker_url + "api/me", hub.login("alice"))
    assert me["budget"] == {"daily_tokens": PLENTY} and me["own_budget"] == ["ds101"]
    assert me["budget_refusal"] is None

    # Back to the course's budget: alice is refused like everyone else, at once.
    status, body = _patch(hub, {"student_budgets": {"alice": None}})
    assert status == 200, body
    assert body["student_budgets"] == {}
    error = error_of(chat(hub.url, "alice", hub.login("alice"), "still there?"))
    assert error is not None and error["code"] == "budget_exceeded", error
    assert "token budget for today (1 tokens) is used up" in error["message"]
    status, reply = hub.request(
        "POST", hub.broker_url + "anthropic/v1/messages", hub.login("alice"), BODY
    )
    assert (status, reply["code"]) == (402, "budget_exceeded")


def test_a_student_with_a_lower_budget_is_refused_earlier_with_their_own_limit(
    course: Hub,
) -> None:
    hub = course
    for user in ("alice", "bob"):
        _spend(hub, user)
    used = _used_today(hub, "bob")
    assert used < COURSE["budget"]["daily_tokens"]  # the course's budget would admit him
    status, body = hub.request(
        "PATCH", hub.broker_url + "api/courses/ds101", hub.login("ian"),
        {"student_budgets": {"bob": {"daily_tokens": used, "weekly_tokens": PLENTY}}},
    )  # fmt: skip
    assert status == 200, body

    error = error_of(chat(hub.url, "bob", hub.login("bob"), "one more"))
    assert error is not None and error["code"] == "budget_exceeded", error
    assert f"token budget for today ({used} tokens) is used up" in error["message"]
    status, reply = hub.request(
        "POST", hub.broker_url + "anthropic/v1/messages", hub.login("bob"), BODY
    )
    assert (status, reply["code"]) == (402, "budget_exceeded")
    assert f"({used} tokens)" in reply["message"]
    # alice has the course's budget and goes on.
    assert error_of(chat(hub.url, "alice", hub.login("alice"), "fine")) is None
    # The instructor sees it; the limit hit is counted for bob.
    status, shown = hub.request("GET", hub.broker_url + "api/courses/ds101", hub.login("ian"))
    assert status == 200
    assert shown["student_budgets"] == {"bob": {"daily_tokens": used, "weekly_tokens": PLENTY}}
    assert shown["budget"] == COURSE["budget"]
    _, listed = hub.request("GET", hub.broker_url + "api/courses", hub.login("ian"))
    assert listed["courses"][0]["student_budgets"] == shown["student_budgets"]


def test_an_empty_budget_of_their_own_is_no_limit(course: Hub) -> None:
    hub = course
    _spend(hub, "bob")
    status, _ = _patch(hub, {"budget": {"daily_tokens": 1}, "student_budgets": {"bob": {}}})
    assert status == 200
    assert error_of(chat(hub.url, "bob", hub.login("bob"), "no limit for me")) is None
    _, me = hub.request("GET", hub.broker_url + "api/me", hub.login("bob"))
    assert (me["budget"], me["remaining"]) == ({}, {})


def test_only_instructors_of_the_course_may_give_a_student_a_budget(course: Hub) -> None:
    hub = course
    change = {"student_budgets": {"alice": {"daily_tokens": PLENTY}}}
    status, body = hub.request(
        "PATCH", hub.broker_url + "api/courses/ds101", hub.login("alice"), change
    )
    assert (status, body["code"]) == (403, "forbidden"), body
    status, body = _patch(hub, change, user="alice")  # through her own server
    assert (status, body["code"]) == (403, "insufficient_scope"), body
    _, shown = hub.request("GET", hub.broker_url + "api/courses/ds101", hub.login("ian"))
    assert shown["student_budgets"] == {}
    _, audit = hub.request(
        "GET", hub.broker_url + "api/audit?action=course.refused&actor=alice&outcome=forbidden",
        hub.login("ian"),
    )  # fmt: skip
    assert audit["events"] and audit["events"][-1]["target"] == "course:ds101"


@pytest.mark.parametrize(
    "change",
    [
        {"student_budgets": {"alice": {"daily_tokens": -5}}},
        {"student_budgets": {"alice": {"daily_tokens": 5, "hourly_tokens": 1}}},
        {"student_budgets": {"alice": {"daily_tokens": "lots"}}},
        {"student_budgets": {"alice": 5}},
        {"student_budgets": {"a" * 256: {"daily_tokens": 5}}},
        {"student_budgets": {"alice bob": {"daily_tokens": 5}}},
        {"student_budgets": ["alice"]},
        {"student_budget": {"alice": {"daily_tokens": 5}}},
    ],
)
def test_bad_student_budgets_are_refused_and_change_nothing(course: Hub, change: Any) -> None:
    hub = course
    status, body = hub.request(
        "PATCH", hub.broker_url + "api/courses/ds101", hub.login("ian"), change
    )
    assert (status, body["code"]) == (400, "invalid_change"), body
    _, shown = hub.request("GET", hub.broker_url + "api/courses/ds101", hub.login("ian"))
    assert shown["student_budgets"] == {}


def test_every_student_budget_change_is_audited_with_who_and_what(course: Hub) -> None:
    hub = course
    ian = hub.login("ian")
    give = {"student_budgets": {"bob": {"daily_tokens": 123456}}}
    assert _patch(hub, give)[0] == 200
    take = {"student_budgets": {"bob": None}}
    assert _patch(hub, take)[0] == 200
    status, audit = hub.request(
        "GET", hub.broker_url + "api/audit?action=course.changed&q=123456", ian
    )
    assert status == 200, audit
    gave, took = audit["events"][-2:]
    assert (gave["actor"], gave["target"], gave["outcome"]) == ("ian", "course:ds101", "applied")
    assert gave["detail"] == {"changes": give, "before": {"student_budgets": {"bob": None}}}
    assert took["actor"] == "ian"
    assert took["detail"] == {
        "changes": take,
        "before": {"student_budgets": {"bob": {"daily_tokens": 123456}}},
    }


def test_a_students_budget_changed_at_one_broker_holds_at_the_other_on_the_next_call(
    course: Hub,
) -> None:
    hub = course
    if hub.broker2 is None:
        hub.start_broker2()
    token, ian = hub.login("bob"), hub.login("ian")
    _spend(hub, "bob")  # broker 1 has the course changes cached now
    used = _used_today(hub, "bob")
    change = {"student_budgets": {"bob": {"daily_tokens": used}}}
    status, _ = hub.request("PATCH", hub.broker2_url + "api/courses/ds101", ian, change)
    assert status == 200, hub.log("broker2")[-3000:]
    status, reply = hub.request("POST", hub.broker_url + "anthropic/v1/messages", token, BODY)
    assert (status, reply["code"]) == (402, "budget_exceeded"), reply
    assert f"({used} tokens)" in reply["message"]
    status, _ = hub.request(
        "PATCH", hub.broker_url + "api/courses/ds101", ian, {"student_budgets": {"bob": None}}
    )
    assert status == 200
    status, reply = hub.request("POST", hub.broker2_url + "anthropic/v1/messages", token, BODY)
    assert status == 200, reply


def _fake_requests(hub: Hub) -> list[dict[str, Any]]:
    import json
    import urllib.request

    with urllib.request.urlopen(hub.fake_url + "/_fake/requests", timeout=10) as r:
        return list(json.loads(r.read())["requests"])


def test_the_last_call_cannot_pass_the_budget(course: Hub) -> None:
    """Issue 21, finding 4: 1,501 of 1,500. The broker lowers the request's answer limit to
    what is left of the budget before calling, and refuses a request whose input alone
    would not fit; whatever the provider answers then, the budget holds."""
    hub = course
    token = hub.login("bob")
    _spend(hub, "bob")
    used = _used_today(hub, "bob")
    limit = used + 60
    status, _ = _patch(hub, {"student_budgets": {"bob": {"daily_tokens": limit}}})
    assert status == 200
    asked = {**BODY, "max_tokens": 1000}
    status, reply = hub.request("POST", hub.broker_url + "anthropic/v1/messages", token, asked)
    assert status == 200, reply
    sent = _fake_requests(hub)[-1]["body"]
    assert sent["messages"] == BODY["messages"]
    assert 1 <= sent["max_tokens"] < 60, sent  # what was left, less the input's estimate
    assert _used_today(hub, "bob") <= limit

    big = {**BODY, "messages": [{"role": "user", "content": "x" * 2000}]}
    status, reply = hub.request("POST", hub.broker_url + "anthropic/v1/messages", token, big)
    assert (status, reply["code"]) == (402, "budget_exceeded"), reply
    assert "not enough for this request" in reply["message"] or "is used up" in reply["message"]
    assert _used_today(hub, "bob") <= limit  # the refused call's reservation was given back
