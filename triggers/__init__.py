"""Triggers: the observer pattern for Django applications on distributed stacks.

Per session, tasks run once certain triggers have fired, once per firing of
another, or never once others have fired; a finished task fires its own
name. State lives in a storage backend (by default a Django cache).
"""

from .manager import TriggerManager, trigger_managers
from .storages.base import BaseTriggerStorage, TaskInstanceCollection, storage_backends
from .storages.cache import CacheStorageBackend

__version__ = "3.0.0.dev0"

__all__ = [
    "BaseTriggerStorage",
    "CacheStorageBackend",
    "TaskInstanceCollection",
    "TriggerManager",
    "storage_backends",
    "trigger_managers",
]
