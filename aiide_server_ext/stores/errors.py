"""What a failing store raises, owned by the stores that raise it.

A ``StoreError`` carries an HTTP status and a stable code (busy, read-only, full,
unavailable) like every ``ApiError``, so the one ``write_error`` renders it; it is a
``GateRefusal`` because the gate's own bookkeeping (audit, usage, tokens) lives in a
store, and the parts that call the gate catch one type for both.
"""

from __future__ import annotations

from aiide_server_ext.seams import GateRefusal


class StoreError(GateRefusal):
    """The database could not do what was asked (nothing was written)."""
