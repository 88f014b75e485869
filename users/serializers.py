"""The Users API's response shape, as Users renders it. Orders holds its own copy of what it
expects (``orders.contracts``), so a change here shows up there as a refused answer.
"""

from __future__ import annotations

from rest_framework import serializers


class UserSerializer(serializers.Serializer):
    """The tutorial's contract, ``{"id", "name", "phone"}``, with the bounds a client holds
    an answer to (looser than the model's columns: an answer is not refused for a few
    characters more than this service stores today).
    """

    id = serializers.IntegerField(min_value=1)
    name = serializers.CharField(allow_blank=True, max_length=1000)
    phone = serializers.CharField(allow_blank=True, max_length=100)
