from django.apps import AppConfig


class ResilientHttpConfig(AppConfig):
    """``INSTALLED_APPS = [..., "resilient_http"]``: registers the system checks of
    ``settings.UPSTREAMS`` (``manage.py check``)."""

    name = "resilient_http"
    verbose_name = "Resilient HTTP calls"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers them)
