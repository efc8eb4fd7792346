"""The prompt, under a token budget: the active notebook (cells nearest the cursor first,
outputs truncated, errors in full), the selection, @-mentions, and live kernel state.

Tokens are estimated at four characters each (no tokenizer ships offline); the same
estimate drives the budget and the ``context`` event that shows the user what was sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from traitlets import Bool, Float, Int, List, Unicode
from traitlets.config import LoggingConfigurable

from .. import fsguard
from . import data_files, diagnostics, images, introspect, rules
from .errors import ToolError
from .kernels import ANSI, summarise_outputs
from .notebooks import NotebookBridge, read_notebook
from .patches import index_of, source_of
from .tools.base import confine
from .tools.files import folder_entries
from .tools.knowledge import citation_of

SYSTEM = (
    "You are aiide, a coding assistant inside JupyterLab. Be brief. Read and change "
    "notebooks with the tools. Cells are numbered by position from 1, as the user sees "
    "them ('cell 4'); tools name a cell by its id; 'In [5]' is when it last ran, not where "
    "it is. Edits and code runs may wait for the "
    "user's approval; if they reject, the reason is the tool result. Code runs in the "
    "notebook's kernel, and only when that kernel is sandboxed (unless the administrator "
    "allowed otherwise): if a tool answers kernel_not_sandboxed, ask the user to switch "
    "the notebook to 'Python 3 (sandboxed)' (the chat offers a button) and do not try to "
    "work around it. Never invent outputs: run code to see them."
)

#: The kernel state block when the notebook's kernel is not sandboxed.
NOT_READ = "(not read: this notebook's kernel is not sandboxed, so the agent runs nothing in it)"


#: Bytes of an @-mentioned notebook read to find the mentioned cell.
MAX_MENTIONED_NOTEBOOK = 20_000_000
#: Bytes of a file read to find the lines a passage mention names.
MAX_PASSAGE_FILE = 2_000_000


def tokens(text: str) -> int:
    return (len(text) + 3) // 4


@dataclass
class KernelView:
    """What the notebook's kernel holds (rendered) and how many cells it ran since it
    started (None: not known, e.g. no kernel or not sandboxed)."""

    text: str | None
    ran: int | None


def kernel_runs_note(nb: dict[str, Any], ran: int) -> str:
    """The kernel's session against the notebook's outputs: after a restart the outputs
    are still there and the variables are not (the commonest cause of a NameError)."""
    counts = [c.get("execution_count") for c in nb.get("cells", [])]
    stale = [i + 1 for i, n in enumerate(counts) if isinstance(n, int) and n > ran]
    if ran == 0:
        note = "The kernel has run no notebook cell since it (re)started."
    else:
        note = (
            f"The kernel has run {ran} notebook cell{'s' if ran != 1 else ''} since it (re)started."
        )
    if stale:
        shown = ", ".join(map(str, stale[:20])) + (" …" if len(stale) > 20 else "")
        note += (
            f" Cells {shown} show outputs of an earlier kernel session: what they defined "
            "is gone until they run again."
        )
    return f"<kernel_session>{note}</kernel_session>"


@dataclass
class Built:
    text: str
    items: list[dict[str, Any]] = field(default_factory=list)
    #: Content blocks after the text: each image output sent, with its label.
    images: list[dict[str, Any]] = field(default_factory=list)
    #: The project's rules, rendered (not in ``text``: they go after the system prompt,
    #: a prefix that stays the same from turn to turn and so is read from a model's
    #: prompt cache; ``project_rules`` reads them for each step).
    rules: str = ""

    def add(self, kind: str, ref: str, text: str, citation: dict[str, Any] | None = None) -> None:
        item: dict[str, Any] = {"kind": kind, "ref": ref, "tokens": tokens(text)}
        if citation is not None:  # a knowledge passage: the UI links to its source
            item["citation"] = citation
        self.items.append(item)


class ContextBuilder(LoggingConfigurable):  # type: ignore[misc]
    """``c.ContextBuilder.*``: what goes into the prompt and how much of it."""

    budget = Int(6000, config=True, help="Tokens for notebook, selection, mentions, kernel state.")
    history_budget = Int(
        6000, config=True, help="Tokens of earlier turns kept verbatim; older ones are summarised."
    )
    max_output_chars = Int(400, config=True, help="Characters kept of each cell output.")
    max_error_chars = Int(3000, config=True, help="Characters kept of an error traceback.")
    max_file_chars = Int(8000, config=True, help="Characters kept of an @-mentioned file.")
    kernel_state = Bool(True, config=True, help="Ask the notebook's kernel for its variables.")
    kernel_state_chars = Int(1500, config=True, help="Size cap of the kernel state answer.")
    kernel_timeout = Float(2.0, config=True, help="Seconds to wait for the kernel state.")
    system_prompt = Unicode(SYSTEM, config=True, help="The system prompt.")
    knowledge_chunks = Int(
        3,
        config=True,
        help="Passages from the user's knowledge index added per question (0: none).",
    )
    knowledge_timeout = Float(2.0, config=True, help="Seconds to wait for the knowledge search.")
    rules_files = List(
        Unicode(),
        list(rules.DEFAULT_NAMES),
        config=True,
        help="Project rules files looked for in the notebook's folder, then each folder up "
        "to the workspace root; the nearest one goes into every prompt ([]: none).",
    )
    max_rules_chars = Int(
        8000,
        config=True,
        help="Characters kept of the project rules file (at most a quarter of the budget); "
        "a longer file is cut, and the prompt says so.",
    )

    send_images = Bool(
        True,
        config=True,
        help="Send the image outputs of the cells in context to models that accept images.",
    )
    max_images = Int(
        4, config=True, help="Image outputs sent per question, nearest the cursor first."
    )
    max_image_edge = Int(
        1024, config=True, help="Pixels of an image's longer edge; larger images are resized."
    )
    image_budget_share = Float(
        0.5,
        config=True,
        help="Share of the context budget images may use (tokens ≈ width * height / 750).",
    )
    max_image_bytes = Int(
        20_000_000,
        config=True,
        help="Bytes of an image output that is read at all; a larger one is skipped.",
    )
    max_svg_chars = Int(
        4000,
        config=True,
        help="An SVG output is sent as text up to this size when it cannot be rasterised.",
    )

    async def knowledge_text(
        self,
        knowledge: Any,
        caller: Any,
        question: str,
        budget: int,
        used: list[tuple[dict[str, Any], str]] | None = None,
        mentions: Sequence[dict[str, Any]] = (),
    ) -> str:
        """The best passages of the user's own index, within a third of the budget;
        ``used`` receives each passage sent, with its hit (for the context's citations).
        A passage a mention already sends (its cell, its file's lines) is left out: the
        model would read the same code twice."""
        try:
            hits = await asyncio.wait_for(
                # as many more as there are mentions, so the passages left out are replaced
                knowledge.search(caller, question, self.knowledge_chunks + len(mentions)),
                self.knowledge_timeout,
            )
        except Exception:  # no index, no embedding model, too slow: answer without
            return ""
        parts: list[str] = []
        spent = 0
        for hit in hits:
            if any(mentioned(m, hit) for m in mentions):
                continue
            if len(parts) >= self.knowledge_chunks:
                break
            part = (
                f"[{hit.get('citation', hit.get('path', ''))}]\n{str(hit.get('text', '')).strip()}"
            )
            if spent + tokens(part) > budget:
                break
            parts.append(part)
            spent += tokens(part)
            if used is not None:
                used.append((hit, part))
        return "<knowledge>\n" + "\n\n".join(parts) + "\n</knowledge>" if parts else ""

    def render_cell(self, cell: dict[str, Any], position: int) -> str:
        """One cell, named as the user sees it (``position`` from 1) and by its id."""
        head = f"[cell {position} · {cell['cell_type']} · id {cell['id']}"
        if cell.get("execution_count"):
            head += f" · In [{cell['execution_count']}]"
        text = f"{head}]\n{source_of(cell).rstrip()}"
        outputs = cell.get("outputs") or []
        errors = [o for o in outputs if o.get("output_type") == "error"]
        others = [o for o in outputs if o.get("output_type") != "error"]
        if others:
            out = summarise_outputs(others, self.max_output_chars)
            if out:
                text += f"\n[out]\n{out}"
        for error in errors:
            trace = ANSI.sub("", "\n".join(error.get("traceback") or []))
            trace = trace or f"{error['ename']}: {error['evalue']}"
            text += f"\n[error]\n{trace[-self.max_error_chars :]}"
        return text

    def render_notebook(
        self,
        path: str,
        nb: dict[str, Any],
        cursor: str | None,
        budget: int,
        shown: set[str] | None = None,
    ) -> str:
        """The notebook's cells nearest the cursor within the budget; ``shown`` receives
        the ids of the cells rendered."""
        cells = nb.get("cells", [])
        rendered = [self.render_cell(c, i + 1) for i, c in enumerate(cells)]
        try:
            at = index_of(nb, cursor) if cursor else len(cells) - 1
        except ToolError:
            at = len(cells) - 1
        chosen: set[int] = set()
        used = 0
        for i in sorted(range(len(cells)), key=lambda i: (abs(i - at), i)):
            cost = tokens(rendered[i])
            if used + cost > budget:
                continue
            chosen.add(i)
            used += cost
        lines = [
            f'<notebook path="{path}" cells="{len(cells)}"'
            + (f' cursor="{cursor}">' if cursor else ">")
        ]
        skipped = 0
        for i, text in enumerate(rendered):
            if i in chosen:
                if shown is not None:
                    shown.add(str(cells[i].get("id", "")))
                if skipped:
                    lines.append(f"[… {skipped} cells not shown]")
                    skipped = 0
                lines.append(text)
            else:
                skipped += 1
        if skipped:
            lines.append(f"[… {skipped} cells not shown]")
        lines.append("</notebook>")
        return "\n".join(lines)

    async def kernel_view(self, notebooks: NotebookBridge, path: str) -> KernelView:
        """The kernel's variables, and how many cells it has run since it (re)started."""
        kernels = notebooks.kernels
        try:
            kid = await kernels.kernel_for(path, start=False)
            if kid is None:
                return KernelView(None, None)
            if not await kernels.kernel_sandboxed(kid):  # introspection runs code in the kernel
                return KernelView(NOT_READ, None)
            expr = introspect.expression(max_chars=self.kernel_state_chars)
            result = await asyncio.wait_for(
                kernels.execute(
                    kid,
                    "",
                    timeout=self.kernel_timeout,
                    silent=True,
                    user_expressions={"state": expr},
                ),
                self.kernel_timeout + 1,
            )
        except (ToolError, asyncio.TimeoutError, TimeoutError, RuntimeError, KeyError):
            return KernelView(None, None)
        items = introspect.parse(result.user_expressions.get("state", {}))
        # A silent request does not count: its reply holds the number the next cell gets.
        count = result.execution_count
        ran = count - 1 if isinstance(count, int) and count >= 1 else None
        return KernelView(introspect.render(items) if items else None, ran)

    async def build(
        self,
        context: dict[str, Any],
        root_dir: str,
        notebooks: NotebookBridge,
        *,
        knowledge: Any = None,
        caller: Any = None,
        question: str = "",
        budget: int | None = None,
        vision: bool = False,
    ) -> Built:
        """The context block of a run's first user message; ``budget`` in estimated tokens
        (``self.budget`` converted for the model, see ``calibration.py``); ``vision``: the
        model accepts images (``Built.images``)."""
        built = Built("")
        parts: list[str] = []
        budget = self.budget if budget is None else budget
        guard = getattr(notebooks, "guard", None)
        if guard is not None:  # a course's tutoring: the hint level, the cell's role
            note = await guard.context_note(caller, context, question)
            if note:
                parts.append(note)
                built.add("tutoring", context.get("notebook", ""), note)
        left = budget
        project_rules = await self.project_rules(root_dir, context.get("notebook"), budget)
        rules_text = built.rules = project_rules.render() if project_rules is not None else ""
        left -= tokens(rules_text)
        if knowledge is not None and self.knowledge_chunks > 0 and question:
            used: list[tuple[dict[str, Any], str]] = []
            text = await self.knowledge_text(
                knowledge, caller, question, left // 3, used, context.get("mentions", [])
            )
            if text:
                parts.append(text)
                for hit, part in used:
                    cited = citation_of(hit)
                    built.add("knowledge", cited["label"] if cited else "", part, cited)
                left -= tokens(text)
        selection = context.get("selection")
        if selection:
            text = f"<selection>\n{selection[: budget * 2]}\n</selection>"
            parts.append(text)
            built.add("selection", context.get("notebook") or context.get("file", ""), text)
            left -= tokens(text)
        open_file = context.get("file")
        if open_file:
            file_text = await self._open_file(open_file, context.get("line"), root_dir, notebooks)
            if file_text and tokens(file_text) <= left:
                parts.append(file_text)
                built.add("file", open_file, file_text)
                left -= tokens(file_text)
        for mention in context.get("mentions", []):
            found = await self._mention(mention, root_dir, notebooks)
            if found and tokens(found) <= left:
                parts.append(found)
                built.add(mention["kind"], mention["path"], found)
                left -= tokens(found)
        path = context.get("notebook")
        if path:
            view = await self.kernel_view(notebooks, path) if self.kernel_state else None
            kernel = view.text if view is not None else None
            if kernel:
                text = f"<kernel_state>\n{kernel}\n</kernel_state>"
                left -= tokens(text)
            try:
                confine(root_dir, path)
                nb = await notebooks.load(path)
                cursor = context.get("cell_id")
                sent, skipped = await self._images(nb, cursor, vision, max(left, 0))
                reserved = sum(p.tokens for _, p in sent)
                shown: set[str] = set()
                text = self.render_notebook(path, nb, cursor, max(left - reserved, 0), shown)
                if view is not None and view.ran is not None:
                    text += "\n" + kernel_runs_note(nb, view.ran)
                parts.insert(0, text)
                built.items.insert(0, {"kind": "notebook", "ref": path, "tokens": tokens(text)})
                # Only the images of cells in context (both are chosen nearest the cursor).
                notes = self._add_images(built, path, sent, skipped, shown)
                if notes:
                    parts.insert(1, notes)
                left -= sum(p.tokens for c, p in sent if c.cell_id in shown) + tokens(notes)
                # What the editor underlines in the cells in context (pyflakes, as the
                # language server): the model sees it without running anything.
                checked = await asyncio.to_thread(diagnostics.check_cells, nb.get("cells", []))
                flagged = diagnostics.render([d for d in checked if d.cell_id in shown])
                if flagged:
                    parts.append(flagged)
                    built.add("diagnostics", path, flagged)
            except ToolError as e:
                parts.insert(0, f"<notebook path={path!r}>unavailable: {e.message}</notebook>")
            if kernel:
                parts.append(f"<kernel_state>\n{kernel}\n</kernel_state>")
                built.add("kernel", path, parts[-1])
        if project_rules is not None:  # counted in the budget, sent after the system prompt
            item = {"kind": "rules", "ref": project_rules.path, "tokens": tokens(rules_text)}
            built.items.insert(0, item)
        built.text = "\n".join(parts)
        return built

    async def project_rules(
        self, root_dir: str, notebook: str | None, budget: int | None = None
    ) -> rules.Rules | None:
        """The rules file nearest the notebook, cut to a quarter of the budget."""
        budget = self.budget if budget is None else budget
        limit = min(self.max_rules_chars, budget)  # a quarter of the budget: 4 chars a token
        return await asyncio.to_thread(
            rules.find_rules, root_dir, notebook, tuple(self.rules_files), limit
        )

    async def _images(
        self, nb: dict[str, Any], cursor: str | None, vision: bool, budget: int
    ) -> tuple[list[tuple[images.Candidate, images.Prepared]], list[tuple[images.Candidate, str]]]:
        """The image outputs to send (nearest the cursor first, within a share of the
        budget and ``max_images``) and those skipped, each with why."""
        if not self.send_images:
            return [], []
        cells = nb.get("cells", [])
        try:
            at = index_of(nb, cursor) if cursor else len(cells) - 1
        except ToolError:
            at = len(cells) - 1
        found: list[images.Candidate] = []
        for i in sorted(range(len(cells)), key=lambda i: (abs(i - at), i)):
            found += images.candidates(cells[i])
            if len(found) > self.max_images + 20:  # the rest are not even listed
                break
        if not found:
            return [], []
        if not vision or self.max_images <= 0:
            why = "the model does not accept images" if vision is False else "max_images is 0"
            return [], [(c, why) for c in found]
        return await asyncio.to_thread(self._prepare, found, int(budget * self.image_budget_share))

    def _prepare(
        self, found: list[images.Candidate], budget: int
    ) -> tuple[list[tuple[images.Candidate, images.Prepared]], list[tuple[images.Candidate, str]]]:
        sent: list[tuple[images.Candidate, images.Prepared]] = []
        skipped: list[tuple[images.Candidate, str]] = []
        spent = 0
        for candidate in found:
            if len(sent) >= self.max_images:
                skipped.append((candidate, f"more than max_images ({self.max_images})"))
                continue
            if budget - spent < 50:  # nothing useful fits: do not decode the rest
                skipped.append((candidate, "over the context budget"))
                continue
            try:
                prepared = images.prepare(
                    candidate,
                    max_edge=self.max_image_edge,
                    max_input_bytes=self.max_image_bytes,
                    max_svg_chars=self.max_svg_chars,
                )
            except images.Skipped as e:
                skipped.append((candidate, str(e)))
                continue
            except Exception as e:  # never an error for the run: a note instead
                self.log.warning("aiide: image output of %s: %r", candidate.cell_id, e)
                skipped.append((candidate, "could not be read"))
                continue
            if spent + prepared.tokens > budget:
                skipped.append((candidate, "over the context budget"))
                continue
            sent.append((candidate, prepared))
            spent += prepared.tokens
        return sent, skipped

    def output_images(self, outputs: list[dict[str, Any]], ref: str) -> list[dict[str, Any]]:
        """Content blocks of the image outputs a tool call produced (a cell the agent ran
        drew a plot), within ``max_images`` and the images' share of the budget; runs in a
        thread. Anything unreadable is left out: the tool's text already names it."""
        found = images.candidates({"id": ref, "outputs": outputs})
        sent, _ = self._prepare(found, int(self.budget * self.image_budget_share))
        blocks: list[dict[str, Any]] = []
        for candidate, prepared in sent:
            if prepared.text:
                continue  # an SVG as text: the tool's own text is enough
            label = (
                f'<image ref="{ref}" output="{candidate.index}" '
                f'size="{prepared.width}x{prepared.height}"/>'
            )
            blocks += [{"type": "text", "text": label}, images.block(prepared)]
        return blocks

    @staticmethod
    def _add_images(
        built: Built,
        path: str,
        sent: list[tuple[images.Candidate, images.Prepared]],
        skipped: list[tuple[images.Candidate, str]],
        shown: set[str],
    ) -> str:
        """Image blocks and context items for the cells shown; the notes on the skipped."""
        at = 1
        for candidate, prepared in sent:
            if candidate.cell_id not in shown:
                continue
            ref = f"{path}#{candidate.cell_id}"
            if prepared.text:  # an SVG that could not be rasterised, sent as text
                label = (
                    f'<svg_output ref="{ref}" output="{candidate.index}">\n'
                    f"{prepared.text}\n</svg_output>"
                )
                built.images.append({"type": "text", "text": label})
            else:
                label = (
                    f'<image ref="{ref}" output="{candidate.index}" '
                    f'size="{prepared.width}x{prepared.height}"/>'
                )
                built.images += [{"type": "text", "text": label}, images.block(prepared)]
            item: dict[str, Any] = {"kind": "image", "ref": ref, "tokens": prepared.tokens}
            built.items.insert(at, item)
            at += 1
        notes = []
        for candidate, why in skipped:
            if candidate.cell_id not in shown:
                continue
            ref = f"{path}#{candidate.cell_id}"
            notes.append(f"[image output {candidate.index} of {ref} not sent: {why}]")
            built.items.insert(at, {"kind": "image", "ref": ref, "tokens": 0, "note": why})
            at += 1
        return "\n".join(notes)

    async def _open_file(
        self, path: str, line: Any, root: str, notebooks: NotebookBridge | None = None
    ) -> str | None:
        """The file open in the editor, where the user works in a script rather than a
        notebook: around the cursor's line when it is longer than ``max_file_chars``."""
        try:
            data, _ = await asyncio.to_thread(
                fsguard.read_bytes, root, path, limit=MAX_PASSAGE_FILE
            )
        except (OSError, fsguard.Refused, ValueError):
            return None
        text = data.decode("utf-8", errors="replace")
        text = model_text(notebooks, path, text)  # a course's hidden tests withheld
        at = line if isinstance(line, int) and line >= 1 else 1
        shown, first = around_line(text, at, self.max_file_chars)
        where = f' line="{at}"' if isinstance(line, int) else ""
        return f'<open_file path="{path}"{where} first_line="{first}">\n{shown}\n</open_file>'

    async def _mention(
        self, mention: dict[str, Any], root: str, notebooks: NotebookBridge
    ) -> str | None:
        # Read through fsguard like the file tools: the path is resolved race-free under the
        # root, links included, and a link to a hidden file (config.txt -> .env) is refused.
        path = mention["path"]
        try:
            if mention["kind"] == "cell":
                nb = await asyncio.to_thread(_read_notebook, root, path)
                guard = getattr(notebooks, "guard", None)
                if guard is not None:
                    nb = dict(guard.notebook(path, nb))
                at = index_of(nb, mention["cell_id"])
                return f'<cell path="{path}">\n{self.render_cell(nb["cells"][at], at + 1)}\n</cell>'
            if mention["kind"] == "folder":  # its names, as the list_files tool gives them
                entries = await asyncio.to_thread(folder_entries, root, path, False)
                listing = "\n".join(entries) or "(empty folder)"
                return f'<folder path="{path}">\n{listing}\n</folder>'
            if data_files.is_data_file(path):  # a CSV: its shape and first rows, not its rows
                data, size = await asyncio.to_thread(
                    fsguard.read_bytes, root, path, limit=data_files.READ_BYTES
                )
                return data_files.summarise(path, data, size)
            lines = mention.get("lines")
            # UTF-8: at most four bytes a character; a passage may lie deep in its file
            limit = MAX_PASSAGE_FILE if lines else self.max_file_chars * 4

            def read() -> str:
                data, _ = fsguard.read_bytes(root, path, limit=limit)
                return data.decode("utf-8", errors="replace")

            text = await asyncio.to_thread(read)
            text = model_text(notebooks, path, text)  # a course's hidden tests withheld
            if lines:  # a passage the index found (one function): those lines, not the file
                start, end = lines
                passage = "\n".join(text.split("\n")[start - 1 : end])[: self.max_file_chars]
                return f'<file path="{path}" lines="{start}-{end}">\n{passage}\n</file>'
            body = text[: self.max_file_chars]
            return f'<file path="{path}">\n{body}\n</file>'
        except (ToolError, OSError, fsguard.Refused, ValueError):
            return None


def around_line(text: str, line: int, max_chars: int) -> tuple[str, int]:
    """Whole lines of ``text`` around ``line`` (1-based) within ``max_chars``, and the
    number of the first one shown: the cursor's surroundings, not the file's head."""
    lines = text.split("\n")
    if len(text) <= max_chars:
        return text, 1
    at = min(max(line, 1), len(lines)) - 1
    start = end = at
    size = len(lines[at]) + 1
    while True:
        grew = False
        if start > 0 and size + len(lines[start - 1]) + 1 <= max_chars:
            start -= 1
            size += len(lines[start]) + 1
            grew = True
        if end < len(lines) - 1 and size + len(lines[end + 1]) + 1 <= max_chars:
            end += 1
            size += len(lines[end]) + 1
            grew = True
        if not grew:
            break
    return "\n".join(lines[start : end + 1])[:max_chars], start + 1


def mentioned(mention: dict[str, Any], hit: dict[str, Any]) -> bool:
    """Whether an @-mention already sends the index's passage ``hit``."""
    if mention.get("path") != hit.get("path"):
        return False
    if mention.get("kind") == "cell":
        return bool(hit.get("cell_id")) and mention.get("cell_id") == hit.get("cell_id")
    if mention.get("kind") != "file":
        return False
    lines = mention.get("lines")
    if not lines:
        return True  # the whole file goes
    start, end = hit.get("line_start"), hit.get("line_end")
    if not isinstance(start, int) or not isinstance(end, int) or hit.get("cell_id"):
        return False
    return bool(lines[0] <= start and end <= lines[1])


def model_text(notebooks: Any, path: str, text: str) -> str:
    """A file's text as a model may read it: what the notebook bridge's ``guard`` (a
    course's tutoring) withholds taken out; unchanged without one."""
    guard = getattr(notebooks, "guard", None)
    return text if guard is None else str(guard.text(path, text))


def _read_notebook(root: str, path: str) -> dict[str, Any]:
    """A mentioned notebook, read from the workspace like any file (never through a link
    out of the root or to a hidden file), with cell ids as the contents API gives them."""
    return read_notebook(root, path, limit=MAX_MENTIONED_NOTEBOOK)[0]


def split_history(turns: list[dict[str, Any]], budget: int) -> int:
    """How many leading turns to summarise so the rest fits the budget (0: none).

    The cut is always before a user's question, never between a tool call and its result.
    """
    sizes = [tokens(str(t["content"])) for t in turns]
    if sum(sizes) <= budget:
        return 0
    kept = 0
    cut = len(turns)
    for i in range(len(turns) - 1, -1, -1):
        kept += sizes[i]
        if kept > budget:
            break
        if turns[i]["role"] == "user" and isinstance(turns[i]["content"], str):
            cut = i
    return cut
