"""Optimistic commits: running an operation without the lock where the cache allows.

Where the cache can check and write in one atomic step (Redis), the
manager's operations first run without the lock, on the state the storage
last committed (or, for one that has read nothing, on a new session), and
commit only if no lock is held and the session's version (its witness key)
is the one they started from. A commit that finds the session changed
brings back its current state for the next try (the head, the witness
and the records its block read, so the retry reads nothing); one that
finds the lock held waits a moment and reads the session again. After a few tries, or
when the block raised on state it had read, the operation runs again under
the lock. A fire then costs one round trip where the lock costs two.

Within a process, storage objects of one session start from the state the
last of them committed (:data:`committed_heads`), and their tries take turns
(a lock per session stripe), so a task that runs right after the fire that
readied it, or beside its siblings in other threads, commits at its first
try instead of colliding with them.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import pickle
import random
import time
from collections.abc import Hashable, Iterable, Iterator
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
from .committed import committed_heads, generation, pickled_records
from .handoff import handed_known, handoff_token, read_handoff
from .read_state import Known
from .records import encode_record
from .state import CacheSessionState

__all__ = ["Step", "UnlockedCommits", "UnlockedTry", "forget", "locked_pause", "newer"]

#: tries without the lock before an operation takes it: the first on what
#: the storage knows, each next one on what the failed commit brought back
UNLOCKED_TRIES = 6
#: how long a try that found the lock held waits before reading again (s)
LOCKED_PAUSE = 0.0003
#: the most records a refused commit brings back (those its block read)
READ_BACK = 64


class Step(enum.Enum):
    """What follows an unlocked try."""

    DONE = "done"  # it committed
    RETRY = "retry"  # try again, from what the refused commit brought back
    WAIT = "wait"  # the lock was held: pause, read, try again
    READ = "read"  # read what is stored, try again
    LOCK = "lock"  # run under the lock


def locked_pause() -> float:
    """How long a try that found the lock held waits before reading again (s)."""
    return LOCKED_PAUSE * random.uniform(0.5, 1.0)


class UnlockedTry:
    """One run of a block without the lock, committed only if nothing changed.

    It is the block's write guard: its release is the conditional commit,
    which the storage makes (:meth:`UnlockedCommits.commit_try`). ``outcome``
    says how it ended: an :class:`Outcome` (``known`` then holds the
    session's current state when CHANGED), or None when the block raised.
    """

    held = True
    ttl: float | None = None
    writes_land_together = True

    def __init__(self, storage: UnlockedCommits, known: Known, identity: Hashable | None) -> None:
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
        return self.storage.commit_try(self, writes)

    def __enter__(self) -> UnlockedCommits:
        self.storage.enter_try(self)
        return self.storage

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        return self.storage.exit_try(self, exc)


class UnlockedCommits(CacheSessionState):
    """The storage's side of unlocked tries (mixed into the storage class).

    ``enter_try``, ``exit_try`` and ``commit_try`` are the protocol an
    :class:`UnlockedTry` runs its block by; they are not for applications.
    """

    #: instances the next operations are known to read (see :meth:`expect_instances`)
    expected_instances: tuple[str, ...] = ()

    def _unlocked_attempts(self) -> Iterator[Any]:
        """Tries at an operation: unlocked ones where possible, then one under the lock."""
        identity = self._session_identity()
        known = self.starting_point(identity)
        if known is None:
            known = self._read_now()
        for _ in range(UNLOCKED_TRIES):
            if not self.may_try(known):
                break
            attempt = UnlockedTry(self, known, identity)
            yield attempt
            step = self.next_step(attempt, known)
            if step is Step.DONE:
                return
            if step is Step.LOCK:
                break
            if step is Step.WAIT:
                # Someone holds the lock briefly: let them finish, then read again.
                time.sleep(locked_pause())
            known = attempt.known if step is Step.RETRY else self._read_now()
        yield self.acquire_lock()

    def starting_point(self, identity: Hashable | None) -> Known | None:
        """Where the first try starts: the newest state this object or process
        knows; None when that must be read (also when it lacks a record the
        operation is known to need: reading it costs a request anyway, and
        the head and witness come fresh in the same one)."""
        shared = None if identity is None else committed_heads.get(identity)
        known = newer(self._known, shared, self.keys.witness)
        if known and any(name not in known.records for name in self.expected_instances):
            return self.with_handed_records(known)
        return known

    def with_handed_records(self, known: Known, handed: Known | None = None) -> Known | None:
        """``known`` with the expected records it lacks taken from the state handed to
        this object (or ``handed``), each checked by the commit to be still stored
        as handed; None when they were not all handed."""
        handed = self._known if handed is None else handed
        missing = [name for name in self.expected_instances if name not in known.records]
        if handed is None or any(name not in handed.records for name in missing):
            return None
        records = {**known.records, **{name: handed.records[name] for name in missing}}
        unverified = known.unverified | frozenset(missing)
        return dataclasses.replace(known, records=records, unverified=unverified)

    def expect_instances(self, names: Iterable[str]) -> None:
        """Say which instances the next operation reads (a task run: its own),
        so a read of the head brings their records along."""
        self.expected_instances = tuple(names)

    def may_try(self, known: Known) -> bool:
        """Whether an unlocked try can start from ``known``: not on a session
        stored without a witness (by 2.x, or the single layout)."""
        values, keys = known.values, self.keys
        return values.get(keys.head) is None or values.get(keys.witness) is not None

    @staticmethod
    def next_step(attempt: UnlockedTry, known: Known) -> Step:
        """What follows a try that started from ``known``."""
        if attempt.outcome is Outcome.COMMITTED:
            return Step.DONE
        if attempt.outcome is Outcome.CHANGED:
            return Step.RETRY  # from the state the refused commit brought back
        if attempt.outcome is Outcome.LOCKED:
            return Step.WAIT
        if not known and not known.read:
            return Step.READ  # the block raised on a session assumed new: read what is stored
        return Step.LOCK  # the block raised on stored state: only the lock gives a definite answer

    def _read_now(self) -> Known:
        """The head and witness as stored, with the expected records in the same request."""
        return self.known_read(self._read_many(self.read_now_keys()))

    def read_now_keys(self) -> list[str]:
        """What a read of the session's state asks for: the head, the witness
        and the records of the expected instances."""
        keys, record_key = self.keys, self._writer.record_key
        return [keys.head, keys.witness, *(record_key(n) for n in self.expected_instances)]

    def known_read(self, values: dict[str, Any]) -> Known:
        """A try's starting point from the ``values`` a read of :meth:`read_now_keys` found."""
        keys = self.keys
        state = {key: values[key] for key in (keys.head, keys.witness) if key in values}
        stored = {key: value for key, value in values.items() if key not in state}
        return Known(state, stored=stored, read=True)

    def handoff(self, instance_name: str) -> str | None:
        """A signed token of the state this object last committed, for the worker
        that runs ``instance_name`` to start from (see :mod:`.handoff`); None
        when there is none to hand."""
        keys = self.keys
        return handoff_token(self.uid, instance_name, self._known, keys.head, keys.witness)

    def take_handoff(self, token: object, instance_name: str) -> bool:
        """Start the next operation from the state ``token`` hands for the run of
        ``instance_name``, unless this object or process knows a newer one;
        whether the token was taken (one that does not verify is ignored)."""
        state = read_handoff(token, self.uid, instance_name)
        if state is None:
            return False
        keys = self.keys
        handed = handed_known(state, keys.head, keys.witness, instance_name)
        self._known = newer(self._known, handed, keys.witness)
        return True

    def enter_try(self, attempt: UnlockedTry) -> None:
        """Start ``attempt``'s block: this object's threads take turns, and it
        starts from the newest state this process knows."""
        identity = attempt.identity
        if identity is not None:
            committed_heads.turn(identity).acquire()
            # Another thread or forked process may have committed meanwhile: start
            # there, with the records this try held (the commit checks them).
            shared = committed_heads.get(identity)
            found = newer(attempt.known, shared, self.keys.witness)
            if found is not None and found is not attempt.known and attempt.known:
                found = self.with_handed_records(found, attempt.known) or found
            attempt.known = Known() if found is None else found
        try:
            self.begin_try(attempt)
        except BaseException:
            _end_turn(identity)
            raise

    def begin_try(self, attempt: UnlockedTry) -> None:
        """Start ``attempt``'s block on this object (its mutex held until ``exit_try``)."""
        mutex = self.object_mutex()
        mutex.acquire()
        try:
            self._mark_held(attempt)
            self._start_over(self._decoded(attempt.known))
        except BaseException:
            self._mark_held(None)
            mutex.release()
            raise

    def exit_try(self, attempt: UnlockedTry, exc: BaseException | None) -> bool:
        """End ``attempt``'s block: commit what it saved; True to swallow ``exc``
        (the block then runs again, under the lock)."""
        try:
            writes = self.end_block(exc)
            if exc is not None:
                # The block ran on state that may be stale: run it again under the lock.
                return isinstance(exc, Exception)
            self.after_commit(attempt.release(writes), writes)
            return False
        finally:
            self.object_mutex().release()
            _end_turn(attempt.identity)

    def end_block(self, exc: BaseException | None) -> Writes:
        """What the try's block saved, to commit (nothing is kept when it raised)."""
        self._mark_held(None)
        self._read.prefetched = None
        self._read.stored = {}  # of the state this try started from only
        writes = self._pop_pending()
        if exc is not None:
            self.invalidate_cache()
        return writes

    def after_commit(self, committed: bool, writes: Writes) -> None:
        """Once a try's commit answered: what was loaded is kept only if it is what was committed."""
        if not committed or not writes:
            self.invalidate_cache()

    def commit_try(self, attempt: UnlockedTry, writes: Writes) -> bool:
        """Commit ``writes`` if no lock is held and the session is as ``attempt`` found it."""
        guard = self.commit_guard(attempt, writes)
        if guard is None:
            return True
        driver = self._lock_driver()
        assert driver is not None
        with self._writing(), reaching(driver, f"committing session {self.uid!r}", writing=True):
            result: CommitResult = driver.commit_if_unchanged(guard, writes)
        return self.commit_answered(attempt, guard, result)

    def commit_guard(self, attempt: UnlockedTry, writes: Writes) -> CommitGuard | None:
        """What the commit of ``writes`` checks; None when there is nothing to write."""
        if not writes:
            attempt.outcome = Outcome.COMMITTED  # nothing to write
            return None
        keys, known = self.keys, attempt.known
        record_key = (self._read.layout or self._writer).record_key
        return CommitGuard(
            lock_key=attempt.key,
            version_key=keys.witness,
            state_key=keys.head,
            expected=known.values.get(keys.witness),
            state_digest=known.head_digest,
            read_back=self.read_back(),
            unchanged=tuple(
                (record_key(name), encode_record(name, pickle.loads(known.records[name])))
                for name in sorted(known.unverified)
            ),
        )

    def read_back(self) -> tuple[str, ...]:
        """The record keys a refused commit brings back: those of every
        instance the block loaded, which its retry loads again."""
        instances = self._instances
        if instances is None:
            return ()
        record_key = (self._read.layout or self._writer).record_key
        return tuple(record_key(name) for name in list(instances.loaded)[:READ_BACK])

    def commit_answered(
        self, attempt: UnlockedTry, guard: CommitGuard, result: CommitResult
    ) -> bool:
        """Note how the commit guarded by ``guard`` ended; True if it landed."""
        keys = self.keys
        attempt.outcome = result.outcome
        if result.outcome is Outcome.COMMITTED:
            self._committed(attempt, result.values[keys.head])
            return True
        self._known = None
        if result.outcome is Outcome.CHANGED and attempt.identity is not None:
            # What this process remembers of that state is stale: the
            # session was changed, deleted or rolled back since.
            committed_heads.forget(attempt.identity, guard.expected)
        # Decoded here, with the checks a read makes: a damaged value is named.
        head = result.values.get(keys.head)
        digest = None if head is None else hashlib.sha1(head).hexdigest()
        values = self._decoded(Known(result.values)).values
        stored = {key: values.pop(key) for key in guard.read_back if key in values}
        attempt.known = Known(values, head_digest=digest, stored=stored, read=True)
        return False

    def _committed(self, attempt: UnlockedTry, head: bytes) -> None:
        """Remember the state ``attempt`` committed, here and for this process."""
        keys, read = self.keys, self._read
        records = read.saved_records
        if records is None:  # not saved by the split layout: pickle them here
            loaded = self.instances.loaded
            records = pickled_records({n: i.serialize() for n, i in loaded.items()})
        self._known = Known(
            # The head as encoded: bytes are decoded afresh by each try that starts here.
            {keys.witness: read.saved_witness, keys.head: head},
            records,
            hashlib.sha1(head).hexdigest(),
        )
        if attempt.identity is not None:
            committed_heads.put(
                attempt.identity,
                self._known,
                witness=read.saved_witness,
                started_from=attempt.known.values.get(keys.witness),
            )

    def _decoded(self, known: Known) -> Known:
        """``known`` with its values as stored decoded; StorageCorrupted naming
        a key whose value does not decode."""
        values = known.values
        encoded = [key for key, value in values.items() if isinstance(value, (bytes, bytearray))]
        if not encoded:
            return known
        driver = self._lock_driver()
        assert driver is not None
        decoded = dict(values)
        for key in encoded:
            try:
                decoded[key] = driver.decode(values[key])
            except DECODE_ERRORS as exc:
                raise self._damaged([key], exc) from exc
        return dataclasses.replace(known, values=decoded)


def _end_turn(identity: Hashable | None) -> None:
    if identity is not None:
        committed_heads.turn(identity).release()


def forget(identity: Hashable) -> None:
    """Drop what this process remembers of a session (it was deleted)."""
    committed_heads.forget(identity)


def newer(known: Known | None, shared: Known | None, witness_key: str) -> Known | None:
    """What a try starts from: ``shared`` (what this process last committed)
    where it is newer than ``known``, or ``known`` is nothing or assumed empty."""
    newest = not known or generation(shared, witness_key) > generation(known, witness_key)
    return shared if shared is not None and newest else known
