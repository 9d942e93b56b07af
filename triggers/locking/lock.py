"""The lock itself: one key in one cache, held with a token unique to its holder.

A lock is a cache key written with an atomic "add" and holding an owner
token, so only its holder can release it and a crashed holder's lock goes
away with its time to live. How that is done safely on each kind of cache
is the driver's business (:mod:`triggers.locking.driver_table`).
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, TypeAlias

from django.core.cache import BaseCache, caches

from ..errors import LockAcquisitionFailed, LockBackendError, LockLost
from ..renamed import renamed_keywords
from .driver_table import lock_driver, write_driver
from .drivers.base import LockDriver, cache_name, is_cache
from .failures import DECODE_ERRORS, reaching
from .naming import cache_words
from .writes import NO_WRITES, Writes

__all__ = [
    "Block",
    "CacheLike",
    "CacheLock",
    "NoLock",
    "Ttl",
    "acquire_lock",
    "check_block",
    "resolve_cache",
]

CacheLike: TypeAlias = "str | BaseCache"
Ttl: TypeAlias = "bool | float | int | None"
Block: TypeAlias = "bool | float | int"

#: first pause of a blocked waiter, and the longest one (seconds)
BACKOFF_START = 0.0005
BACKOFF_CAP = 0.02
#: how long transient backend errors (a lost connection, a busy database)
#: are retried, from the first of them, before LockBackendError is raised;
#: and the first and longest pause between those retries (seconds)
TRANSIENT_RETRY_SECONDS = 2.0
TRANSIENT_BACKOFF_START = 0.01
TRANSIENT_BACKOFF_CAP = 0.25


@renamed_keywords(backend="cache")
def resolve_cache(cache: CacheLike) -> BaseCache:
    """The cache object for an alias, or ``cache`` itself if it is one."""
    if isinstance(cache, str):
        return caches[cache]
    if is_cache(cache):
        return cache  # a BaseCache, or one that behaves as one
    raise TypeError(f"expected a cache alias or a Django cache object, not {cache!r}")


def check_block(block: Block) -> None:
    if block is not True and block is not False:
        if isinstance(block, bool) or not isinstance(block, (int, float)) or block < 0:
            raise ValueError(f"block must be True, False or a number of seconds, not {block!r}")


def _relative_ttl(cache: BaseCache, ttl: Ttl) -> float | None:
    """Seconds a lock lives, or None for no expiry."""
    if ttl is True:
        value = cache.default_timeout
        if value is not None and value <= 0:
            raise ValueError(
                f"ttl=True takes the cache's default timeout, and {cache_name(cache)} has"
                f" {value!r}; give the lock a ttl in seconds, or None for no expiry"
            )
    elif ttl is None:
        return None
    else:
        value = ttl
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(
            f"lock ttl must be a positive number of seconds, True or None, not {ttl!r}"
        )
    return float(value)



class CacheLock:
    """One lock key in one cache, held with a token unique to this holder."""

    def __init__(
        self,
        key: str,
        cache: CacheLike = "default",
        ttl: Ttl = True,
        driver: LockDriver | None = None,
    ) -> None:
        self.key = key
        self.cache = resolve_cache(cache)
        #: the cache's own driver unless one is given (a storage may lock otherwise)
        self.driver = lock_driver(self.cache) if driver is None else driver
        self.ttl = _relative_ttl(self.cache, ttl)
        self.token = f"{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex}"
        self.held = False
        self._uncertain = False  # whether the last attempt failed midway

    def _call(self, operation: Any, *args: Any, until: float | None = None) -> Any:
        """Run a driver call, retrying transient backend errors for a while
        (never past ``until``, a waiter's own limit on the monotonic clock)."""
        deadline = None
        pause = TRANSIENT_BACKOFF_START
        while True:
            try:
                return operation(*args)
            except DECODE_ERRORS:
                raise  # a stored value is damaged; the cache itself is fine
            except Exception as exc:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + TRANSIENT_RETRY_SECONDS
                    if until is not None:
                        deadline = min(deadline, until)
                if not self.driver.is_transient(exc) or now >= deadline:
                    raise LockBackendError(
                        f"cache {cache_words(self.cache)} failed while handling lock"
                        f" {self.key!r}: {exc}"
                    ) from exc
                time.sleep(min(pause * random.uniform(0.5, 1.0), deadline - now))
                pause = min(pause * 2, TRANSIENT_BACKOFF_CAP)

    def _attempt(self, read: Sequence[str]) -> tuple[bool, dict[str, Any]]:
        if self._uncertain:
            # The last attempt failed midway: it may have taken the lock.
            if self.driver.owns(self.key, self.token):
                values = self.driver.read_held(self.key, self.token, read)
                self._uncertain = False  # only now: the read may fail again
                return True, values
        self._uncertain = True
        result = self.driver.try_acquire_and_read(self.key, self.token, self.ttl, read)
        self._uncertain = False
        return result

    @property
    def writes_land_together(self) -> bool:
        return self.driver.atomic_writes

    def acquire(self, block: Block = True, read: Sequence[str] = ()) -> dict[str, Any]:
        """Take the lock, waiting as ``block`` says; returns the ``read`` keys' values."""
        if self.held:
            raise RuntimeError(f"lock {self.key!r} is already held by this CacheLock")
        check_block(block)
        started = time.monotonic()
        # A limit of 0 retries the cache's errors as block=False does.
        until = None if isinstance(block, bool) or block == 0 else started + block
        attempt = 0
        self._uncertain = False
        while True:
            try:
                attempt_result: tuple[bool, dict[str, Any]] = self._call(
                    self._attempt, read, until=until
                )
            except BaseException:
                # The attempt may have taken the lock before its read (or the
                # decoding of what it read) failed: let it go rather than leave
                # every other caller waiting for its ttl. Token-checked, so a
                # lock this attempt never took is left alone.
                self._let_go()
                raise
            acquired, values = attempt_result
            if acquired:
                self.held = True
                return values
            if block is False:
                raise LockAcquisitionFailed(self.key)
            waited = time.monotonic() - started
            if block is not True and waited >= block:
                raise LockAcquisitionFailed(self.key, waited=float(block))
            pause = min(BACKOFF_CAP, BACKOFF_START * 2 ** min(attempt, 16))
            pause *= random.uniform(0.5, 1.0)
            # A driver woken by releases waits at most what is left, or the lock's ttl.
            longest = self.ttl if block is True else max(0.0, block - waited)
            if block is not True:
                pause = min(pause, max(0.0, block - waited))
            self.driver.wait_for_release(self.key, pause, longest)
            attempt += 1

    def _let_go(self) -> None:
        """Release if this holder's token is there; errors of the cache are swallowed
        (the lock then goes with its ttl)."""
        self._uncertain = False
        with contextlib.suppress(Exception):
            # Asked first: a write that is not needed could wait on the cache
            # (on SQLite, for as long as another connection writes).
            if self.driver.owns(self.key, self.token):
                self.driver.release(self.key, self.token)

    def release(self, writes: Writes = NO_WRITES) -> bool:
        """Make ``writes``, then let go.

        Without writes, returns False if the lock had been lost meanwhile
        (nothing else to do about it then). With writes, a lost lock raises
        :class:`LockLost`: the writes were refused, or made without the lock.
        """
        if not self.held:
            raise RuntimeError(f"lock {self.key!r} is not held")
        self.held = False
        if writes:
            # Writes are not retried blindly: a failure surfaces to the caller,
            # after a plain release so the lock is not left to its ttl.
            try:
                with reaching(self.driver, f"writing under lock {self.key!r}", writing=True):
                    released = self.driver.write_and_release(self.key, self.token, writes)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.driver.release(self.key, self.token)
                raise
            if not released:
                raise LockLost(self.key, self.ttl)
            return True
        return bool(self._call(self.driver.release, self.key, self.token))

    def write(self, writes: Writes) -> None:
        """Make ``writes`` while keeping the lock; LockLost if it was lost."""
        if not self.held:
            raise RuntimeError(f"lock {self.key!r} is not held")
        with reaching(self.driver, f"writing under lock {self.key!r}", writing=True):
            kept = self.driver.write_and_release(self.key, self.token, writes, release=False)
        if not kept:
            raise LockLost(self.key, self.ttl)


class NoLock:
    """What a :class:`Lockable` holds under ``acquire_lock(ttl=False)``: no lock at all.

    It takes nothing and keeps no one out, but what is saved in the block
    is written all the same, plainly. Any cache will do, even one that
    cannot lock.
    """

    held = True
    ttl: float | None = None
    writes_land_together = False

    def __init__(self, key: str, cache: CacheLike = "default") -> None:
        self.key = key
        self.cache = resolve_cache(cache)
        self.driver = write_driver(self.cache)

    def acquire(self, block: Block = True, read: Sequence[str] = ()) -> dict[str, Any]:
        if not read:
            return {}
        with reaching(self.driver, f"reading {list(read)!r}"):
            return self.driver.read_many(list(read))

    def release(self, writes: Writes = NO_WRITES) -> bool:
        self.write(writes)
        return True

    def write(self, writes: Writes) -> None:
        with reaching(self.driver, f"writing {len(writes.items())} keys", writing=True):
            self.driver.write(writes)


@contextlib.contextmanager
def acquire_lock(
    key: str, ttl: Ttl = True, cache: CacheLike = "default", block: Block = True
) -> Iterator[CacheLock | None]:
    """Hold the lock ``key`` in ``cache`` for the duration of the ``with`` block.

    ``ttl``: True for the cache's default timeout, None for no expiry, a
    number of seconds, or False to take no lock at all. ``block``: True to
    wait as long as it takes, False to fail at once, or the most seconds to
    wait; failing raises :class:`LockAcquisitionFailed`.
    """
    if ttl is False:
        yield None
        return
    lock = CacheLock(key, cache, ttl)
    lock.acquire(block)
    try:
        yield lock
    finally:
        lock.release()
