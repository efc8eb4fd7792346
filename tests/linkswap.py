"""A race against path checks, shared by the file tools', the notebook tools' and the
knowledge index's safety tests: a thread that swaps, as fast as it can, a file between a
regular file and a link out, and a folder between itself and a link to a folder outside.
A check-then-open that follows links loses this race sooner or later; the tests call
through it for a few seconds and expect only refusals or inside data."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def swapping(
    file: Path, targets: Sequence[Path], content: str, folder: Path, outside: Path
) -> Iterator[threading.Event]:
    """Swaps ``file`` for a link to each of ``targets`` in turn and back to a regular file
    holding ``content``, and ``folder`` for a link to ``outside`` and back, until the event
    it yields is set (or the block ends)."""
    stop = threading.Event()
    link, new = file.with_suffix(".link"), file.with_suffix(".new")
    aside = folder.with_name(folder.name + ".aside")

    def flip() -> None:
        turn = 0
        while not stop.is_set():
            turn += 1
            os.symlink(targets[turn % len(targets)], link)
            os.replace(link, file)
            new.write_text(content)
            os.replace(new, file)
            try:
                os.rename(folder, aside)
                os.symlink(outside, folder)
                os.unlink(folder)
                os.rename(aside, folder)
            except OSError:  # the code under test holds the folder open: next turn
                pass

    thread = threading.Thread(target=flip, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(5)
