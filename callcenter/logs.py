"""Logging: one line per record, as JSON (`LOG_FORMAT=json`) or text, carrying the sids it is about.

`log_context(task_sid=..., reservation_sid=..., call_sid=..., workspace_sid=..., worker_sid=...)`
sets context variables for the code it wraps; every record logged inside carries the sids that are
known. The API sets them for each request (from the URL and `CallSid`), the outbox deliverer for
each callback. Standard library only at import time, so the engine may use `log_context` too.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

FIELDS = ("workspace_sid", "task_sid", "reservation_sid", "call_sid", "worker_sid")
_CONTEXT = {name: contextvars.ContextVar(name, default=None) for name in FIELDS}
# Marks the handler this module installed, so configuring again replaces it instead of adding another.
_HANDLER_MARK = "_callcenter_handler"


@contextmanager
def log_context(**sids: str | None) -> Iterator[None]:
    """Within the block, log records carry these sids (None or missing ones keep the outer value)."""
    unknown = set(sids) - set(FIELDS)
    if unknown:
        raise TypeError(f"unknown log context field(s): {', '.join(sorted(unknown))}")
    tokens = [(_CONTEXT[name], _CONTEXT[name].set(value)) for name, value in sids.items() if value]
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)


def current_context() -> dict[str, str]:
    """The sids known here (only those that are set)."""
    return {name: value for name, variable in _CONTEXT.items() if (value := variable.get()) is not None}


class ContextFilter(logging.Filter):
    """Copies the current sids onto each record (an explicit `extra={"task_sid": ...}` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, variable in _CONTEXT.items():
            if getattr(record, name, None) is None:
                setattr(record, name, variable.get())
        return True


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", <sids>, "exception"}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [task_sid=WT...] message`: readable in a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(sids)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        known = [f"{name}={getattr(record, name)}" for name in FIELDS if getattr(record, name, None) is not None]
        record.sids = f" [{' '.join(known)}]" if known else ""
        return super().format(record)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record comes (servers and test runners replace it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(log_format: str = "text", level: str | int = "INFO", stream=None) -> logging.Handler:
    """Send every record (the root logger's) to `stream` (stderr) in `log_format`; safe to call again."""
    if log_format not in ("json", "text"):
        raise ValueError(f"LOG_FORMAT must be 'json' or 'text', not {log_format!r}")
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for existing in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler


def init_app(app) -> None:
    """Configure logging from LOG_FORMAT / LOG_LEVEL and give each request its sids."""
    from flask import request

    configure_logging(app.config.get("LOG_FORMAT", "text"), app.config.get("LOG_LEVEL", "INFO"))

    @app.before_request
    def enter_request_context() -> None:
        args = request.view_args or {}
        sids = {name: args.get(name) for name in FIELDS if isinstance(args.get(name), str)}
        call_sid = request.values.get("CallSid")
        if call_sid:
            sids["call_sid"] = call_sid
        context = log_context(**sids)
        context.__enter__()
        request.environ["callcenter.log_context"] = context

    @app.teardown_request
    def leave_request_context(_error=None) -> None:
        context = request.environ.pop("callcenter.log_context", None)
        if context is not None:
            context.__exit__(None, None, None)
