"""A headless command starts in well under a second of CPU, not three: imports it would
pay for and never use are deferred to their first use.

jsonschema (which nbformat and jupyter_server load) imports ``rfc3987_syntax`` when it is
installed, to check the ``iri`` and ``iri-reference`` formats; that module builds some
thirty Earley parsers with lark at import: 2.3 s of CPU on a 2-core VM, more than the rest
of a run's start together (``python -X importtime``; benchmarks/headless_start.py). A run
never checks an IRI. A stand-in module takes its place until then: its functions import
the real module on their first call, so every check behaves as before."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

SLOW = "rfc3987_syntax"
REAL = "rfc3987_syntax.syntax_helpers"


def _real(name: str) -> Any:
    return getattr(importlib.import_module(REAL), name)


def defer_slow_imports() -> None:
    """Install the stand-in, before anything imports jsonschema (else too late: no-op)."""
    if SLOW in sys.modules or "jsonschema" in sys.modules:
        return
    try:
        spec = importlib.util.find_spec(SLOW)
    except (ImportError, ValueError):
        return
    if spec is None or not spec.submodule_search_locations:
        return  # not installed: jsonschema skips those formats anyway
    stand_in = types.ModuleType(SLOW, "deferred: the real module loads on first use")
    stand_in.__path__ = list(spec.submodule_search_locations)  # its submodules import
    stand_in.__spec__ = spec

    def is_valid_syntax(term: str, value: str) -> bool:
        return bool(_real("is_valid_syntax")(term, value))

    stand_in.is_valid_syntax = is_valid_syntax  # type: ignore[attr-defined]
    stand_in.__getattr__ = _real  # type: ignore[method-assign]  # any other name: the real one
    sys.modules[SLOW] = stand_in
