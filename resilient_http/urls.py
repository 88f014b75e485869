"""``path("", include("resilient_http.urls"))``: the live page and the JSON it polls. A
project that extends the page routes its own view at ``resilience/`` before this include."""

from django.urls import path

from . import views

urlpatterns = [
    path("resilience/", views.page, name="resilient-http-page"),
    path("resilience/upstreams.json", views.upstreams, name="resilient-http-upstreams"),
]
