"""Logging configuration: the tutorial's human-readable lines, or one JSON object a line.

Both carry the request ID. JSON lines also carry every structured field a log call
passed in ``extra`` (the resilience events' upstream, attempt, outcome, wait, ...).
"""

from __future__ import annotations

from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS

FORMATS = ("text", "json")


def logging_config(log_format: str = "text", level: str = "INFO") -> dict[str, Any]:
    if log_format not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}; got {log_format!r}")
    app_loggers = ("django", "django.server", "project", "users", "orders", "bench")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "project.request_id.RequestIdFilter"}},
        "formatters": {
            # The tutorial's line: 01/05/2023 11:45:37 INFO - "GET /users/1?... HTTP/1.1" 502
            "text": {
                "format": (
                    "%(asctime)s.%(msecs)03d %(levelname)s - %(message)s%(request_id_suffix)s"
                ),
                "datefmt": "%d/%m/%Y %H:%M:%S",
            },
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
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
            }
        },
        "loggers": {
            name: {"handlers": ["console"], "level": level, "propagate": False}
            for name in app_loggers
        },
        "root": {"handlers": ["console"], "level": "WARNING"},
    }
