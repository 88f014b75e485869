"""The Users API's response shape, declared once: the Users view renders it, Orders renders
the user it got from Users with it, and a client can hold a Users answer to it.
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
