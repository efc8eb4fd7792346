"""A data file mentioned in the chat, summarised for the model: its size, its columns
with their types and missing values, and its first rows — never the whole file.

A CSV is a data scientist's most common mention and is often megabytes: sent as text it
would fill the prompt with rows (and be cut at a few thousand characters anyway). The
summary is what a person reads first too; the model is told to read the data with code.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence

#: Suffixes summarised, with the delimiter to fall back on when sniffing fails.
DATA_SUFFIXES = {".csv": ",", ".tsv": "\t"}
#: Bytes read at most: enough for the types and a row count of most files.
READ_BYTES = 1 << 20
SAMPLE_ROWS = 5
#: Values looked at to tell a column's type (missing ones are counted in every row read).
TYPED_ROWS = 1000
MAX_COLUMNS = 60
MAX_CELL_CHARS = 80

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?")
_BOOLS = {"true", "false", "yes", "no"}


def is_data_file(path: str) -> bool:
    return any(path.lower().endswith(suffix) for suffix in DATA_SUFFIXES)


def _kind(value: str) -> str:
    try:
        int(value)
        return "int"
    except ValueError:
        pass
    try:
        float(value)
        return "float"
    except ValueError:
        pass
    if value.lower() in _BOOLS:
        return "bool"
    return "date" if _DATE.match(value) else "text"


def column_types(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """``name (type[, N missing])`` per column; a column of ints and floats is float."""
    described = []
    for i, name in enumerate(header[:MAX_COLUMNS]):
        values = [row[i].strip() if i < len(row) else "" for row in rows]
        present = [v for v in values if v]
        kinds = {_kind(v) for v in present[:TYPED_ROWS]}
        if not kinds:
            kind = "empty"
        elif kinds <= {"int", "float"}:
            kind = "float" if "float" in kinds else "int"
        elif len(kinds) == 1:
            kind = kinds.pop()
        else:
            kind = "text"
        missing = len(values) - len(present)
        described.append(f"{name} ({kind}{f', {missing} missing' if missing else ''})")
    if len(header) > MAX_COLUMNS:
        described.append(f"… and {len(header) - MAX_COLUMNS} more columns")
    return described


def summarise(path: str, data: bytes, size: int) -> str:
    """The summary of ``data``, the first bytes of a file of ``size`` bytes."""
    complete = len(data) >= size
    text = data.decode("utf-8", errors="replace")
    if not complete and "\n" in text:
        text = text[: text.rindex("\n")]  # a row cut in half is no row
    fallback = next(d for s, d in DATA_SUFFIXES.items() if path.lower().endswith(s))
    try:
        dialect: type[csv.Dialect] | str = csv.Sniffer().sniff(text[:65536], delimiters=",;\t|")
    except csv.Error:
        dialect = "excel-tab" if fallback == "\t" else "excel"
    delimiter = dialect if isinstance(dialect, str) else dialect.delimiter
    delimiter = fallback if delimiter in ("excel", "excel-tab") else delimiter
    rows = [row for row in csv.reader(io.StringIO(text), dialect) if row]
    if not rows:
        return f'<data_file path="{path}">\n(empty)\n</data_file>'
    header, body = rows[0], rows[1:]
    count = f"{len(body)} rows" if complete else f"at least {len(body)} rows (the first MB read)"
    sample = [
        ",".join(cell[:MAX_CELL_CHARS] for cell in row[:MAX_COLUMNS])
        for row in rows[: SAMPLE_ROWS + 1]
    ]
    return "\n".join(
        [
            f'<data_file path="{path}" size="{size} bytes">',
            f"{count} x {len(header)} columns",
            "columns: " + ", ".join(column_types(header, body)),
            f"first {min(SAMPLE_ROWS, len(body))} rows (header first):",
            *sample,
            "</data_file>",
            "[A summary, not the file: to use its data, run code that reads it, e.g. "
            f"pandas.read_csv({path!r}{'' if delimiter == ',' else f', sep={delimiter!r}'}).]",
        ]
    )
