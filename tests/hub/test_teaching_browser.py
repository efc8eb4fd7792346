"""Issue 21, finding 10, in a real Chromium against the real hub of ``harness.py``.

A student reads the course's announcement and rules at the top of the chat before
anything is refused, asks a question and shares the conversation with the instructor
after confirming; the instructor's dashboard lists the class (a student who never started
included, today's use against the budget), opens the shared conversation read-only and
schedules an exam from it; the student stops sharing and the instructor can no longer
read it."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from .harness import COURSE, IDENTITY_CACHE, Hub
from .test_dashboard_browser import (  # noqa: F401 (fixtures)
    LOAD_MS,
    Session,
    browser,
    jp_asyncio_loop,
    jp_server_cleanup,
)

pytestmark = [pytest.mark.xdist_group("hub"), pytest.mark.browser]

QUESTION = "Why does my merge drop rows?"


@pytest.fixture
def course(hub: Hub) -> Any:
    change = {"announcement": "Lab 3 is due Friday", "rules": "Cite the assistant in answers."}
    status, body = hub.request(
        "PATCH", hub.broker_url + "api/courses/ds101", hub.login("ian"), change
    )
    assert status == 200, body
    yield hub
    reset = {"exam": COURSE["exam"] | {"start": None, "end": None}, "announcement": None,
             "rules": None}  # fmt: skip
    hub.request("PATCH", hub.broker_url + "api/courses/ds101", hub.login("ian"), reset)


def _open_chat(session: Session) -> Any:
    """The chat sidebar, from its tab on the right (a click on an open tab would close it)."""
    page = session.page
    chat = page.locator("#aiide-chat")
    tab = page.locator('.jp-SideBar.jp-mod-right .lm-TabBar-tab[title="AI assistant"]')
    tab.wait_for(timeout=LOAD_MS)
    if not chat.is_visible():
        tab.click()
    chat.locator(".aiide-Composer-input").wait_for(timeout=LOAD_MS)
    return chat


def test_a_student_shares_a_conversation_and_the_instructor_reads_it_with_the_class_list(
    course: Hub,
    browser: Any,  # noqa: F811 (the fixture imported above)
) -> None:
    from playwright.sync_api import expect

    hub = course
    newcomer = "new-" + os.urandom(3).hex()
    assert hub.hub_api("POST", f"/users/{newcomer}")[0] == 201
    assert hub.hub_api("POST", "/groups/students/users", {"users": [newcomer]})[0] == 200
    time.sleep(IDENTITY_CACHE + 0.2)

    alice = Session(browser, hub, "alice")
    ian = Session(browser, hub, "ian")
    try:
        alice.open_lab()
        chat = _open_chat(alice)
        notice = chat.locator(".aiide-CourseNotice")
        # Told before anything is refused: the announcement, the rules, the limits.
        expect(notice.locator(".aiide-CourseNotice-announcement")).to_have_text(
            "Lab 3 is due Friday", timeout=LOAD_MS
        )
        expect(notice.locator(".aiide-CourseNotice-rules")).to_have_text(
            "Rules: Cite the assistant in answers."
        )
        expect(notice.locator(".aiide-CourseNotice-limits")).to_contain_text("tokens a day")
        expect(chat.locator(".aiide-Connection")).to_have_attribute(
            "data-state", "open", timeout=LOAD_MS
        )
        box = chat.locator(".aiide-Composer-input")
        box.fill(QUESTION)
        box.press("Enter")
        share = notice.get_by_role("button", name="Share this conversation with my instructor…")
        expect(share).to_be_visible(timeout=LOAD_MS)
        share.click()
        dialog = alice.page.locator(".jp-Dialog")
        expect(dialog).to_contain_text("able to read this conversation as it is now")
        dialog.locator("input").fill("stuck on q3")
        dialog.get_by_role("button", name="Share").click()
        expect(notice.locator(".aiide-CourseNotice-status")).to_have_text(
            "Shared with your instructor.", timeout=LOAD_MS
        )
        expect(notice.get_by_role("button", name="Stop sharing")).to_be_visible()

        # The instructor: the class list (the newcomer not started) and the shared chat.
        ian.open_lab()
        page = ian.page
        page.locator(".jp-LauncherCard", has_text="Instructor Dashboard").click(timeout=LOAD_MS)
        panel = page.locator("#aiide-instructor")
        roster = panel.locator(".aiide-Instructor-roster")
        expect(roster.locator(f'tr[data-user="{newcomer}"]')).to_contain_text(
            "not started", timeout=LOAD_MS
        )
        budget = COURSE["budget"]["daily_tokens"]
        expect(roster.locator('tr[data-user="alice"]')).to_contain_text(f"/ {budget:,}")
        expect(roster.locator("caption")).to_contain_text("not started")
        shared = panel.locator(".aiide-Instructor-shares li", has_text="alice")
        expect(shared).to_contain_text("stuck on q3")
        shared.get_by_role("button", name="Read").click()
        transcript = panel.locator(".aiide-Instructor-transcript")
        expect(transcript.locator("pre")).to_contain_text(QUESTION, timeout=LOAD_MS)
        expect(transcript).to_contain_text("read-only")
        assert transcript.locator("textarea, input, [contenteditable=true]").count() == 0

        # A scheduled exam from the dashboard: stored, shown, and told to the student.
        panel.locator('input[name="exam-start"]').fill("2030-01-15T09:00")
        panel.locator('input[name="exam-end"]').fill("2030-01-15T11:00")
        panel.get_by_role("button", name="Schedule exam").click()
        expect(panel.locator(".aiide-Instructor-status")).to_contain_text(
            "exam scheduled from", timeout=LOAD_MS
        )
        expect(panel.locator(".aiide-Instructor-scheduleState")).to_contain_text("Exam scheduled")
        status, body = hub.request("GET", hub.broker_url + "api/courses/ds101", hub.login("ian"))
        assert status == 200 and body["exam"]["start"] and not body["exam"]["enabled"], body
        newest = panel.locator(".aiide-Instructor-audit tbody tr").first  # newest first
        expect(newest).to_contain_text("course.changed", timeout=LOAD_MS)
        # The class's models: a model the broker cannot serve is refused, saying why.
        panel.locator('input[name="models"]').fill("mistral-large")
        panel.get_by_role("button", name="Switch the class").click()
        expect(panel.locator(".aiide-Instructor-status")).to_contain_text(
            "ds101 was not changed: the broker cannot serve mistral-large", timeout=LOAD_MS
        )
        _, body = hub.request("GET", hub.broker_url + "api/courses/ds101", hub.login("ian"))
        assert body["models"] == COURSE["models"], body
        ian.page.screenshot(path=str(_artifact("hub-teaching-dashboard.png")), full_page=True)

        # The student stops sharing: the instructor can no longer open it.
        notice.get_by_role("button", name="Stop sharing").click()
        alice.page.locator(".jp-Dialog").get_by_role("button", name="Stop sharing").click()
        expect(notice.locator(".aiide-CourseNotice-status")).to_have_text(
            "No longer shared.", timeout=LOAD_MS
        )
        panel.get_by_role("button", name="Refresh").click()
        expect(panel.locator(".aiide-Instructor-shared")).to_contain_text(
            "No student shares a conversation with you.", timeout=LOAD_MS
        )
    finally:
        alice.close("teaching-student")
        ian.close("teaching-instructor")


def _artifact(name: str) -> Any:
    from .test_dashboard_browser import ARTIFACTS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name
