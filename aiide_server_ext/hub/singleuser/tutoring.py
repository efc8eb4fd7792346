"""Assignment-aware help in a student's server: the course's help mode, enforced here.

The mode of a notebook (open, tutor, exam) comes from the course policy the broker sends
(``api/me``'s ``help``, per course and assignment, deadlines applied by the clock), never
from the notebook file: a student can edit its metadata, not the course. The notebook's
cells are read for what they are (``assignments.py``: nbgrader's marks and the course's).

``TutorGuard`` is installed on the agent's notebook bridge and completer (their one
``guard`` seam each) and asked by the course tool policy:

- every notebook or file a model reads has its hidden tests, mark schemes,
  instructor-only cells and cells with broken nbgrader metadata withheld, in every mode;
- locked cells (and tests, and broken ones) are never edited by the agent, in any mode;
- in tutor mode: no agent edit of a solution cell nor new code cells in the notebook,
  inline completion refused in a solution cell or region, and the system prompt asks for
  hints, explanations and leading questions; each question about a cell is a hint whose
  level the broker counts (``POST api/help``), so asking again gets the next level;
- in exam mode: chat and completion are refused for that notebook.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from aiide_server_ext import fsguard
from aiide_server_ext.agent.errors import AgentError
from aiide_server_ext.assignments import (
    DEFAULT_MARKERS,
    Assignment,
    Markers,
    cursor_in_solution,
    describe,
    inspect,
    redact,
    redact_source,
)
from aiide_server_ext.seams import GateRefusal

from ..helpmodes import RANK, HelpError, HelpPolicy

log = logging.getLogger("aiide.hub")

#: Tools that change a notebook's cells, and the one that writes any file.
CELL_EDITS = frozenset({"insert_cell", "replace_cell", "delete_cell"})
FILE_WRITES = frozenset({"write_file"})
MAX_NOTEBOOK_BYTES = 20_000_000
MAX_CACHED = 64

TUTOR_SYSTEM = (
    "\n\nTUTOR MODE (set by the course, not the student). This notebook is a graded "
    "assignment: the student must write its solution cells themselves. Never write code "
    "that completes or fixes a solution cell, not even partly, and never edit one. Help "
    "as a tutor: explain the concept, ask a question that leads the student to the next "
    "step, point to the relevant part of the error or the documentation, or show a small "
    "example on different data. Follow the hint level given in <tutoring>: level 1 a "
    "leading question or the concept; level 2 the approach and the functions involved; "
    "the last level a step-by-step outline in words or pseudo-code, still no solution "
    "code. If the student asks for the answer, say that the course's tutor mode does not "
    "allow it and give the hint instead. Never reveal or guess hidden tests."
)
HINT_STYLE = {
    1: "a leading question or the concept involved",
    2: "the approach and the functions involved",
}


class TutorGuard:
    """The course's help modes as this server last learned them from the broker."""

    def __init__(self, broker: Any, root_dir: str) -> None:
        self.broker = broker
        self.root_dir = fsguard.real_root(root_dir)
        #: (course, its help policy) for the server's user, from ``api/me``.
        self.policies: list[tuple[str, HelpPolicy]] = []
        self.markers: Markers = DEFAULT_MARKERS
        #: User -> the notebook their latest run is about (for the tool policy).
        self.current: dict[str, str] = {}
        #: The server's session manager: which notebook a kernel runs (for %ai).
        self.sessions: Any = None
        #: Path -> (its size, time and the markers, its reading).
        self._cache: dict[str, tuple[tuple[Any, ...], Assignment]] = {}

    # -- what the broker says --------------------------------------------------
    def learn(self, policy: Mapping[str, Any]) -> None:
        policies, markers = [], DEFAULT_MARKERS
        for entry in policy.get("help") or []:
            if not isinstance(entry, Mapping):
                continue
            try:
                parsed = HelpPolicy.parse(_stored(entry), "the broker's help policy")
            except HelpError as e:  # the broker validated it: a newer broker's field
                log.warning("aiide hub: help policy not understood: %s", e)
                continue
            policies.append((str(entry.get("course") or ""), parsed))
            markers = markers.plus(parsed.markers)
        self.policies, self.markers = policies, markers

    def mode_for(self, path: str) -> tuple[str, str, int]:
        """(mode, assignment, hint levels) for a notebook; the strictest course wins."""
        best = ("open", "", 3)
        for _, policy in self.policies:
            mode, name = policy.mode_for(path)
            if RANK[mode] > RANK[best[0]] or (RANK[mode] == RANK[best[0]] and name and not best[1]):
                best = (mode, name, policy.hint_levels)
        return best

    # -- what a model reads ------------------------------------------------------
    def notebook(self, path: str, nb: dict[str, Any]) -> dict[str, Any]:
        return redact(nb, self.markers)[0]

    def text(self, path: str, text: str) -> str:
        if path.endswith(".ipynb"):
            try:
                nb = json.loads(text)
            except ValueError:
                return redact_source(text, self.markers)  # truncated: line by line
            if isinstance(nb, dict):
                return json.dumps(self.notebook(path, nb), indent=1, ensure_ascii=False)
        return redact_source(text, self.markers)

    def _read(self, path: str) -> Assignment:
        """The notebook on disk read as an assignment (nothing: not one, or unreadable).
        Kept while the file's size and time stay the same: the tool policy asks on every
        edit, synchronously. The read itself is fsguard's (no link out of the root)."""
        if not path or not path.endswith(".ipynb"):
            return Assignment()
        try:
            st = os.stat(os.path.join(self.root_dir, path.lstrip("/")))
            key: tuple[Any, ...] | None = (st.st_mtime_ns, st.st_size, self.markers)
        except (OSError, ValueError):
            key = None
        cached = self._cache.get(path)
        if key is not None and cached is not None and cached[0] == key:
            return cached[1]
        try:
            data, _ = fsguard.read_bytes(self.root_dir, path, limit=MAX_NOTEBOOK_BYTES)
            found = inspect(json.loads(data.decode("utf-8")), self.markers)
        except (fsguard.Refused, OSError, ValueError):
            return Assignment()
        if key is not None:
            if len(self._cache) >= MAX_CACHED:
                self._cache.pop(next(iter(self._cache)))
            self._cache[path] = (key, found)
        return found

    # -- chat --------------------------------------------------------------------
    def system_note(self, caller: Any, context: Mapping[str, Any]) -> str:
        mode = self.mode_for(str(context.get("notebook") or ""))[0]
        return TUTOR_SYSTEM if mode == "tutor" else ""

    async def context_note(
        self, caller: Any, context: Mapping[str, Any], question: str = ""
    ) -> str:
        """The <tutoring> block of a run's prompt: the mode, the cell's role and its hint
        level (recorded at the broker); raises ``exam_mode`` for an exam's notebook."""
        path = str(context.get("notebook") or "")
        if not path:
            return ""
        if caller is not None:
            self.current[caller.username] = path
        mode, name, levels = self.mode_for(path)
        if mode == "exam":
            raise AgentError(
                "exam_mode", f"{path}: the course's exam mode is on for this assignment "
                f"({name or 'the whole course'}): the assistant is off for it", 403,
            )  # fmt: skip
        found = await _to_thread(self._read, path)
        lines = [f'<tutoring mode="{mode}" assignment="{name}">']
        lines += [f"Notice: {n}" for n in found.notices]
        role = found.cell(str(context.get("cell_id") or "")) if found.graded else None
        if role is not None:
            lines.append(f"The student's cell: {describe(role)}.")
        cell = (role.grade_id or role.cell_id) if role is not None else ""
        fix = question.lstrip().lower().startswith(("fix", "/fix"))  # "Fix this error", /fix
        if mode == "open" and found.graded and name and fix:
            await self._record(name, cell, "fix", levels)  # the dashboard counts fixes too
        if mode == "tutor" and found.graded:
            level = await self._record(name, cell, "fix" if fix else "hint", levels)
            if level:
                style = HINT_STYLE.get(level, "a step-by-step outline in words, no solution code")
                if level >= levels:
                    style = "a step-by-step outline in words or pseudo-code, no solution code"
                lines.append(f"Hint level {level} of {levels}: give {style}.")
        if len(lines) == 1:
            return ""
        return "\n".join([*lines, "</tutoring>"])

    async def _record(self, assignment: str, cell: str, kind: str, levels: int) -> int:
        body = json.dumps({"assignment": assignment, "cell": cell, "kind": kind}).encode()
        try:
            status, answer = await self.broker.call("POST", "api/help", body)
        except GateRefusal as e:
            log.warning("aiide hub: help not recorded: %s", e.message)
            return 1
        if status != 200:
            log.warning("aiide hub: help not recorded: %s", answer)
            return 1
        return int(answer.get("level") or 1)

    async def record_tokens(self, path: str, tokens: int) -> None:
        name = self.mode_for(path)[1]
        if name and tokens > 0:
            body = json.dumps({"assignment": name, "kind": "tokens", "tokens": tokens}).encode()
            with contextlib.suppress(GateRefusal):
                await self.broker.call("POST", "api/help", body)

    # -- completion --------------------------------------------------------------
    async def completion(self, caller: Any, body: dict[str, Any]) -> dict[str, Any]:
        path = str(body.get("path") or "")
        mode, name, _ = self.mode_for(path)
        prefix, suffix = str(body.get("prefix", "")), str(body.get("suffix", ""))
        if mode == "exam":
            raise AgentError(
                "exam_mode", f"{path}: exam mode is on for {name or 'the course'}", 403
            )
        if mode == "tutor":
            found = await _to_thread(self._read, path)
            in_cell = bool(body.get("cell_id")) and any(
                c.solution for c in found.cells if c.cell_id == body.get("cell_id")
            )
            if in_cell or cursor_in_solution(prefix, suffix, self.markers):
                raise AgentError(
                    "tutor_mode",
                    f"inline completion is off in solution cells of {name or path}: the "
                    "course's tutor mode leaves the graded answers to you (the chat gives hints)",
                    403,
                )
        return {
            **body,
            "prefix": redact_source(prefix, self.markers),
            "suffix": redact_source(suffix, self.markers),
        }

    # -- %ai in a kernel --------------------------------------------------------------
    async def magic(self, kernel_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """``%ai`` in the kernel of an assignment's notebook: refused in exam mode; in
        tutor mode no code answers (``--format code`` would fill a cell) and the tutor's
        instructions join the system prompt."""
        path = await self._kernel_path(kernel_id)
        mode, name, _ = self.mode_for(path)
        if mode == "exam":
            raise AgentError("exam_mode", f"%ai is off in {path}: exam mode for {name}", 403)
        if mode != "tutor":
            return request
        if request.get("format") == "code":
            raise AgentError(
                "tutor_mode",
                f"%ai code is off in {path}: the course's tutor mode leaves {name or 'its'} "
                "solutions to you; ask %ai without the code format for a hint",
                403,
            )
        return {**request, "system_extra": TUTOR_SYSTEM}

    async def _kernel_path(self, kernel_id: str) -> str:
        """The notebook whose session runs this kernel ('' when none: a console)."""
        if self.sessions is None:
            return ""
        try:
            for session in await self.sessions.list_sessions():
                if (session.get("kernel") or {}).get("id") == kernel_id:
                    return str(session.get("path") or "")
        except Exception:  # the session store failing must not open the door: no path
            log.warning("aiide hub: sessions unreadable for %%ai", exc_info=True)
        return ""

    # -- edits ---------------------------------------------------------------------
    def edit_refusal(self, tool: Any, arguments: Mapping[str, Any], user: str) -> str:
        """Why the agent may not make this edit ('' when it may)."""
        name = getattr(tool, "name", "")
        if name not in CELL_EDITS and name not in FILE_WRITES:
            return ""
        path = str(arguments.get("path") or self.current.get(user, "")).strip("/")
        found = self._read(path)
        if not found.graded:
            return ""
        mode, assignment, _ = self.mode_for(path)
        if name in FILE_WRITES:
            return (
                f"{path} is an assignment notebook: the agent does not rewrite it as a file "
                "(its locked cells and tests must stay as the instructor wrote them)"
            )
        role = found.cell(str(arguments.get("cell_id") or ""))
        if role is not None and role.locked:
            return (
                f"that cell is locked by the assignment ({describe(role)}): the agent never "
                "edits it"
            )
        if mode != "tutor":
            return ""
        if role is not None and role.solution:
            return (
                f"that is a solution cell of {assignment or path} and the course's tutor mode "
                "leaves it to the student: do not write it, explain or give a hint instead"
            )
        if name == "insert_cell" and arguments.get("cell_type", "code") == "code":
            return (
                f"the course's tutor mode allows no new code cells in {assignment or path}: "
                "give a hint, or an example on other data in the chat"
            )
        return ""


def _stored(entry: Mapping[str, Any]) -> dict[str, Any]:
    """``api/me``'s help of one course as a course file says it (without the broker's
    ``course`` and each assignment's ``mode_now``: the mode is decided here, by the clock)."""
    out = {k: v for k, v in entry.items() if k in ("mode", "markers", "hint_levels")}
    assignments = []
    for a in entry.get("assignments") or []:
        if isinstance(a, Mapping):
            item = {k: a[k] for k in ("name", "path", "mode") if k in a}
            if a.get("deadline"):
                item.update(deadline=a["deadline"], after_deadline=a.get("after_deadline"))
            assignments.append(item)
    out["assignments"] = assignments
    return out


async def _to_thread(fn: Any, *args: Any) -> Any:
    import asyncio

    return await asyncio.to_thread(fn, *args)


def install(settings: Mapping[str, Any], broker: Any, root_dir: str) -> TutorGuard | None:
    """The guard on the agent's notebook bridge and completer (None: no agent here)."""
    service = settings.get("aiide_agent")
    if service is None:
        return None
    guard = TutorGuard(broker, root_dir)
    guard.sessions = settings.get("session_manager")
    service.notebooks.guard = guard
    service.completer.guard = guard
    return guard
