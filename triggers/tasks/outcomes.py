"""What a task body raises to end its run otherwise than by returning, and
the error for a task name nothing registered.

Kept apart from :mod:`.task_classes` (which re-exports them); the public
home of these names is :mod:`triggers.task`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import TriggersError
from ..types import TaskInstance

__all__ = ["PUBLIC_MODULE", "MaxRetriesExceeded", "Retry", "StatusChange", "UnknownTaskError"]

try:
    from celery.exceptions import MaxRetriesExceededError
except ImportError:  # Celery is an optional extra
    _CELERY_MAX_RETRIES: tuple[type[Exception], ...] = ()
else:
    _CELERY_MAX_RETRIES = (MaxRetriesExceededError,)

#: where the classes below are imported from, and what failure metadata names
#: (``exceptionType``) when a run ends with one of them
PUBLIC_MODULE = "triggers.task"


# --------------------------------------------------------------------------- outcomes


class StatusChange(Exception):
    """Raised by a task body to end with ``status`` (and ``metadata``) instead of ``finished``.

    No cascade follows: only a task that finishes fires its own name.
    """

    __module__ = PUBLIC_MODULE

    def __init__(self, status: str, metadata: Mapping[str, Any] | None = None) -> None:
        if status not in TaskInstance.ALL_STATUSES:
            raise ValueError(
                f"unknown status {status!r} (expected one of {sorted(TaskInstance.ALL_STATUSES)})"
            )
        self.status = status
        self.metadata: dict[str, Any] = dict(metadata or {})
        super().__init__(status, self.metadata)


class Retry(StatusChange):
    """Raised by a task body to fail this run and schedule a new one (a replay).

    A :class:`StatusChange` to ``failed``, as in Triggers 2.x, so 2.x code
    that catches status changes catches it too.

    ``exc``: the error that made the run fail (recorded on the instance).
    ``metadata``: merged into the failed instance's metadata.
    ``replacement_kwargs``: the kwargs of the new run (default: the same).
    ``cooldown``: seconds to wait before the new run is scheduled.
    """

    __module__ = PUBLIC_MODULE

    def __init__(
        self,
        exc: BaseException | None = None,
        metadata: Mapping[str, Any] | None = None,
        replacement_kwargs: Mapping[str, Any] | None = None,
        cooldown: float | None = None,
    ) -> None:
        if cooldown is not None and (
            isinstance(cooldown, bool) or not isinstance(cooldown, (int, float)) or cooldown < 0
        ):
            raise ValueError(f"cooldown must be a number of seconds >= 0, not {cooldown!r}")
        self.exc = exc
        self.replacement_kwargs = replacement_kwargs
        self.cooldown = cooldown
        super().__init__(TaskInstance.STATUS_FAILED, metadata)
        self.args = (f"retry requested{f': {exc!r}' if exc is not None else ''}",)


class MaxRetriesExceeded(TriggersError, *_CELERY_MAX_RETRIES):  # type: ignore[misc]
    """A task asked to retry after it had already been retried ``max_retries`` times.

    Where Celery is installed it is also Celery's ``MaxRetriesExceededError``,
    as in Triggers 2.x.
    """

    __module__ = PUBLIC_MODULE

    def __init__(self, task_name: str, instance_name: str, retries: int, max_retries: int) -> None:
        self.task_name = task_name
        self.instance_name = instance_name
        self.retries = retries
        self.max_retries = max_retries
        super().__init__(
            f"task {task_name!r} ({instance_name}) asked to retry after {retries} retries;"
            f" max_retries is {max_retries}"
        )


class UnknownTaskError(TriggersError, LookupError):
    """A task configuration's ``run`` names no registered task."""

    __module__ = PUBLIC_MODULE

    def __init__(self, name: object, known: list[str]) -> None:
        self.name = name
        self.known = known
        shown = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
        super().__init__(
            f"no task is registered under the name {name!r} (registered: {shown or 'none'});"
            " register it with @triggers.task.task or a TriggerTask subclass in <app>.tasks"
        )


# --------------------------------------------------------------------------- tasks


