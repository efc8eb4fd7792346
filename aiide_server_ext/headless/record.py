"""What a run leaves for others: ``jupyter aiide diff RUN_A RUN_B`` (parameters, models,
environment, cells and outputs) and ``jupyter aiide export RUN`` (the notebook, its trace
and its record in one archive, with a manifest of sha256 sums and the archive's own)."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from typing import Any

from .notebook import BadInput, read_notebook
from .replay import normalise

#: Provenance fields compared by ``diff`` (what makes two results comparable).
RECORD_FIELDS = (
    "input_sha256",
    "parameters",
    "parameters_used",
    "model_requested",
    "temperature",
    "status",
    "exit_code",
)


def load_run(path: str) -> tuple[str, dict[str, Any]]:
    """A run's output notebook (given it, or its trace) and the notebook."""
    if path.endswith(".trace.jsonl"):
        path = path[: -len(".trace.jsonl")] + ".ipynb"
    nb = read_notebook(path)
    if not isinstance(nb.get("metadata", {}).get("aiide"), dict):
        raise BadInput(f"{path!r} is not the output of an aiide run (no metadata.aiide)")
    return path, nb


def _cells(nb: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in nb["cells"]}


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def diff_runs(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Every difference between two runs, as ``{"what", "a", "b"}`` rows."""
    ra, rb = a["metadata"]["aiide"], b["metadata"]["aiide"]
    rows: list[dict[str, Any]] = []

    def differ(what: str, x: Any, y: Any) -> None:
        if x != y:
            rows.append({"what": what, "a": x, "b": y})

    for name in RECORD_FIELDS:
        differ(name, ra.get(name), rb.get(name))
    answered = [
        [(m.get("name"), m.get("reported_model")) for m in r.get("models") or []] for r in (ra, rb)
    ]
    differ("models", *answered)
    env_a, env_b = ra.get("environment") or {}, rb.get("environment") or {}
    differ("python", env_a.get("python"), env_b.get("python"))
    pa, pb = env_a.get("packages") or {}, env_b.get("packages") or {}
    for pkg in sorted(set(pa) | set(pb)):
        differ(f"package {pkg}", pa.get(pkg), pb.get(pkg))
    ca, cb = _cells(a), _cells(b)
    for cid in [*ca, *(c for c in cb if c not in ca)]:
        x, y = ca.get(cid), cb.get(cid)
        if x is None or y is None:
            differ(f"cell {cid}", x and _source(x), y and _source(y))
            continue
        differ(f"cell {cid} source", _source(x), _source(y))
        differ(
            f"cell {cid} outputs",
            normalise(x.get("outputs") or []),
            normalise(y.get("outputs") or []),
        )
    return rows


def diff_command(a_path: str, b_path: str, as_json: bool, console: Any) -> int:
    from rich.markup import escape

    _, a = load_run(a_path)
    _, b = load_run(b_path)
    rows = diff_runs(a, b)
    if as_json:
        print(json.dumps(rows, indent=1, default=str))
    else:
        for row in rows:
            console.print(f"[bold]{escape(row['what'])}[/]")
            console.print(f"  a: {escape(repr(row['a'])[:500])}")
            console.print(f"  b: {escape(repr(row['b'])[:500])}")
        console.print(f"{len(rows)} differences" if rows else "the runs agree")
    return 1 if rows else 0


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def export_run(path: str, archive: str) -> str:
    """Write the archive; returns its sha256 (also written beside it, ``sha256sum`` style)."""
    path, nb = load_run(path)
    record = nb["metadata"]["aiide"]
    folder = os.path.dirname(os.path.abspath(path))
    members: dict[str, bytes] = {}
    with open(path, "rb") as f:
        members[os.path.basename(path)] = f.read()
    trace = os.path.join(folder, str(record.get("trace") or ""))
    if record.get("trace") and os.path.isfile(trace):
        with open(trace, "rb") as f:
            members[os.path.basename(trace)] = f.read()
    members["record.json"] = json.dumps(record, indent=1, sort_keys=True).encode()
    manifest = {
        "run_id": record.get("run_id"),
        "files": {name: sha256_bytes(data) for name, data in members.items()},
    }
    members["manifest.json"] = json.dumps(manifest, indent=1, sort_keys=True).encode()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # reproducible
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    with open(archive, "rb") as f:
        digest = sha256_bytes(f.read())
    with open(archive + ".sha256", "w", encoding="utf-8") as f:
        f.write(f"{digest}  {os.path.basename(archive)}\n")
    return digest
