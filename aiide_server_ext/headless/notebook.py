"""The notebook side of a headless run: read and check the input, pick the output without
overwriting anything unasked, inject parameters (papermill style), write provenance."""

from __future__ import annotations

import json
import os
import re
from typing import Any

from ..agent.patches import ensure_ids, new_cell, source_of

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class BadInput(ValueError):
    """Input the user must fix: the message says how."""


def parse_param(text: str) -> tuple[str, Any]:
    """``k=v``: v as JSON when it looks like JSON, else the plain string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not IDENT.match(key):
        raise BadInput(f"--param {text!r}: expected NAME=VALUE with NAME a Python identifier")
    raw = raw.strip()
    try:
        return key, json.loads(raw)
    except ValueError:
        if raw[:1] in ('"', "[", "{") or raw in ("", "-"):
            raise BadInput(f"--param {key}: {raw!r} does not parse as JSON") from None
        return key, raw


def read_notebook(path: str) -> dict[str, Any]:
    if not os.path.exists(path):
        raise BadInput(f"no notebook {path!r}")
    if not path.endswith(".ipynb"):
        raise BadInput(f"{path!r} is not a notebook (.ipynb)")
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
        nbformat.validate(nb)
    except Exception as e:
        raise BadInput(f"{path!r} is not a valid notebook: {str(e).splitlines()[0]}") from None
    data: dict[str, Any] = json.loads(nbformat.writes(nb))  # type: ignore[no-untyped-call]
    ensure_ids(data)
    return data


def write_notebook(path: str, nb: dict[str, Any]) -> None:
    tmp = f"{path}.aiide-tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(nb, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def output_path(
    notebook: str,
    output: str | None,
    inplace: bool,
    index: int | None = None,
    *,
    existing_ok: bool = False,
) -> str:
    """Where the result goes. Without -o/--inplace: ``NAME.aiide.ipynb`` beside the input,
    and never over an existing file. Never the input itself unless ``--inplace``."""
    if inplace:
        return os.path.abspath(notebook)
    if output is not None:
        if os.path.isdir(output):
            stem = os.path.basename(notebook)[: -len(".ipynb")]
            suffix = f"-{index}" if index is not None else ""
            path = os.path.abspath(os.path.join(output, f"{stem}{suffix}.ipynb"))
        elif not output.endswith(".ipynb"):
            raise BadInput(f"-o {output!r}: the output must be a .ipynb file or a folder")
        else:
            path = os.path.abspath(output)
        if os.path.realpath(path) == os.path.realpath(notebook):
            raise BadInput(
                f"-o {output!r} would overwrite the input notebook {notebook!r}: "
                "pass another output (or --inplace to overwrite the input on purpose)"
            )
        return path
    stem = notebook[: -len(".ipynb")]
    suffix = f"-{index}" if index is not None else ""
    path = os.path.abspath(f"{stem}{suffix}.aiide.ipynb")
    if os.path.exists(path) and not existing_ok:
        raise BadInput(
            f"{path} exists: pass -o OUT.ipynb or --inplace to overwrite, "
            "or --skip-existing / --resume"
        )
    return path


def parameters_cell(nb: dict[str, Any]) -> str | None:
    """The id of the notebook's cell tagged ``parameters`` (its defaults), if any."""
    return next((c["id"] for c in nb["cells"] if "parameters" in _tags(c)), None)


def assigned_names(source: str) -> list[str]:
    """Names a parameters cell assigns at top level (``n = 100``, ``a, b = 1, 2``)."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Name) and leaf.id not in names:
                    names.append(leaf.id)
    return names


def inject_parameters(nb: dict[str, Any], params: dict[str, Any]) -> str | None:
    """Add (or replace) the ``injected-parameters`` cell after the ``parameters`` cell;
    returns its id."""
    cells = nb["cells"]
    if not params:
        return None
    cells[:] = [c for c in cells if "injected-parameters" not in _tags(c)]
    at = next((i + 1 for i, c in enumerate(cells) if "parameters" in _tags(c)), 0)
    source = "# Parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in params.items())
    cell = new_cell("aiide-params", "code", source)
    cell["metadata"] = {"tags": ["injected-parameters"]}
    cells.insert(at, cell)
    return "aiide-params"


def _tags(cell: dict[str, Any]) -> list[str]:
    tags = cell.get("metadata", {}).get("tags", [])
    return list(tags) if isinstance(tags, list) else []


def mark_cells(before: dict[str, Any], after: dict[str, Any], run_id: str) -> int:
    """Mark the cells the agent wrote (new ids, changed sources) with the run id."""
    old = {c.get("id"): source_of(c) for c in before.get("cells", [])}
    marked = 0
    for cell in after.get("cells", []):
        cid = cell.get("id")
        if cid not in old:
            action = "inserted"
        elif old[cid] != source_of(cell):
            action = "edited"
        else:
            continue
        cell.setdefault("metadata", {})["aiide"] = {"run_id": run_id, "agent": action}
        marked += 1
    return marked


def add_provenance(nb: dict[str, Any], provenance: dict[str, Any]) -> None:
    nb.setdefault("metadata", {})["aiide"] = provenance
