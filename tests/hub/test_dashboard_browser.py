"""The instructor dashboard in a real Chromium against the real hub of ``harness.py``.

The instructor logs in through the hub's login page, opens the dashboard from the
launcher, sees a student's usage, switches exam mode on (the student's next chat and
agent run are refused with the reason), changes the budget (typed while a refresh lands,
which keeps the field as typed), searches the audit trail and exports CSV; gives one
student a budget of their own from the per-student table and takes it away. A student's
lab has no dashboard, and the server refuses them its API.
"""

from __future__ import annotations

import concurrent.futures
import csv
import io
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from chromium import CHROMIUM, CHROMIUM_ARGS
from optional import require

from .chat import chat as chat_here
from .chat import error_of, text_of
from .harness import BODY, Hub

pytestmark = [pytest.mark.xdist_group("hub"), pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "e2e" / "artifacts"
SCREENSHOTS = ROOT / "docs" / "screenshots"
LOAD_MS = 60_000
EXAM_MESSAGE = "Midterm until 12:00: no assistant."
COURSES_ROUTE = "**/aiide/api/course-admin/courses*"


@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> None:
    """Playwright's sync API runs its own loop, which pytest-jupyter would try to close."""


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> None:
    """No in-process Jupyter server here."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    found = bool(shutil.which(CHROMIUM) or os.access(CHROMIUM, os.X_OK))
    require("chromium", found, f"chromium not found at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # A fresh temporary profile per launch; one context (cookie jar) per user below.
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Session:
    """One user's browser: logged in through the hub's own login form."""

    def __init__(self, browser: Any, hub: Hub, user: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1250})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("pageerror", lambda err: self.errors.append(str(err)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.hub, self.user = hub, user
        self.page.goto(hub.url + "/hub/login", timeout=LOAD_MS)
        self.page.fill("#username_input", user)
        self.page.fill("#password_input", "any password: the dummy authenticator")
        self.page.click("#login_submit")
        self.page.wait_for_url(lambda url: "/hub/login" not in url, timeout=LOAD_MS)

    def open_lab(self) -> None:
        """The user's JupyterLab, once its start-up ``auth/me`` answered."""
        with self.page.expect_response(lambda r: "/aiide/api/auth/me" in r.url, timeout=LOAD_MS):
            self.page.goto(self.hub.user_url(self.user, "/lab"), timeout=LOAD_MS)
        self.page.locator("#jp-main-statusbar").wait_for(timeout=LOAD_MS)

    def palette(self, text: str) -> Any:
        """Opens the command palette and searches; returns the palette (Escape closes it)."""
        page = self.page
        page.locator("body").press("Control+Shift+C")
        box = page.locator(".lm-CommandPalette-input")
        box.wait_for(timeout=LOAD_MS)
        box.fill(text)
        return page.locator(".lm-CommandPalette")

    def close(self, name: str) -> None:
        """Keeps the last view (for a failure) in the artifacts, then closes."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"hub-{name}-last.png"))
        self.context.close()
        assert not self.errors, self.errors


def chat(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """A student's chat from another thread: playwright's sync API keeps a loop running
    in this one, where ``asyncio.run`` refuses to start."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(chat_here, *args, **kwargs).result()


@contextmanager
def instructor_lab(hub: Hub, browser: Any, name: str) -> Iterator[Session]:
    """Alice and bob chatted once (the dashboard has usage to show); ian's lab, open."""
    for student in ("alice", "bob"):
        assert error_of(chat(hub.url, student, hub.login(student), "count me in")) is None
    ian = Session(browser, hub, "ian")
    try:
        ian.open_lab()
        yield ian
    finally:
        ian.close(name)


def _screenshot(page: Any, name: str) -> None:
    """The dashboard from its top, without the file browser and the corner toasts (the
    hub's servers have no model key of their own, which the status notice mentions)."""
    page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click()
    page.add_style_tag(content=".Toastify { display: none !important; }")
    page.locator("#aiide-instructor").evaluate("el => { el.scrollTop = 0; }")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    if os.environ.get("AIIDE_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / f"{name}.png")


def test_the_instructor_runs_the_course_from_the_dashboard(course: Hub, browser: Any) -> None:
    from playwright.sync_api import expect

    hub = course
    with instructor_lab(hub, browser, "instructor") as ian:
        page = ian.page
        # Added once the lab knows ian teaches: in the launcher and the command palette.
        card = page.locator(".jp-LauncherCard", has_text="Instructor Dashboard")
        card.wait_for(timeout=LOAD_MS)
        palette = ian.palette("Instructor Dashboard")
        item = palette.locator(".lm-CommandPalette-item", has_text="Instructor Dashboard")
        expect(item).to_have_count(1)
        page.keyboard.press("Escape")
        card.click()
        panel = page.locator("#aiide-instructor")
        usage = panel.locator(".aiide-Instructor-usage")
        alice_row = usage.locator("table tbody tr", has_text="alice").first
        expect(alice_row).to_be_visible(timeout=LOAD_MS)
        tokens = int(alice_row.locator("td").nth(1).inner_text().replace(",", ""))
        assert tokens > 0
        # The chart stacks the day's tokens by student, each named in the legend.
        legend = usage.locator(".aiide-Instructor-legend li")
        for student in ("alice", "bob"):
            expect(legend.filter(has_text=student)).to_have_count(1)
        assert usage.locator("svg rect").count() >= 2

        # Exam mode on, with a message: the student's next chat and agent run are refused.
        panel.get_by_label("Message students see").fill(EXAM_MESSAGE)
        switch = panel.get_by_role("switch")
        expect(switch).to_have_attribute("aria-checked", "false")
        switch.click()
        expect(panel.get_by_role("switch")).to_have_attribute("aria-checked", "true")
        expect(panel.locator(".aiide-Instructor-exam")).to_have_attribute("data-exam", "on")
        expect(panel.locator(".aiide-Instructor-status")).to_have_text(
            "ds101: Exam mode turned on. (audited)"
        )
        for task in ("chat", "agent"):
            events = chat(hub.url, "alice", hub.login("alice"), "Solve question 1", task=task)
            error = error_of(events)
            assert error is not None, events
            assert (error["code"], error["message"]) == ("exam_mode", f"ds101: {EXAM_MESSAGE}")
            assert text_of(events) == ""

        # The change is in the audit trail under the instructor's name...
        audit = panel.locator(".aiide-Instructor-audit")
        change = audit.locator("tbody tr", has_text="course.changed").first  # newest first
        expect(change).to_contain_text(EXAM_MESSAGE, timeout=LOAD_MS)
        expect(change.locator("td").nth(1)).to_have_text("ian")
        # ...and after a refresh the refusals show under "who hit limits".
        panel.get_by_role("button", name="Refresh").click()
        limits = panel.locator(".aiide-Instructor-limits tbody tr", has_text="alice")
        expect(limits.filter(has_text="exam mode").first).to_be_visible(timeout=LOAD_MS)

        # A budget typed while a refresh is under way survives it, with the focus: the
        # refresh's course list is held back until the typing is done, then let through.
        status = panel.locator(".aiide-Instructor-status")
        expect(status).to_contain_text("Updated", timeout=LOAD_MS)
        held: list[Any] = []

        def hold(route: Any) -> None:
            held.append(route)

        page.route(COURSES_ROUTE, hold)
        panel.get_by_role("button", name="Refresh").click()
        expect(status).to_have_text("Loading…")
        daily = panel.locator("input[name=daily_tokens]")
        daily.fill("50000")
        for _ in range(LOAD_MS // 50):
            if held:
                break
            page.wait_for_timeout(50)  # lets playwright hand over the held request
        assert held, "the refresh did not ask for the courses"
        held[0].continue_()
        page.unroute(COURSES_ROUTE)
        expect(status).to_contain_text("Updated", timeout=LOAD_MS)
        expect(daily).to_have_value("50000")
        expect(daily).to_be_focused()
        # What was kept is what is saved, and it reaches the broker.
        panel.get_by_role("button", name="Save budget").click()
        expect(panel.locator(".aiide-Instructor-status")).to_have_text(
            "ds101: Budget saved. (audited)"
        )
        status, body = hub.request("GET", hub.broker_url + "api/courses/ds101", hub.login("ian"))
        assert status == 200 and body["budget"]["daily_tokens"] == 50000, body

        # Search the audit trail for the budget change: free text, any action.
        search = panel.locator(".aiide-Instructor-search")
        search.locator("input[name=action]").fill("")
        search.locator("input[name=q]").fill("50000")
        search.get_by_role("button", name="Search").click()
        rows = audit.locator("tbody tr")
        expect(rows.first).to_contain_text("course.changed", timeout=LOAD_MS)
        expect(rows.first).to_contain_text('"daily_tokens":50000')
        expect(rows.filter(has_text="model.used")).to_have_count(0)
        _screenshot(page, "instructor-dashboard")

        # CSV export: the file the broker produced.
        with page.expect_download(timeout=LOAD_MS) as download:
            panel.get_by_role("button", name="Export usage (CSV)").click()
        saved = download.value
        assert saved.suggested_filename == "aiide-usage.csv"
        text = Path(saved.path()).read_text()
        rows_csv = list(csv.DictReader(io.StringIO(text)))
        assert any(r["user"] == "alice" and int(r["total_tokens"]) > 0 for r in rows_csv), text

        # Off again from the switch: the student has the assistant back.
        panel.get_by_role("switch").click()
        expect(panel.get_by_role("switch")).to_have_attribute("aria-checked", "false")
        assert error_of(chat(hub.url, "alice", hub.login("alice"), "back again")) is None


def test_a_students_own_budget_from_the_per_student_table(course: Hub, browser: Any) -> None:
    """Set budget in bob's row: a lower budget of his own refuses his next chat naming
    it, while alice chats on; "Use the course's budget" gives him the course's again."""
    from playwright.sync_api import expect

    hub = course
    with instructor_lab(hub, browser, "instructor-student-budget") as ian:
        page = ian.page
        page.locator(".jp-LauncherCard", has_text="Instructor Dashboard").click()
        panel = page.locator("#aiide-instructor")
        bob = panel.locator(".aiide-Instructor-usage table tbody tr", has_text="bob").first
        expect(bob).to_contain_text("course's", timeout=LOAD_MS)
        bob.get_by_role("button", name="Set budget").click()
        expect(panel.locator("input[name=student]")).to_have_value("bob")
        daily = panel.locator("input[name=student_daily_tokens]")
        expect(daily).to_be_focused()
        daily.fill("1")
        panel.get_by_role("button", name="Save for student").click()
        status = panel.locator(".aiide-Instructor-status")
        expect(status).to_have_text("ds101: bob: own budget saved. (audited)")
        expect(bob).to_contain_text("own: 1 tokens a day")
        error = error_of(chat(hub.url, "bob", hub.login("bob"), "one more"))
        assert error is not None and error["code"] == "budget_exceeded", error
        assert "token budget for today (1 tokens) is used up" in error["message"]
        assert error_of(chat(hub.url, "alice", hub.login("alice"), "still fine")) is None
        # The change is in the audit trail, under ian's name.
        change = panel.locator(".aiide-Instructor-audit tbody tr", has_text="student_budgets")
        expect(change.first).to_contain_text(
            '"bob":{"daily_tokens":1,"weekly_tokens":400000}', timeout=LOAD_MS
        )
        expect(change.first.locator("td").nth(1)).to_have_text("ian")

        panel.get_by_role("button", name="Use the course's budget").click()
        expect(status).to_have_text("ds101: bob: back to the course's budget. (audited)")
        expect(bob).to_contain_text("course's")
        assert error_of(chat(hub.url, "bob", hub.login("bob"), "back again")) is None
        hub.request(
            "PATCH", hub.broker_url + "api/courses/ds101", hub.login("ian"),
            {"student_budgets": {"bob": None}},
        )  # fmt: skip


def test_a_students_lab_has_no_dashboard(hub: Hub, browser: Any) -> None:
    from playwright.sync_api import expect

    bob = Session(browser, hub, "bob")
    try:
        bob.open_lab()
        page = bob.page
        page.locator(".jp-LauncherCard").first.wait_for(timeout=LOAD_MS)
        palette = bob.palette("Instructor Dashboard")
        expect(palette.locator(".lm-CommandPalette-emptyMessage")).to_be_visible()
        expect(palette.locator(".lm-CommandPalette-item")).to_have_count(0)
        page.keyboard.press("Escape")
        assert page.locator(".jp-LauncherCard", has_text="Instructor Dashboard").count() == 0
        # It stopped at "who am I": no call to the instructor API from a student's lab.
        assert not [u for u in bob.requests if "/aiide/api/course-admin/" in u]
        assert page.locator("#aiide-instructor").count() == 0
    finally:
        bob.close("student")


def test_the_server_refuses_students_the_instructor_api(hub: Hub) -> None:
    ian, bob = hub.login("ian"), hub.login("bob")
    status, body = hub.request("GET", hub.user_url("ian", "/aiide/api/course-admin/courses"), ian)
    assert status == 200, body
    assert [c["course"] for c in body["courses"]] == ["ds101"]
    assert body["courses"][0]["groups"] == ["students"]
    for kind in ("courses", "usage", "limits", "audit"):
        status, body = hub.request(
            "GET", hub.user_url("bob", f"/aiide/api/course-admin/{kind}"), bob
        )
        assert (status, body["code"]) == (403, "insufficient_scope"), kind
    status, body = hub.request("PATCH", hub.user_url("bob", "/aiide/api/course/ds101"), bob,
                               {"exam": {"enabled": True}})  # fmt: skip
    assert (status, body["code"]) == (403, "insufficient_scope")
    # Straight to the broker with the student's own hub token: refused there too, audited.
    status, body = hub.request("GET", hub.broker_url + "api/courses", bob)
    assert (status, body["code"]) == (403, "forbidden")
    _, audit = hub.request("GET", hub.broker_url + "api/audit?action=courses.read&actor=bob", ian)
    assert audit["events"] and audit["events"][-1]["outcome"] == "forbidden"


@pytest.fixture
def alice_budget(hub: Hub) -> Iterator[Hub]:
    yield hub
    reset = {"student_budgets": {"alice": None}}
    status, body = hub.request(
        "PATCH", hub.broker_url + "api/courses/ds101", hub.login("ian"), reset
    )
    assert status == 200, body


def test_a_student_sees_the_course_budget_is_warned_and_sees_when_it_renews(
    alice_budget: Hub, browser: Any
) -> None:
    """Issue 21, finding 4: the usage panel said "No quota applies to you" and the status
    bar stayed as if nothing applied while the course budget did, even used up."""
    from playwright.sync_api import expect

    hub = alice_budget
    ian, token = hub.login("ian"), hub.login("alice")
    status, reply = hub.request("POST", hub.broker_url + "anthropic/v1/messages", token, BODY)
    assert status == 200, reply
    _, me = hub.request("GET", hub.broker_url + "api/me", token)
    used = int(me["used"]["daily_tokens"])
    assert used > 0
    limit = used * 100 // 85 + 1  # 85 % used: past the first warning, before the second
    change = {"student_budgets": {"alice": {"daily_tokens": limit, "weekly_tokens": PLENTY}}}
    assert hub.request("PATCH", hub.broker_url + "api/courses/ds101", ian, change)[0] == 200

    alice = Session(browser, hub, "alice")
    try:
        alice.open_lab()
        page = alice.page
        item = page.locator("#aiide-assistant-status")
        expect(item).to_contain_text("% quota left", timeout=LOAD_MS)
        assert "quota-low" in (item.get_attribute("data-aiide-status") or "")
        expect(page.get_by_text("of your daily tokens (own budget in ds101)")).to_be_visible(
            timeout=LOAD_MS
        )
        item.click()
        panel = page.locator(".aiide-Usage")
        expect(panel.locator(".aiide-Usage-quotas")).to_contain_text(
            "daily tokens (own budget in ds101)", timeout=LOAD_MS
        )
        expect(panel).not_to_contain_text("No budget or quota applies")
        expect(panel.locator(".aiide-Usage-notice")).to_contain_text("until it renews")
        expect(panel.locator(".aiide-Usage-quotas")).to_contain_text("(in ")

        # Used up: the status bar turns red, the panel says so and when it comes back.
        change = {"student_budgets": {"alice": {"daily_tokens": used, "weekly_tokens": PLENTY}}}
        assert hub.request("PATCH", hub.broker_url + "api/courses/ds101", ian, change)[0] == 200
        panel.get_by_role("button", name="Refresh").click()
        expect(panel.locator(".aiide-Usage-notice-error")).to_contain_text(
            "is used up", timeout=LOAD_MS
        )
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "hub-student-budget.png"))
        alice.open_lab()
        expect(item).to_contain_text("quota used up", timeout=LOAD_MS)
        assert "quota" in (item.get_attribute("data-aiide-status") or "").split()
        error = error_of(chat(hub.url, "alice", token, "one more question"))
        assert error is not None and error["code"] == "budget_exceeded", error
        assert "the next period starts" in error["message"], error
    finally:
        alice.close("student-budget")


PLENTY = 10_000_000
