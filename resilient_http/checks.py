"""``manage.py check`` for ``settings.UPSTREAMS``: a bad entry is reported with an id at
start-up, not met at the first call (``E`` errors stop ``runserver`` and ``migrate``).

    resilient_http.E001  UPSTREAMS is not a dict of name -> dict
    resilient_http.E002  an upstream's name is not a lowercase identifier
    resilient_http.E003  an entry has a key that is not an ``UpstreamConfig`` field
    resilient_http.E004  an entry's values are refused by ``UpstreamConfig``
    resilient_http.W001  DRF (installed) answers an ``UpstreamError`` with a 500 (its handler
                         is not ours)
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import re
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .config import UpstreamConfig

FIELDS = tuple(f.name for f in dataclasses.fields(UpstreamConfig))
NAME = re.compile(r"[a-z][a-z0-9_]*\Z")  # it becomes problem codes and metric labels
HANDLER = "resilient_http.problems.exception_handler"


@register(Tags.compatibility)
def check_upstreams(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    upstreams = getattr(settings, "UPSTREAMS", {})
    if not isinstance(upstreams, dict) or not all(isinstance(v, dict) for v in upstreams.values()):
        return [
            Error(
                "UPSTREAMS must be a dict of upstream name -> dict of UpstreamConfig fields.",
                hint='UPSTREAMS = {"payments": {"base_url": "http://127.0.0.1:8300"}}',
                id="resilient_http.E001",
            )
        ]
    return [message for name, entry in upstreams.items() for message in _entry(name, entry)]


def _entry(name: object, entry: dict[str, Any]) -> list[CheckMessage]:
    if not isinstance(name, str) or not NAME.match(name) or entry.get("name", name) != name:
        why = (
            "its 'name' differs"
            if isinstance(name, str) and NAME.match(name)
            else ("not a lowercase identifier")
        )
        return [
            Error(
                f"UPSTREAMS: {name!r}: {why}.",
                hint="It names the problem codes (payments_timeout) and the metrics' label.",
                id="resilient_http.E002",
            )
        ]
    unknown = [key for key in entry if key not in FIELDS]
    if unknown:
        guesses = {key: difflib.get_close_matches(str(key), FIELDS, n=1) for key in unknown}
        hint = "; ".join(f"{k!r}: did you mean {g[0]!r}?" for k, g in guesses.items() if g)
        return [
            Error(
                f"UPSTREAMS[{name!r}]: not a setting: {', '.join(map(repr, unknown))}.",
                hint=hint or "See the settings reference: docs/reference/settings.md.",
                id="resilient_http.E003",
            )
        ]
    try:
        UpstreamConfig(**{**entry, "name": name})
    except (TypeError, ValueError) as exc:
        return [Error(f"UPSTREAMS[{name!r}]: {exc}", id="resilient_http.E004")]
    return []


@register(Tags.compatibility)
def check_exception_handler(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if importlib.util.find_spec("rest_framework") is None:
        return []
    handler = getattr(settings, "REST_FRAMEWORK", {}).get("EXCEPTION_HANDLER")
    if handler == HANDLER or not getattr(settings, "UPSTREAMS", None):
        return []
    return [
        Warning(
            "DRF answers a failed upstream call (UpstreamError) with a 500.",
            hint=f'REST_FRAMEWORK = {{"EXCEPTION_HANDLER": "{HANDLER}"}}: a 503/504/502'
            " problem+json with a stable code and Retry-After.",
            id="resilient_http.W001",
        )
    ]
