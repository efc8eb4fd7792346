"""Driving JupyterLab and the aiide chat from the browser tests.

``LabPage`` opens a page and watches it: uncaught exceptions, aiide's console errors,
dialogs, and every frame of the chat WebSocket (each checked against
docs/protocol.schema.json when the test ends).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "protocol.schema.json"
LOAD_TIMEOUT_MS = 60_000
ANSWER_TIMEOUT_MS = 30_000
CHAT_WS = "/aiide/api/chat/ws"


@cache
def _validator(definition: str) -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    return Draft202012Validator({"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]})


def protocol_errors(definition: str, frame: dict[str, Any]) -> list[str]:
    return [e.message for e in _validator(definition).iter_errors(frame)]


def write_notebook(root: Path, name: str, cells: list[tuple[str, str]]) -> str:
    """A notebook of (cell id, code) cells on the sandboxed kernel (the agent runs code
    in no other unless an admin allows it); returns its path."""
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "id": cell_id,
                "metadata": {},
                "source": source,
                "outputs": [],
                "execution_count": None,
            }
            for cell_id, source in cells
        ],
        "metadata": {
            "kernelspec": {
                "name": "aiide-python",
                "display_name": "Python 3 (sandboxed)",
                "language": "python",
            }
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (root / name).write_text(json.dumps(nb))
    return name


@dataclass
class LabPage:
    page: Any
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, context: Any, url: str, prepare: Any = None) -> LabPage:
        """Opens `url` in a new page; `prepare(page)` runs first (e.g. to route sockets)."""
        lab = cls(context.new_page())
        page = lab.page
        if prepare is not None:
            prepare(page)
        page.on("pageerror", lambda err: lab.errors.append(f"uncaught: {err}"))
        page.on("console", lab._on_console)
        page.on("dialog", lab._on_dialog)
        page.on("websocket", lab._on_socket)
        page.goto(url, wait_until="domcontentloaded", timeout=LOAD_TIMEOUT_MS)
        page.locator("#jp-main-statusbar").wait_for(timeout=LOAD_TIMEOUT_MS)
        return lab

    def _on_console(self, msg: Any) -> None:
        text = f"[{msg.type}] {msg.text}"
        self.console.append(text)
        # The browser's own network messages (a server that is down) are not our errors.
        network = msg.text.startswith(("WebSocket connection to", "Failed to load resource"))
        if msg.type == "error" and "aiide" in msg.text.lower() and not network:
            self.errors.append(text)

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def _on_socket(self, ws: Any) -> None:
        if CHAT_WS not in ws.url:
            return
        ws.on("framesent", lambda payload: self._frame(self.sent, payload))
        ws.on("framereceived", lambda payload: self._frame(self.received, payload))

    def wait_sent(self, wanted: Any, timeout_ms: int = LOAD_TIMEOUT_MS) -> dict[str, Any]:
        """The first chat frame the page sent for which ``wanted(frame)`` holds (waits)."""
        waited = 0
        while True:
            for frame in self.sent:
                if wanted(frame):
                    return frame
            assert waited < timeout_ms, f"the page sent no such frame; it sent {self.sent}"
            self.page.wait_for_timeout(50)  # lets playwright deliver the frame events
            waited += 50

    @staticmethod
    def _frame(into: list[dict[str, Any]], payload: Any) -> None:
        into.append(json.loads(payload) if isinstance(payload, str) else {"binary": True})

    def check(self, frames: bool = True) -> None:
        """No uncaught exception, no aiide console error, every chat frame as documented."""
        assert not self.errors, "\n".join(self.errors)
        if not frames:
            return
        bad = [
            f"{frame}: {errs}"
            for definition, frames in (
                ("ClientMessage", self.sent),
                ("ServerMessage", self.received),
            )
            for frame in frames
            if (errs := protocol_errors(definition, frame))
        ]
        assert not bad, "frames outside docs/protocol.schema.json:\n" + "\n".join(bad)

    def close(self, artifacts: Path, name: str) -> None:
        (artifacts / f"{name}.console.log").write_text("\n".join(self.console) + "\n")
        self.page.close()

    # -- the chat ----------------------------------------------------------------------

    @property
    def chat(self) -> Any:
        return self.page.locator("#aiide-chat")

    def open_chat(self) -> None:
        """Shows the chat once the layout is restored (a tab click could toggle it shut)."""
        self.page.wait_for_function(
            "() => window.jupyterapp?.commands.hasCommand('aiide:open-chat')",
            timeout=LOAD_TIMEOUT_MS,
        )
        self.page.evaluate("() => window.jupyterapp.restored")
        self.settle()
        self.run_command("aiide:open-chat")
        self.chat.locator(".aiide-Composer-input").wait_for(timeout=LOAD_TIMEOUT_MS)

    def settle(self) -> None:
        """Waits for the end of the lab's start-up: an empty workspace gets a launcher once
        the file browser has listed its folder (late on a busy machine, after `restored`),
        and the launcher takes the focus when it is activated, closing a chat popup being
        typed into. Its activation is a posted message, handled on the next animation
        frames; typing starts after that, in a box that keeps the focus."""
        self.page.wait_for_function(
            "() => !window.jupyterapp.shell.isEmpty('main')", timeout=LOAD_TIMEOUT_MS
        )
        self.page.evaluate(
            "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
        )

    def new_chat(self) -> None:
        self.open_chat()
        self.chat.get_by_role("button", name="New", exact=True).click()

    def ask(self, text: str) -> None:
        from playwright.sync_api import expect

        box = self.chat.locator(".aiide-Composer-input")
        expect(self.chat.locator(".aiide-Connection")).to_have_attribute(
            "data-state", "open", timeout=LOAD_TIMEOUT_MS
        )
        # A JupyterLab dialog keeps the focus to itself: the Enter below would answer it
        # and the question would never be sent. Say so instead of timing out later.
        dialogs = self.page.locator(".jp-Dialog")
        assert dialogs.count() == 0, f"a JupyterLab dialog is open: {dialogs.first.inner_text()}"
        box.fill(text)
        box.press("Enter")

    def dismiss_connection_error(self) -> bool:
        """Closes JupyterLab's own "Server Connection Error" dialog, as a user would after
        a server restart; True when it was showing. (JupyterLab opens it when its polls
        fail while the server is down; whether a poll falls in that window is timing.)"""
        dialog = self.page.locator(".jp-Dialog", has_text="Server Connection Error")
        if dialog.count() == 0:
            return False
        dialog.get_by_role("button", name="Close").click()
        dialog.wait_for(state="detached", timeout=LOAD_TIMEOUT_MS)
        return True

    def finished(self, count: int = 1) -> Any:
        """Waits for the `count`-th finished run of the conversation on screen."""
        from playwright.sync_api import expect

        runs = self.chat.locator(".aiide-Finished")
        expect(runs).to_have_count(count, timeout=ANSWER_TIMEOUT_MS)
        return runs.nth(count - 1)

    def answers(self) -> Any:
        return self.chat.locator(".aiide-Answer")

    def awaiting_card(self) -> Any:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        card = self.chat.locator(".aiide-Call[data-state=awaiting]")
        try:
            card.wait_for(timeout=ANSWER_TIMEOUT_MS)
        except PlaywrightTimeout:
            # What the chat says instead (an error, a run that ended) is the first clue.
            shown = self.chat.inner_text()[-1500:]
            raise AssertionError(f"no card waits for approval; the chat shows:\n{shown}") from None
        return card

    # -- notebooks ---------------------------------------------------------------------

    def open_notebook(self, path: str, kernel: bool = True) -> Any:
        """Opens a notebook; with `kernel`, waits until its kernel is ready for code."""
        self.run_command("docmanager:open", {"path": path})
        panel = self.page.locator(".jp-NotebookPanel:visible")
        panel.locator(".jp-Cell").first.wait_for(timeout=LOAD_TIMEOUT_MS)
        if kernel:
            self.page.wait_for_function(
                """() => {
                  const s = window.jupyterapp.shell.currentWidget?.sessionContext;
                  return s?.session?.kernel?.status === 'idle' && s.kernelDisplayStatus === 'idle';
                }""",
                timeout=LOAD_TIMEOUT_MS,
            )
        return panel

    def run_command(self, command: str, args: dict[str, Any] | None = None) -> None:
        """Runs a JupyterLab command (its result, often a widget, stays in the page)."""
        self.page.evaluate(
            "([c, a]) => window.jupyterapp.commands.execute(c, a).then(() => null)",
            [command, args or {}],
        )


def words(text: str) -> list[str]:
    return re.findall(r"\S+", text)


def widen_sidebar(page: Any, width: int = 440) -> None:
    """Drags the right sidebar's edge so the chat gets `width` pixels (for screenshots)."""
    chat = page.locator("#aiide-chat").bounding_box()
    if chat and chat["width"] < width:
        resize_sidebar(page, width)


def resize_sidebar(page: Any, width: int) -> None:
    """Drags the right sidebar's edge so the chat is `width` pixels wide."""
    boxes = [
        h.bounding_box() for h in page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").all()
    ]
    visible = [b for b in boxes if b and b["height"] > 0]
    box = max(visible, key=lambda b: b["x"]) if visible else None
    chat = page.locator("#aiide-chat").bounding_box()
    if not box or not chat or chat["width"] == width:
        return
    x = box["x"] + box["width"] / 2
    y = box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - (width - chat["width"]), y, steps=5)
    page.mouse.up()
