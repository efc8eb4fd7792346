"""Chunks follow cells, definitions and headings, and carry where they came from."""

from __future__ import annotations

import itertools
import json

import pytest

from aiide_server_ext.knowledge.chunking import ChunkError, Limits, chunk_file

from .corpus import BILLING, README, SENSORS, notebook


def test_a_notebook_gives_one_chunk_per_cell_with_headings_and_outputs() -> None:
    chunks = chunk_file("analysis/sensors.ipynb", notebook(SENSORS))
    assert [c.cell_index for c in chunks] == [0, 2, 4, 6, 8]  # heading-only cells are context
    clean = chunks[2]
    assert (clean.kind, clean.cell_id, clean.line_start, clean.line_end) == (
        "code_cell",
        "cell-4",
        1,
        6,
    )
    assert clean.text.startswith("sensors.ipynb > Weather station pipeline > Cleaning\n")
    assert clean.text.endswith("# output:\n412 rows removed")
    assert clean.symbols == ("drop_outliers", "clean")


def test_outputs_are_truncated_and_images_left_out() -> None:
    nb = json.loads(notebook([("code", "show()")]))
    nb["cells"][0]["outputs"] = [
        {
            "output_type": "display_data",
            "data": {"image/png": "iVBOR" * 1000, "text/plain": "<Figure>"},
        },
        {"output_type": "stream", "name": "stdout", "text": "y" * 5000},
        {"output_type": "error", "ename": "ValueError", "evalue": "bad", "traceback": []},
    ]
    [chunk] = chunk_file("a.ipynb", json.dumps(nb), Limits(max_output_chars=100))
    assert "<Figure>" in chunk.text and "iVBOR" not in chunk.text
    assert chunk.text.endswith(" …") and len(chunk.text) < 200


def test_python_is_split_at_function_and_class_boundaries() -> None:
    chunks = chunk_file("lib/billing.py", BILLING)
    spans = [(c.title, c.line_start, c.line_end) for c in chunks]
    assert spans == [
        ("", 1, 5),
        ("compute_invoice_total", 6, 9),
        ("CustomerRegistry", 12, 19),
        ("send_reminder_email", 22, 24),
    ]
    lines = BILLING.split("\n")
    assert lines[5].startswith("def compute_invoice_total")
    assert chunks[1].text.startswith("billing.py > compute_invoice_total\ndef compute")


def test_a_big_class_is_split_by_method_under_its_header() -> None:
    methods = "\n".join(f"    def m{i}(self):\n        return {'x' * 80!r}\n" for i in range(20))
    chunks = chunk_file("big.py", f"class Big:\n{methods}", Limits(max_chars=400))
    assert len(chunks) > 3
    assert all("class Big:" in c.text for c in chunks)
    assert chunks[1].title.startswith("Big.")


def test_markdown_is_split_by_headings() -> None:
    chunks = chunk_file("README.md", README)
    assert [c.title for c in chunks] == [
        "Station analytics",
        "Station analytics > Setup",
        "Station analytics > Data sources",
    ]
    assert (chunks[1].line_start, chunks[1].line_end) == (5, 8)


def test_headings_inside_code_fences_do_not_split() -> None:
    text = "# Real\n\n```bash\n# not a heading\necho hi\n```\n"
    [chunk] = chunk_file("x.md", text)
    assert chunk.title == "Real"


def test_plain_text_is_split_by_size_with_overlap() -> None:
    text = "\n".join(f"line {i} " + "word " * 10 for i in range(100))
    chunks = chunk_file("notes.txt", text, Limits(max_chars=500, overlap=120))
    assert len(chunks) > 5
    for a, b in itertools.pairwise(chunks):
        assert b.line_start <= a.line_end  # overlapping windows
    assert max(len(c.text) for c in chunks) < 520


def test_one_huge_line_is_still_bounded() -> None:
    chunks = chunk_file("min.js", "x" * 10_000, Limits(max_chars=1000))
    assert len(chunks) >= 10 and max(len(c.text) for c in chunks) < 1100


def test_invalid_python_is_still_indexed_as_text() -> None:
    [chunk] = chunk_file("broken.py", "def oops(:\n    pass\n")
    assert "def oops" in chunk.text and chunk.kind == "python"


def test_cells_with_magics_still_yield_their_definitions() -> None:
    source = "%matplotlib inline\n!pip list\ndef plot_it():\n    pass"
    [chunk] = chunk_file("m.ipynb", notebook([("code", source)]))
    assert chunk.symbols == ("plot_it",)


def test_content_hash_follows_the_text_only() -> None:
    a = chunk_file("a/x.py", "def f():\n    return 1\n")[0]
    b = chunk_file("b/x.py", "def f():\n    return 1\n")[0]
    c = chunk_file("a/x.py", "def f():\n    return 2\n")[0]
    assert a.hash == b.hash != c.hash


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not JSON"),
        ('{"nbformat": 4}', "no list of cells"),
        ('{"cells": [1, 2]}', "cell 0 is not an object"),
        ('{"cells": [{"cell_type": "code", "source": 5}]}', "neither text nor a list"),
    ],
)
def test_malformed_notebooks_say_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(ChunkError, match=reason):
        chunk_file("bad.ipynb", text)
