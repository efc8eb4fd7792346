"""Chunks that follow the shape of what users write.

A notebook gives one chunk per cell, with the text of its outputs and the headings it
sits under (a question about "cleaning the sensor data" should find the code cell
under "## Cleaning", not the heading alone). Python splits at function and class
boundaries, Markdown at headings, anything else by size with overlap. The embedded
text carries no path, so a rename moves vectors instead of recomputing them.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from ..assignments import inspect, redact, redact_source

MAX_CHARS = 1200
OVERLAP = 150
MAX_OUTPUT_CHARS = 500

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_MAGIC = re.compile(r"^\s*[%!?]")


class ChunkError(ValueError):
    """The file cannot be chunked (a malformed notebook); the message is the reason."""


@dataclass(frozen=True)
class Chunk:
    path: str
    kind: str  # code_cell | markdown_cell | raw_cell | python | markdown | text
    text: str
    cell_id: str = ""
    cell_index: int = -1
    line_start: int = 1  # 1-based, inclusive; within the cell for notebook chunks
    line_end: int = 1
    title: str = ""
    symbols: tuple[str, ...] = field(default_factory=tuple)

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Limits:
    max_chars: int = MAX_CHARS
    overlap: int = OVERLAP
    max_output_chars: int = MAX_OUTPUT_CHARS


def chunk_file(path: str, text: str, limits: Limits = Limits()) -> list[Chunk]:
    """Chunks of one file, chosen by its extension.

    Each chunk's text starts with the file name and the headings or definition it sits
    under: "sensors.ipynb > Cleaning" carries meaning the cell's code alone does not.
    The folder is left out, so moving a folder moves vectors without re-embedding.
    """
    lower = path.lower()
    if not lower.endswith(".ipynb"):
        # Assignments' hidden tests and mark schemes are never indexed (assignments.py).
        text = redact_source(text)
    if lower.endswith(".ipynb"):
        chunks = chunk_notebook(path, text, limits)
    elif lower.endswith((".py", ".pyi")):
        chunks = chunk_python(path, text, limits)
    elif lower.endswith((".md", ".markdown")):
        chunks = chunk_markdown(path, text, limits)
    else:
        chunks = chunk_text(path, text, limits)
    name = path.rsplit("/", 1)[-1]
    return [
        replace(c, text=f"{name} > {c.title}\n{c.text}" if c.title else f"{name}\n{c.text}")
        for c in chunks
    ]


# --- text -------------------------------------------------------------------


def _windows(lines: list[str], limits: Limits) -> list[tuple[int, int]]:
    """0-based [start, end) line windows of about max_chars, overlapping by ``overlap``."""
    out: list[tuple[int, int]] = []
    start = 0
    while start < len(lines):
        end, size = start, 0
        while end < len(lines) and (end == start or size + len(lines[end]) + 1 <= limits.max_chars):
            size += len(lines[end]) + 1
            end += 1
        out.append((start, end))
        if end >= len(lines):
            break
        back, kept = end, 0
        while back - 1 > start and kept + len(lines[back - 1]) + 1 <= limits.overlap:
            back -= 1
            kept += len(lines[back]) + 1
        start = back
    return out


def _split_long_lines(text: str, limit: int) -> list[str]:
    lines = text.split("\n")
    if all(len(line) <= limit for line in lines):
        return lines
    # Minified or one-line files: hard-wrap, so no chunk is unbounded (line numbers
    # then count wrapped lines, which is the best a one-line file allows).
    out: list[str] = []
    for line in lines:
        out.extend(line[i : i + limit] for i in range(0, max(len(line), 1), limit))
    return out


def _text_pieces(text: str, limits: Limits, first_line: int = 1) -> list[tuple[int, int, str]]:
    """(line_start, line_end, text) pieces, 1-based inclusive lines."""
    lines = _split_long_lines(text, limits.max_chars)
    return [
        (first_line + a, first_line + b - 1, "\n".join(lines[a:b]))
        for a, b in _windows(lines, limits)
        if "\n".join(lines[a:b]).strip()
    ]


def chunk_text(path: str, text: str, limits: Limits = Limits()) -> list[Chunk]:
    return [
        Chunk(path, "text", piece, line_start=a, line_end=b)
        for a, b, piece in _text_pieces(text, limits)
    ]


# --- markdown ---------------------------------------------------------------


def _markdown_sections(text: str) -> list[tuple[int, list[str], list[str]]]:
    """(first line index, heading path, lines) for each heading-delimited section."""
    sections: list[tuple[int, list[str], list[str]]] = []
    stack: list[tuple[int, str]] = []
    current: list[str] = []
    start, in_fence = 0, False
    for i, line in enumerate(text.split("\n")):
        if _FENCE.match(line):
            in_fence = not in_fence
        m = None if in_fence else _HEADING.match(line)
        if m:
            if current:
                sections.append((start, [t for _, t in stack], current))
            level = len(m.group(1))
            stack = [(lv, t) for lv, t in stack if lv < level] + [(level, m.group(2))]
            current, start = [line], i
        else:
            current.append(line)
    if current:
        sections.append((start, [t for _, t in stack], current))
    return sections


def headings_of(text: str) -> list[tuple[int, str]]:
    """(level, title) of each heading outside code fences."""
    out, in_fence = [], False
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        m = None if in_fence else _HEADING.match(line)
        if m:
            out.append((len(m.group(1)), m.group(2)))
    return out


def chunk_markdown(
    path: str,
    text: str,
    limits: Limits = Limits(),
    kind: str = "markdown",
    cell: tuple[str, int] = ("", -1),
) -> list[Chunk]:
    chunks = []
    for start, heads, lines in _markdown_sections(text):
        title = " > ".join(heads)
        body = "\n".join(lines)
        if not body.strip():
            continue
        for a, b, piece in _text_pieces(body, limits, first_line=start + 1):
            chunks.append(Chunk(path, kind, piece, cell[0], cell[1], a, b, title=title))
    return chunks


# --- python -----------------------------------------------------------------


def _parse_python(source: str) -> ast.Module | None:
    # Notebook magics and shell escapes are not Python; blank them, keep line numbers.
    cleaned = "\n".join("" if _MAGIC.match(line) else line for line in source.split("\n"))
    try:
        return ast.parse(cleaned)
    except (SyntaxError, ValueError):
        return None


def defined_names(source: str) -> tuple[str, ...]:
    """Functions, classes, methods and top-level variables a piece of code defines."""
    tree = _parse_python(source)
    if tree is None:
        return ()
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        names.extend(t.id for t in targets if isinstance(t, ast.Name))
    return tuple(dict.fromkeys(names))


Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def _node_start(node: Definition) -> int:
    return min([node.lineno, *(d.lineno for d in node.decorator_list)])


def _blocks(
    body: list[ast.stmt], first: int, last: int
) -> list[tuple[int, int, Definition | None]]:
    """1-based line blocks: each def/class alone, the code between them grouped."""
    blocks: list[tuple[int, int, Definition | None]] = []
    cursor = first
    for node in body:
        if not isinstance(node, Definition):
            continue
        start, end = _node_start(node), node.end_lineno or node.lineno
        if start > cursor:
            blocks.append((cursor, start - 1, None))
        blocks.append((start, end, node))
        cursor = end + 1
    if cursor <= last:
        blocks.append((cursor, last, None))
    return blocks


def _python_pieces(
    lines: list[str], body: list[ast.stmt], first: int, last: int, limits: Limits, prefix: str
) -> list[tuple[int, int, str, str]]:
    """(start, end, title, text): small neighbours merged, big classes split by method."""
    out: list[tuple[int, int, str, str]] = []
    pending: tuple[int, int] | None = None

    def flush() -> None:
        nonlocal pending
        if pending:
            text = "\n".join(lines[pending[0] - 1 : pending[1]])
            for a, b, piece in _text_pieces(text, limits, first_line=pending[0]):
                out.append((a, b, prefix.strip(), piece))
            pending = None

    for start, end, node in _blocks(body, first, last):
        size = sum(len(line) + 1 for line in lines[start - 1 : end])
        if node is None and pending and size + _span(lines, pending) <= limits.max_chars:
            pending = (pending[0], end)
            continue
        if node is None:
            flush()
            pending = (start, end)
            continue
        flush()
        title = f"{prefix}{node.name}"
        text = "\n".join(lines[start - 1 : end])
        if size <= limits.max_chars:
            out.append((start, end, title, text))
        elif isinstance(node, ast.ClassDef) and len(node.body) > 1:
            header = f"class {node.name}:"
            for a, b, t, piece in _python_pieces(lines, node.body, start, end, limits, title + "."):
                out.append(
                    (
                        a,
                        b,
                        t,
                        piece if piece.lstrip().startswith("class ") else f"{header}\n{piece}",
                    )
                )
        else:
            for a, b, piece in _text_pieces(text, limits, first_line=start):
                out.append((a, b, title, piece))
    flush()
    return [p for p in out if p[3].strip()]


def _span(lines: list[str], span: tuple[int, int]) -> int:
    return sum(len(line) + 1 for line in lines[span[0] - 1 : span[1]])


def python_pieces(source: str, limits: Limits) -> list[tuple[int, int, str, str]] | None:
    tree = _parse_python(source)
    if tree is None:
        return None
    lines = source.split("\n")
    return _python_pieces(lines, tree.body, 1, len(lines), limits, "")


def chunk_python(path: str, text: str, limits: Limits = Limits()) -> list[Chunk]:
    pieces = python_pieces(text, limits)
    if pieces is None:  # not valid Python: still searchable as text
        return [
            Chunk(path, "python", piece, line_start=a, line_end=b, symbols=defined_names(piece))
            for a, b, piece in _text_pieces(text, limits)
        ]
    return [
        Chunk(
            path,
            "python",
            piece,
            line_start=a,
            line_end=b,
            title=title,
            symbols=defined_names(piece) or ((title.rsplit(".", 1)[-1],) if title else ()),
        )
        for a, b, title, piece in pieces
    ]


# --- notebooks --------------------------------------------------------------


def _source(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    if isinstance(value, str):
        return value
    raise ChunkError("a cell's source is neither text nor a list of lines")


def outputs_text(outputs: Any, limit: int) -> str:
    """The readable text of a cell's outputs (no images, no HTML), truncated."""
    parts: list[str] = []
    for out in outputs if isinstance(outputs, list) else []:
        if not isinstance(out, dict):
            continue
        kind = out.get("output_type")
        if kind == "stream":
            parts.append(_source(out.get("text", "")))
        elif kind in ("execute_result", "display_data"):
            data = out.get("data") or {}
            if isinstance(data, dict) and "text/plain" in data:
                parts.append(_source(data["text/plain"]))
        elif kind == "error":
            parts.append(f"{out.get('ename', '')}: {out.get('evalue', '')}")
    text = "\n".join(p.strip("\n") for p in parts if p.strip())
    return text if len(text) <= limit else text[:limit] + " …"


