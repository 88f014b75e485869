from django.urls import path

from orders.views import OrderCreateApi, OrderListApi
from project.dispatch import MethodDispatch


class OrdersEndpoint(MethodDispatch):
    """``GET /orders/?user_id=<id>``: the user's orders with the user from Users;
    ``POST /orders/``: create one, at most once per ``Idempotency-Key``.

    A caller that sends its time left (``X-Request-Timeout-Ms``) bounds the Users call
    too: Orders never works longer than its own caller will wait.
    """

    name = "Order List"  # what OPTIONS /orders/ has always called it
    views = {"GET": OrderListApi, "POST": OrderCreateApi}


urlpatterns = [path("orders/", OrdersEndpoint.as_view(), name="order-list")]
