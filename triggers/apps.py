"""Django app configuration: registers the system checks."""

import contextlib

from django.apps import AppConfig


class TriggersConfig(AppConfig):
    name = "triggers"
    verbose_name = "Triggers"
    # The tables' keys, whatever the project's DEFAULT_AUTO_FIELD (the migrations say so).
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import (
            checks,  # noqa: F401  (registers the checks)
            checks_cluster,  # noqa: F401  (registers the cluster checks)
        )
        from .manager import trigger_managers
        from .storages.base import storage_backends
        from .tasks.runners import task_runners

        # Load registered classes now, at start-up, rather than on a first
        # fire. A plugin that fails to import is left for its first use,
        # which raises an error naming it.
        for registry in (storage_backends, trigger_managers, task_runners):
            for key in registry.keys():
                with contextlib.suppress(Exception):
                    registry.get_class(key)
