from django.urls import path

from . import views

urlpatterns = [
    path("resilience/upstreams.json", views.upstreams, name="resilient-http-upstreams"),
]
