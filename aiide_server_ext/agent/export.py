"""A conversation as a Markdown document or a Jupyter notebook (the sidebar's export).

Only what the user saw is exported: questions and answers as text. Tool plumbing (tool
calls, their results, context blocks) stays out; it is in the audit trail.
"""

from __future__ import annotations

import functools
import json
import re
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import Any

#: Fence languages that become code cells; any other fenced block (shell, JSON, output)
#: stays in the Markdown, where running it as Python would only fail.
CODE_LANGUAGES = frozenset({"", "python", "py", "python3", "ipython", "ipython3"})
#: A fence opener: up to three spaces, three or more backticks or tildes, an info string.
FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})[ \t]*([^`\s]*)[^`]*$")
#: The kernelspec an exported notebook asks for: sandboxed, like every new notebook.
KERNELSPEC = {"name": "aiide-python", "display_name": "Python 3 (sandboxed)", "language": "python"}
FORMATS = {
    "markdown": ("md", "text/markdown; charset=UTF-8"),
    "ipynb": ("ipynb", "application/x-ipynb+json"),
}


def visible_turns(turns: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Each turn's text as the user saw it; turns with no text (tool plumbing) skipped."""
    for t in turns:
        content = t["content"]
        if isinstance(content, str):
            text = content
        else:
            text = "".join(
                str(b.get("text", ""))
                for b in content
                if isinstance(b, dict) and b.get("type") == "text"
            )
            if not text:
                continue
        yield {"role": t["role"], "text": text, "run_id": t.get("run_id")}


def split_blocks(markdown: str) -> list[tuple[str, str]]:
    """``("markdown" | "code", text)`` pieces: each fenced Python block on its own.

    A fence is closed by a line of the same character at least as long (CommonMark); an
    unclosed fence runs to the end, as a renderer shows it."""
    pieces: list[tuple[str, str]] = []
    prose: list[str] = []
    lines = markdown.split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            prose.append(lines[i])
            i += 1
            continue
        indent, fence, lang = len(m.group(1)), m.group(2), m.group(3).lower()
        close = re.compile(r"^ {0,3}" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        body = [line[min(indent, len(line) - len(line.lstrip(" "))) :] for line in lines[i + 1 : j]]
        if lang in CODE_LANGUAGES:
            _flush(pieces, prose)
            pieces.append(("code", "\n".join(body)))
        else:
            prose.extend(lines[i : min(j + 1, len(lines))])
        i = j + 1
    _flush(pieces, prose)
    return pieces


def _flush(pieces: list[tuple[str, str]], prose: list[str]) -> None:
    text = "\n".join(prose).strip("\n")
    if text.strip():
        pieces.append(("markdown", text))
    prose.clear()


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.strip("\n").split("\n"))


def to_markdown(title: str, turns: list[dict[str, Any]]) -> str:
    """Title, then each question as a heading and a quote, each answer as its Markdown."""
    out = [f"# {_one_line(title)}", ""]
    n = 0
    for t in turns:
        if t["role"] == "user":
            n += 1
            out += [f"## Question {n}", "", _quote(t["text"]), ""]
        else:
            out += ["### Answer", "", t["text"].strip("\n"), ""]
    return "\n".join(out)


def to_notebook(title: str, turns: list[dict[str, Any]], conversation_id: str) -> dict[str, Any]:
    """Questions as Markdown cells; answers as Markdown cells with each Python block a
    code cell. Nothing is run: the code cells have no outputs until the user runs them.

    Cells are built as plain dicts and the notebook validated once: nbformat's
    ``new_*_cell`` validate each cell, 5 s for a 2,000-message conversation."""
    cells = [_cell("markdown", f"# {_one_line(title)}")]
    for t in turns:
        if t["role"] == "user":
            cells.append(_cell("markdown", "**Question**\n\n" + _quote(t["text"])))
            continue
        cells += [_cell(kind, text) for kind, text in split_blocks(t["text"])]
    for n, cell in enumerate(cells):
        cell["id"] = f"cell-{n}"  # unique within the notebook is all nbformat asks
    nb: dict[str, Any] = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": dict(KERNELSPEC),
            "language_info": {"name": "python"},
            "aiide": {"conversation_id": conversation_id, "title": title, "exported": time.time()},
        },
        "cells": cells,
    }
    _validator().validate(nb)
    return nb


@functools.cache
def _validator() -> Any:
    """nbformat's schema, compiled by fastjsonschema (a dependency of nbformat): the
    default jsonschema validator takes ≈0.3 s for 4,000 cells, this one ≈20 ms.
    Imported on the first export: nbformat brings jsonschema, which server start skips."""
    import nbformat.validator

    return nbformat.validator.get_validator(4, 5, name="fastjsonschema")  # type: ignore[no-untyped-call]


def _cell(kind: str, source: str) -> dict[str, Any]:
    cell: dict[str, Any] = {
        "id": "",  # numbered by to_notebook
        "cell_type": kind,
        "metadata": {},
        "source": source,
    }
    if kind == "code":
        cell |= {"execution_count": None, "outputs": []}
    return cell


def render(fmt: str, title: str, turns: list[dict[str, Any]], conversation_id: str) -> str:
    if fmt == "markdown":
        return to_markdown(title, turns)
    return json.dumps(to_notebook(title, turns, conversation_id), indent=1, ensure_ascii=False)


def _one_line(title: str) -> str:
    return " ".join(title.split()) or "Untitled conversation"


def file_name(title: str, fmt: str) -> str:
    """A name safe on every file system: the title's words, at most 60 characters."""
    stem = re.sub(r"[^\w\- ]+", "", title, flags=re.UNICODE)
    stem = re.sub(r"\s+", " ", stem).strip(" .-")[:60].strip() or "conversation"
    return f"{stem}.{FORMATS[fmt][0]}"


def content_disposition(name: str) -> str:
    """An ASCII fallback for old clients and the exact UTF-8 name (RFC 6266)."""
    ascii_name = name.encode("ascii", "ignore").decode().replace('"', "").strip() or "conversation"
    if ascii_name.startswith("."):
        ascii_name = "conversation" + ascii_name
    quoted = urllib.parse.quote(name, safe="")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quoted}"
