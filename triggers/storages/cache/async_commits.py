"""Committing from an event loop, on Redis: the unlocked tries and the lock, awaited.

The same tries as :mod:`.commit` (the same scripts, one request for a fire
that commits at its first try), sent with ``redis.asyncio``. A try that
finds the lock held goes on to wait for the lock itself, pausing with
``asyncio.sleep`` between looks, so the loop runs on meanwhile. The block of a try runs
on the loop (it only changes loaded state; a record the try did not start
with is read the sync way, one short request).

Cancelled while it waits, an operation holds no lock and wrote nothing: a
lock it may have taken is let go (token-checked) before the cancellation goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from ...errors import LockBackendError, LockLost, NotSupported
from ...locking import CacheLock
from ...locking.drivers.redis import RedisLockDriver
from ...locking.drivers.redis_async import AsyncRedisDriver
from ...locking.drivers.redis_legacy import LegacyRedisLockDriver
from ...locking.failures import DECODE_ERRORS, reaching
from ...locking.lock import BACKOFF_CAP, BACKOFF_START, TRANSIENT_RETRY_SECONDS
from ...locking.naming import cache_words
from ...locking.writes import NO_WRITES, Writes
from .commit import UNLOCKED_TRIES, Step, UnlockedCommits, UnlockedTry
from .read_state import Known

__all__ = ["AsyncCommits", "acquire_async", "check_cancelled", "release_async"]

T = TypeVar("T")


def check_cancelled() -> None:
    """Raise CancelledError if this task was asked to stop and a call below
    swallowed the request: ``asyncio.wait_for`` (which redis-py sends through)
    does on Python 3.11 when the call completes as the cancellation comes."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)  # Python 3.11+
    if cancelling is not None and cancelling():
        raise asyncio.CancelledError()


async def _let_go(lock: CacheLock, driver: AsyncRedisDriver) -> None:
    """Release ``lock`` if its token holds it (the RELEASE script checks); errors swallowed."""
    with contextlib.suppress(Exception):
        await driver.release(lock.key, lock.token)


async def _attempt(call: Awaitable[T]) -> T:
    """Await one lock attempt in a task of its own, so that a cancellation of
    this task is raised here even where a call below would swallow it (as
    ``asyncio.wait_for`` can on Python 3.10 and 3.11, with no way to tell
    afterwards on 3.10), and only once the attempt has ended, so that a lock
    it took is known and can be let go."""
    attempt = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(attempt)
    except asyncio.CancelledError:
        await asyncio.wait({attempt})
        if not attempt.cancelled():
            attempt.exception()  # looked at: the cancellation is what goes on
        raise


async def acquire_async(
    lock: CacheLock, driver: AsyncRedisDriver, read: Sequence[str]
) -> dict[str, Any]:
    """Take ``lock`` as ``CacheLock.acquire(block=True)`` does, pausing with
    ``asyncio.sleep``; the values of the ``read`` keys, read as it is taken.

    Whatever interrupts it (a cancellation, an error) lets go of a lock the
    last attempt may have taken before going on.
    """
    attempt = 0
    failing_until: float | None = None
    while True:
        try:
            taken, values = await _attempt(
                driver.try_acquire_and_read(lock.key, lock.token, lock.ttl, read)
            )
            check_cancelled()
        except BaseException as exc:
            await asyncio.shield(_let_go(lock, driver))
            if isinstance(exc, DECODE_ERRORS) or not isinstance(exc, Exception):
                raise
            now = time.monotonic()
            failing_until = failing_until or now + TRANSIENT_RETRY_SECONDS
            if not lock.driver.is_transient(exc) or now >= failing_until:
                raise LockBackendError(
                    f"cache {cache_words(lock.cache)} failed while handling lock {lock.key!r}: {exc}"
                ) from exc
            taken, values = False, {}
        if taken:
            lock.held = True
            return values
        pause = min(BACKOFF_CAP, BACKOFF_START * 2 ** min(attempt, 16))
        await asyncio.sleep(pause * random.uniform(0.5, 1.0))
        attempt += 1


