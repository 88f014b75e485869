"""Orders API: validate the query, call one selector, return its result."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.selectors import order_list_for_user
from project.resilience import DEADLINE_HEADER, Deadline

#: Ids are 32-bit here; anything larger is a client bug, not a user to look up.
MAX_USER_ID = 2**31 - 1


class OrderListQuery(serializers.Serializer):
    user_id = serializers.IntegerField(min_value=1, max_value=MAX_USER_ID)


class OrderListView(APIView):
    """``GET /orders/?user_id=<id>``: the user's orders with the user from Users.

    A caller that sends its time left (``X-Request-Timeout-Ms``) bounds the Users call
    too: Orders never works longer than its own caller will wait.
    """

    def get(self, request: Request) -> Response:
        query = OrderListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        deadline = Deadline.from_header(request.headers.get(DEADLINE_HEADER))
        return Response(
            order_list_for_user(user_id=query.validated_data["user_id"], deadline=deadline)
        )
