"""Logging configuration: the tutorial's human-readable lines, or one JSON object a line.

Both carry the request ID, and the OpenTelemetry trace's ID when it is another. JSON lines
also carry every structured field a log call passed in ``extra`` (the resilience events'
upstream, attempt, outcome, wait, ...).
"""

from __future__ import annotations

import logging
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS

FORMATS = ("text", "json")


def escape(text: str) -> str:
    """Control characters (ESC, CR, LF, ...) as ``\\x1b``-style escapes, as nginx writes
    them: a request line is the client's, and must not drive a terminal or forge a line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class EscapingFormatter(logging.Formatter):
    """The text format, its message escaped (a traceback below it keeps its lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)


class NoTraceback(logging.Filter):
    """Django logs a refused request (``django.security``: a bad Host header, too many
    fields) with its traceback: one line says it all, the stack is Django's own."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text = None, None
        return True


def logging_config(log_format: str = "text", level: str = "INFO") -> dict[str, Any]:
    if log_format not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}; got {log_format!r}")
    app_loggers = (
        "django",
        "django.server",
        "project",
        "resilient_http",
        "users",
        "orders",
        "bench",
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "resilient_http.request_id.RequestIdFilter"},
            "no_traceback": {"()": "project.logs.NoTraceback"},
        },
        "formatters": {
            # The tutorial's line: 01/05/2023 11:45:37 INFO - "GET /users/1?... HTTP/1.1" 502
            "text": {
                "()": "project.logs.EscapingFormatter",
                "format": (
                    "%(asctime)s.%(msecs)03d %(levelname)s - %(message)s%(request_id_suffix)s"
                ),
                "datefmt": "%d/%m/%Y %H:%M:%S",
            },
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(trace_id)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
                "reserved_attrs": [
                    *RESERVED_ATTRS,
                    "taskName",
                    "request_id_suffix",  # the text format's, not a field
                    "request",  # Django's: an object, not data
                    "server_time",
                ],
                "timestamp": False,
            },
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["request_id"],
            },
            "console_brief": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["request_id", "no_traceback"],
            },
        },
        "loggers": {
            **{
                name: {"handlers": ["console"], "level": level, "propagate": False}
                for name in app_loggers
            },
            "django.security": {"handlers": ["console_brief"], "level": level, "propagate": False},
        },
        "root": {"handlers": ["console"], "level": "WARNING"},
    }
