"""Mutual exclusion over a Django cache.

A lock is a cache key written with an atomic "add" and holding an owner
token, so only its holder can release it and a crashed holder's lock goes
away with its time to live. Each kind of cache gets the driver that makes
that safe on it: Redis uses ``SET NX`` and scripts, the database cache
conditional SQL, Memcached and LocMem their atomic ``add``. Caches with no
atomic add (file, dummy) are refused with ``NotSupported``; other caches
can be given a driver with :func:`register_lock_driver` or the
``TRIGGERS_LOCK_DRIVERS`` setting.

Writes made under a lock (a storage's save) travel with its release, as a
:class:`~triggers.locking.writes.Writes`. Where the cache allows it (Redis,
the database cache, LocMem) they are made only if the lock is still this holder's;
a holder that finds its lock lost raises ``LockLost`` rather than return
as if its writes had landed.

The modules: :mod:`.lock` (the lock), :mod:`.lockable` (the mixin),
:mod:`.writes` (the write path between a storage and its guard),
:mod:`.driver_table` (which driver serves which cache) and
:mod:`.drivers` (one module per kind of cache).
"""

from ..errors import LockAcquisitionFailed, LockBackendError, LockLost, NotSupported
from .driver_table import (
    cache_lock_problem,
    lock_driver,
    register_lock_driver,
    unregister_lock_driver,
)
from .drivers.base import LockDriver
from .lock import CacheLike, CacheLock, NoLock, acquire_lock, resolve_cache
from .lockable import Lockable
from .writes import NO_WRITES, CommitGuard, CommitResult, Outcome, Writes

__all__ = [
    "NO_WRITES",
    "CacheLike",
    "CacheLock",
    "CommitGuard",
    "CommitResult",
    "LockAcquisitionFailed",
    "LockBackendError",
    "LockDriver",
    "LockLost",
    "Lockable",
    "NoLock",
    "NotSupported",
    "Outcome",
    "Writes",
    "acquire_lock",
    "cache_lock_problem",
    "lock_driver",
    "register_lock_driver",
    "resolve_cache",
    "unregister_lock_driver",
]
