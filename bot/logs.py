"""Structured logs: what every record of `sada run` carries besides its message — the channel,
update, contact and session being handled — and the two formats, text and JSON.

The context lives in context variables, bound where an inbound event is handled
(Controller.handle) and where the follow-ups send an outbox row (Dispatcher._deliver). Each
update runs in its own task (its chat's lane), and a task starts with a copy of its creator's
context, so one person's fields never show in another's records. ContextFilter copies them
onto each record at the handler, so third-party libraries' records carry them too.

Personal data — names, answers, typed text, phone numbers and other addresses — is logged
only at DEBUG; records above it name contacts and sessions by their ids (docs/operations.md).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

__all__ = ["FIELDS", "ContextFilter", "JsonFormatter", "bind", "bind_event", "configure",
           "current", "scoped"]

# The context fields, as named in JSON records and in the text format's trailing brackets.
FIELDS = ("channel", "update_id", "contact_id", "session_id")
_VARS: dict[str, ContextVar[Any]] = {name: ContextVar(f"sada_log_{name}", default=None)
                                     for name in FIELDS}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(sada_context)s"
FORMATS = ("text", "json")

P = ParamSpec("P")
R = TypeVar("R")


def bind(**fields: Any) -> None:
    """Set context fields (None clears one) for the rest of the current task."""
    for name, value in fields.items():
        _VARS[name].set(value)


def bind_event(channel: str, update_id: int | None) -> None:
    """A new inbound event: its channel and update, no contact or session yet."""
    bind(channel=channel, update_id=update_id, contact_id=None, session_id=None)


def current() -> dict[str, Any]:
    """The context fields set now."""
    return {name: value for name, var in _VARS.items() if (value := var.get()) is not None}


def scoped(function: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Fields bound while `function` runs are undone when it returns: a loop handling one
    event after another in one task (a console, the dispatcher) leaks none to the next."""

    @functools.wraps(function)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        saved = {name: var.get() for name, var in _VARS.items()}
        try:
            return await function(*args, **kwargs)
        finally:
            bind(**saved)

    return wrapper


class ContextFilter(logging.Filter):
    """Copies the context fields onto every record (as attributes named like FIELDS), and
    `sada_context`, their text form: " [channel=telegram update_id=7 …]" or ""."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = current()
        for name in FIELDS:
            setattr(record, name, fields.get(name))
        record.sada_context = (" [" + " ".join(f"{k}={v}" for k, v in fields.items()) + "]"
                               if fields else "")
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the context
    fields that are set, and exception (the traceback as one string) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def handler(fmt: str, stream: Any = None) -> logging.Handler:
    """A stream handler (stderr by default) in format `fmt` (text or json), with the
    context filter."""
    if fmt not in FORMATS:
        raise ValueError(f"the log format must be text or json, not {fmt!r}")
    out = logging.StreamHandler(stream)
    out.addFilter(ContextFilter())
    out.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    return out


def configure(level: str = "INFO", fmt: str = "text", stream: Any = None) -> None:
    """The root logger of `sada run`: one handler in `fmt` at `level`, replacing any other."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler(fmt, stream))
    root.setLevel(level.upper())
