"""Secrets never leave in logs, audit records, error messages or exceptions.

Patterns catch credentials by shape (aiide API keys, JWTs, Authorization values,
provider keys); known values (provider keys from the environment, the signing
secret) are replaced literally. One filter on the extension's loggers redacts
records in place before any handler sees them.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

REDACTED = "[REDACTED]"

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"aiide_[0-9a-f]{12}_[A-Za-z0-9_-]{8,}"), "aiide_" + REDACTED),
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), "[REDACTED-JWT]"),
    (
        re.compile(r"(?i)((?:authorization|x-api-key|cookie)[\"']?\s*[:=]\s*[\"']?)[^\"'\r\n,}]+"),
        r"\1" + REDACTED,
    ),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    (re.compile(r"(?i)\b(token|basic)\s+[A-Za-z0-9._~+/=-]{24,}"), r"\1 " + REDACTED),
    (re.compile(r"sk-ant-[A-Za-z0-9_-]{6,}"), "sk-ant-" + REDACTED),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"), "sk-" + REDACTED),
    (
        re.compile(r"(?i)([?&;](?:token|access_token|refresh_token|api_key|key)=)[^&\s\"']+"),
        r"\1" + REDACTED,
    ),
]

#: Environment variables whose values are secrets wherever they appear.
SECRET_ENVS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "AIIDE_JWT_SECRET", "JUPYTER_TOKEN")


class Redactor:
    """Replaces secrets in text and in JSON-like structures."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for value in secrets:
            self.add_secret(value)

    def add_secret(self, value: str | None) -> None:
        """Short values are not literal-redacted: they would mangle ordinary words."""
        if value and len(value) >= 8:
            self._secrets.add(value)

    def text(self, value: str, keep: Iterable[str] = ()) -> str:
        """`keep`: exact strings that pass unchanged (the user's own login link)."""
        kept = sorted({k for k in keep if k and k in value}, key=len, reverse=True)
        if kept:
            pattern = re.compile("|".join(re.escape(k) for k in kept))
            pieces = pattern.split(value)
            between = pattern.findall(value)
            out = [self._redact(pieces[0])]
            for found, piece in zip(between, pieces[1:], strict=True):
                out += [found, self._redact(piece)]
            return "".join(out)
        return self._redact(value)

    def _redact(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        for pattern, replacement in _PATTERNS:
            value = pattern.sub(replacement, value)
        return value

    def obj(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.obj(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.obj(v) for v in value]
        return value


class RedactingFilter(logging.Filter):
    """Rewrites a record's message and exception text; never drops a record.

    `own_urls` names the server's own startup links (``ServerApp.display_url`` and the
    like): Jupyter prints them with the login token so that a user without a browser on
    the machine can log in, and hiding them locks that user out. Only those exact strings
    pass; a token in any other text (a request path, another URL) is still redacted.
    """

    def __init__(
        self, redactor: Redactor, own_urls: Callable[[], Iterable[str]] | None = None
    ) -> None:
        super().__init__()
        self.redactor = redactor
        self.own_urls = own_urls
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        # Jupyter's logger is at DEBUG with an INFO handler: every request makes debug
        # records nobody writes. Redacting those cost the owner's requests ~9% more
        # server CPU (benchmarks/gateway_overhead.py); a record is redacted once, and
        # only when some handler will write it.
        if getattr(record, "_aiide_redacted", False) or not _will_be_written(record):
            return True
        record._aiide_redacted = True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not hide the record
            message = str(record.msg)
        keep: Iterable[str] = ()
        if self.own_urls is not None and "token=" in message:
            try:
                keep = list(self.own_urls())
            except Exception:  # a server not fully set up: redact everything
                keep = ()
        record.msg = self.redactor.text(message, keep)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.text(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.text(record.stack_info)
        return True


def _will_be_written(record: logging.LogRecord) -> bool:
    """Whether a handler on the record's logger or its ancestors (as propagation goes)
    takes a record of this level; with none at all, logging's last resort does. A
    logger we cannot look up by name counts as written (redacted, to be safe)."""
    named = logging.Logger.manager.loggerDict.get(record.name)
    if not isinstance(named, logging.Logger):
        return True
    logger: logging.Logger | None = named
    found = False
    while logger is not None:
        for handler in logger.handlers:
            found = True
            if record.levelno >= handler.level:
                return True
        if not logger.propagate:
            break
        logger = logger.parent
    last = logging.lastResort
    return not found and last is not None and record.levelno >= last.level


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers (``c.Gateway.json_logs``)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        for key in ("user", "route_class", "code", "status"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        return json.dumps(entry, default=str)


#: Loggers whose records the extension produces or that echo request data.
LOGGER_NAMES = (
    "ServerApp",
    "tornado.access",
    "tornado.application",
    "tornado.general",
    "aiide",
    "aiide.gateway",
    "aiide.kernel",
    "aiide.agent",
    "aiide.knowledge",
)


def install_redaction(filt: RedactingFilter, extra: Iterable[logging.Logger] = ()) -> None:
    loggers = [logging.getLogger(name) for name in LOGGER_NAMES] + list(extra)
    for logger in loggers:
        if filt not in logger.filters:
            logger.addFilter(filt)
        for handler in logger.handlers:
            if filt not in handler.filters:
                handler.addFilter(filt)


def uninstall_redaction(filt: RedactingFilter, extra: Iterable[logging.Logger] = ()) -> None:
    for logger in [logging.getLogger(name) for name in LOGGER_NAMES] + list(extra):
        logger.removeFilter(filt)
        for handler in logger.handlers:
            handler.removeFilter(filt)


def route_logs(server_log: logging.Logger) -> list[logging.Handler]:
    """aiide's own loggers write where the server's log does, at its level.

    Otherwise their records would reach only Python's last-resort handler:
    warnings as bare lines on stderr, info lost, and no JSON formatting.
    Returns the handlers added, for ``unroute_logs`` at shutdown.
    """
    aiide = logging.getLogger("aiide")
    added = [] if aiide.handlers else list(server_log.handlers)
    for handler in added:
        aiide.addHandler(handler)
    if aiide.level == logging.NOTSET:
        aiide.setLevel(server_log.getEffectiveLevel())
    return added


def unroute_logs(added: Iterable[logging.Handler]) -> None:
    aiide = logging.getLogger("aiide")
    for handler in added:
        aiide.removeHandler(handler)


def install_json_logs(loggers: Iterable[logging.Logger]) -> None:
    formatter = JsonFormatter()
    for logger in loggers:
        for handler in logger.handlers:
            handler.setFormatter(formatter)
