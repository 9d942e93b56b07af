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

#: the longest text safe_repr returns, whatever the value
MAX_REPR = 400


def safe_repr(value: Any) -> str:
    """A short repr for messages: bounded in size and depth, and never raising.

    Messages name the bad value, and a bad value may be anything: recursive,
    nested 10,000 deep, huge, or with a ``__repr__`` that raises or returns
    something other than a str. None of that may hide the real error.
    """
    try:
        text = _repr.repr(value)
        if type(text) is not str:
            raise TypeError(f"__repr__ returned {type(text).__name__}")
    except Exception as exc:  # a __repr__ that raises must not hide the real error
        try:
            kind = type(value).__name__
        except Exception:
            kind = "object"
        return f"<unrepresentable {kind}: {type(exc).__name__}>"[:MAX_REPR]
    if len(text) > MAX_REPR:
        half = (MAX_REPR - 3) // 2
        text = text[:half] + "..." + text[-half:]
    return text


class TriggersError(Exception):
    """Base class of every error this package raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt whole where it is unpickled (a Celery result, a prefork
        # child's answer), not by calling __init__ with the message: most of
        # these errors take other arguments than the text they carry.
        if isinstance(self, ImportError):
            # ImportError keeps these itself, outside __dict__.
            kept = {"name": self.name, "path": self.path}
            return (_rebuilt, (type(self), self.__dict__, self.args, kept))
        return (_rebuilt, (type(self), self.__dict__, self.args))


class InvalidSessionUid(TriggersError, ValueError):
    """A session uid that no supported cache can key."""

    def __init__(self, uid: object, reason: str) -> None:
        self.uid = uid
        super().__init__(f"invalid session uid {safe_repr(uid)}: {reason}")


class InvalidTaskConfig(TriggersError, ValueError, TypeError):
    """A task definition given to ``update_configuration`` is malformed.

    Also a ``TypeError``, which Triggers 2.x raised for one.
    """

    def __init__(self, task_name: object, reason: str) -> None:
        self.task_name = task_name
        super().__init__(f"invalid configuration for task {safe_repr(task_name)}: {reason}")


class UnknownInstance(TriggersError, KeyError):
    """No task instance (or task) has the given name in this session."""

    def __init__(self, name: object, uid: str, kind: str = "task instance") -> None:
        self.name = name
        self.uid = uid
        super().__init__(name)
        self._message = f"no {kind} named {safe_repr(name)} in session {uid!r}"

    def __str__(self) -> str:
        return self._message


class UnknownTask(UnknownInstance):
    """No task with the given name is configured in this session."""

    def __init__(self, name: object, uid: str) -> None:
        super().__init__(name, uid, kind="task")


class InstanceMissing(UnknownInstance):
    """A runner was sent an instance its worker's storage does not hold: the
    session expired or was deleted since, or the worker does not share the
    storage the instance was fired into (a per-process cache, say)."""

    def __init__(self, name: object, uid: str, storage: str) -> None:
        super().__init__(name, uid)
        self.storage = storage
        self._message = (
            f"task instance {safe_repr(name)} of session {uid!r} is not in {storage}: the"
            " session expired or was deleted after the task was sent, or this worker does not"
            " share the storage the session was fired into (a per-process cache such as"
            " LocMemCache cannot be shared with worker processes)"
        )


def _rebuilt(
    cls: type[Exception],
    state: dict[str, Any],
    args: tuple[Any, ...],
    kept: dict[str, Any] | None = None,
) -> Exception:
    """An error of ``cls`` with ``state`` and ``args``, made without its ``__init__``
    (``kept``: attributes a built-in base keeps outside ``__dict__``)."""
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    for name, value in (kept or {}).items():
        setattr(error, name, value)
    return error


class UnserializableValue(TriggersError, TypeError):
    """A value the storage backend could not store (a lambda, an open file...)."""

    def __init__(self, what: str, value: object, cause: BaseException) -> None:
        self.value = value
        super().__init__(f"{what} cannot be stored: {safe_repr(value)} ({safe_repr(str(cause))})")


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


class StoredByNewerVersion(StorageCorrupted):
    """A session stored in a format of this package's that this version does
    not know: a newer version wrote it. Reading it as anything else could
    lose what it holds, so it is refused, and nothing of it is written."""

    def __init__(self, uid: str, key: str, stored_format: str) -> None:
        self.key = key
        self.stored_format = stored_format
        TriggersError.__init__(
            self,
            f"session {uid!r} is stored in format {safe_repr(stored_format)} (under {key!r}),"
            " which a newer version of triggers wrote and this one cannot read; nothing was"
            " read or written: run this process on that version (the session is intact)",
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


# --------------------------------------------------------------------------- arguments


class InvalidArgument(TriggersError, ValueError, TypeError):
    """An argument of a public method has a value or a type it cannot take.

    A ``ValueError`` and a ``TypeError``, which Triggers 2.x raised for such
    arguments (an unknown status, metadata that is not a dict...). ``argument``
    names the parameter, ``value`` is what was given.
    """

    def __init__(self, argument: str, value: object, reason: str) -> None:
        self.argument = argument
        self.value = value
        super().__init__(f"invalid {argument} {safe_repr(value)}: {reason}")


class UnknownCache(InvalidArgument):
    """The cache alias a storage was given is not in ``CACHES``."""


class InstanceNotFailed(TriggersError, ValueError):
    """Only a failed instance can be replayed or skipped; this one has another status."""

    def __init__(self, name: str, status: str, action: str) -> None:
        self.name = name
        self.status = status
        super().__init__(
            f"instance {safe_repr(name)} is {safe_repr(status)};"
            f" only failed instances can be {action}"
        )


class InstanceNotStuck(TriggersError, ValueError):
    """Only an instance waiting in ``scheduled`` or ``running`` can be re-dispatched."""

    def __init__(self, name: str, status: str) -> None:
        self.name = name
        self.status = status
        super().__init__(
            f"instance {safe_repr(name)} is {safe_repr(status)};"
            " only scheduled or running instances can be re-dispatched"
        )


class UnknownStatus(InvalidArgument):
    """A status that is none of ``TaskInstance.ALL_STATUSES``."""

    def __init__(self, value: object, known: list[str]) -> None:
        InvalidArgument.__init__(self, "status", value, f"expected one of {known}")
        self.args = (f"unknown status {safe_repr(value)} (expected one of {known})",)


class RunSuperseded(TriggersError):
    """A run's end came after its instance was taken from it (marked failed and
    replayed, say, while the run was paused): nothing of it was written.

    ``uid`` and ``name`` say which session and instance; ``status`` is what
    the run would have recorded (``finished``, ``failed``...), ``result`` the
    result it returned (None for one that did not finish), ``found`` the status
    the instance has now.
    """

    def __init__(
        self,
        uid: str,
        name: str,
        status: str,
        found: str,
        result: object = None,
    ) -> None:
        self.uid = uid
        self.name = name
        self.status = status
        self.found = found
        self.result = result
        super().__init__(
            f"run of instance {safe_repr(name)} of session {safe_repr(uid)} was superseded:"
            f" it is {safe_repr(found)} now, no longer this run's; its end ({status},"
            f" result {safe_repr(result)}) was not recorded and fired nothing"
        )
