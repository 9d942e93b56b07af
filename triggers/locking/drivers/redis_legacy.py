"""The Redis driver for a rolling upgrade: takes Triggers 2.x's lock as well.

Triggers 2.x locks a session with python-redis-lock on the raw Redis
client: the key ``lock:triggers:<uid>:lock`` (no Django key prefix or
version) holding its owner's token, with an expiry in whole seconds; its
release empties and pushes the list ``lock-signal:triggers:<uid>:lock``,
which its waiters block on. A storage in the single layout locks with this
driver, which takes that key together with this package's own lock (one
script: both or neither) and lets both go together, pushing the signal, so
2.x and this package's processes take turns on one session and 2.x
waiters wake at once; this package's waiters queue on that list too, so
they get their turn while 2.x processes hand the lock on. Writes under the lock are made only while both keys
still hold this holder's token.
"""

from __future__ import annotations

import copy
import math
import time
import weakref
from collections.abc import Sequence
from typing import Any

from django.core.cache import BaseCache

from ...process_state import register_state
from ..writes import Writes
from . import redis_scripts as scripts
from .redis import RedisLockDriver

__all__ = ["LegacyRedisLockDriver", "legacy_driver", "legacy_lock_key", "legacy_signal_key"]

#: the longest a waiter blocks on the signal list for a lock that never expires
SIGNAL_WAIT = 5.0


def legacy_lock_key(lock_name: str) -> str:
    """The raw key python-redis-lock holds the lock ``lock_name`` in."""
    return "lock:" + lock_name


def legacy_signal_key(lock_name: str) -> str:
    """The list python-redis-lock's waiters on ``lock_name`` block on."""
    return "lock-signal:" + lock_name


class LegacyRedisLockDriver(RedisLockDriver):
    """Locks with this package's key and 2.x's key at once."""

    # The optimistic commit checks only this package's lock: not for 2.x's company.
    can_commit_if_unchanged = False

    #: the name 2.x locks the session by (see :meth:`named`); None: the lock's own key
    legacy_name: str | None = None

    def named(self, legacy_name: str) -> LegacyRedisLockDriver:
        """This driver for one session whose 2.x lock name is ``legacy_name``
        (this package keeps its own lock under another key)."""
        driver = copy.copy(self)
        driver.legacy_name = legacy_name
        return driver

    def _legacy(self, key: str) -> str:
        return self.legacy_name or key

    def drop_signal(self, key: str) -> None:
        """Delete 2.x's signal list of the lock (it would expire a second after a release)."""
        self._raw().delete(legacy_signal_key(self._legacy(key)))

    def _legacy_ex(self, ttl: float | None) -> int:
        """Whole seconds, rounded up (a lock lives at least as long as asked); 0: none."""
        return 0 if ttl is None else max(1, math.ceil(ttl))

    def try_acquire(self, key: str, token: str, ttl: float | None) -> bool:
        return self.try_acquire_and_read(key, token, ttl, ())[0]

    def try_acquire_and_read(
        self, key: str, token: str, ttl: float | None, read: Sequence[str]
    ) -> tuple[bool, dict[str, Any]]:
        keys = [self._key(key), legacy_lock_key(self._legacy(key)), *(self._key(name) for name in read)]
        args = [self._encode(token), self._ttl_ms(ttl) or 0, token, self._legacy_ex(ttl)]
        result = self._run_script(scripts.ACQUIRE_BOTH_AND_READ, keys, args)
        return self.taken_and_read(result, read)

    def release(self, key: str, token: str) -> bool:
        keys = [self._key(key), legacy_lock_key(self._legacy(key)), legacy_signal_key(self._legacy(key))]
        return bool(self._run_script(scripts.RELEASE_BOTH, keys, [self._encode(token), token]))

    def wait_for_release(self, key: str, pause: float, longest: float | None) -> None:
        """Wait in 2.x's queue: block on its signal list, as its own waiters do (for up to
        the lock's ttl), so that a release by either version wakes the longest waiter,
        this package's too. Polling, ours would find the lock free only when no 2.x
        waiter was queued. A holder that died pushes no signal: its lock expires."""
        client = self._raw()
        timeout = SIGNAL_WAIT if longest is None else longest
        options = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None) or {}
        socket_timeout = options.get("socket_timeout")
        if socket_timeout:  # a blocked read must end before the client gives up on it
            timeout = min(timeout, 0.8 * socket_timeout)
        if timeout < 0.001:
            return
        try:
            client.blpop([legacy_signal_key(self._legacy(key))], timeout=timeout)
        except Exception:  # the next attempt meets (and reports) what failed
            time.sleep(pause)

    def owns(self, key: str, token: str) -> bool:
        raw = self._raw().get(legacy_lock_key(self._legacy(key)))
        return super().owns(key, token) and raw is not None and raw.decode() == token

    def write_and_release(self, key: str, token: str, writes: Writes, release: bool = True) -> bool:
        keys = [self._key(key), legacy_lock_key(self._legacy(key)), legacy_signal_key(self._legacy(key))]
        args: list[Any] = [self._encode(token), self._px(writes.timeout), "1" if release else "0", token]
        for name, value in writes.items():
            keys.append(self._key(name))
            args.append(self._encode(value))
        return bool(self._run_script(scripts.WRITE_AND_RELEASE_BOTH, keys, args, wrote=bool))


#: the 2.x-compatible driver made for each Redis cache object (``clear()``: made again)
_drivers: weakref.WeakKeyDictionary[BaseCache, LegacyRedisLockDriver] = register_state(
    "legacy lock drivers",
    weakref.WeakKeyDictionary(),
    settings=("CACHES",),
    about="the single layout's Redis driver made for each cache object",
)


def legacy_driver(cache: BaseCache) -> LegacyRedisLockDriver:
    """The 2.x-compatible driver of a Redis cache (made once per cache object)."""
    driver = _drivers.get(cache)
    if driver is None:
        driver = _drivers[cache] = LegacyRedisLockDriver(cache)
    return driver
