"""Regular expressions from untrusted hands (the model's ``search_files`` query) and over
untrusted text (tool arguments checked by the safety fence), in linear time.

Python's ``re`` backtracks: ``(a+)+b`` on a 26-character line took seconds, holding the
GIL, so the whole server froze. RE2 (``google-re2``) has no backtracking, so every search
is linear in the text. A model's query RE2 does not accept (backreferences, look-around)
becomes a literal search, never an ``re`` search. A fence pattern an administrator wrote
that way still runs with ``re`` (theirs to trust), with a warning naming it; the fence's
text is bounded before and it runs off the event loop (``agent/steps.py``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import re2  # type: ignore[import-untyped]

log = logging.getLogger("aiide")

#: RE2's memory budget per compiled pattern: a huge counted repetition fails to compile
#: (then it is searched literally) instead of taking the server's memory.
MAX_MEM = 8 << 20


def _options(*, case_sensitive: bool = True, literal: bool = False) -> Any:
    options = re2.Options()
    options.case_sensitive = case_sensitive
    options.log_errors = False  # a model's bad pattern is not worth a C++ log line
    options.literal = literal
    options.max_mem = MAX_MEM
    return options


@dataclass(frozen=True)
class Pattern:
    """A compiled linear-time pattern; ``pattern`` is the text it was made from."""

    pattern: str
    compiled: Any
    literal: bool = False
    #: The same pattern over a whole text, lines kept apart (``(?m)``, never across a
    #: newline): one call in C, the GIL released, tells whether any line can match.
    whole: Any = None

    def search(self, text: str) -> bool:
        return self.compiled.search(text) is not None

    def may_match(self, text: str) -> bool:
        """False only when no ``\\n``-separated line of ``text`` matches."""
        return self.whole is None or self.whole.search(text) is not None


def _per_text(query: str, literal: bool) -> Any:
    # Anchors of the whole text (\A, \z) and "$" before a CRLF's "\r" mean something else
    # over a whole text than over one line: no shortcut for those, every line is searched.
    if not literal and any(a in query for a in ("\\A", "\\z", "\\Z", "$")):
        return None
    options = _options(case_sensitive=False, literal=literal)
    options.never_nl = True
    try:
        return re2.compile(query if literal else "(?m)" + query, options)
    except re2.error:
        return None


def search_pattern(query: str) -> Pattern:
    """The model's query, case-insensitive; searched literally when RE2 cannot compile it."""
    try:
        compiled = re2.compile(query, _options(case_sensitive=False))
        return Pattern(query, compiled, whole=_per_text(query, False))
    except re2.error:
        literal = _options(case_sensitive=False, literal=True)
        compiled = re2.compile(query, literal)
        return Pattern(query, compiled, literal=True, whole=_per_text(query, True))


def fence_pattern(pattern: str) -> Pattern:
    """An administrator's deny pattern, with RE2 when it accepts it."""
    try:
        return Pattern(pattern, re2.compile(pattern, _options()))
    except re2.error as e:
        log.warning(
            "aiide: c.ToolPolicy.deny_patterns %r is not supported by RE2 (%s): it runs with "
            "Python's backtracking re, which a crafted argument can make slow",
            pattern,
            e,
        )
        return Pattern(pattern, re.compile(pattern))
