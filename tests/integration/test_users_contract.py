"""Orders owns its copy of Users' contract: when Users' answer drifts from it, Orders says
so (502 ``users_bad_response``) instead of passing the drift on to its own callers."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from rest_framework import serializers

from tests.integration.test_orders_outcomes import TUTORIAL_ANSWER, assert_problem, get_orders
from users.serializers import UserSerializer

pytestmark = pytest.mark.django_db(transaction=True)
ORDERS = Path(__file__).resolve().parents[2] / "orders"


class PhoneRenamed(serializers.Serializer):
    """Users' next version, say: ``phone`` became ``phone_number``."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    phone_number = serializers.CharField(source="phone")


class NameDropped(serializers.Serializer):
    id = serializers.IntegerField()
    phone = serializers.CharField()


class FieldAdded(serializers.Serializer):
    """A new field is not a break: Orders ignores what it does not use."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    phone = serializers.CharField()
    email = serializers.CharField(default="aaron@example.com")


def drift(monkeypatch: pytest.MonkeyPatch, to: type[serializers.Serializer]) -> None:
    """What a Users developer does: edit Users' serializer class itself (wherever it is
    imported, as Orders once imported it)."""
    monkeypatch.setattr(UserSerializer, "_declared_fields", to._declared_fields)


@pytest.mark.parametrize("drifted", [PhoneRenamed, NameDropped])
def test_users_drifting_from_orders_copy_is_a_502(
    users_upstream, orders_client, monkeypatch, drifted
):
    drift(monkeypatch, drifted)
    response, _ = get_orders(orders_client, 1)
    body = assert_problem(response, 502, "users_bad_response")
    assert "not this user" in body["detail"]


def test_a_field_added_by_users_changes_nothing_in_orders(
    users_upstream, orders_client, monkeypatch
):
    drift(monkeypatch, FieldAdded)
    response, _ = get_orders(orders_client, 1)
    assert response.status_code == 200
    assert json.loads(response.content) == TUTORIAL_ANSWER  # no "email" passed on


def test_orders_imports_nothing_from_users():
    """The services meet over HTTP only: no Users code in Orders to drift along with."""
    for path in ORDERS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("users"), path
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("users") for a in node.names), path
