"""Django app configuration: registers the system checks."""

from django.apps import AppConfig


class TriggersConfig(AppConfig):
    name = "triggers"
    verbose_name = "Triggers"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
        from .manager import trigger_managers
        from .runners import task_runners
        from .storages.base import storage_backends

        # Read the entry point lists now, at start-up, rather than on the
        # first fire; plugin modules are still imported only when used.
        for registry in (storage_backends, trigger_managers, task_runners):
            registry.keys()
