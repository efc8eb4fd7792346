"""Debian's chromium for the browser tests and the UI benchmark: never a browser a tool
downloads. Headless as root, with nothing that phones out (this machine's closed network
refuses those connections, many at a time)."""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("AIIDE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
