"""Issue 21, finding 10: teaching tools, against the real hub, broker and Redis.

The roster lists every student of the course (one who never started included) with what
they used today of their budget; the export has one row per student and day keyed by the
hub user name; the audit reads newest first; a student shares a conversation when asking
for help (their instructor reads it, another student cannot, stopping sharing ends it, all
audited); a scheduled exam is on exactly within its window; students' own policy carries
the course's announcement and rules."""

from __future__ import annotations

import csv
import datetime
import io
import os
import time
import urllib.request
from collections.abc import Iterator

import pytest

from aiide_server_ext.hub.schedule import iso

from .chat import chat, error_of
from .harness import COURSE, IDENTITY_CACHE, QUIET_STUDENT, Hub

pytestmark = pytest.mark.xdist_group("hub")


@pytest.fixture
def course(hub: Hub) -> Iterator[Hub]:
    yield hub
    reset = {"exam": COURSE["exam"] | {"start": None, "end": None}, "announcement": None,
             "rules": None}  # fmt: skip
    status, body = hub.request(
        "PATCH", hub.broker_url + "api/courses/ds101", hub.login("ian"), reset
    )
    assert status == 200, body


def _today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


def _conversation(hub: Hub, user: str, text: str) -> str:
    events = chat(hub.url, user, hub.login(user), text)
    assert error_of(events) is None, events
    return str(next(e["conversation_id"] for e in events if e["type"] == "run_started"))


def _new_student(hub: Hub) -> str:
    """A student the hub knows who never started (no server, no model call)."""
    name = "new-" + os.urandom(3).hex()
    assert hub.hub_api("POST", f"/users/{name}")[0] == 201
    assert hub.hub_api("POST", "/groups/students/users", {"users": [name]})[0] == 200
    time.sleep(IDENTITY_CACHE + 0.2)  # the broker's list of hub users is cached that long
    return name


def test_the_roster_lists_every_student_with_today_against_the_budget(hub: Hub) -> None:
    quiet_one = _new_student(hub)
    assert error_of(chat(hub.url, "alice", hub.login("alice"), "roster me")) is None
    url = hub.user_url("ian", "/aiide/api/course-admin/roster?course=ds101")
    status, body = hub.request("GET", url, hub.login("ian"))
    assert status == 200, body
    rows = {r["user"]: r for r in body["students"]}
    assert set(rows) >= {"alice", "bob", QUIET_STUDENT, quiet_one} and "ian" not in rows
    quiet = rows[quiet_one]
    assert (quiet["started"], quiet["used_today"], quiet["last_active"]) == (False, 0, None)
    assert rows["alice"]["started"] and rows["alice"]["used_today"] > 0
    assert rows["alice"]["last_active"] == _today()
    assert rows["alice"]["daily_budget"] == COURSE["budget"]["daily_tokens"]
    status, body = hub.request("GET", hub.broker_url + "api/roster", hub.login("bob"))
    assert (status, body["code"]) == (403, "forbidden")


