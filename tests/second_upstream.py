"""A test-only view that calls a second upstream, Payments, the way Orders calls Users."""

from __future__ import annotations

from django.urls import include, path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from resilient_http import DEADLINE_HEADER, Deadline
from resilient_http.registry import upstream


class ChargeView(APIView):
    def get(self, request: Request, charge_id: int) -> Response:
        deadline = Deadline.from_header(request.headers.get(DEADLINE_HEADER))
        answer = upstream("payments").get(f"/charges/{charge_id}", deadline=deadline)
        return Response(answer.json(), status=answer.status)


urlpatterns = [
    path("charges/<int:charge_id>", ChargeView.as_view()),
    path("", include("project.urls")),
]
