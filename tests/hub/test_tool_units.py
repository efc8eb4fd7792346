"""Course tool rules without a hub: stricter only, several courses combine strictly."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from aiide_server_ext.hub.course import CourseError, strictest_tools, validate_changes
from aiide_server_ext.hub.singleuser.tools import course_decision


@dataclass(frozen=True)
class FakeTool:
    name: str
    preview: object = None
    executes_code: bool = False


EDIT = FakeTool("insert_cell", preview=object())
RUN = FakeTool("execute_code", executes_code=True)


def test_edits_need_approval_turns_auto_into_approve() -> None:
    assert course_decision({"edits_need_approval": True}, EDIT, "auto", network=False)[0] == (
        "approve"
    )


def test_a_course_never_loosens_the_servers_policy() -> None:
    assert course_decision({"execution": "auto"}, RUN, "approve", network=False)[0] == "approve"


def test_no_network_courses_refuse_code_on_kernels_with_network() -> None:
    action, reason = course_decision({"network": False}, RUN, "auto", network=True)
    assert action == "deny" and "without network" in reason
    assert course_decision({"network": False}, RUN, "auto", network=False)[0] == "auto"


def test_denied_tools_are_refused() -> None:
    assert course_decision({"deny": ["insert_cell"]}, EDIT, "auto", network=False)[0] == "deny"


def test_several_courses_combine_to_the_strictest() -> None:
    combined = strictest_tools(
        [{"network": True, "execution": "approve"}, {"network": False, "execution": "auto",
                                                     "edits_need_approval": True}]
    )  # fmt: skip
    assert combined == {"network": False, "execution": "approve", "edits_need_approval": True}


def test_invalid_tool_rules_are_refused() -> None:
    with pytest.raises(CourseError, match=r"tools\.execution"):
        validate_changes({"tools": {"execution": "sometimes"}})
    with pytest.raises(CourseError, match="unknown fields"):
        validate_changes({"tools": {"shell": True}})
