"""OpenAPI pieces both services share: the problem body, and the headers they exchange."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from resilient_http import DEADLINE_HEADER
from resilient_http.problems import PROBLEM_CONTENT_TYPE
from resilient_http.request_id import REQUEST_ID_HEADER


class InvalidParamSerializer(serializers.Serializer):
    name = serializers.CharField()
    reason = serializers.CharField()


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details, with a stable machine-readable ``code``."""

    type = serializers.CharField(help_text="A URI naming the problem type: tag: URI + code")
    title = serializers.CharField(help_text="The HTTP status phrase")
    status = serializers.IntegerField()
    detail = serializers.CharField(help_text="What happened, for a person")
    code = serializers.CharField(required=False, help_text="Stable; switch on this")
    instance = serializers.CharField(required=False, help_text="The request path")
    invalid_params = InvalidParamSerializer(many=True, required=False, help_text="On a 400")


def problem(description: str) -> OpenApiResponse:
    return OpenApiResponse(ProblemSerializer, description=description)


def problems(**by_status: str) -> dict[tuple[int, str], OpenApiResponse]:
    """``problems(_503="...")``: responses keyed by (status, problem+json)."""
    return {
        (int(status.lstrip("_")), PROBLEM_CONTENT_TYPE): problem(text)
        for status, text in by_status.items()
    }


REQUEST_HEADERS = [
    OpenApiParameter(
        REQUEST_ID_HEADER,
        str,
        OpenApiParameter.HEADER,
        description="Correlates logs across services; generated when absent or invalid "
        "(1-128 of A-Za-z0-9._:-).",
    ),
    OpenApiParameter(
        DEADLINE_HEADER,
        int,
        OpenApiParameter.HEADER,
        description="Milliseconds the caller will still wait; the service stops work "
        "(and bounds its own upstream calls) accordingly.",
    ),
    OpenApiParameter(
        REQUEST_ID_HEADER,
        str,
        OpenApiParameter.HEADER,
        response=True,
        description="The request ID this request was logged under.",
    ),
]

RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    int,
    OpenApiParameter.HEADER,
    response=[503],
    description="Seconds before trying again is worthwhile.",
)
