"""Hub roles map like hub groups: a user given the hub role ``instructor`` (JupyterHub
``load_roles``, in no group) teaches the course at the broker and holds the aiide role
``instructor`` in their own server (``role_groups`` on both sides)."""

from __future__ import annotations

import pytest

from .harness import COURSE, ROLE_INSTRUCTOR, Hub

pytestmark = pytest.mark.xdist_group("hub")


def test_a_hub_role_makes_an_instructor_at_the_broker(hub: Hub) -> None:
    token = hub.login(ROLE_INSTRUCTOR)
    _, model = hub.hub_api("GET", f"/users/{ROLE_INSTRUCTOR}")
    assert model["groups"] == [] and "instructor" in model["roles"]  # the role, no group
    status, me = hub.request("GET", hub.broker_url + "api/me", token)
    assert status == 200, me
    assert "instructor" in me["hub_roles"] and me["groups"] == ["instructors"]
    status, body = hub.request(
        "PATCH",
        hub.broker_url + "api/courses/ds101",
        token,
        {"rate_limits": {"model": "999/minute"}},
    )
    assert status == 200, body
    try:
        assert body["rate_limits"] == {"model": "999/minute"}
        status, usage = hub.request("GET", hub.broker_url + "api/usage?days=1", token)
        assert status == 200, usage
        status, audit = hub.request(
            "GET",
            hub.broker_url + f"api/audit?action=course.changed&actor={ROLE_INSTRUCTOR}",
            token,
        )
        assert status == 200 and audit["events"], audit
    finally:
        reset = {"rate_limits": COURSE["rate_limits"]}
        assert hub.request("PATCH", hub.broker_url + "api/courses/ds101", token, reset)[0] == 200


def test_a_student_without_the_role_is_still_refused(hub: Hub) -> None:
    status, me = hub.request("GET", hub.broker_url + "api/me", hub.login("alice"))
    assert (status, me["groups"]) == (200, ["students"])
    assert "instructor" not in me["hub_roles"]
    status, body = hub.request("GET", hub.broker_url + "api/usage", hub.login("alice"))
    assert (status, body["code"]) == (403, "forbidden")


def test_a_hub_role_gives_the_aiide_role_in_the_users_own_server(hub: Hub) -> None:
    hub.spawn(ROLE_INSTRUCTOR)
    token = hub.login(ROLE_INSTRUCTOR)
    status, me = hub.request("GET", hub.user_url(ROLE_INSTRUCTOR, "/aiide/api/auth/me"), token)
    assert status == 200, me
    assert (me["user"], me["via"], me["roles"]) == (ROLE_INSTRUCTOR, "jupyterhub", ["instructor"])
    assert "course" in me["scopes"]
    # …so the course can be changed from their own server (forwarded to the broker).
    status, body = hub.request(
        "GET", hub.user_url(ROLE_INSTRUCTOR, "/aiide/api/course/ds101"), token
    )
    assert status == 200, body
