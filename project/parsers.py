"""How both APIs read what a client sends: the body's JSON, and whole numbers."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from resilient_http.digits import ascii_int


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, with every malformed body a 400 ``parse_error``: DRF's own lets a
    ``RecursionError`` escape (``[`` x 1000, a 2 KB body, was a 500 and 60 traceback lines)."""

    def parse(self, stream, media_type=None, parser_context=None):  # noqa: ANN001, ANN201
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None


class AsciiIntegerField(serializers.IntegerField):
    """DRF's ``IntegerField``, reading only ASCII digits: ``int("١٢")`` is 12 and
    ``int("²")`` a ``ValueError``; a number off the wire is ``[0-9]`` or invalid."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, str) and ascii_int(data) is None:
            self.fail("invalid")
        return super().to_internal_value(data)
