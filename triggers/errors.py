"""Exceptions raised by triggers, gathered so callers can catch them by type."""

from __future__ import annotations


class TriggersError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidSessionUid(TriggersError, ValueError):
    """A session uid that no supported cache can key."""

    def __init__(self, uid: object, reason: str) -> None:
        self.uid = uid
        super().__init__(f"invalid session uid {uid!r}: {reason}")


class InvalidTaskConfig(TriggersError, ValueError):
    """A task definition given to ``update_configuration`` is malformed."""

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
        super().__init__(f"{what} cannot be stored: {value!r} ({cause})")


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
