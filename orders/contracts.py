"""Users' contract as Orders relies on it: Orders' own copy, on purpose.

Orders used to validate Users' answers with Users' own ``UserSerializer``: then a change on
Users' side (a field renamed, dropped) changed what Orders accepts and what it renders, and
no test of either service failed. A consumer owns what it expects; when Users drifts from
it, Orders answers ``502 users_bad_response`` and says so, instead of passing the drift on
(``tests/integration/test_users_contract.py``).
"""

from __future__ import annotations

from rest_framework import serializers


class UserAnswer(serializers.Serializer):
    """``GET /users/<id>``'s 200: ``{"id", "name", "phone"}``; bounds looser than Users'
    columns (an answer is not refused for a few characters more than Users stores today);
    fields Orders does not use are ignored."""

    id = serializers.IntegerField(min_value=1)
    name = serializers.CharField(allow_blank=True, max_length=1000)
    phone = serializers.CharField(allow_blank=True, max_length=100)
