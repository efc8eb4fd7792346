"""Notebook tools. Edits are previewed as the exact cell patch that approval shows and that
is then applied (new cell ids come from the call id, so preview and result agree)."""

from __future__ import annotations

from typing import Any

from ..errors import ToolError
from ..kernels import ExecResult, summarise_outputs
from ..patches import describe, index_of, source_of
from .base import Tool, ToolEnv, ToolResult, confine

CELL_TYPES = ["code", "markdown", "raw"]


def _notebook(env: ToolEnv, args: dict[str, Any]) -> str:
    path = args.get("path") or env.default_notebook
    if not path:
        raise ToolError("validation_error", "'path' is required (no notebook is open)")
    confine(env.root_dir, path, allow_hidden=env.allow_hidden)
    if not path.endswith(".ipynb"):
        raise ToolError("validation_error", f"{path!r} is not a notebook")
    return str(path).strip("/")


def _first_line(cell: dict[str, Any]) -> str:
    lines = source_of(cell).strip().splitlines()
    head = lines[0][:80] if lines else ""
    return head + (f" …(+{len(lines) - 1} lines)" if len(lines) > 1 else "")


async def list_cells(env: ToolEnv, args: dict[str, Any]) -> ToolResult:
    path = _notebook(env, args)
    nb = await env.notebooks.load(path, allow_hidden=env.allow_hidden)
    rows = []
    for cell in nb["cells"]:
        error = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
        mark = " [error]" if error else ""
        rows.append(f"{cell['id']} {cell['cell_type']}{mark}: {_first_line(cell)}")
    return ToolResult("\n".join(rows) or "(no cells)")


async def read_cell(env: ToolEnv, args: dict[str, Any]) -> ToolResult:
    path = _notebook(env, args)
    nb = await env.notebooks.load(path, allow_hidden=env.allow_hidden)
    cell = nb["cells"][index_of(nb, args["cell_id"])]
    text = f"[{cell['cell_type']} cell {cell['id']}]\n{source_of(cell)}"
    if cell.get("outputs"):
        text += "\n[outputs]\n" + summarise_outputs(cell["outputs"])
    return ToolResult(text)


async def preview_insert(env: ToolEnv, args: dict[str, Any]) -> dict[str, Any]:
    path = _notebook(env, args)
    nb = await env.notebooks.load(path, allow_hidden=env.allow_hidden)
    after = args.get("after_id")
    if after is not None:
        index_of(nb, after)
    cell = {
        "id": "ai-" + env.call_id[-8:].lower().replace("_", ""),
        "cell_type": args.get("cell_type", "code"),
        "source": args["source"],
    }
    return {"path": path, "ops": [{"op": "insert", "after_id": after, "cell": cell}]}


async def preview_replace(env: ToolEnv, args: dict[str, Any]) -> dict[str, Any]:
    path = _notebook(env, args)
    nb = await env.notebooks.load(path, allow_hidden=env.allow_hidden)
    cell = nb["cells"][index_of(nb, args["cell_id"])]
    op = {
        "op": "replace",
        "cell_id": cell["id"],
        "expected_source": source_of(cell),
        "source": args["source"],
    }
    return {"path": path, "ops": [op]}


async def preview_delete(env: ToolEnv, args: dict[str, Any]) -> dict[str, Any]:
    path = _notebook(env, args)
    nb = await env.notebooks.load(path, allow_hidden=env.allow_hidden)
    cell = nb["cells"][index_of(nb, args["cell_id"])]
    return {
        "path": path,
        "ops": [{"op": "delete", "cell_id": cell["id"], "expected_source": source_of(cell)}],
    }


def _editor(preview: Any) -> Any:
    async def run(env: ToolEnv, args: dict[str, Any]) -> ToolResult:
        patch = env.extra.get("patch") or await preview(env, args)
        where = await env.notebooks.apply(patch, env.route, allow_hidden=env.allow_hidden)
        return ToolResult(f"{describe(patch)} ({where})")

    return run


def _executed(result: ExecResult, what: str) -> ToolResult:
    text = summarise_outputs(result.outputs) or "(no output)"
    ok = result.status == "ok"
    return ToolResult(
        f"{what} {'ran' if ok else 'failed'}:\n{text}",
        ok=ok,
        code=None if ok else "execution_error",
        outputs=result.outputs,
    )


def _outside_ok(env: ToolEnv) -> bool:
    """Whether this call's decision allowed a kernel that is not sandboxed (admin opt-in,
    ``c.ToolPolicy.allow_unsandboxed_kernels``, and an approval saying so)."""
    return bool(env.extra.get("outside_sandbox"))


async def run_cell(env: ToolEnv, args: dict[str, Any]) -> ToolResult:
    path = _notebook(env, args)
    if env.admit_execute is not None:
        await env.admit_execute()
    result = await env.notebooks.run_cell(
        path, args["cell_id"], env.route, allow_unsandboxed=_outside_ok(env)
    )
    return _executed(result, f"cell {args['cell_id']}")


async def execute_code(env: ToolEnv, args: dict[str, Any]) -> ToolResult:
    path = _notebook(env, args)
    if env.admit_execute is not None:
        await env.admit_execute()
    result = await env.notebooks.execute(path, args["code"], allow_unsandboxed=_outside_ok(env))
    return _executed(result, "code")


def _schema(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    path = {"type": "string", "minLength": 1, "maxLength": 1024}
    return {
        "type": "object",
        "properties": {"path": path, **props},
        "required": required,
        "additionalProperties": False,
    }


CELL_ID = {"type": "string", "minLength": 1, "maxLength": 128}
SOURCE = {"type": "string", "maxLength": 100000}

NOTEBOOK_TOOLS = [
    Tool(
        "list_cells",
        "List a notebook's cells: id, type, first line.",
        _schema({}, []),
        "read",
        list_cells,
    ),
    Tool(
        "read_cell",
        "Read one cell's source and outputs.",
        _schema({"cell_id": CELL_ID}, ["cell_id"]),
        "read",
        read_cell,
    ),
    Tool(
        "insert_cell",
        "Insert a cell after after_id (null: at the top).",
        _schema(
            {
                "source": SOURCE,
                "after_id": {"type": ["string", "null"], "maxLength": 128},
                "cell_type": {"enum": CELL_TYPES},
            },
            ["source"],
        ),
        "edit",
        _editor(preview_insert),
        preview_insert,
    ),
    Tool(
        "replace_cell",
        "Replace a cell's source.",
        _schema({"cell_id": CELL_ID, "source": SOURCE}, ["cell_id", "source"]),
        "edit",
        _editor(preview_replace),
        preview_replace,
    ),
    Tool(
        "delete_cell",
        "Delete a cell.",
        _schema({"cell_id": CELL_ID}, ["cell_id"]),
        "write",
        _editor(preview_delete),
        preview_delete,
    ),
    Tool(
        "run_cell",
        "Run a code cell in the notebook's kernel; returns its outputs.",
        _schema({"cell_id": CELL_ID}, ["cell_id"]),
        "run",
        run_cell,
        executes_code=True,
    ),
    Tool(
        "execute_code",
        "Run code in the notebook's kernel without adding a cell.",
        _schema({"code": SOURCE}, ["code"]),
        "run",
        execute_code,
        executes_code=True,
    ),
]
