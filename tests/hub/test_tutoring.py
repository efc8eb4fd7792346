"""Assignment-aware help on the real hub (issue 15, part 2): a notebook released by the real
nbgrader, opened by a student whose course puts the assignment in tutor mode.

What the model answers cannot be tested with a fake; what is SENT can: the fake model's
request log shows the system prompt, the hint level and that no hidden test ever left the
student's server. The refusals (edits of solution and locked cells, completion in a
solution cell, chat in an exam's notebook) are the server's, tested as the student meets
them; the instructor's API shows the help used, and its CSV joins nbgrader's grades.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from nbgrader_course import HIDDEN_MARK, MARK_SCHEME, Released, generate

from .chat import chat, error_of
from .harness import IDENTITY_CACHE, Hub

pytestmark = pytest.mark.xdist_group("hub")
STOP = frozenset({"run_finished", "approval_required"})
NOTEBOOK = "ps1/squares.ipynb"
#: The instructor's source version, as if a course had handed it out by mistake.
SOURCE = "ps1/source-copy.ipynb"
#: The module's students (``students``): one who asks throughout, one fresh for levels.
TUTEE, FRESH = "tess-" + os.urandom(3).hex(), "fred-" + os.urandom(3).hex()
HELP = {"mode": "open", "hint_levels": 3, "assignments": [{"name": "ps1", "mode": "tutor"}]}


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Released:
    return generate(tmp_path_factory.mktemp("nbgrader") / "course")


def _help(hub: Hub, value: Any) -> None:
    _change(hub, {"help": value})


def _put(hub: Hub, user: str, path: str, nb: dict[str, Any]) -> None:
    token = hub.login(user)
    folder = path.rsplit("/", 1)[0]
    url = hub.user_url(user, "/api/contents/")
    status, body = hub.request("PUT", url + folder, token, {"type": "directory"})
    assert status in (200, 201), body
    status, body = hub.request("PUT", url + path, token, {"type": "notebook", "content": nb})
    assert status in (200, 201), body


@pytest.fixture(scope="module")
def students(hub: Hub) -> Iterator[tuple[str, str]]:
    """Two students of the course of this module's own (a class's tutoring chats spend
    a day's budget of tokens: alice's and bob's stay for the other tests), with a budget
    of their own large enough for the module; their servers stopped after it."""
    names = (TUTEE, FRESH)
    for name in names:
        assert hub.hub_api("POST", f"/users/{name}")[0] == 201
    assert hub.hub_api("POST", "/groups/students/users", {"users": list(names)})[0] == 200
    time.sleep(IDENTITY_CACHE + 0.2)  # the broker's cached groups of a new user
    big = {"daily_tokens": 10**9, "weekly_tokens": 10**9}
    _change(hub, {"student_budgets": {n: big for n in names}})
    hub.spawn(*names)
    yield names
    _change(hub, {"student_budgets": {n: None for n in names}})
    for name in names:  # gone from the class list the roster tests read
        hub.hub_api("DELETE", f"/users/{name}/server")
    deadline = time.monotonic() + 30
    while names and time.monotonic() < deadline:
        names = tuple(n for n in names if hub.hub_api("DELETE", f"/users/{n}")[0] != 204)
        time.sleep(0.5)


def _change(hub: Hub, change: dict[str, Any]) -> None:
    status, body = hub.request(
        "PATCH", hub.user_url("ian", "/aiide/api/course/ds101"), hub.login("ian"), change
    )
    assert status == 200, body


@pytest.fixture
def tutored(hub: Hub, released: Released, students: tuple[str, str]) -> Iterator[Hub]:
    _help(hub, HELP)
    _put(hub, TUTEE, NOTEBOOK, released.notebook())
    _put(hub, TUTEE, SOURCE, json.loads(released.source.read_text()))
    hub.request("DELETE", hub.fake_url + "/_fake/script", "")
    yield hub
    hub.request("DELETE", hub.fake_url + "/_fake/script", "")
    _help(hub, None)
    for user in (TUTEE, FRESH):  # the next test starts from the released notebook again
        token = hub.login(user)
        for path in (NOTEBOOK, SOURCE, "ps1/broken.ipynb", "ps1"):
            hub.request("DELETE", hub.user_url(user, f"/api/contents/{path}"), token)


def _requests(hub: Hub) -> list[dict[str, Any]]:
    status, body = hub.request("GET", hub.fake_url + "/_fake/requests", "")
    assert status == 200
    return list(body["requests"])


def _sent(hub: Hub) -> str:
    return json.dumps([r["body"] for r in _requests(hub)])


def _agent(hub: Hub, name: str, arguments: dict[str, Any], path: str = NOTEBOOK) -> list[Any]:
    script = [{"tools": [{"name": name, "input": arguments}]}, {"text": "Done."}]
    status, _ = hub.request("POST", hub.fake_url + "/_fake/script", "", script)
    assert status == 200
    context = {"notebook": path, "cell_id": "cell-2"}
    return chat(hub.url, TUTEE, hub.login(TUTEE), "Fill in squares for me", task="agent",
                stop_at=STOP, context=context)  # fmt: skip


def _refused(events: list[dict[str, Any]]) -> dict[str, Any]:
    call = next(e for e in events if e["type"] == "tool_call")
    assert call["decision"] == "deny", events
    result = next(e for e in events if e["type"] == "tool_result")
    assert result["ok"] is False and result["error"]["code"] == "tutor_mode", result
    return dict(result)


def test_the_tutor_refuses_to_fill_the_solution_cell_and_says_why(tutored: Hub) -> None:
    hub = tutored
    events = _agent(hub, "replace_cell", {"path": NOTEBOOK, "cell_id": "cell-2",
                                          "source": "def squares(n):\n    return []"})  # fmt: skip
    result = _refused(events)
    assert "solution cell of ps1" in result["content"] and "tutor mode" in result["content"]
    # A new code cell under it would complete the graded cell just the same.
    events = _agent(hub, "insert_cell", {"path": NOTEBOOK, "after_id": "cell-2",
                                         "source": "squares = lambda n: []"})  # fmt: skip
    assert "no new code cells" in _refused(events)["content"]
    # The file on disk is as nbgrader released it.
    _, model = hub.request(
        "GET", hub.user_url(TUTEE, f"/api/contents/{NOTEBOOK}"), hub.login(TUTEE)
    )
    assert "raise NotImplementedError()" in "".join(model["content"]["cells"][1]["source"])


def test_locked_cells_are_never_edited_even_in_open_mode(tutored: Hub) -> None:
    hub = tutored
    _help(hub, {"mode": "open"})
    events = _agent(hub, "replace_cell", {"path": NOTEBOOK, "cell_id": "cell-3",
                                          "source": "pass  # no tests"})  # fmt: skip
    result = _refused(events)
    assert "locked by the assignment" in result["content"]
    # Rewriting the whole file is refused too (here the student's role already denies
    # file writes; the course's reason is unit-tested).
    events = _agent(hub, "write_file", {"path": NOTEBOOK, "content": "{}"})
    assert next(e for e in events if e["type"] == "tool_call")["decision"] == "deny"


def test_tutor_mode_prompt_and_hints_escalate_per_cell(tutored: Hub, released: Released) -> None:
    hub = tutored
    _put(hub, FRESH, NOTEBOOK, released.notebook())  # a student who has asked nothing yet
    context = {"notebook": NOTEBOOK, "cell_id": "cell-2"}
    levels = []
    for _ in range(4):
        hub.request("DELETE", hub.fake_url + "/_fake/script", "")
        events = chat(hub.url, FRESH, hub.login(FRESH), "How do I do this?", context=context)
        assert error_of(events) is None, events
        (request,) = _requests(hub)
        system = json.dumps(request["body"].get("system"))
        assert "TUTOR MODE" in system and "Never write code that completes" in system
        sent = json.dumps(request["body"]["messages"])
        assert '<tutoring mode=\\"tutor\\" assignment=\\"ps1\\">' in sent
        assert "solution cell (the student's graded answer), squares" in sent
        levels.append(sent.split("Hint level ", 1)[1][:6])
    assert levels == ["1 of 3", "2 of 3", "3 of 3", "3 of 3"]
    # Another cell starts at the first level again.
    hub.request("DELETE", hub.fake_url + "/_fake/script", "")
    chat(hub.url, TUTEE, hub.login(TUTEE), "And this?", context={**context, "cell_id": "cell-5"})
    assert "Hint level 1 of 3" in _sent(hub)
    # Outside the assignment the course's mode (open) applies: no tutoring.
    hub.request("DELETE", hub.fake_url + "/_fake/script", "")
    chat(hub.url, FRESH, hub.login(FRESH), "hi", context={"notebook": "scratch.ipynb"})
    assert "TUTOR MODE" not in _sent(hub)


def test_hidden_tests_never_reach_the_model(tutored: Hub) -> None:
    hub = tutored
    ctx = {"notebook": SOURCE, "cell_id": "cell-3"}
    chat(hub.url, TUTEE, hub.login(TUTEE), "What do the tests check?", context=ctx)
    _agent(hub, "read_cell", {"path": SOURCE, "cell_id": "cell-3"}, path=SOURCE)
    _agent(hub, "read_file", {"path": SOURCE}, path=SOURCE)
    _agent(hub, "list_cells", {"path": SOURCE}, path=SOURCE)
    token = hub.login(TUTEE)
    prefix = "".join(
        json.loads((hub.dir / "home" / TUTEE / SOURCE).read_text())["cells"][2]["source"]
    )
    status, body = hub.request(
        "POST", hub.user_url(TUTEE, "/aiide/api/complete"), token,
        {"path": "scratch.py", "prefix": prefix + "\nprint(", "suffix": ")"},
    )  # fmt: skip
    assert status == 200, body
    sent = _sent(hub)
    assert len(_requests(hub)) >= 5
    assert "assert squares(1) == [1]" in sent  # the visible test is there...
    assert HIDDEN_MARK not in sent and "hidden-sentinel" not in sent  # ...the hidden never
    assert MARK_SCHEME not in sent
    assert "withheld from the assistant: hidden tests" in sent


def test_completion_is_off_in_the_solution_cell_only(tutored: Hub) -> None:
    hub = tutored
    url, token = hub.user_url(TUTEE, "/aiide/api/complete"), hub.login(TUTEE)
    stub = 'def squares(n):\n    """The squares of 1..n."""\n    # YOUR CODE HERE\n    '
    body_in = {"path": NOTEBOOK, "prefix": stub, "suffix": "raise NotImplementedError()"}
    status, body = hub.request("POST", url, token, body_in)
    assert (status, body["code"]) == (403, "tutor_mode"), body
    assert "inline completion is off in solution cells of ps1" in body["message"]
    status, body = hub.request("POST", url, token, {"path": NOTEBOOK, "prefix": "print(squares(",
                                                    "suffix": ")"})  # fmt: skip
    assert status == 200, body
    # The student replaced the stub: the lab names the cell, still the solution cell.
    mine = {"path": NOTEBOOK, "prefix": "def squares(n):\n    return [", "suffix": "]"}
    status, body = hub.request("POST", url, token, {**mine, "cell_id": "cell-2"})
    assert (status, body["code"]) == (403, "tutor_mode"), body
    status, body = hub.request("POST", url, token, {**mine, "cell_id": "cell-6"})
    assert status == 200, body


def test_the_notebooks_metadata_cannot_change_the_mode(tutored: Hub, released: Released) -> None:
    """A student who writes a mode (or turns a cell's nbgrader marks off) in their copy: the
    course on the server decides, the file does not."""
    hub = tutored
    nb = released.notebook()
    nb["metadata"]["aiide"] = {"help_mode": "open", "mode": "open"}
    nb["metadata"]["nbgrader"] = {"help": "open"}
    _put(hub, TUTEE, NOTEBOOK, nb)
    chat(hub.url, TUTEE, hub.login(TUTEE), "answer?", context={"notebook": NOTEBOOK})
    assert "TUTOR MODE" in _sent(hub)
    events = _agent(hub, "replace_cell", {"path": NOTEBOOK, "cell_id": "cell-2", "source": "x"})
    _refused(events)


def test_an_assignment_in_exam_mode_refuses_chat_and_completion(tutored: Hub) -> None:
    hub = tutored
    _help(hub, {"assignments": [{"name": "ps1", "mode": "exam"}]})
    events = chat(hub.url, TUTEE, hub.login(TUTEE), "hi", context={"notebook": NOTEBOOK})
    error = error_of(events)
    assert error is not None and error["code"] == "exam_mode", events
    status, body = hub.request(
        "POST", hub.user_url(TUTEE, "/aiide/api/complete"), hub.login(TUTEE),
        {"path": NOTEBOOK, "prefix": "print(", "suffix": ")"},
    )  # fmt: skip
    assert (status, body["code"]) == (403, "exam_mode"), body
    # Another notebook of the same student is not the exam's.
    events = chat(hub.url, TUTEE, hub.login(TUTEE), "hi", context={"notebook": "notes.ipynb"})
    assert error_of(events) is None, events


def test_a_deadline_switches_the_mode_by_itself(tutored: Hub) -> None:
    hub = tutored
    _help(hub, {"assignments": [{"name": "ps1", "mode": "tutor", "deadline": "2020-01-01T00:00:00Z",
                                 "after_deadline": "open"}]})  # fmt: skip
    chat(hub.url, TUTEE, hub.login(TUTEE), "hi", context={"notebook": NOTEBOOK})
    assert "TUTOR MODE" not in _sent(hub)


def test_the_dashboard_shows_the_help_used_and_exports_a_joinable_csv(tutored: Hub) -> None:
    hub = tutored
    context = {"notebook": NOTEBOOK, "cell_id": "cell-2"}
    for _ in range(2):
        chat(hub.url, TUTEE, hub.login(TUTEE), "hint please", context=context)
    fix = "Fix this error in cell 2, then run the cell again to check"  # the cell action's
    chat(hub.url, TUTEE, hub.login(TUTEE), fix, context=context)
    _help(hub, {"mode": "open", "assignments": [{"name": "ps1", "mode": "open"}]})
    chat(hub.url, TUTEE, hub.login(TUTEE), fix, context=context)  # counted in open mode too
    url = hub.user_url("ian", "/aiide/api/course-admin/help?course=ds101")
    status, body = hub.request("GET", url, hub.login("ian"))
    assert status == 200, body
    assert body["hint_levels"] == 3 and body["assignments"][0]["name"] == "ps1"
    row = next(r for r in body["help"] if r["student_id"] == TUTEE and r["assignment"] == "ps1")
    assert row["help_hints"] >= 2 and row["help_max_hint_level"] >= 2
    assert row["cells"]["squares"] >= 2 and row["help_tokens"] > 0
    assert row["help_fixes"] >= 2
    status, text = hub.request("GET", url + "&format=csv", hub.login("ian"))
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0])[:2] == ["student_id", "assignment"]
    mine = next(r for r in rows if r["student_id"] == TUTEE)
    assert mine["assignment"] == "ps1" and int(mine["help_hints"]) >= 2
    # A student cannot read it; a bad record is refused with the field named.
    own = hub.user_url(TUTEE, "/aiide/api/course-admin/help?course=ds101")
    status, body = hub.request("GET", own, hub.login(TUTEE))
    assert status == 403, body
    bad = [
        ({"kind": "answer"}, "kind must be one of"),
        ([1, 2], "a help record is a JSON object"),
        ({"kind": "hint", "assignment": "x" * 201}, "assignment must be text up to 200"),
        ({"kind": "hint", "cell": 7}, "cell must be text"),
        ({"kind": "tokens", "tokens": -5}, "tokens must be 0.."),
        ({"kind": "tokens", "tokens": True}, "tokens must be 0.."),
    ]
    for record, words in bad:
        status, body = hub.request("POST", hub.broker_url + "api/help", hub.login(TUTEE), record)
        assert status == 400 and words in body["message"], (record, body)
    status, body = hub.request("GET", hub.broker_url + "api/help?course=nope", hub.login("ian"))
    assert (status, body["code"]) == (404, "unknown_course"), body


def test_broken_nbgrader_metadata_is_withheld_locked_and_said(
    tutored: Hub, released: Released
) -> None:
    """A hand-edited notebook whose nbgrader metadata nbgrader would not write: no crash,
    the cell is locked and hidden, and the model is told which cell and why."""
    hub = tutored
    nb = released.notebook()
    nb["cells"][5]["source"] = "print(squares(3))  # broken-sentinel"
    nb["cells"][5]["metadata"]["nbgrader"] = {"grade": "yes", "grade_id": "p"}
    nb["cells"][0]["metadata"]["nbgrader"] = "locked"
    path = "ps1/broken.ipynb"
    _put(hub, TUTEE, path, nb)
    events = chat(hub.url, TUTEE, hub.login(TUTEE), "help", context={"notebook": path})
    assert error_of(events) is None, events
    sent = _sent(hub)
    assert "broken-sentinel" not in sent and "withheld from the assistant: broken nbgrader" in sent
    assert "cell 6: nbgrader.grade is 'yes', not true or false" in sent
    assert "cell 1: its nbgrader metadata is a str, not a mapping" in sent
    events = _agent(hub, "replace_cell", {"path": path, "cell_id": "cell-6", "source": "x"}, path)
    assert "locked by the assignment" in _refused(events)["content"]


def test_ai_magic_in_the_assignments_kernel_is_a_tutor_too(tutored: Hub) -> None:
    """``%ai`` in the kernel of the assignment's notebook: no code answers in tutor mode
    (``--format code`` would fill the cell), and a question gets the tutor's prompt."""
    import asyncio

    from .test_key_out_of_reach import _run

    hub = tutored
    token = hub.login(TUTEE)
    status, session = hub.request(
        "POST", hub.user_url(TUTEE, "/api/sessions"), token,
        {"path": NOTEBOOK, "type": "notebook", "name": "", "kernel": {"name": "aiide-python"}},
    )  # fmt: skip
    assert status == 201, session
    kernel = session["kernel"]["id"]
    try:
        out = asyncio.run(_run(hub, TUTEE, token, kernel, (
            "%load_ext aiide_kernel.magics\n"
            "%ai --format code write squares(n)\n"
        )))  # fmt: skip
        assert "tutor mode" in out and "ask %ai without the code format" in out, out
        hub.request("DELETE", hub.fake_url + "/_fake/script", "")
        out = asyncio.run(_run(hub, TUTEE, token, kernel, "%ai --format text how to square?\n"))
        assert "Hello from the model" in out, out
        (request,) = _requests(hub)
        assert "TUTOR MODE" in json.dumps(request["body"]["system"])
    finally:
        hub.request("DELETE", hub.user_url(TUTEE, f"/api/sessions/{session['id']}"), token)


def _figures(hub: Hub, user: str) -> tuple[int, int]:
    """(the dashboard's help tokens of ``user`` for ps1, the roster's used today of them),
    both as an instructor reads them through their own server."""
    token = hub.login("ian")
    url = hub.user_url("ian", "/aiide/api/course-admin/help?course=ds101")
    status, body = hub.request("GET", url, token)
    assert status == 200, body
    rows = [r for r in body["help"] if r["student_id"] == user and r["assignment"] == "ps1"]
    url = hub.user_url("ian", "/aiide/api/course-admin/roster?course=ds101")
    status, roster = hub.request("GET", url, token)
    assert status == 200, roster
    used = next(r["used_today"] for r in roster["students"] if r["user"] == user)
    return (rows[0]["help_tokens"] if rows else 0), int(used)


def _settled(hub: Hub, user: str, before: tuple[int, int]) -> tuple[int, int]:
    """The figures once both have moved by the same amount, or as they are after 20 s
    (the student's server posts its count in the background after each call)."""
    now, deadline = before, time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _figures(hub, user)
        moved = [a - b for a, b in zip(now, before, strict=True)]
        if moved[0] == moved[1] > 0:
            break
    return now


def test_the_help_tokens_of_a_chat_agree_with_the_brokers_used_today(tutored: Hub) -> None:
    """What the dashboard's "help used" counts for a chat in the assignment's notebook is
    what the broker metered of the same calls (the roster's "used today"): one figure
    for one chat, not two that differ by orders of magnitude. The agent marks its context
    for the prompt cache, so the fake reports most input as cache writes and reads, which
    Anthropic's ``input_tokens`` leaves out: a broker counting only that saw a small
    fraction of what the student's server counted (a hundredth in a browser run)."""
    hub = tutored
    context = {"notebook": NOTEBOOK, "cell_id": "cell-2"}
    before = _figures(hub, TUTEE)
    # An agent run of two model calls (a tool call, then the answer) and a plain chat.
    events = _agent(hub, "list_cells", {"path": NOTEBOOK})
    assert error_of(events) is None, events
    calls = len(_requests(hub))
    hub.request("DELETE", hub.fake_url + "/_fake/script", "")  # and the request log
    events = chat(hub.url, TUTEE, hub.login(TUTEE), "What does range do?", context=context)
    assert error_of(events) is None, events
    calls += len(_requests(hub))
    after = _settled(hub, TUTEE, before)
    help_tokens, used_today = (a - b for a, b in zip(after, before, strict=True))
    assert calls >= 3 and used_today > 0, (calls, before, after)
    assert help_tokens == used_today, (help_tokens, used_today, before, after)
