"""Routes of whichever services ``settings.SERVICES`` says this process is."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from project.health import healthz, readyz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("", include("django_prometheus.urls")),  # /metrics
]
if "users" in settings.SERVICES:
    urlpatterns.append(path("", include("users.urls")))
if "orders" in settings.SERVICES:
    urlpatterns.append(path("", include("orders.urls")))
    # The demo's live page first: it extends the library's, at the same resilience/.
    urlpatterns.append(path("", include("dashboard.urls")))
    urlpatterns.append(path("", include("resilient_http.urls")))

handler400 = "resilient_http.problems.bad_request"
handler404 = "resilient_http.problems.not_found"
handler500 = "resilient_http.problems.server_error"
