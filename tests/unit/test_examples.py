"""``jupyter aiide example``: the guided start for pip users, copied when asked, never
over the user's copy, never through a link (the folder may be a sandbox's workspace).
The wheel carries the folder: tests/integration/test_wheel_install.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from aiide_server_ext.examples import NOTEBOOK, copy_example

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "getting-started"


def tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_the_example_is_copied_whole_into_the_folder(tmp_path: Path) -> None:
    copied = copy_example(tmp_path)
    assert copied.created
    assert copied.notebook == tmp_path / NOTEBOOK
    assert tree(tmp_path / "getting-started") == tree(EXAMPLE)
    assert not [p for p in (tmp_path / "getting-started").rglob("*.aiide-tmp")]


def test_a_second_copy_keeps_the_users_edits(tmp_path: Path) -> None:
    copy_example(tmp_path)
    mine = tmp_path / "getting-started" / "sales.csv"
    mine.write_text("my own edits\n")
    (tmp_path / "getting-started" / "notes" / "returns-policy.md").unlink()
    again = copy_example(tmp_path)
    assert not again.created
    assert mine.read_text() == "my own edits\n"
    assert not (tmp_path / "getting-started" / "notes" / "returns-policy.md").exists()


def test_a_planted_link_is_refused_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    served = tmp_path / "served"
    served.mkdir()
    os.symlink(elsewhere, served / "getting-started")
    done = subprocess.run(
        [sys.executable, "-m", "aiide_server_ext.cli", "example", "--dir", str(served)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "exists and is not a folder" in done.stderr
    assert list(elsewhere.iterdir()) == []


def test_the_command_says_how_to_open_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aiide_server_ext.cli", "example"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert "Copied the getting-started example" in done.stdout
    assert "jupyter lab getting-started/getting-started.ipynb" in done.stdout
    assert (tmp_path / NOTEBOOK).is_file()
