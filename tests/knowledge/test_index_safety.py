"""The indexer against a workspace the sandbox can write (issue 13, item 5): a link to a
hidden file under an ordinary name, FIFOs (as a file or as an ignore file), links swapped
while it walks or reads."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from linkswap import swapping

from aiide_server_ext.knowledge.files import PathRefused, ScanLimits, Skipped, Workspace

SECRET = "AWS_SECRET=hunter2"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    (root / "good.md").write_text("# fine\n")
    (root / ".env").write_text(SECRET + "\n")
    (root / ".git").mkdir()
    (root / ".git" / "notes.md").write_text(SECRET + "\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text(SECRET + "\n")
    return root


def in_thread(fn: object, timeout: float = 10) -> object:
    """Runs ``fn`` where a blocked open cannot hang the test run."""
    pool = ThreadPoolExecutor(1)
    try:
        return pool.submit(fn).result(timeout)  # type: ignore[arg-type]
    finally:
        pool.shutdown(wait=False)


def test_a_link_to_a_hidden_file_is_not_indexed(root: Path) -> None:
    os.symlink(".env", root / "config.txt")
    os.symlink(".git", root / "docs")
    os.symlink(str(root / ".env"), root / "abs.md")
    ws = Workspace(str(root))
    scan = ws.scan("")
    assert scan.files == ["good.md"]
    skipped = dict(scan.skipped)
    assert skipped["config.txt"] == skipped["docs"] == skipped["abs.md"]
    assert skipped["config.txt"] == "symlink to a hidden file"
    for path in ("config.txt", "docs/notes.md", "abs.md"):
        with pytest.raises(Skipped, match="hidden"):
            ws.read(path)
        with pytest.raises(PathRefused, match="hidden"):
            ws.scan(path)
    # with hidden files indexed on purpose, the link is an ordinary file
    assert Workspace(str(root), ScanLimits(include_hidden=True)).read("config.txt") == (
        SECRET + "\n"
    )


def test_fifos_are_reported_never_opened(root: Path) -> None:
    os.mkfifo(root / "notes.md")
    os.mkfifo(root / ".gitignore")  # read by the walk before anything else
    os.symlink("notes.md", root / "link.md")
    ws = Workspace(str(root))
    started = time.monotonic()
    scan = in_thread(lambda: ws.scan(""))
    assert isinstance(scan, type(ws.scan("good.md")))
    assert scan.files == ["good.md"]
    assert dict(scan.skipped) == {"notes.md": "not a regular file", "link.md": "not a regular file"}
    for path in ("notes.md", "link.md"):
        with pytest.raises(Skipped, match="not a regular file"):
            in_thread(lambda p=path: ws.read(p))  # type: ignore[misc]
    assert time.monotonic() - started < 5


@pytest.fixture
def flipper(root: Path) -> Iterator[threading.Event]:
    """Swaps ``notes.md`` between a file and a link out, and ``sub`` between a folder
    and a link to the outside folder, as fast as it can."""
    outside = root.parent / "outside"
    (root / "notes.md").write_text("# mine\n")
    (root / "sub").mkdir()
    (root / "sub" / "in.md").write_text("# in\n")
    with swapping(
        root / "notes.md", [outside / "secret.md"], "# mine\n", root / "sub", outside
    ) as stop:
        yield stop


def test_links_swapped_during_a_scan_or_a_read_are_never_followed(
    root: Path, flipper: threading.Event
) -> None:
    ws = Workspace(str(root))
    reads = scans = 0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            assert SECRET not in ws.read("notes.md")
            reads += 1
        except Skipped:
            pass
        scan = ws.scan("")
        seen = set(scan.files) | {p for p, _ in scan.skipped} | {p for p, _ in scan.errors}
        assert "sub/secret.md" not in seen, scan
        scans += 1
    flipper.set()
    assert reads > 0 and scans > 0
