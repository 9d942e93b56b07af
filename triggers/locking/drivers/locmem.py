"""Lock driver for Django's local-memory cache: fenced writes under the cache's own lock.

LocMemCache guards its dict with one mutex per cache location. Taking that
mutex for the owner check and the writes together means a holder whose
lock expired (a thread held in its block past the ttl) cannot write over
what the thread that took the lock next committed: its writes never land.
"""

from __future__ import annotations

import pickle

from django.core.cache import BaseCache

from ...cache_internals import LocMemInternals, locmem_internals
from ..writes import Writes
from .add import AddLockDriver
from .base import storable

__all__ = ["LocMemLockDriver"]


class LocMemLockDriver(AddLockDriver):
    """Takes the lock with ``add``; checks the token and writes in one step.

    The release (read the token, delete the key) and the writes of a save
    run while the cache's own mutex is held, so no other thread can take
    the lock, or write, in between.
    """

    def __init__(self, cache: BaseCache) -> None:
        super().__init__(cache)
        self._internals: LocMemInternals = locmem_internals(cache)
        self._pickle = storable(
            lambda value: pickle.dumps(value, self._internals.pickle_protocol)
        )

    def _holds(self, lock_key: str, token: bytes) -> bool:
        """Whether the (made) ``lock_key`` holds ``token`` and has not expired;
        the caller holds the cache's mutex."""
        internals = self._internals
        return not internals.has_expired(lock_key) and internals.data.get(lock_key) == token

    def release(self, key: str, token: str) -> bool:
        lock_key = self.cache.make_and_validate_key(key)
        pickled = self._pickle(token)
        with self._internals.mutex:
            if not self._holds(lock_key, pickled):
                return False
            self._internals.delete(lock_key)
            return True

    def write_and_release(self, key: str, token: str, writes: Writes, release: bool = True) -> bool:
        # Everything that may fail (keys, pickling) happens before the mutex
        # is taken: once the owner check passes, nothing is left to fail.
        lock_key = self.cache.make_and_validate_key(key)
        pickled_token = self._pickle(token)
        encoded: list[tuple[str, bytes]] = [
            (self.cache.make_and_validate_key(name), self._pickle(value))
            for name, value in writes.items()
        ]
        internals = self._internals
        with internals.mutex:
            if not self._holds(lock_key, pickled_token):
                return False
            for made_key, pickled in encoded:
                internals.set(made_key, pickled, writes.timeout)
            if release:
                internals.delete(lock_key)
        return True
