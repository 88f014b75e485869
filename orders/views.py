"""Orders API, one view per operation: validate the input, call one selector or service,
render its result through the output serializer. ``orders/urls.py`` routes both methods of
``/orders/`` to these.

A caller that sends its time left (``X-Request-Timeout-Ms``) bounds the Users call too:
Orders never works longer than its own caller will wait.
"""

from __future__ import annotations

import re

from django.core.validators import RegexValidator
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.contracts import UserAnswer
from orders.idempotency import KEY_SCHEMA, REPLAYED_HEADER, parse_key
from orders.selectors import order_list_for_user
from orders.services import order_create
from project.openapi import REQUEST_HEADERS, RETRY_AFTER, problems
from project.parsers import AsciiIntegerField
from resilient_http import DEADLINE_HEADER, IDEMPOTENCY_HEADER, Deadline

#: Ids are 32-bit here; anything larger is a client bug, not a user to look up.
MAX_USER_ID = 2**31 - 1


class OrderListQuery(serializers.Serializer):
    user_id = AsciiIntegerField(min_value=1, max_value=MAX_USER_ID)


#: A product name: no control characters, and at least one character that is not a space.
#: Spelled out (no ``\s``) so the OpenAPI schema (ECMA regex) and Python agree on every
#: string, which schemathesis checks.
_SPACE = r"\x20\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_CONTROL = r"\x00-\x1f\x7f-\x9f"
PRODUCT_PATTERN = f"^[^{_CONTROL}]*[^{_CONTROL}{_SPACE}][^{_CONTROL}]*$"
_PRODUCT = re.compile(PRODUCT_PATTERN)
PRODUCT_RULE = "Must not be blank or hold control characters."


class OrderCreateInput(serializers.Serializer):
    user_id = AsciiIntegerField(min_value=1, max_value=MAX_USER_ID)
    product = serializers.CharField(
        min_length=1,
        max_length=200,
        trim_whitespace=False,  # the pattern decides, the same way in the schema and here
        validators=[RegexValidator(PRODUCT_PATTERN, PRODUCT_RULE)],  # and puts it in the schema
    )

    def validate_product(self, value: str) -> str:
        if not _PRODUCT.fullmatch(value):  # Python's "$" also matches before a final newline
            raise serializers.ValidationError(PRODUCT_RULE)
        return value.strip()


class OrderSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    user = serializers.IntegerField()
    product = serializers.CharField()


class OrderUserSerializer(UserAnswer):
    """The user from Users; only ``id`` when Users has no record of them (the stub)."""

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # Optional in the schema, and left out when absent: the stub renders as {"id": n}.
        fields["name"].required = fields["phone"].required = False
        return fields


class OrderListSerializer(serializers.Serializer):
    user = OrderUserSerializer()
    orders = OrderSerializer(many=True)


class OrderListApi(APIView):
    """``GET /orders/?user_id=<id>``: the user's orders, with the user from Users."""

    @extend_schema(
        operation_id="orders_for_user",
        summary="A user's orders, with the user from the Users service",
        parameters=[OrderListQuery, *REQUEST_HEADERS, RETRY_AFTER],
        responses={
            200: OrderListSerializer,
            **problems(
                _400="`user_id` missing, not an integer, or out of range (`invalid_request`)",
                _404="No orders for this user (`orders_not_found`)",
                _502="Users answered with something that is not this user (`users_bad_response`)",
                _503="Users is failing (`users_unavailable`), the circuit breaker is open "
                "(`users_circuit_open`) or Users is slow and the calls to it allowed are all "
                "in flight (`users_overloaded`); see `Retry-After`",
                _504="Users did not answer in time (`users_timeout`)",
            ),
        },
    )
    def get(self, request: Request) -> Response:
        query = OrderListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        deadline = Deadline.from_header(request.headers.get(DEADLINE_HEADER))
        found = order_list_for_user(user_id=query.validated_data["user_id"], deadline=deadline)
        return Response(OrderListSerializer(found).data)


class OrderCreateApi(APIView):
    """``POST /orders/``: create an order, at most once per ``Idempotency-Key``."""

    @extend_schema(
        operation_id="order_create",
        summary="Create an order; safe to retry with an Idempotency-Key",
        request=OrderCreateInput,
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_HEADER,
                KEY_SCHEMA,
                OpenApiParameter.HEADER,
                description="Same key and body: the first response, replayed, no second order."
                " Same key, other body: 422. Same key while the first runs: 409."
                " Keys are kept for IDEMPOTENCY_KEY_TTL seconds (default 24 h), in the"
                " database every Orders process shares.",
            ),
            OpenApiParameter(
                REPLAYED_HEADER,
                str,
                OpenApiParameter.HEADER,
                response=[201],
                description="`true` when this is a stored response, replayed.",
            ),
            *REQUEST_HEADERS,
            RETRY_AFTER,
        ],
        responses={
            201: OrderSerializer,
            **problems(
                _400="Bad body or Idempotency-Key (`invalid_request`, `invalid_idempotency_key`)",
                _409="A request with this key is still running (`idempotency_key_in_use`)",
                _422="No such user (`user_not_found`), or the key was used with another body "
                "(`idempotency_key_reused`)",
                _502="Users answered badly (`users_bad_response`); nothing was stored",
                _503="Users unavailable (`users_unavailable`, `users_circuit_open`, "
                "`users_overloaded`); nothing was stored, retry with the same key",
                _504="Users did not answer in time (`users_timeout`); nothing was stored",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        body = OrderCreateInput(data=request.data)
        body.is_valid(raise_exception=True)
        key = parse_key(request.headers.get(IDEMPOTENCY_HEADER))
        deadline = Deadline.from_header(request.headers.get(DEADLINE_HEADER))
        created = order_create(**body.validated_data, deadline=deadline, idempotency_key=key)
        response = Response(OrderSerializer(created.body).data, status=created.status)
        if created.replayed:
            response[REPLAYED_HEADER] = "true"
        return response