def test_the_export_is_one_row_per_student_and_day_keyed_by_hub_name(hub: Hub) -> None:
    quiet_one = _new_student(hub)
    req = urllib.request.Request(hub.broker_url + "api/export?course=ds101&days=3")
    req.add_header("Authorization", f"token {hub.login('ian')}")
    with urllib.request.urlopen(req, timeout=30) as r:
        kind, disposition = r.headers["Content-Type"], r.headers["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(r.read().decode())))
    assert kind.startswith("text/csv") and "ds101-usage" in disposition
    pairs = [(row["user"], row["day"]) for row in rows]
    assert len(pairs) == len(set(pairs))  # one row per student and day
    days = sorted({d for _, d in pairs})
    assert len(days) == 3 and days[-1] == _today()
    quiet = [row for row in rows if row["user"] == quiet_one]
    assert len(quiet) == 3 and all(row["total_tokens"] == "0" for row in quiet)
    assert next(iter(rows[0])) == "user"
    _, audit = hub.request(
        "GET", hub.broker_url + "api/audit?action=usage.exported&order=newest&limit=1",
        hub.login("ian"),
    )  # fmt: skip
    assert audit["events"][0]["actor"] == "ian"


def test_the_audit_reads_newest_first(hub: Hub) -> None:
    ian = hub.login("ian")
    for _ in range(2):
        hub.request("GET", hub.broker_url + "api/usage?days=1", ian)
    status, body = hub.request(
        "GET", hub.broker_url + "api/audit?order=newest&limit=5", hub.login("adam")
    )
    assert status == 200, body
    ids = [e["id"] for e in body["events"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 5 and body["more"]
    status, older = hub.request(
        "GET",
        hub.broker_url + f"api/audit?order=newest&limit=5&before={body['next_before']}",
        hub.login("adam"),
    )
    assert status == 200 and max(e["id"] for e in older["events"]) < min(ids)
    status, body = hub.request("GET", hub.broker_url + "api/audit?order=sideways", ian)
    assert (status, body["code"]) == (400, "invalid_request")


def test_a_student_shares_a_conversation_the_instructor_reads_it_and_it_can_be_revoked(
    hub: Hub,
) -> None:
    cid = _conversation(hub, "alice", "Why does my merge drop rows?")
    share_url = hub.user_url("alice", f"/aiide/api/course-share/{cid}")
    status, share = hub.request("POST", share_url, hub.login("alice"), {"note": "stuck on q3"})
    assert status == 201, share
    # the instructor lists and reads it, read-only, through their own server
    ian = hub.login("ian")
    status, listed = hub.request("GET", hub.user_url("ian", "/aiide/api/course-admin/shares"), ian)
    assert status == 200 and share["id"] in [s["id"] for s in listed["shares"]], listed
    read_url = hub.user_url("ian", f"/aiide/api/course-admin/shares/{share['id']}")
    status, whole = hub.request("GET", read_url, ian)
    assert status == 200, whole
    assert "Why does my merge drop rows?" in whole["transcript"]
    assert (whole["user"], whole["note"]) == ("alice", "stuck on q3")
    # another student cannot read it or stop it; nobody else's conversation can be shared
    bob = hub.login("bob")
    status, body = hub.request("GET", hub.broker_url + f"api/shares/{share['id']}", bob)
    assert (status, body["code"]) == (403, "forbidden")
    status, body = hub.request("DELETE", hub.broker_url + f"api/shares/{share['id']}", ian)
    assert (status, body["code"]) == (403, "forbidden")
    status, body = hub.request("POST", hub.user_url("bob", f"/aiide/api/course-share/{cid}"), bob)
    assert status == 404, body
    # the student stops sharing: gone for the instructor
    status, _ = hub.request(
        "DELETE", hub.user_url("alice", f"/aiide/api/course-share/{share['id']}"),
        hub.login("alice"),
    )  # fmt: skip
    assert status == 204
    status, body = hub.request("GET", read_url, ian)
    assert (status, body["code"]) == (404, "unknown_share")
    _, audit = hub.request(
        "GET", hub.broker_url + f"api/audit?target=conversation:{cid}", hub.login("adam")
    )
    trail = [(e["actor"], e["action"], e["outcome"]) for e in audit["events"]]
    assert trail == [
        ("alice", "conversation.shared", "ok"),
        ("ian", "conversation.read", "ok"),
        ("bob", "conversation.read", "forbidden"),
        ("ian", "conversation.unshared", "forbidden"),
        ("alice", "conversation.unshared", "ok"),
    ], trail


def _disabled(hub: Hub) -> list[str]:
    status, me = hub.request("GET", hub.broker_url + "api/me", hub.login("alice"))
    assert status == 200, me
    return list(me["exam"]["disabled"])


def test_a_scheduled_exam_is_on_exactly_within_its_window(course: Hub) -> None:
    hub = course
    start = time.time() + 4
    window = {"start": iso(start), "end": iso(start + 8), "disable": ["chat"],
              "message": "Quiz 2 in progress"}  # fmt: skip
    status, body = hub.request(
        "PATCH", hub.user_url("ian", "/aiide/api/course/ds101"), hub.login("ian"), {"exam": window}
    )
    assert status == 200, body
    assert body["exam"]["start"] == iso(start) and not body["exam"]["enabled"]
    start = float(int(start))  # iso() is to the second
    assert time.time() < start and _disabled(hub) == []
    time.sleep(max(0.0, start - time.time()) + 0.3)
    assert _disabled(hub) == ["chat"]
    error = error_of(chat(hub.url, "alice", hub.login("alice"), "during the quiz"))
    assert error is not None and error["code"] == "exam_mode"
    assert "Quiz 2 in progress" in error["message"]
    time.sleep(max(0.0, start + 8 - time.time()) + 0.3)
    assert _disabled(hub) == []
    assert error_of(chat(hub.url, "alice", hub.login("alice"), "after the quiz")) is None


def test_students_get_the_announcement_and_rules_before_any_refusal(course: Hub) -> None:
    hub = course
    change = {"announcement": "Lab 3 is due Friday", "rules": "Cite the assistant."}
    status, body = hub.request(
        "PATCH", hub.broker_url + "api/courses/ds101", hub.login("ian"), change
    )
    assert status == 200, body
    status, me = hub.request("GET", hub.user_url("alice", "/aiide/api/course"), hub.login("alice"))
    assert status == 200, me
    notice = next(n for n in me["notices"] if n["course"] == "ds101")
    assert (notice["announcement"], notice["rules"]) == (
        "Lab 3 is due Friday",
        "Cite the assistant.",
    )
    _, audit = hub.request(
        "GET", hub.broker_url + "api/audit?action=course.changed&order=newest&limit=1",
        hub.login("ian"),
    )  # fmt: skip
    assert audit["events"][0]["detail"]["changes"] == change
