"""Inline completion: a small prompt, the fastest allowed model, a short timeout.

A model with the ``fim`` capability gets the code around the cursor as fill-in-the-middle
(prefix + suffix, no chat prompt) where its provider can send it; every answer is trimmed
to the block the cursor is in (``trim_to_block``), and the model stream is closed as soon
as the block has ended. A newer request for the same document (``path``) from the same user
cancels the older one here, whatever the browser does: its upstream HTTP request is aborted.
"""

from __future__ import annotations

import ast
import asyncio
import codeop
import re
import warnings
from collections.abc import Callable
from typing import Any

from ..seams import Caller, Gate
from .errors import AgentError
from .providers import ModelRequest, TextDelta, Usage, close_stream
from .router import ModelSpec, Router

SYSTEM = (
    "You complete code. Reply with only the text to insert at <CURSOR>: no explanation, "
    "no code fences, no repetition of the surrounding code."
)


def check(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("prefix"), str):
        raise AgentError("bad_message", "'prefix' (string) is required")
    for name in ("suffix", "language", "path", "cell_id"):  # cell_id: the notebook cell
        if name in body and not isinstance(body[name], str):
            raise AgentError("bad_message", f"'{name}' must be a string")
    if not isinstance(body.get("stream", False), bool):
        raise AgentError("bad_message", "'stream' must be a boolean")
    max_tokens = body.get("max_tokens", 128)
    if (
        not isinstance(max_tokens, int)
        or isinstance(max_tokens, bool)
        or not 1 <= max_tokens <= 1024
    ):
        raise AgentError("bad_message", "'max_tokens' must be an integer in 1..1024")
    return {**body, "max_tokens": max_tokens}


def strip_fences(text: str) -> str:
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text


_WORD = re.compile(r"[A-Za-z][A-Za-z']*")
#: Languages whose lines can be told from prose by parsing them.
PYTHON = ("python", "ipython", "ipython3")


def is_prose(line: str, cursor_line: str = "") -> bool:
    """Whether a completion's line is a sentence to the user rather than Python: it
    starts with a capital, has three words or more, and is not Python where it stands
    (``cursor_line``: what precedes it on its line). It is parsed inside a loop in a
    coroutine, so ``return``, ``yield``, ``await`` and ``break`` are code; code cut off in
    a bracket or a triple-quoted string is code too."""
    text = line.strip()
    if not text[:1].isupper() or len(_WORD.findall(text)) < 3:
        return False
    if (cursor_line + line).lstrip().startswith("#"):
        return False  # words in a comment are what a comment holds
    source = "async def _():\n    for _ in _:\n        " + (cursor_line + line).strip()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escapes and the like: not our concern
        try:
            ast.parse(source)
            return False
        except SyntaxError:
            pass
        try:
            codeop.compile_command(source, "<completion>", "exec")  # None: incomplete code
        except (SyntaxError, ValueError, OverflowError):
            return True
    return False


def without_preamble(text: str, cursor_line: str, language: str, final: bool) -> str:
    """A completion without the words some models put before the code ("Here is the
    completion:"), which ghost text would show verbatim. For Python, leading lines that
    are prose (and the blank lines after them) go, so a fence that follows is handled as
    usual; in other languages, one line ending in ':' before a fence goes. While
    streaming (``final`` false) only ended lines are judged, and a first line that may
    still turn out to be prose (it starts with a capital) waits for its end."""
    if text.startswith("```"):
        return text
    lines = text.split("\n")
    ended = len(lines) if final else len(lines) - 1
    if language not in PYTHON:
        head = lines[0].rstrip()
        if ended > 1 and head.endswith(":") and lines[1].startswith("```"):
            return "\n".join(lines[1:])
        return text
    skip = 0
    while skip < ended:
        line = lines[skip]
        blank_after_prose = skip > 0 and not line.strip()
        if not blank_after_prose and not is_prose(line, cursor_line if skip == 0 else ""):
            break
        skip += 1
    if skip:
        return "\n".join(lines[skip:])
    if not final and ended == 0 and text.lstrip()[:1].isupper():
        return ""  # "Here is…" or "True": known once the line ends
    return text


