"""The database storage backend (``database`` in the ``triggers.storages`` registry).

Needs ``triggers`` in ``INSTALLED_APPS`` and its tables (``manage.py migrate``).
"""

from .backend import DatabaseStorageBackend

__all__ = ["DatabaseStorageBackend"]
