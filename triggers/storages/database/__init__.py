"""The database storage backend (``database`` in the ``triggers.storages`` registry).

Needs ``triggers`` in ``INSTALLED_APPS`` and its tables (``manage.py migrate``).
"""

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

if apps.ready and not apps.is_installed("triggers"):
    raise ImproperlyConfigured(
        "the database storage backend keeps sessions in the tables of the 'triggers' app:"
        " add 'triggers' to INSTALLED_APPS and run manage.py migrate triggers"
    )

from .backend import DatabaseStorageBackend  # noqa: E402

__all__ = ["DatabaseStorageBackend"]
