"""Users API: thin views over selectors."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from users.selectors import user_get


class UserSerializer(serializers.Serializer):
    """The tutorial's contract: ``{"id", "name", "phone"}``."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    phone = serializers.CharField()


class UserDetailView(APIView):
    """``GET /users/<id>``: one user, or 404 "User not found"."""

    def get(self, request: Request, user_id: str) -> Response:
        return Response(UserSerializer(user_get(user_id=int(user_id))).data)
