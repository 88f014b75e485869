from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """Project-wide pieces that need an app: the ``runserver`` override."""

    name = "project"
    verbose_name = "Project"