def chunk_notebook(path: str, text: str, limits: Limits = Limits()) -> list[Chunk]:
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as e:
        raise ChunkError(f"malformed notebook: not JSON ({e.msg} at line {e.lineno})") from e
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ChunkError("malformed notebook: no list of cells (nbformat 4 expected)")
    # An assignment's hidden tests, mark schemes, instructor-only cells and cells with
    # broken nbgrader metadata are never indexed (assignments.py): they would reach
    # prompts through knowledge search.
    for index, cell in enumerate(nb["cells"]):
        if not isinstance(cell, dict):
            raise ChunkError(f"malformed notebook: cell {index} is not an object")
    hidden = {r.index for r in inspect(nb).cells if r.hidden}
    nb, _ = redact(nb)
    chunks: list[Chunk] = []
    stack: list[tuple[int, str]] = []
    for index, cell in enumerate(nb["cells"]):
        if not isinstance(cell, dict):
            raise ChunkError(f"malformed notebook: cell {index} is not an object")
        if index in hidden:
            continue
        kind = str(cell.get("cell_type", "code"))
        source = _source(cell.get("source", ""))
        ref = (str(cell.get("id") or ""), index)
        if kind == "markdown":
            for level, title in headings_of(source):
                stack = [(lv, t) for lv, t in stack if lv < level] + [(level, title)]
            if _only_headings(source):  # context of the cells below, not a chunk of its own
                continue
            context = " > ".join(t for _, t in stack)
            pieces = chunk_markdown(path, source, limits, "markdown_cell", ref)
            chunks.extend(replace(p, title=context) for p in pieces)
        elif source.strip():
            context = " > ".join(t for _, t in stack)
            output = outputs_text(cell.get("outputs"), limits.max_output_chars)
            chunks.extend(_code_cell(path, source, output, context, kind, ref, limits))
    return chunks


def _only_headings(source: str) -> bool:
    lines = [line for line in source.split("\n") if line.strip()]
    return bool(lines) and all(_HEADING.match(line) for line in lines)


def _code_cell(
    path: str,
    source: str,
    output: str,
    context: str,
    kind: str,
    cell: tuple[str, int],
    limits: Limits,
) -> list[Chunk]:
    kind = "code_cell" if kind == "code" else "raw_cell"
    if len(source) <= limits.max_chars:
        spans = [(1, source.count("\n") + 1, source)]
    else:
        pieces = python_pieces(source, limits) if kind == "code_cell" else None
        spans = [(a, b, p) for a, b, _, p in pieces] if pieces else _text_pieces(source, limits)
    out = [
        Chunk(path, kind, piece, cell[0], cell[1], a, b, context, defined_names(piece))
        for a, b, piece in spans
    ]
    if out and output:  # outputs belong with the code that printed them: the last piece
        out[-1] = replace(out[-1], text=f"{out[-1].text}\n# output:\n{output}")
    return out
