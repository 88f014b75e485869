"""Routes of whichever services ``settings.SERVICES`` says this process is."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from project.health import healthz, readyz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
]
if "users" in settings.SERVICES:
    urlpatterns.append(path("", include("users.urls")))
if "orders" in settings.SERVICES:
    urlpatterns.append(path("", include("orders.urls")))

handler404 = "project.problems.not_found"
handler500 = "project.problems.server_error"
