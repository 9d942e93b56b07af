"""The write path between a storage and what guards its writes.

A storage that saves does not write at once: it records a :class:`Writes`
(the key-value batches of the save, in order, and their timeout). What it
works under while it does, its *guard*, then makes those writes: a held lock
writes them with its release (in one step where the cache allows, and only
while the lock is still the holder's), the ``ttl=False`` stand-in writes
them plainly, and an optimistic try commits them with a conditional write
that hands back a :class:`CommitResult`. Every guard offers the
:class:`WriteGuard` protocol, so the storage never asks which one it has.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.core.cache.backends.base import DEFAULT_TIMEOUT

__all__ = [
    "NO_WRITES",
    "AttemptAbandoned",
    "CommitGuard",
    "CommitResult",
    "LockGuard",
    "Outcome",
    "WriteGuard",
    "Writes",
]


@dataclass(frozen=True)
class Writes:
    """What one save writes: ``batches`` in order (each lands before the next
    starts, so a crash between them leaves a readable state), all with one
    cache ``timeout``.

    ``commit_key`` and ``witness_key`` name the save's commit point (the
    head) and its witness, for drivers that cannot write under the lock in
    one step and fence key by key instead (Memcached); others ignore them.
    """

    batches: tuple[Mapping[str, Any], ...] = ()
    timeout: Any = DEFAULT_TIMEOUT
    commit_key: str | None = None
    witness_key: str | None = None

    def __bool__(self) -> bool:
        return any(self.batches)

    def items(self) -> list[tuple[str, Any]]:
        """Every key and value, in the order they are to be written."""
        return [item for batch in self.batches for item in batch.items()]


#: nothing to write
NO_WRITES = Writes()


class Outcome(enum.Enum):
    """How a conditional commit ended."""

    #: the writes landed
    COMMITTED = "committed"
    #: someone held the lock: nothing was written
    LOCKED = "locked"
    #: the session changed since the state the writes were made from: nothing was written
    CHANGED = "changed"


@dataclass(frozen=True)
class CommitGuard:
    """What a conditional commit checks, and what it hands back.

    The commit is made only while ``lock_key`` is free, ``version_key``
    holds ``expected`` (None: neither it nor ``state_key`` exists) and, if
    ``state_digest`` is given, ``state_key`` holds a value whose SHA-1 (hex)
    it is. On a
    change the current values of ``version_key`` and ``state_key`` come
    back as stored (encoded: the caller decodes them), and with them those
    of ``read_back`` (the other keys the commit's block read, so the retry
    reads nothing more); on success, the encoded value written under ``state_key``.
    """

    lock_key: str
    version_key: str
    state_key: str
    expected: Any
    state_digest: str | None = None
    read_back: tuple[str, ...] = ()
    #: keys that must still hold these values (as the driver stores them), else
    #: the commit is refused as CHANGED: records a try took on trust
    unchanged: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class CommitResult:
    """What a conditional commit did, and the values it brought back (see :class:`CommitGuard`)."""

    outcome: Outcome
    values: dict[str, Any] = field(default_factory=dict)


class AttemptAbandoned(Exception):
    """Raised inside an optimistic try that needs what only the lock gives
    (writing before its commit); the try ends, and the block runs again
    under the lock. It never leaves :meth:`Lockable.attempts`."""


class WriteGuard(Protocol):
    """What a storage works under while it reads, changes and saves.

    ``held`` is whether the guard is in force; ``writes_land_together``
    whether the writes of one save land at once (no crash can split them).
    """

    key: str
    ttl: float | None

    @property
    def held(self) -> bool: ...

    @property
    def writes_land_together(self) -> bool: ...

    def write(self, writes: Writes) -> None:
        """Make ``writes`` now and stay in force (LockLost if the lock was lost)."""

    def release(self, writes: Writes = NO_WRITES) -> bool:
        """Make ``writes`` and end the guard; False if there was nothing to let go of."""


class LockGuard(WriteGuard, Protocol):
    """What :meth:`Lockable.get_lock_guard` returns: one acquisition of an
    object's lock, not taken yet.

    :class:`~triggers.locking.CacheLock` and :class:`~triggers.locking.NoLock`
    are the cache's; a backend that locks elsewhere (its own database rows,
    say) brings its own. ``acquire()`` takes it and returns the values of the
    ``read`` keys that are present (keys the object names with
    ``_lock_read_keys()``: none but the cache backend's, so any other guard
    returns ``{}``). ``release()`` is given what the block saved and did not
    write yet: ``NO_WRITES`` unless the storage defers its writes (a backend
    whose ``_save`` writes at once). ``write()`` is called only by storages
    that defer their writes, to write them before a re-read.
    """

    def acquire(self, block: bool | float = True, read: Sequence[str] = ()) -> dict[str, Any]:
        """Take the lock, waiting as ``block`` says (``LockAcquisitionFailed`` if it cannot)."""
        ...
