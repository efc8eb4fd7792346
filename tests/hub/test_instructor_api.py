"""The broker's instructor API: usage per student and day, limits, audit search, CSV.

Instructors only; every read is audited."""

from __future__ import annotations

import csv
import datetime
import io
import urllib.request
from collections.abc import Iterator

import pytest

from .chat import chat, error_of
from .harness import COURSE, Hub

pytestmark = pytest.mark.xdist_group("hub")


@pytest.fixture
def api(hub: Hub) -> Iterator[Hub]:
    yield hub
    status, _ = hub.request(
        "PATCH",
        hub.broker_url + "api/courses/ds101",
        hub.login("ian"),
        {"budget": COURSE["budget"]},
    )
    assert status == 200


def _today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


def _csv(hub: Hub, path: str) -> tuple[str, list[dict[str, str]]]:
    req = urllib.request.Request(hub.broker_url + path)
    req.add_header("Authorization", f"token {hub.login('ian')}")
    with urllib.request.urlopen(req, timeout=30) as r:
        kind, text = r.headers["Content-Type"], r.read().decode()
    return kind, list(csv.DictReader(io.StringIO(text)))


def test_usage_per_student_and_day_for_the_instructor(api: Hub) -> None:
    hub = api
    assert error_of(chat(hub.url, "alice", hub.login("alice"), "count me")) is None
    status, body = hub.request("GET", hub.broker_url + "api/usage?days=2", hub.login("ian"))
    assert status == 200, body
    row = next(r for r in body["usage"] if (r["user"], r["day"]) == ("alice", _today()))
    assert row["calls"] >= 1 and row["output_tokens"] > 0
    assert row["total_tokens"] == row["input_tokens"] + row["output_tokens"]
    kind, rows = _csv(hub, "api/usage?days=2&user=alice&format=csv")
    assert kind.startswith("text/csv")
    assert {r["user"] for r in rows} == {"alice"}
    assert int(next(r for r in rows if r["day"] == _today())["calls"]) == row["calls"]
    reads = hub.request("GET", hub.broker_url + "api/audit?action=usage.read", hub.login("ian"))
    assert reads[1]["events"][-1]["actor"] == "ian"


def test_students_cannot_read_usage_and_trying_is_audited(api: Hub) -> None:
    hub = api
    for path in ("api/usage", "api/limits", "api/audit"):
        status, body = hub.request("GET", hub.broker_url + path, hub.login("bob"))
        assert (status, body["code"]) == (403, "forbidden"), path
    _, audit = hub.request(
        "GET", hub.broker_url + "api/audit?actor=bob&outcome=forbidden", hub.login("ian")
    )
    assert {e["action"] for e in audit["events"]} >= {"usage.read", "limits.read", "audit.read"}


def test_who_hit_a_limit_and_the_budget_change_behind_it(api: Hub) -> None:
    hub = api
    ian = hub.login("ian")
    assert error_of(chat(hub.url, "bob", hub.login("bob"), "use some")) is None
    status, _ = hub.request(
        "PATCH",
        hub.user_url("ian", "/aiide/api/course/ds101"),
        ian,
        {"budget": {"daily_tokens": 1}},
    )
    assert status == 200
    error = error_of(chat(hub.url, "bob", hub.login("bob"), "over budget"))
    assert error is not None and error["code"] == "budget_exceeded"
    status, body = hub.request("GET", hub.broker_url + "api/limits?days=1", ian)
    assert status == 200, body
    assert any(
        (r["user"], r["code"], r["day"]) == ("bob", "budget_exceeded", _today())
        for r in body["limits"]
    ), body
    # The budget change is found by searching the audit trail.
    status, found = hub.request(
        "GET", hub.broker_url + "api/audit?action=course.changed&q=daily_tokens&since="
        + _today(), ian,
    )  # fmt: skip
    assert status == 200
    change = found["events"][-1]
    assert (change["actor"], change["detail"]["changes"]) == (
        "ian",
        {"budget": {"daily_tokens": 1}},
    )
    _, rows = _csv(hub, "api/audit?action=course.changed&target=ds101&format=csv")
    assert rows and rows[-1]["actor"] == "ian" and '"daily_tokens": 1' in rows[-1]["detail"]


def test_bad_day_ranges_are_refused(api: Hub) -> None:
    status, body = api.request("GET", api.broker_url + "api/usage?days=400", api.login("ian"))
    assert (status, body["code"]) == (400, "invalid_request")


def test_the_dashboard_reaches_the_api_through_the_instructors_own_server(api: Hub) -> None:
    hub = api
    url = hub.user_url("ian", "/aiide/api/course-admin/limits?days=1")
    status, body = hub.request("GET", url, hub.login("ian"))
    assert status == 200 and "limits" in body, body
    status, body = hub.request(
        "GET", hub.user_url("alice", "/aiide/api/course-admin/usage"), hub.login("alice")
    )
    assert (status, body["code"]) == (403, "insufficient_scope")
    _, doc = hub.request(
        "GET", hub.user_url("alice", "/aiide/api/openapi.json"), hub.login("alice")
    )
    assert {"/aiide/api/course/{name}", "/aiide/api/course-admin/{kind}"} <= set(doc["paths"])
