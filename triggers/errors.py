"""Exceptions raised by triggers, gathered so callers can catch them by type.

Every module raises its errors from here (and re-exports the ones its own
callers import from it), so that no module has to import another just to
name an error.
"""

from __future__ import annotations

import reprlib
from typing import Any

_repr = reprlib.Repr()
_repr.maxstring = 200
_repr.maxother = 200
_repr.maxlevel = 4


def safe_repr(value: Any) -> str:
    """A short repr for messages: bounded in size and depth, and never raising."""
    try:
        return _repr.repr(value)
    except Exception as exc:  # a __repr__ that raises must not hide the real error
        return f"<unrepresentable {type(value).__name__}: {exc!r}>"


class TriggersError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidSessionUid(TriggersError, ValueError):
    """A session uid that no supported cache can key."""

    def __init__(self, uid: object, reason: str) -> None:
        self.uid = uid
        super().__init__(f"invalid session uid {uid!r}: {reason}")


class InvalidTaskConfig(TriggersError, ValueError, TypeError):
    """A task definition given to ``update_configuration`` is malformed.

    Also a ``TypeError``, which Triggers 2.x raised for one.
    """

    def __init__(self, task_name: object, reason: str) -> None:
        self.task_name = task_name
        super().__init__(f"invalid configuration for task {task_name!r}: {reason}")


class UnknownInstance(TriggersError, KeyError):
    """No task instance (or task) has the given name in this session."""

    def __init__(self, name: object, uid: str, kind: str = "task instance") -> None:
        self.name = name
        self.uid = uid
        super().__init__(name)
        self._message = f"no {kind} named {name!r} in session {uid!r}"

    def __str__(self) -> str:
        return self._message


class UnknownTask(UnknownInstance):
    """No task with the given name is configured in this session."""

    def __init__(self, name: object, uid: str) -> None:
        super().__init__(name, uid, kind="task")


class UnserializableValue(TriggersError, TypeError):
    """A value the storage backend could not store (a lambda, an open file...)."""

    def __init__(self, what: str, value: object, cause: BaseException) -> None:
        self.value = value
        super().__init__(f"{what} cannot be stored: {safe_repr(value)} ({cause})")


class StorageCorrupted(TriggersError):
    """The stored value for a session is not a session."""

    def __init__(self, uid: str, reason: str) -> None:
        self.uid = uid
        super().__init__(f"stored state of session {uid!r} is corrupted: {reason}")


class SessionIncomplete(StorageCorrupted):
    """Part of a session was evicted or expired from the cache."""

    def __init__(self, uid: str, missing: list[str]) -> None:
        self.missing = list(missing)
        shown = ", ".join(self.missing[:5]) + (" ..." if len(self.missing) > 5 else "")
        TriggersError.__init__(
            self,
            f"session {uid!r} is incomplete, the cache no longer holds: {shown}"
            " (evicted or expired); refusing to read it as a smaller session",
        )
        self.uid = uid


class SessionOverwritten(SessionIncomplete):
    """A split session whose head something else (a Triggers 2.x process) wrote over.

    The head holds a 2.x single value while the session's witness says it
    was last saved in the split layout: reading it would lose every instance
    the value lacks, whose records are still under their own keys.
    """

    def __init__(self, uid: str, head_key: str, generation: int) -> None:
        self.missing = [head_key]
        self.generation = generation
        TriggersError.__init__(
            self,
            f"session {uid!r} was saved in the split layout (witness generation {generation}),"
            f" but {head_key!r} now holds a single-layout value, written over it by something"
            " else, such as a Triggers 2.x process; refusing to read it as a smaller session",
        )
        self.uid = uid


# --------------------------------------------------------------------------- locking


class LockAcquisitionFailed(TriggersError, RuntimeError):
    """The lock is held elsewhere and could not be had (now, or in time).

    Also a ``RuntimeError``, as in Triggers 2.x.
    """

    def __init__(self, key: str, waited: float | None = None) -> None:
        self.key = key
        self.waited = waited
        if waited is None:
            message = f"lock {key!r} is held by another owner"
        else:
            message = f"lock {key!r} could not be acquired within {waited:g}s"
        super().__init__(message)


class BackendUnavailable(TriggersError):
    """The cache could not be reached, or failed, while reading or writing a
    session or a lock; the client's own error is chained (``__cause__``).

    ``outcome_unknown`` is true when it failed while writing: the writes of
    that save may or may not have landed (a commit is all or nothing, so the
    session holds either the state before or the state after). Read the
    session again to find out which.
    """

    def __init__(self, message: str, *, outcome_unknown: bool = False) -> None:
        self.outcome_unknown = outcome_unknown
        super().__init__(message)


class LockBackendError(BackendUnavailable):
    """The cache holding a lock kept failing; the cause is chained.

    A :class:`BackendUnavailable`, so one ``except`` catches every cache failure.
    """


class LockLost(TriggersError):
    """A lock expired, or passed to another owner, before its holder let go of it.

    Raised when writes were to travel with the release (or be made while
    holding it): on Redis, the database cache and LocMem they were refused;
    on other caches they were made, but without the lock.
    """

    def __init__(self, key: str, ttl: float | None) -> None:
        self.key = key
        self.ttl = ttl
        lived = "" if ttl is None else f" (its ttl was {ttl:g}s)"
        super().__init__(
            f"lock {key!r} was lost before its holder let go of it{lived}: it expired or"
            " another owner took it, so what was saved under it may not have been written;"
            " give the lock a ttl longer than the work it protects"
        )


class NotSupported(TriggersError, TypeError):
    """The cache cannot hold a lock safely."""


# --------------------------------------------------------------------------- tasks


class DispatchFailed(TriggersError):
    """A runner could not start one or more ready instances.

    Each of them was marked ``failed`` with the error recorded, so it can be
    replayed; every other ready instance was dispatched.
    """

    def __init__(self, failures: dict[str, BaseException]) -> None:
        self.failures = failures
        details = "; ".join(f"{name}: {exc!r}" for name, exc in failures.items())
        super().__init__(f"could not dispatch {', '.join(failures)} ({details})")



class ValueTooLarge(TriggersError, ValueError):
    """A part of a session is larger than the cache stores in one entry.

    Raised before anything of the save is written, so the session stays as
    it was. ``key`` names the part, ``size`` and ``limit`` are in bytes.
    """

    def __init__(self, key: str, size: int, limit: int, where: str) -> None:
        self.key = key
        self.size = size
        self.limit = limit
        super().__init__(
            f"{safe_repr(key)} would take {size} bytes in {where}, whose entries hold at most"
            f" {limit} bytes; nothing of this save was written (keep less in the session, or"
            " raise the server's item size limit, memcached -I)"
        )