def _indent(line: str) -> int:
    expanded = line.expandtabs(4)
    return len(expanded) - len(expanded.lstrip())


def _next_code_line(suffix: str) -> str:
    """The first non-blank line after the cursor's own line, stripped ('' if none)."""
    for line in suffix.split("\n")[1:]:
        if line.strip():
            return line.strip()
    return ""


def cut_index(prefix: str, lines: list[str], suffix: str) -> int | None:
    """Index of the first completion line that is not part of the cursor's block.

    The rule, in order (``lines`` are the completion split at newlines; line 0 continues
    the cursor's line):

    1. The cursor is inside a line (non-blank text follows it on its line): one line only.
    2. ``base`` is the indentation of the cursor's line as completed (prefix's last line +
       line 0; tabs count 4). A non-blank line indented less than ``base`` has left the
       block: cut before it.
    3. A blank line followed by a non-blank line indented no deeper than ``base``, or less
       than the last non-blank line before the blank (a blank line and a dedent: what was
       being written is over, e.g. a function body and then the next ``def``, or a
       statement and then the next paragraph): cut at the blank line. Blank lines inside
       a block that the completion opened (deeper than ``base``) stay.
    4. A line equal (stripped) to the first non-blank line after the cursor's line: the
       model is rewriting the code that follows; cut before it.
    """
    if len(lines) < 2:
        return None
    if suffix.split("\n", 1)[0].strip():
        return 1
    base = _indent(prefix.rsplit("\n", 1)[-1] + lines[0])
    follows = _next_code_line(suffix)
    last = base
    blank_from: int | None = None
    for i, line in enumerate(lines[1:], start=1):
        if not line.strip():
            if blank_from is None:
                blank_from = i
            continue
        width = _indent(line)
        if width < base:
            return blank_from if blank_from is not None else i
        if blank_from is not None and (width <= base or width < last):
            return blank_from
        if follows and line.strip() == follows:
            return blank_from if blank_from is not None else i
        last, blank_from = width, None
    return None


def trim_to_block(prefix: str, completion: str, suffix: str) -> str:
    """The completion cut to the cursor's block (``cut_index``), trailing blank lines
    dropped; a one-line completion is returned as it is."""
    lines = completion.split("\n")
    cut = cut_index(prefix, lines, suffix)
    if cut is not None:
        lines = lines[:cut]
    while len(lines) > 1 and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def block_ended(prefix: str, text: str, suffix: str) -> bool:
    """Whether the streamed text so far already reaches past the block (stop reading)."""
    if "\n" not in text:
        return False
    if suffix.split("\n", 1)[0].strip():
        return True  # rule 1: a mid-line completion ends at its first newline
    complete = text.split("\n")[:-1]  # the last piece may still grow
    return cut_index(prefix, complete, suffix) is not None


def streamed_view(prefix: str, text: str, suffix: str) -> str:
    """What of a completion still streaming can be shown now.

    Each view extends the one before (ghost text grows; it does not flicker): an opening
    fence waits for its line to end and a closing fence ends the text; the last line,
    still growing, shows only once its indentation is known and the block rule keeps it
    (and not while it may yet turn out to repeat the code after the cursor); trailing
    whitespace waits for what follows it. The final answer is ``trim_to_block``.
    """
    if text.startswith("```"):
        if "\n" not in text:
            return ""
        text = text.split("\n", 1)[1]
    fence = text.find("```")
    if fence >= 0:
        text = text[:fence]
    lines = text.split("\n")
    cut = cut_index(prefix, lines[:-1], suffix)
    growing = lines[-1].strip()
    follows = _next_code_line(suffix)
    if cut is None:
        if growing.strip("`") and not (follows and follows.startswith(growing)):
            cut = cut_index(prefix, lines, suffix)  # the growing line's indentation is known
            if cut is None:
                return "\n".join(lines).rstrip()
        else:
            cut = len(lines) - 1
    return "\n".join(lines[:cut]).rstrip()


#: Called with each longer view of a streaming completion (``streamed_view``).
OnText = Callable[[str], None]


