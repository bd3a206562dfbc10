"""The process's logs: JSON lines by default (``--log-format text`` for people), through the
standard :mod:`logging` module.

- Every line logged during a run carries its ``run_id``, ``channel`` and ``user``: :func:`run_context`
  sets them in a :mod:`contextvars` variable for the run's task (tasks it spawns inherit it),
  and :class:`RunContextFilter` copies them onto each record.
- Nothing shaped like a credential gets out, nor the configured secrets themselves:
  :class:`RedactFilter` rewrites every record's message (and exception text) first.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from bot.sanitize import redact_secrets
from bot.settings import ANTHROPIC_API_KEY, SLACK_APP_TOKEN, SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET

LOG_FORMATS = ("json", "text")

#: The settings whose values must never be logged, whatever their shape.
SECRET_SETTINGS = (ANTHROPIC_API_KEY, SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_APP_TOKEN)
# Shorter values are not redacted literally (they would blank ordinary words); set real secrets.
MIN_SECRET_CHARS = 8

# Request-level debug logs of the HTTP stacks can include headers; they stay at WARNING.
NOISY_LOGGERS = ("httpx", "httpx2", "httpcore", "slack_sdk.web", "aiohttp.access")

RUN_FIELDS = ("run_id", "channel", "user")

_run: ContextVar[dict[str, Any] | None] = ContextVar("analyst_run", default=None)


@contextlib.contextmanager
def run_context(*, run_id: int, channel: str, user: str) -> Iterator[None]:
    """Within the block (and in tasks started from it), log lines carry the run's identity."""
    token = _run.set({"run_id": run_id, "channel": channel, "user": user})
    try:
        yield
    finally:
        _run.reset(token)


def secrets_in(env: Mapping[str, str]) -> list[str]:
    """The values of the secret settings set in ``env`` (long enough to redact safely)."""
    values = (env.get(setting.env, "").strip() for setting in SECRET_SETTINGS)
    return [value for value in values if len(value) >= MIN_SECRET_CHARS]


class RunContextFilter(logging.Filter):
    """Puts the current run's ``run_id``, ``channel`` and ``user`` on the record (if in a run)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _run.get()
        if context is not None:
            for key, value in context.items():
                setattr(record, key, value)
        return True


class RedactFilter(logging.Filter):
    """Renders each record's message once, with credentials redacted: anything shaped like a
    token or key (:func:`bot.sanitize.redact_secrets`) and the literal ``secrets``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted secret]")
        return redact_secrets(text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed call: logging reports it, without the arguments
            record.args = None
            return True
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info:
            formatter = logging.Formatter()
            record.exc_text = self.redact(formatter.formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the run's fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in RUN_FIELDS:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``, with ``[run 12 C0123 U0456]`` during a run."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if hasattr(record, "run_id"):
            head, _, rest = line.partition(": ")
            line = (
                f"{head}: [run {record.run_id} {getattr(record, 'channel', '')} {getattr(record, 'user', '')}] {rest}"
            )
        return line


def log_handler(fmt: str, stream: TextIO, *, secrets: Iterable[str] = ()) -> logging.Handler:
    """A handler writing ``fmt`` ("json" or "text") lines to ``stream``, redacted, with run fields."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; use json or text")
    handler = logging.StreamHandler(stream)
    handler.addFilter(RunContextFilter())
    handler.addFilter(RedactFilter(secrets))
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    return handler


def configure_logging(
    level: str, fmt: str = "json", *, secrets: Iterable[str] = (), stream: TextIO | None = None
) -> logging.Handler:
    """Send the process's logs to ``stream`` (stderr) at ``level``, as ``fmt`` lines; returns the
    handler (replacing whatever handlers the root logger had)."""
    root = logging.getLogger()
    handler = log_handler(fmt, stream or sys.stderr, secrets=secrets)
    root.setLevel(level.upper())
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return handler
