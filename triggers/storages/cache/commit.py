"""Optimistic commits: running an operation without the lock where the cache allows.

Where the cache can check and write in one atomic step (Redis), the
manager's operations first run without the lock, on the state the storage
last committed (or, for one that has read nothing, on a new session), and
commit only if no lock is held and the session's version (its witness key)
is the one they started from. A commit that finds the session changed
brings back its current state for the next try; one that finds the lock
held waits a moment and reads the session again. After a few tries, or
when the block raised, the operation runs again under the lock. A fire then
costs one round trip where the lock costs two.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

from ...locking.writes import (
    NO_WRITES,
    AttemptAbandoned,
    CommitGuard,
    CommitResult,
    Outcome,
    Writes,
)
from .state import CacheSessionState

__all__ = ["Encoded", "UnlockedTry", "attempts"]

#: tries without the lock before an operation takes it: the first on what
#: the storage knows, each next one on what the failed commit brought back
UNLOCKED_TRIES = 6
#: how long a try that found the lock held waits before reading again (s)
LOCKED_PAUSE = 0.0003


class Encoded(bytes):
    """A value as the cache client encoded it (decoded afresh for each use)."""


class UnlockedTry:
    """One run of a block without the lock, committed only if nothing changed.

    It is the block's write guard: its release is the conditional commit.
    ``outcome`` says how it ended: an :class:`Outcome` (``known`` then holds
    the session's current values when CHANGED), or None when the block raised.
    """

    held = True
    ttl: float | None = None
    writes_land_together = True

    def __init__(self, storage: CacheSessionState, known: dict[str, Any]) -> None:
        self.storage = storage
        self.key = storage.get_lock_name()
        self.known = known
        self.outcome: Outcome | None = None

    def write(self, writes: Writes) -> None:
        # Writing before the commit would make the block's effects visible early.
        raise AttemptAbandoned()

    def release(self, writes: Writes = NO_WRITES) -> bool:
        """Commit ``writes`` if no lock is held and the session is as this try found it."""
        storage = self.storage
        keys = storage.keys
        if not writes:
            self.outcome = Outcome.COMMITTED  # nothing to write
            return True
        guard = CommitGuard(
            lock_key=self.key,
            version_key=keys.witness,
            state_key=keys.head,
            expected=self.known.get(keys.witness),
        )
        driver = storage._lock_driver()
        assert driver is not None
        result: CommitResult = driver.commit_if_unchanged(guard, writes)
        self.outcome = result.outcome
        if result.outcome is Outcome.COMMITTED:
            head = writes.batches[-1][keys.head]
            storage._known = {
                keys.witness: head["generation"],
                keys.head: Encoded(result.values[keys.head]),
            }
        else:
            storage._known = None
            self.known = result.values
        return result.outcome is Outcome.COMMITTED

    def __enter__(self) -> CacheSessionState:
        storage = self.storage
        mutex = storage._object_mutex()
        mutex.acquire()
        try:
            storage._mark_held(self)
            known = self.known
            keys = storage.keys
            head = known.get(keys.head)
            if type(head) is Encoded:
                driver = storage._lock_driver()
                assert driver is not None
                known = {keys.head: driver.decode(head), keys.witness: known[keys.witness]}
            storage._start_over(known)
        except BaseException:
            storage._mark_held(None)
            mutex.release()
            raise
        return storage

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        storage = self.storage
        try:
            storage._mark_held(None)
            storage._prefetched = None
            writes = storage._pop_pending()
            if exc is not None:
                storage.invalidate_cache()
                # The block ran on state that may be stale: run it again under the lock.
                return isinstance(exc, Exception)
            if not self.release(writes) or not writes:
                storage.invalidate_cache()
            return False
        finally:
            storage._object_mutex().release()


def attempts(storage: CacheSessionState) -> Iterator[Any]:
    """Tries at an operation: unlocked ones where possible, then one under the lock."""
    keys = storage.keys
    known = storage._known
    if known is None:
        known = storage.cache.get_many([keys.head, keys.witness])
    for _ in range(UNLOCKED_TRIES):
        head = known.get(keys.head)
        if head is not None and known.get(keys.witness) is None:
            break  # stored without a witness (by 2.x, or the single layout)
        attempt = UnlockedTry(storage, known)
        yield attempt
        if attempt.outcome is Outcome.COMMITTED:
            return
        if attempt.outcome is Outcome.CHANGED:
            known = attempt.known
        elif attempt.outcome is Outcome.LOCKED:
            # Someone holds the lock briefly: let them finish, then read again.
            time.sleep(LOCKED_PAUSE * random.uniform(0.5, 1.0))
            known = storage.cache.get_many([keys.head, keys.witness])
        else:
            break  # the block raised: only the lock gives a definite answer
    yield storage.acquire_lock()
