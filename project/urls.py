"""Routes of whichever services ``settings.SERVICES`` says this process is."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [path("admin/", admin.site.urls)]
if "users" in settings.SERVICES:
    urlpatterns.append(path("", include("users.urls")))
if "orders" in settings.SERVICES:
    urlpatterns.append(path("", include("orders.urls")))

handler404 = "project.problems.not_found"
handler500 = "project.problems.server_error"
