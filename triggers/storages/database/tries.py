"""Operations committed in one transaction, without taking the session's lock.

A manager operation (a fire, a status change) first runs as one database
transaction: it locks the session's row for the transaction (``SELECT ...
FOR UPDATE``; on SQLite, whose writers take the whole file, by a write
first), reads what it needs, writes what changed and commits. Nothing but
the manager's own code runs inside it. If a holder of the session's lock
is at work, or the transaction meets a conflict (a deadlock, a new
session's row inserted by another process, SQLite busy), nothing is
written and the operation runs again: up to a few times this way, then
under the lock.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from django.db import DatabaseError, transaction

from ...errors import LockBackendError
from ...locking.writes import NO_WRITES, AttemptAbandoned, Writes

__all__ = ["Expected", "TransactionTry", "TriesHost", "transaction_tries"]

#: transactions an operation tries before it takes the lock
TRANSACTION_TRIES = 5
#: the longest pause between two of them (seconds)
RETRY_PAUSE = 0.002


@dataclass(frozen=True)
class Expected:
    """What an operation said it reads: instances by name, and the triggers it fires."""

    instances: tuple[str, ...] = ()
    triggers: tuple[str, ...] = ()


class Ending(enum.Enum):
    COMMITTED = "committed"
    #: a lock holder is at work: nothing was written
    LOCKED = "locked"
    #: the transaction met a conflict: nothing was written
    CONFLICT = "conflict"
    #: the block raised: nothing was written
    RAISED = "raised"


class TriesHost(Protocol):
    """What a try needs of its storage (the database backend)."""

    uid: str
    using: str

    def get_lock_name(self) -> str: ...

    def object_mutex(self) -> Any: ...

    def start_try(self, attempt: TransactionTry) -> bool:
        """Read the session in the open transaction; False if a lock holder is at work."""

    def end_try(self, attempt: TransactionTry, committed: bool) -> None:
        """Forget what the try read unless it committed; stop being its guard;
        let go of the object's mutex."""


class TransactionTry:
    """One run of an operation's block as one transaction (see the module's docstring)."""

    held = True
    ttl: float | None = None
    writes_land_together = True

    def __init__(self, storage: TriesHost, expected: Expected | None = None) -> None:
        self.storage = storage
        #: what the operation said it reads (the storage reads it with the session)
        self.expected = expected or Expected()
        self.key = storage.get_lock_name()
        self.ending: Ending | None = None
        self._atomic = transaction.atomic(using=storage.using)

    def write(self, writes: Writes) -> None:
        raise AttemptAbandoned()

    def release(self, writes: Writes = NO_WRITES) -> bool:
        return True  # the writes were made in the transaction; __exit__ commits it

    def __enter__(self) -> Any:
        self.storage.object_mutex().acquire()
        try:
            self._atomic.__enter__()
        except BaseException:
            self.storage.object_mutex().release()
            raise
        try:
            free = self.storage.start_try(self)
        except BaseException as exc:
            self._end(exc)
            raise
        if not free:
            self.ending = Ending.LOCKED
        return self.storage

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None and self.ending is Ending.LOCKED:
            exc = AttemptAbandoned()
        return self._end(exc)

    def _end(self, exc: BaseException | None) -> bool:
        """Commit or roll back; True to swallow ``exc`` (the operation runs again)."""
        committed = False
        try:
            if exc is None:
                try:
                    self._atomic.__exit__(None, None, None)
                    committed = True
                    self.ending = Ending.COMMITTED
                except DatabaseError:
                    self.ending = Ending.CONFLICT
                return False
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            if self.ending is None:
                self.ending = Ending.CONFLICT if isinstance(exc, DatabaseError) else Ending.RAISED
            return isinstance(exc, Exception) and not isinstance(exc, LockBackendError)
        finally:
            self.storage.end_try(self, committed)


def transaction_tries(storage: TriesHost, lock: Any, expected: Expected | None = None) -> Iterator[Any]:
    """Tries at an operation: transactions, then ``lock()`` (the lock's try)."""
    for _ in range(TRANSACTION_TRIES):
        attempt = TransactionTry(storage, expected)
        yield attempt
        if attempt.ending is Ending.COMMITTED:
            return
        if attempt.ending is not Ending.CONFLICT:
            break  # a lock holder is at work, or the block raised: the lock decides
        time.sleep(RETRY_PAUSE * random.uniform(0.1, 1.0))
    yield lock()
