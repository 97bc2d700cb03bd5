"""Logging for the gateway and the worker: text for people or one JSON object per line.

``VIDREC_LOG_FORMAT=json`` writes records as ``{"time", "level", "logger", "message",
"request_id", ...}`` with the fields a record carries in ``extra`` (``route``, ``status``,
``duration_ms``, ``method``...); ``text`` writes the same as a line. The request id comes from
:data:`request_id_var`, which the gateway sets for each request and WebSocket. Lines a command
prints whatever the log level (``vidrec serve``'s status lines) go through :func:`status_line`.

No secrets and no frame bytes reach the output: every message, argument and traceback passes
:func:`redact`, which removes API keys and ``Authorization``/``bearer.`` credentials, and the
``websockets`` library's debug logger (which prints frame payloads) is held at INFO.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from typing import Any, Literal

from service.apikeys import KEY_PATTERN

LogFormat = Literal["text", "json"]

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "vidrec_request_id", default=None
)
"""The id of the request or WebSocket being handled, for logs and error bodies."""

# Fields a record may carry in ``extra`` that the JSON output keeps, in this order.
EXTRA_FIELDS = ("route", "method", "status", "duration_ms", "client", "principal", "session_id")
# Loggers that print payloads at DEBUG (frames, bodies): never below INFO.
_PAYLOAD_LOGGERS = ("websockets", "websockets.protocol", "websockets.server", "httpcore", "hpack")
_CREDENTIALS = re.compile(
    r"(?i)(authorization[\"']?\s*[:=,]\s*[\"']?\s*(bearer\s+)?|bearer[\s.]+)[^\s\"',;)\]}]+"
)
_MARK = "vidrec_handler"


def redact(text: str) -> str:
    """``text`` without API keys or bearer credentials."""
    text = _CREDENTIALS.sub(lambda m: m.group(1) + "[redacted]", text)
    return KEY_PATTERN.sub("vrk_[redacted]", text)


class RedactFilter(logging.Filter):
    """Formats a record's message once, redacted; redacts its traceback text too."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        record.exc_info = None  # the redacted exc_text is what gets printed
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for name in EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger [request id]: message key=value...``."""

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None)
        extras = " ".join(
            f"{name}={getattr(record, name)}"
            for name in EXTRA_FIELDS
            if getattr(record, name, None) is not None
        )
        line = f"{_iso(record.created)} {record.levelname} {record.name}"
        line += f" [{rid}]: " if rid else ": "
        line += record.getMessage() + (f" {extras}" if extras else "")
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


def _iso(created: float) -> str:
    millis = int((created % 1) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{millis:03d}Z"


def status_line(logger: str, message: str, level: int = logging.INFO) -> str:
    """``message`` as a command prints it whatever the log level (``vidrec serve``'s status
    lines, the listening line): as it is in text (or before :func:`configure_logging`), one
    record of ``logger`` at ``level`` from the installed handler's filter and formatter in JSON,
    so a JSON log stays one object per line."""
    handler = next((h for h in logging.getLogger().handlers if getattr(h, _MARK, False)), None)
    if handler is None or not isinstance(handler.formatter, JsonFormatter):
        return message
    record = logging.LogRecord(logger, level, __file__, 0, message, None, None)
    handler.filter(record)  # redaction, request id
    return handler.format(record)


def configure_logging(log_format: LogFormat = "text", level: int | str = logging.INFO) -> None:
    """Sends every record (the service's, uvicorn's, libraries') to stderr in ``log_format``.

    Replaces a handler it installed before (so calling it again switches format) and leaves
    handlers others installed (pytest's capture) alone.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    setattr(handler, _MARK, True)
    handler.addFilter(RedactFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    for name in _PAYLOAD_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(logging.INFO, logger.level))
    # uvicorn's loggers write through the root handler, in the same format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
