"""Orders API: validate the query, call one selector, return its result."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.selectors import order_list_for_user
from project.openapi import REQUEST_HEADERS, RETRY_AFTER, problems
from project.resilience import DEADLINE_HEADER, Deadline

#: Ids are 32-bit here; anything larger is a client bug, not a user to look up.
MAX_USER_ID = 2**31 - 1


class OrderListQuery(serializers.Serializer):
    user_id = serializers.IntegerField(min_value=1, max_value=MAX_USER_ID)


class OrderSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    user = serializers.IntegerField()
    product = serializers.CharField()


class OrderUserSerializer(serializers.Serializer):
    """The user from Users; only ``id`` when Users has no record of them (the stub)."""

    id = serializers.IntegerField()
    name = serializers.CharField(required=False)
    phone = serializers.CharField(required=False)


class OrderListSerializer(serializers.Serializer):
    user = OrderUserSerializer()
    orders = OrderSerializer(many=True)


class OrderListView(APIView):
    """``GET /orders/?user_id=<id>``: the user's orders with the user from Users.

    A caller that sends its time left (``X-Request-Timeout-Ms``) bounds the Users call
    too: Orders never works longer than its own caller will wait.
    """

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
                _503="Users is failing (`users_unavailable`) or the circuit breaker is open "
                "(`users_circuit_open`); see `Retry-After`",
                _504="Users did not answer in time (`users_timeout`)",
            ),
        },
    )
    def get(self, request: Request) -> Response:
        query = OrderListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        deadline = Deadline.from_header(request.headers.get(DEADLINE_HEADER))
        return Response(
            order_list_for_user(user_id=query.validated_data["user_id"], deadline=deadline)
        )
