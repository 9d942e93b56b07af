"""Where session state lives: the shared base class and the cache backend."""

from .base import BaseTriggerStorage, TaskInstanceCollection, storage_backends, validate_uid
from .cache import CacheStorageBackend

__all__ = [
    "BaseTriggerStorage",
    "CacheStorageBackend",
    "TaskInstanceCollection",
    "storage_backends",
    "validate_uid",
]
