"""The guided start for those who install aiide with pip: ``jupyter aiide example``.

``make lab`` opens on a copy of ``examples/getting-started``; a user of the wheel has no
checkout, so the wheel carries the same folder as package data and this command copies it
into the folder the lab will serve (the current one by default), asked for, never at
server start. A copy already there is the user's: it is never overwritten.

The target may be a workspace a sandboxed kernel can write, where a link may have been
planted to make this command write elsewhere: files go through ``fsguard`` (each folder
opened without following links, each file written to a fresh name and renamed).
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from . import fsguard

if TYPE_CHECKING:
    from importlib.abc import Traversable

NAME = "getting-started"
NOTEBOOK = f"{NAME}/{NAME}.ipynb"
#: Never copied (left by a lab opened on the checkout's folder).
SKIP = frozenset({".ipynb_checkpoints", "__pycache__", ".DS_Store"})


class ExampleError(RuntimeError):
    """The example cannot be copied there; the message says why and what to do."""


@dataclass(frozen=True)
class Copied:
    folder: Path
    notebook: Path
    #: False: a folder of that name was already there and was left alone.
    created: bool


def source() -> Traversable:
    """The packaged example (in the wheel), else the checkout's (an editable install)."""
    packaged = resources.files("aiide_server_ext") / "examples" / NAME
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[1] / "examples" / NAME
    if checkout.is_dir():
        return checkout
    raise ExampleError(f"this installation of aiide carries no {NAME} example")


def files_of(folder: Traversable, prefix: str = "") -> list[tuple[str, bytes]]:
    """(relative path, bytes) of every file, a folder's files before its subfolders'."""
    out: list[tuple[str, bytes]] = []
    folders = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name in SKIP:
            continue
        if entry.is_dir():
            folders.append(entry)
        else:
            out.append((prefix + entry.name, entry.read_bytes()))
    for sub in folders:
        out += files_of(sub, f"{prefix}{sub.name}/")
    return out


def copy_example(root: Path) -> Copied:
    """Copy the example into ``root``/getting-started unless something is there."""
    root = root.resolve()
    if not root.is_dir():
        raise ExampleError(f"{root} is not a folder")
    folder = root / NAME
    try:
        existing = os.lstat(folder)
    except FileNotFoundError:
        existing = None
    if existing is not None:
        if not stat.S_ISDIR(existing.st_mode):
            raise ExampleError(
                f"{folder} exists and is not a folder: move it away or use --dir elsewhere"
            )
        return Copied(folder, root / NOTEBOOK, created=False)
    try:
        for rel, data in files_of(source()):
            # make_folder creates the file's own folder (files come before subfolders'),
            # links=False: a link anywhere on the way is refused, never followed.
            fsguard.write_atomic(str(root), f"{NAME}/{rel}", data, links=False, make_folder=True)
    except fsguard.Refused as e:
        raise ExampleError(f"cannot copy the example into {root}: {e.message}") from None
    except OSError as e:
        raise ExampleError(f"cannot copy the example into {root}: {e.strerror or e}") from None
    return Copied(folder, root / NOTEBOOK, created=True)


def _cmd_example(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    try:
        copied = copy_example(root)
    except ExampleError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if copied.created:
        print(f"Copied the getting-started example into {copied.folder}")
    else:
        print(f"{copied.folder} is already there (your copy is kept; delete it for a fresh one)")
    notebook = os.path.relpath(copied.notebook, Path.cwd())
    print(f"Open it with:  jupyter lab {notebook}")
    return 0


def register_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``example`` to the ``jupyter aiide`` command."""
    example = subparsers.add_parser(
        "example",
        help="copy the getting-started example (a five-minute tour) into a folder",
    )
    example.add_argument(
        "--dir", default=".", help="the folder the lab serves (default: the current one)"
    )
    example.set_defaults(func=_cmd_example)
