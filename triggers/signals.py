"""Django signals and log lines for what happens to sessions, sent after each commit.

Receivers get ``sender`` (the manager's class) and ``manager``, plus:

``trigger_fired``
    ``trigger_name``, ``trigger_kwargs``, ``ready`` (the instances the fire
    readied, now scheduled).
``instance_status_changed``
    ``instance`` (as committed) and ``status``, once per instance whose
    status an operation changed (a fire's scheduled and abandoned ones
    included).
``task_failed``
    ``instance`` and ``exception_type`` (``module.Name``), when an instance
    becomes ``failed``.

They are sent once the change is committed, never for a try that did not
commit, and outside the session lock. The logger ``triggers`` (children
``triggers.manager`` and the like) logs each fire, each new session and
each status change at DEBUG: routine events, which a project sees only if
it asks for them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

from django.dispatch import Signal

from .types import TaskInstance

__all__ = ["instance_status_changed", "task_failed", "trigger_fired"]

logger = logging.getLogger("triggers.manager")

trigger_fired = Signal()
instance_status_changed = Signal()
task_failed = Signal()


class CommitEvents:
    """The status changes of the try in progress, per thread, sent once it commits."""

    def __init__(self) -> None:
        self._local = threading.local()

    def tries(self, attempts: Iterator[Any]) -> Iterator[Any]:
        """``attempts``, forgetting what each try that did not commit recorded."""
        for attempt in attempts:
            self.start_try()
            yield attempt

    def start_try(self) -> None:
        """A new try begins: forget what an earlier one recorded."""
        self._local.changes = []

    def record(self, instance: TaskInstance, status: str) -> None:
        changes = getattr(self._local, "changes", None)
        if changes is not None:
            changes.append((instance, status))

    def send(self, manager: Any, new_session: bool = False) -> None:
        """Log and signal what the committed try recorded."""
        changes = getattr(self._local, "changes", None) or []
        self._local.changes = None
        uid = manager.storage.uid
        if new_session:
            logger.debug("new session %r (nothing was stored under it)", uid)
        sender = type(manager)
        for instance, status in changes:
            logger.debug("session %r: %s is now %s", uid, instance.name, status)
            instance_status_changed.send(sender, manager=manager, instance=instance, status=status)
            if status == TaskInstance.STATUS_FAILED:
                exception_type = instance.metadata.get(TaskInstance.META_EXCEPTION_TYPE)
                task_failed.send(
                    sender, manager=manager, instance=instance, exception_type=exception_type
                )


def send_fired(manager: Any, trigger_name: str, trigger_kwargs: dict[str, Any], ready: list[Any]) -> None:
    logger.debug(
        "session %r: fired %r, readied %d instance(s)%s",
        manager.storage.uid,
        trigger_name,
        len(ready),
        f": {', '.join(i.name for i in ready)}" if ready else "",
    )
    trigger_fired.send(
        type(manager),
        manager=manager,
        trigger_name=trigger_name,
        trigger_kwargs=trigger_kwargs,
        ready=ready,
    )
