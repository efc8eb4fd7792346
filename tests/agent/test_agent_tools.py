"""Tools in isolation: path confinement for every tool that takes a path, argument
validation, patches."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from aiide_server_ext.agent.errors import ToolError
from aiide_server_ext.agent.notebooks import Route
from aiide_server_ext.agent.patches import apply_patch
from aiide_server_ext.agent.tools import TOOLS, ToolEnv, validate
from aiide_server_ext.seams import Caller

PATH_TOOLS = {
    "read_file": {},
    "write_file": {"content": "x"},
    "list_files": {},
    "search_files": {"query": "secret"},
    "list_cells": {},
    "read_cell": {"cell_id": "c1"},
    "insert_cell": {"source": "1"},
    "replace_cell": {"cell_id": "c1", "source": "1"},
    "delete_cell": {"cell_id": "c1"},
    "run_cell": {"cell_id": "c1"},
    "execute_code": {"code": "1"},
}
ESCAPES = [
    "../outside.txt",
    "/etc/passwd",
    "a/../../outside.txt",
    "~/outside.txt",
    "out/secret.txt",
    "outfile.txt",
    ".hidden/x.txt",
    "C:/x.txt",
    "a\x00b",
]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "ok.txt").write_text("fine\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret\n")
    (tmp_path / "outside.txt").write_text("secret\n")
    os.symlink(outside, root / "out")
    os.symlink(outside / "secret.txt", root / "outfile.txt")
    (outside / "secret.ipynb").write_text("{}")
    os.symlink(outside / "secret.ipynb", root / "outfile.ipynb")
    (root / ".hidden").mkdir()
    return root


class NoNotebooks:
    #: No course's tutoring here (the bridge's filter of what a model reads, hub only).
    guard = None

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a confined path must not reach the notebooks ({name})")


def env(root: Path) -> ToolEnv:
    return ToolEnv(
        root_dir=str(root),
        notebooks=NoNotebooks(),
        caller=Caller("ada"),  # type: ignore[arg-type]
        route=Route("cv", "run", "ada"),
        call_id="toolu_1",
    )


def test_every_tool_with_a_path_is_covered() -> None:
    assert {n for n, t in TOOLS.items() if "path" in t.schema["properties"]} == set(PATH_TOOLS)


@pytest.mark.asyncio
@pytest.mark.parametrize("tool", sorted(PATH_TOOLS))
@pytest.mark.parametrize("path", ESCAPES)
async def test_path_traversal_is_refused(workspace: Path, tool: str, path: str) -> None:
    notebook_tool = tool not in ("read_file", "write_file", "list_files", "search_files")
    args = {"path": path.replace("txt", "ipynb") if notebook_tool else path, **PATH_TOOLS[tool]}
    with pytest.raises(ToolError) as e:
        await TOOLS[tool].run(env(workspace), args)
    assert e.value.code == "path_outside_root", e.value.message
    assert (workspace.parent / "outside" / "secret.txt").read_text() == "secret\n"


@pytest.mark.asyncio
async def test_search_does_not_follow_links_out(workspace: Path) -> None:
    result = await TOOLS["search_files"].run(env(workspace), {"query": "secret|fine"})
    assert result.content == "a/ok.txt:1: fine"


@pytest.mark.asyncio
async def test_file_tools_work_inside(workspace: Path) -> None:
    e = env(workspace)
    await TOOLS["write_file"].run(e, {"path": "a/new.txt", "content": "hello"})
    assert (await TOOLS["read_file"].run(e, {"path": "a/new.txt"})).content == "hello"
    listing = (await TOOLS["list_files"].run(e, {})).content.split("\n")
    assert listing == ["a/", "out/", "outfile.ipynb", "outfile.txt"]


@pytest.mark.parametrize(
    ("name", "args", "code"),
    [
        ("read_cell", {"cell_id": 5}, "validation_error"),
        ("read_cell", {}, "validation_error"),
        ("insert_cell", {"source": "x", "cell_type": "python"}, "validation_error"),
        ("read_file", {"path": "a", "extra": 1}, "validation_error"),
        ("launch_missiles", {}, "unknown_tool"),
        ("read_cell", None, "invalid_json"),
    ],
)
def test_invalid_calls_are_tool_errors(name: str, args: Any, code: str) -> None:
    with pytest.raises(ToolError) as e:
        validate(name, args)
    assert e.value.code == code


def nb(*cells: tuple[str, str]) -> dict[str, Any]:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {
                "id": i,
                "cell_type": "code",
                "source": s,
                "metadata": {},
                "outputs": [],
                "execution_count": None,
            }
            for i, s in cells
        ],
    }


def test_patch_ops_and_idempotence() -> None:
    base = nb(("a", "1"), ("b", "2"))
    insert = {
        "path": "n.ipynb",
        "ops": [
            {
                "op": "insert",
                "after_id": "a",
                "cell": {"id": "n", "cell_type": "code", "source": "new"},
            }
        ],
    }
    once = apply_patch(base, insert)
    assert [c["id"] for c in once["cells"]] == ["a", "n", "b"]
    assert apply_patch(once, insert) == once
    moved = apply_patch(
        once, {"path": "n.ipynb", "ops": [{"op": "move", "cell_id": "b", "after_id": None}]}
    )
    assert [c["id"] for c in moved["cells"]] == ["b", "a", "n"]
    deleted = apply_patch(
        moved,
        {"path": "n.ipynb", "ops": [{"op": "delete", "cell_id": "a", "expected_source": "1"}]},
    )
    assert [c["id"] for c in deleted["cells"]] == ["b", "n"]
    assert base["cells"][0]["id"] == "a"  # the input is untouched


def test_patch_conflicts_when_the_cell_changed() -> None:
    with pytest.raises(ToolError) as e:
        apply_patch(
            nb(("a", "changed")),
            {
                "path": "n",
                "ops": [{"op": "replace", "cell_id": "a", "expected_source": "1", "source": "2"}],
            },
        )
    assert e.value.code == "conflict"
    with pytest.raises(ToolError) as e:
        apply_patch(
            nb(("a", "1")),
            {
                "path": "n",
                "ops": [
                    {"op": "delete", "cell_id": "zz", "expected_source": "1"}
                    | {"cell_id": "a", "expected_source": "0"}
                ],
            },
        )
    assert e.value.code == "conflict"
