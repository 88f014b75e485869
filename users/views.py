"""Users API: thin views over selectors."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from project.openapi import REQUEST_HEADERS, RETRY_AFTER, problems
from users.selectors import user_get
from users.serializers import UserSerializer


class UserDetailView(APIView):
    """``GET /users/<id>``: one user, or 404 "User not found"."""

    @extend_schema(
        operation_id="user_get",
        summary="One user",
        parameters=[
            OpenApiParameter("user_id", int, OpenApiParameter.PATH),
            *REQUEST_HEADERS,
            RETRY_AFTER,
        ],
        responses={
            200: UserSerializer,
            **problems(
                _404="No such user (`user_not_found`)",
                _503="Simulated outage, when one is active (`simulated_outage`)",
                _504="The caller's deadline passed before it could be served (`deadline_exceeded`)",
            ),
        },
    )
    def get(self, request: Request, user_id: str) -> Response:
        return Response(UserSerializer(user_get(user_id=int(user_id))).data)
