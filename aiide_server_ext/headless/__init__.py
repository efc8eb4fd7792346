"""Headless agent runs: ``jupyter aiide run`` / ``replay`` (see docs/headless.md)."""