async def release_async(
    lock: CacheLock, driver: AsyncRedisDriver, writes: Writes = NO_WRITES
) -> bool:
    """``CacheLock.release(writes)``, awaited: the writes land with the release,
    only while the lock is still this holder's (LockLost otherwise)."""
    lock.held = False
    doing = f"writing under lock {lock.key!r}"
    if not writes:
        with reaching(lock.driver, doing):
            return await driver.release(lock.key, lock.token)
    try:
        with reaching(lock.driver, doing, writing=True):
            released = await driver.write_and_release(lock.key, lock.token, writes)
    except BaseException:
        await _let_go(lock, driver)
        raise
    if not released:
        raise LockLost(lock.key, lock.ttl)
    return True


class AsyncCommits(UnlockedCommits):
    """The storage's async commits (mixed into the cache storage class)."""

    def async_driver(self) -> AsyncRedisDriver | None:
        """The asyncio twin of this session's Redis driver; None off Redis
        (or on a Redis client with no asyncio twin: Sentinel, Cluster)."""
        driver = self._lock_driver()
        if not isinstance(driver, RedisLockDriver) or isinstance(driver, LegacyRedisLockDriver):
            return None
        try:
            return driver.asynchronous()
        except NotSupported:
            return None

    def commits_on_loop(self) -> bool:
        # The single layout locks 2.x's way too: that stays on the sync path.
        return (
            not self.has_lock and not self._writer.whole_value and self.async_driver() is not None
        )

    async def acommit(self, block: Callable[[], T], start_try: Callable[[], None]) -> T:
        driver = self.async_driver()
        if driver is None:
            return await super().acommit(block, start_try)  # not on Redis: it says so
        identity = self._session_identity()
        known = self.starting_point(identity)
        if known is None:
            known = await self._aread_now(driver)
        for _ in range(UNLOCKED_TRIES):
            if not self.may_try(known):
                break
            check_cancelled()
            attempt = UnlockedTry(self, known, identity)
            start_try()
            result = await self._atry(driver, attempt, block)
            step = self.next_step(attempt, known)
            if step is Step.DONE:
                return result  # type: ignore[return-value]
            if step is Step.LOCK or step is Step.WAIT:
                # Held: wait for the lock itself, polling with one cheap
                # script, rather than run the block again on every look.
                break
            known = attempt.known if step is Step.RETRY else await self._aread_now(driver)
        check_cancelled()
        start_try()
        return await self._alocked(driver, block)

    async def _aread_now(self, driver: AsyncRedisDriver) -> Known:
        keys = self.read_now_keys()
        with reaching(self._failure_driver, f"reading session {self.uid!r}"):
            try:
                return self.known_read(await driver.read_many(keys))
            except DECODE_ERRORS as exc:
                raise self._damaged(keys, exc) from exc

    async def _atry(
        self, driver: AsyncRedisDriver, attempt: UnlockedTry, block: Callable[[], T]
    ) -> T | None:
        """One unlocked try: the block on the loop, then its commit awaited
        (``attempt.outcome`` says how it ended; None when the block raised)."""
        self.begin_try(attempt)
        try:
            try:
                result = block()
            except BaseException as exc:
                self.end_block(exc)
                if not isinstance(exc, Exception):
                    raise
                return None
            writes = self.end_block(None)
            guard = self.commit_guard(attempt, writes)
            committed = True
            if guard is not None:
                try:
                    with self._writing(), reaching(
                        self._failure_driver, f"committing session {self.uid!r}", writing=True
                    ):
                        answer = await driver.commit_if_unchanged(guard, writes)
                except BaseException:
                    self.after_commit(False, writes)  # what was loaded may not be what is stored
                    raise
                committed = self.commit_answered(attempt, guard, answer)
            self.after_commit(committed, writes)
            return result
        finally:
            self.object_mutex().release()

    async def _alocked(self, driver: AsyncRedisDriver, block: Callable[[], T]) -> T:
        """The block under the session lock, waited for without blocking the loop."""
        lock = self.get_lock_guard(True)
        assert isinstance(lock, CacheLock)
        read = list(self._lock_read_keys())
        try:
            prefetched = await acquire_async(lock, driver, read)
        except DECODE_ERRORS as exc:
            error = self._read_damaged(read, exc)
            if error is exc:
                raise
            raise error from exc
        mutex = self.object_mutex()
        mutex.acquire()
        self._mark_held(lock)
        writes = NO_WRITES
        try:
            self._on_lock_acquired(prefetched)
            return block()
        finally:
            self._mark_held(None)
            try:
                writes = self._take_writes()
            finally:
                mutex.release()
                try:
                    with self._writing():
                        await asyncio.shield(release_async(lock, driver, writes))
                finally:
                    self._on_lock_released()
