"""Lock driver for caches whose ``add`` is atomic: LocMem (one process) and
Memcached (both of Django's clients), and any cache no other driver claims."""

from __future__ import annotations

from typing import ClassVar

from .base import LockDriver

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
    """

    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (
        *LockDriver.transient_errors,
        *_CLIENT_ERRORS,
    )
    failure_errors: ClassVar[tuple[type[BaseException], ...]] = _FAILURES

    def try_acquire(self, key: str, token: str, ttl: float | None) -> bool:
        # Whole seconds, rounded up: Memcached keeps no finer expiry.
        timeout = None if ttl is None else max(1, int(ttl + 0.999))
        return bool(self.cache.add(key, token, timeout=timeout))

    def release(self, key: str, token: str) -> bool:
        if self.cache.get(key) != token:
            return False
        self.cache.delete(key)
        return True
