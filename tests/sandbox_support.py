"""Which sandbox backends this machine has; under CI a missing one is a failure."""

from __future__ import annotations

import os

import pytest

from aiide_kernel.backends import get_backend

IN_CI = os.environ.get("CI") == "true"


def require_backend(name: str) -> None:
    status = get_backend(name).check()
    if not status.available:
        msg = f"sandbox backend {name} unavailable: {status.detail} (fix: {status.fix})"
        if IN_CI:
            pytest.fail(msg + " -- CI must exercise every backend")
        pytest.skip(msg)
