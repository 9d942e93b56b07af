"""Django app configuration: registers the system checks."""

from django.apps import AppConfig


class TriggersConfig(AppConfig):
    name = "triggers"
    verbose_name = "Triggers"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
