"""Typed reads of environment variables: a bad value names its variable, at start-up."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured

from resilient_http import UpstreamConfig
from resilient_http.config import split_hosts

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name} must be one of 1/0, true/false, yes/no, on/off; got {raw!r}"
    )


def _env_parsed(name: str, default: T, parse: Callable[[str], T], what: str) -> T:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return parse(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be {what}; got {raw!r}") from None


def _finite(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError(raw)
    return value


def env_float(name: str, default: float) -> float:
    return _env_parsed(name, default, _finite, "a finite number")


def env_int(name: str, default: int) -> int:
    return _env_parsed(name, default, int, "a whole number")


def _statuses(raw: str) -> frozenset[int]:
    return frozenset(int(item) for item in raw.split(",") if item.strip())


def env_statuses(name: str, default: frozenset[int]) -> frozenset[int]:
    """A comma-separated list of HTTP statuses: ``502,503,504``."""
    return _env_parsed(name, default, _statuses, "comma-separated HTTP statuses")


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def upstream_settings(prefix: str, *, base_url: str) -> dict[str, object]:
    """Keyword arguments for ``UpstreamConfig`` from ``{PREFIX}_{FIELD}`` variables.

    ``USERS_READ_TIMEOUT`` sets ``read_timeout``, and so on for every field; the base URL
    comes from ``{PREFIX}_SERVICE_URL`` (one URL, or several replicas' separated by commas).
    An unset variable keeps the field's default, so the defaults live in one place:
    ``UpstreamConfig``.
    """
    readers: dict[type, Callable[[str, Any], object]] = {
        bool: env_bool,
        int: env_int,
        float: env_float,
        frozenset: env_statuses,
        str: env_str,
    }
    values: dict[str, object] = {
        "name": prefix.lower(),
        "base_url": env_str(f"{prefix}_SERVICE_URL", base_url),
    }
    try:
        split_hosts(str(values["base_url"]))
    except ValueError as exc:
        raise ImproperlyConfigured(f"{prefix}_SERVICE_URL: {exc}") from None
    for field in dataclasses.fields(UpstreamConfig):
        if field.name in values:
            continue
        read = readers[type(field.default)]
        values[field.name] = read(f"{prefix}_{field.name.upper()}", field.default)
    try:
        UpstreamConfig(**values)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{prefix}_*: {exc}") from None
    return values
