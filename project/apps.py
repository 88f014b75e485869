from django.apps import AppConfig
from django.conf import settings


class ProjectConfig(AppConfig):
    """Project-wide pieces that need an app: the ``runserver`` override, and OpenTelemetry
    (before the middleware is loaded: Django's instrumentation adds its own)."""

    name = "project"
    verbose_name = "Project"

    def ready(self) -> None:
        if settings.OPENTELEMETRY:
            from project.telemetry import configure

            configure(service="+".join(settings.SERVICES))
