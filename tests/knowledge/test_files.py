"""What gets indexed: ignore files, hidden files, limits; nothing outside the root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aiide_server_ext.knowledge.files import PathRefused, ScanLimits, Skipped, Workspace


def test_gitignore_and_aiideignore_are_honoured_in_every_folder(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.log\nbuild/\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / ".aiideignore").write_text("generated_*.py\n")
    for rel in ("a.py", "debug.log", "build/out.py", "pkg/ok.py", "pkg/generated_x.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    scan = Workspace(str(tmp_path)).scan("")
    assert scan.files == ["a.py", "pkg/ok.py"]
    assert scan.ignored == 3


def test_hidden_files_and_caches_are_left_out_unless_asked(tmp_path: Path) -> None:
    for rel in (".secret/key.py", ".env.md", "__pycache__/a.py", "node_modules/x.js", "v.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    assert Workspace(str(tmp_path)).scan("").files == ["v.py"]
    hidden = Workspace(str(tmp_path), ScanLimits(include_hidden=True)).scan("")
    assert ".secret/key.py" in hidden.files and ".env.md" in hidden.files


def test_size_limits_differ_for_notebooks(tmp_path: Path) -> None:
    (tmp_path / "big.ipynb").write_text("x" * 5000)
    (tmp_path / "big.py").write_text("x" * 5000)
    scan = Workspace(str(tmp_path), ScanLimits(max_file_size=1000, max_notebook_size=10_000)).scan(
        ""
    )
    assert scan.files == ["big.ipynb"]
    assert scan.skipped == [("big.py", "too large (5,000 bytes > 1,000)")]


def test_reading_refuses_binary_and_non_utf8(tmp_path: Path) -> None:
    (tmp_path / "b.py").write_bytes(b"abc\x00def")
    (tmp_path / "l.md").write_bytes(b"caf\xe9")
    (tmp_path / "bom.md").write_bytes(b"\xef\xbb\xbf# Title")
    ws = Workspace(str(tmp_path))
    with pytest.raises(Skipped, match="binary") as binary:
        ws.read("b.py")
    assert binary.value.error is False
    with pytest.raises(Skipped, match="not UTF-8") as latin:
        ws.read("l.md")
    assert latin.value.error is True
    assert ws.read("bom.md") == "# Title"


def test_symlinked_folder_inside_the_root_is_followed_once(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.py").write_text("x = 1\n")
    os.symlink("real", tmp_path / "alias")
    scan = Workspace(str(tmp_path)).scan("")
    assert sorted(scan.files) == ["alias/a.py", "real/a.py"] and not scan.errors


def test_paths_outside_the_root_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside.py").write_text("x = 1\n")
    os.symlink(tmp_path / "outside.py", root / "link.py")
    ws = Workspace(str(root))
    for bad in ("..", "../outside.py", "a/../../outside.py"):
        with pytest.raises(PathRefused):
            ws.api_path(bad)
    with pytest.raises(PathRefused, match="outside the root"):
        ws.scan("link.py")
    with pytest.raises(Skipped, match="outside the root"):
        ws.read("link.py")


def test_os_paths_map_back_to_api_paths(tmp_path: Path) -> None:
    ws = Workspace(str(tmp_path))
    assert ws.to_api(str(tmp_path / "a" / "b.ipynb")) == "a/b.ipynb"
    assert ws.to_api("/somewhere/else.py") is None
