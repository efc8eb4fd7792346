"""Tutoring in a real Chromium against the real hub (issue 15, part 2): the notebook the
real nbgrader released, opened in the student's lab; the student, in the solution cell,
asks the agent to write it. The agent's edit of the solution cell is refused with the
course's reason on the card, the model was told tutor mode and the hint level (the fake
model's request log), no hidden test was sent; the instructor's dashboard shows the help.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from typing import Any

import pytest
from nbgrader_course import HIDDEN_MARK, Released, generate

from .harness import Hub
from .test_dashboard_browser import (  # noqa: F401 (fixtures)
    ARTIFACTS,
    LOAD_MS,
    SCREENSHOTS,
    Session,
    browser,
    jp_asyncio_loop,
    jp_server_cleanup,
)
from .test_teaching_browser import _open_chat
from .test_tutoring import HELP, NOTEBOOK, _help, _put, _requests

pytestmark = [pytest.mark.xdist_group("hub"), pytest.mark.browser]

ASK = "Please write squares for me"
REPLY = "Think about which numbers range(1, n + 1) gives you, then square each."


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Released:
    return generate(tmp_path_factory.mktemp("nbgrader") / "course")


@pytest.fixture
def tutored(hub: Hub, released: Released) -> Any:
    _help(hub, HELP)
    _put(hub, "alice", NOTEBOOK, released.notebook())
    hub.request("DELETE", hub.fake_url + "/_fake/script", "")
    yield hub
    hub.request("DELETE", hub.fake_url + "/_fake/script", "")
    _help(hub, None)


def test_the_student_meets_the_tutor_in_the_released_notebook(
    tutored: Hub,
    browser: Any,  # noqa: F811 (the fixture imported above)
) -> None:
    from playwright.sync_api import expect

    hub = tutored
    edit = {"cell_id": "cell-2", "source": "def squares(n):\n    return []"}
    script = [{"tools": [{"name": "replace_cell", "input": edit}]}, {"text": REPLY}]
    assert hub.request("POST", hub.fake_url + "/_fake/script", "", script)[0] == 200
    alice = Session(browser, hub, "alice")
    ian = Session(browser, hub, "ian")
    try:
        page = alice.page
        with page.expect_response(lambda r: "/aiide/api/auth/me" in r.url, timeout=LOAD_MS):
            page.goto(hub.user_url("alice", f"/lab/tree/{NOTEBOOK}"), timeout=LOAD_MS)
        solution = page.locator(".jp-Notebook .jp-Cell").nth(1)
        expect(solution).to_contain_text("YOUR CODE HERE", timeout=LOAD_MS)
        solution.locator(".cm-content").click()  # the student is in the solution cell
        chat = _open_chat(alice)
        expect(chat.locator(".aiide-Connection")).to_have_attribute(
            "data-state", "open", timeout=LOAD_MS
        )
        box = chat.locator(".aiide-Composer-input")
        box.fill(ASK)
        box.press("Enter")
        # The refusal, with the course's reason, on the call's card; then the model's hint.
        result = chat.locator(".aiide-Call-result").first
        expect(result).to_contain_text("tutor mode", timeout=LOAD_MS)
        expect(result).to_contain_text("solution cell of ps1")
        expect(chat).to_contain_text("range(1, n + 1)", timeout=LOAD_MS)
        # The cell is as nbgrader released it.
        expect(solution).to_contain_text("raise NotImplementedError()")
        page.add_style_tag(content=".Toastify { display: none !important; }")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "tutoring-student.png"))
        if os.environ.get("AIIDE_UPDATE_SCREENSHOTS") == "1":
            shutil.copyfile(
                ARTIFACTS / "tutoring-student.png", SCREENSHOTS / "tutoring-student.png"
            )

        requests = _requests(hub)
        assert requests, "the model was not asked"
        first = requests[0]["body"]
        assert "TUTOR MODE" in json.dumps(first["system"])
        sent = json.dumps(first["messages"])
        # The level depends on what alice asked before in this hub (test_tutoring.py).
        assert re.search(r"Hint level [123] of 3", sent) and "cell-2" in sent
        assert HIDDEN_MARK not in json.dumps([r["body"] for r in requests])

        ian.open_lab()
        ipage = ian.page
        ipage.locator(".jp-LauncherCard", has_text="Instructor Dashboard").click(timeout=LOAD_MS)
        helped = ipage.locator("#aiide-instructor .aiide-Instructor-helpUsed")
        row = helped.locator("tbody tr", has_text="alice")
        expect(row).to_contain_text("ps1", timeout=LOAD_MS)
        expect(row).to_contain_text("squares")
        expect(helped).to_contain_text("ps1 (ps1/*): tutor")
        expect(
            helped.get_by_role("button", name="Export help for the gradebook (CSV)")
        ).to_be_visible()
        # Not test_dashboard_browser's _screenshot: it folds ian's file browser away, which
        # his lab keeps (the workspace) for the dashboard tests after this one.
        ipage.add_style_tag(content=".Toastify { display: none !important; }")
        helped.scroll_into_view_if_needed()
        ipage.screenshot(path=str(ARTIFACTS / "tutoring-dashboard.png"))
    finally:
        alice.close("tutoring-student")
        ian.close("tutoring-instructor")
        # Their labs as other browser tests expect them: the notebook, the chat and the
        # dashboard this test opened would be restored from the saved workspace.
        for user in ("alice", "ian"):
            url = hub.user_url(user, "/lab/api/workspaces/default")
            status, body = hub.request("DELETE", url, hub.login(user))
            assert status in (204, 404), body
