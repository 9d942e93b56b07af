"""Lock driver for caches whose ``add`` is atomic: LocMem (one process) and
Memcached (both of Django's clients), and any cache no other driver claims."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from django.core.cache import BaseCache

from ..writes import Writes
from .base import LockDriver
from .memcached_client import memcached_servers_of

__all__ = ["AddLockDriver"]

try:
    from pymemcache.exceptions import (
        MemcacheError,
        MemcacheServerError,
        MemcacheUnexpectedCloseError,
        MemcacheUnknownError,
    )
except ImportError:  # pymemcache is not installed: none of its errors can occur
    _CLIENT_ERRORS: tuple[type[BaseException], ...] = ()
    _FAILURES: tuple[type[BaseException], ...] = ()
else:
    _CLIENT_ERRORS = (MemcacheServerError, MemcacheUnexpectedCloseError)
    _FAILURES = (MemcacheError, MemcacheUnknownError)

try:
    from pylibmc import Error as PylibmcError
except ImportError:  # pylibmc is not installed
    pass
else:
    _FAILURES = (*_FAILURES, PylibmcError)


class AddLockDriver(LockDriver):
    """Takes a lock with the cache's atomic ``add``.

    Release reads the key and deletes it if it still holds this holder's
    token: two steps, so a lock that expires between them and is taken by
    another owner at that instant is deleted too. A ttl well above the
    time a lock is held keeps that from happening.

    On PyMemcacheCache every call goes to the key's own server directly
    (:mod:`.memcached_client`): its HashClient answers a miss, or "not
    stored", for a server it could not reach.
    """

    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (
        *LockDriver.transient_errors,
        *_CLIENT_ERRORS,
    )
    failure_errors: ClassVar[tuple[type[BaseException], ...]] = _FAILURES

    def __init__(self, cache: BaseCache) -> None:
        super().__init__(cache)
        self.memcached = memcached_servers_of(cache)

    def try_acquire(self, key: str, token: str, ttl: float | None) -> bool:
        # Whole seconds, rounded up: Memcached keeps no finer expiry.
        timeout = None if ttl is None else max(1, int(ttl + 0.999))
        if self.memcached is not None:
            return self.memcached.add(key, token, timeout)
        return bool(self.cache.add(key, token, timeout=timeout))

    def release(self, key: str, token: str) -> bool:
        if not self.owns(key, token):
            return False
        if self.memcached is not None:
            self.memcached.delete(key)
        else:
            self.cache.delete(key)
        return True

    def owns(self, key: str, token: str) -> bool:
        if self.memcached is not None:
            return bool(self.memcached.get(key) == token)
        return super().owns(key, token)

    def read_many(self, keys: Sequence[str]) -> dict[str, Any]:
        if self.memcached is not None:
            return self.memcached.read_many(keys)
        return super().read_many(list(keys))

    def write(self, writes: Writes) -> None:
        if self.memcached is not None:
            self.memcached.write(writes.batches, writes.timeout)
        else:
            super().write(writes)
