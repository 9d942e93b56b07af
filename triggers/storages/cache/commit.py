"""Optimistic commits: running an operation without the lock where the cache allows.

Where the cache can check and write in one atomic step (Redis), the
manager's operations first run without the lock, on the state the storage
last committed (or, for one that has read nothing, on a new session), and
commit only if no lock is held and the session's version (its witness key)
is the one they started from. A commit that finds the session changed
brings back its current state for the next try; one that finds the lock
held waits a moment and reads the session again. After a few tries, or
when the block raised on state it had read, the operation runs again under
the lock. A fire then costs one round trip where the lock costs two.

Within a process, storage objects of one session start from the state the
last of them committed (:data:`committed_heads`), and their tries take turns
(a lock per session stripe), so a task that runs right after the fire that
readied it, or beside its siblings in other threads, commits at its first
try instead of colliding with them.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Hashable, Iterator
from typing import Any

from ...locking.failures import DECODE_ERRORS, reaching
from ...locking.writes import (
    NO_WRITES,
    AttemptAbandoned,
    CommitGuard,
    CommitResult,
    Outcome,
    Writes,
)
from .committed import HEAD_DIGEST, committed_heads, generation, pickled_records
from .state import CacheSessionState

__all__ = ["Encoded", "UnlockedTry", "attempts", "forget"]

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

    def __init__(
        self, storage: CacheSessionState, known: dict[str, Any], identity: Hashable | None
    ) -> None:
        self.storage = storage
        self.key = storage.keys.lock
        self.known = known
        self.identity = identity
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
            state_digest=self.known.get(HEAD_DIGEST),
        )
        driver = storage._lock_driver()
        assert driver is not None
        with reaching(driver, f"committing session {storage.uid!r}", writing=True):
            result: CommitResult = driver.commit_if_unchanged(guard, writes)
        self.outcome = result.outcome
        if result.outcome is Outcome.COMMITTED:
            committed = storage._saved_witness
            head = result.values[keys.head]
            storage._known = {
                keys.witness: committed,
                keys.head: Encoded(head),
                HEAD_DIGEST: hashlib.sha1(head).hexdigest(),
            }
            if self.identity is not None:
                records = storage._saved_records
                if records is None:  # not saved by the split layout: pickle them here
                    loaded = storage.instances.loaded
                    records = pickled_records({n: i.serialize() for n, i in loaded.items()})
                committed_heads.put(
                    self.identity,
                    storage._known,
                    witness=committed,
                    started_from=self.known.get(keys.witness),
                    records=records,
                )
        else:
            storage._known = None
            if result.outcome is Outcome.CHANGED and self.identity is not None:
                # What this process remembers of that state is stale: the
                # session was changed, deleted or rolled back since.
                committed_heads.forget(self.identity, guard.expected)
            # Decoded here, with the checks a read makes: a damaged value is named.
            self.known = _decoded(storage, result.values)
            head = result.values.get(keys.head)
            if head is not None:
                self.known[HEAD_DIGEST] = hashlib.sha1(head).hexdigest()
        return result.outcome is Outcome.COMMITTED

    def __enter__(self) -> CacheSessionState:
        storage = self.storage
        keys = storage.keys
        if self.identity is not None:
            committed_heads.turn(self.identity).acquire()
            # Another thread may have committed while this one waited its turn.
            self.known = _newer(self.known, committed_heads.get(self.identity), keys.witness) or {}
        mutex = storage.object_mutex()
        mutex.acquire()
        try:
            storage._mark_held(self)
            known = self.known
            storage._start_over(_decoded(storage, known))
        except BaseException:
            storage._mark_held(None)
            mutex.release()
            self._end_turn()
            raise
        return storage

    def _end_turn(self) -> None:
        if self.identity is not None:
            committed_heads.turn(self.identity).release()

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
            storage.object_mutex().release()
            self._end_turn()


def forget(identity: Hashable) -> None:
    """Drop what this process remembers of a session (it was deleted)."""
    committed_heads.forget(identity)


def _decoded(storage: CacheSessionState, known: dict[str, Any]) -> dict[str, Any]:
    """``known`` with its values as stored decoded; StorageCorrupted naming a
    key whose value does not decode."""
    encoded = [key for key, value in known.items() if isinstance(value, (bytes, bytearray))]
    if not encoded:
        return known
    driver = storage._lock_driver()
    assert driver is not None
    decoded = dict(known)
    for key in encoded:
        try:
            decoded[key] = driver.decode(known[key])
        except DECODE_ERRORS as exc:
            raise storage._damaged([key], exc) from exc
    return decoded


def _newer(
    known: dict[str, Any] | None, shared: dict[str, Any] | None, witness_key: str
) -> dict[str, Any] | None:
    """What a try starts from: ``shared`` (what this process last committed)
    where it is newer than ``known``, or ``known`` is nothing or assumed empty."""
    if shared is not None and (
        not known or generation(shared, witness_key) > generation(known, witness_key)
    ):
        return shared
    return known


def attempts(storage: CacheSessionState) -> Iterator[Any]:
    """Tries at an operation: unlocked ones where possible, then one under the lock."""
    keys = storage.keys
    identity = storage._session_identity()
    shared = None if identity is None else committed_heads.get(identity)
    known = _newer(storage._known, shared, keys.witness)
    if known is None:
        known = storage._read_many([keys.head, keys.witness])
    for _ in range(UNLOCKED_TRIES):
        head = known.get(keys.head)
        if head is not None and known.get(keys.witness) is None:
            break  # stored without a witness (by 2.x, or the single layout)
        attempt = UnlockedTry(storage, known, identity)
        yield attempt
        if attempt.outcome is Outcome.COMMITTED:
            return
        if attempt.outcome is Outcome.CHANGED:
            known = attempt.known
        elif attempt.outcome is Outcome.LOCKED:
            # Someone holds the lock briefly: let them finish, then read again.
            time.sleep(LOCKED_PAUSE * random.uniform(0.5, 1.0))
            known = storage._read_many([keys.head, keys.witness])
        elif not known:
            # The block raised on a session assumed new: read what is stored.
            known = storage._read_many([keys.head, keys.witness])
        else:
            break  # the block raised on stored state: only the lock gives a definite answer
    yield storage.acquire_lock()