class Completer:
    def __init__(
        self, router: Router, *, timeout: float, prefix_chars: int = 3000, suffix_chars: int = 1000
    ) -> None:
        self.router = router
        self.timeout = timeout
        self.prefix_chars = prefix_chars
        self.suffix_chars = suffix_chars
        #: The request in flight per (user, document): a newer one cancels it.
        self._inflight: dict[tuple[str, str] | None, asyncio.Task[dict[str, Any]]] = {}
        #: A course's tutoring (hub ``tutoring.TutorGuard``): may refuse a completion (in
        #: a solution region) and withholds hidden tests from the prompt. None: no course.
        self.guard: Any = None

    async def complete(
        self,
        caller: Caller,
        body: dict[str, Any],
        gate: Gate,
        on_text: OnText | None = None,
    ) -> dict[str, Any]:
        """The completion for ``body``; with ``on_text``, its growing text as it streams."""
        if self.guard is not None:
            body = await self.guard.completion(caller, body)  # raises AgentError to refuse
        candidates = self.router.candidates("complete", caller)
        # Without a path, requests are not known to come from one editor (a script may
        # complete several snippets at once): only the client's own abort cancels them.
        key = (caller.username, body["path"]) if body.get("path") else None
        older = self._inflight.get(key) if key is not None else None
        if older is not None and not older.done():
            older.cancel()  # a newer keystroke: the older answer would be dropped anyway
        task = asyncio.ensure_future(self._complete(caller, candidates, body, gate, on_text))
        if key is not None:
            self._inflight[key] = task
        try:
            done, _ = await asyncio.wait({task}, timeout=self.timeout)
        except asyncio.CancelledError:
            task.cancel()  # the client went away
            raise
        finally:
            if key is not None and self._inflight.get(key) is task:
                del self._inflight[key]
        if not done:
            task.cancel()
            raise AgentError("timeout", f"no completion within {self.timeout:g}s", 504)
        if task.cancelled():
            # Superseded: answer (nobody waits for it) without an error in the log.
            return {"completion": "", "model": candidates[0].name, "usage": _usage(Usage(0, 0))}
        return task.result()

    async def _complete(
        self,
        caller: Caller,
        candidates: list[ModelSpec],
        body: dict[str, Any],
        gate: Gate,
        on_text: OnText | None,
    ) -> dict[str, Any]:
        language = body.get("language") or "python"
        prefix = body["prefix"][-self.prefix_chars :]
        suffix = body.get("suffix", "")[: self.suffix_chars]
        prompt = f"```{language}\n{prefix}<CURSOR>{suffix}\n```"
        cursor_line = prefix.rsplit("\n", 1)[-1]

        def build(spec: ModelSpec) -> ModelRequest:
            return ModelRequest(
                model=spec.model,
                system=SYSTEM,
                messages=[{"role": "user", "content": prompt}],
                max_tokens=body["max_tokens"],
                temperature=0.0,
                fim=(prefix, suffix) if "fim" in spec.capabilities else None,
            )

        parts: list[str] = []
        shown = ""
        usage = Usage(0, 0)
        model = candidates[0].name
        stream = self.router.stream(candidates, caller, build, gate=gate, feature="complete")
        try:
            async for spec, event in stream:
                model = spec.name
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                    text = "".join(parts)
                    code = without_preamble(text, cursor_line, language, final=False)
                    if on_text is not None:
                        view = streamed_view(prefix, code, suffix)
                        if len(view) > len(shown):
                            shown = view
                            on_text(view)
                    if (
                        "\n" in event.text
                        and not code.startswith("```")  # fenced: trimmed once unfenced
                        and block_ended(prefix, code, suffix)
                    ):
                        break  # the rest would be trimmed away: stop paying for it
                elif isinstance(event, Usage):
                    usage = event
        finally:
            await close_stream(stream)  # leaving the loop early: close upstream now
        text = strip_fences(without_preamble("".join(parts), cursor_line, language, final=True))
        return {
            "completion": trim_to_block(prefix, text, suffix),
            "model": model,
            "usage": _usage(usage),
        }


def _usage(usage: Usage) -> dict[str, int]:
    return {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
