"""Under JupyterHub the aiide identity comes from the hub: groups map to roles, no second login."""

from __future__ import annotations

import pytest

from .harness import Hub

pytestmark = pytest.mark.xdist_group("hub")


def test_a_student_gets_the_student_role_from_the_hub_group(hub: Hub) -> None:
    status, me = hub.request("GET", hub.user_url("alice", "/aiide/api/auth/me"), hub.login("alice"))
    assert status == 200, me
    assert (me["user"], me["via"], me["groups"], me["roles"]) == (
        "alice",
        "jupyterhub",
        ["students"],
        ["student"],
    )
    assert "course" not in me["scopes"] and "admin" not in me["scopes"]
    assert "chat" in me["scopes"]
    assert me["rate_limits"], "a student's own server still limits them"


def test_an_instructor_gets_the_instructor_role_and_the_course_scope(hub: Hub) -> None:
    status, me = hub.request("GET", hub.user_url("ian", "/aiide/api/auth/me"), hub.login("ian"))
    assert status == 200, me
    assert (me["user"], me["groups"], me["roles"]) == ("ian", ["instructors"], ["instructor"])
    assert "course" in me["scopes"]


def test_the_student_sees_their_course_policy_through_their_server(hub: Hub) -> None:
    status, policy = hub.request(
        "GET", hub.user_url("alice", "/aiide/api/course"), hub.login("alice")
    )
    assert status == 200, policy
    assert policy["courses"] == ["ds101"]
    assert policy["models"] == ["claude-haiku-4-5", "gpt-4o-mini"]
    assert policy["tools"] == {"edits_need_approval": True, "network": False}
