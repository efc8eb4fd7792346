"""One real JupyterHub for the hub tests (started once: a hub takes ~10 s, a spawn ~6 s)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .harness import INSTRUCTORS, STUDENTS, Hub, missing


@pytest.fixture(scope="session")
def hub() -> Iterator[Hub]:
    why = missing()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(why + " (CI must run the hub tests)")
        pytest.skip(why)
    running = Hub().start()
    try:
        running.spawn(*STUDENTS, *INSTRUCTORS)
        yield running
    finally:
        running.stop()
