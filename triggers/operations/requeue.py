"""Requeue: an instance stuck in ``scheduled`` or ``running`` marked failed and replayed.

An instance whose runner's message was lost, or whose worker died mid-run,
never moves on by itself. Once it has waited longer than the operator says
(``--stuck-for``), requeueing marks it ``failed`` (saying why in its
metadata) and replays it as ``replay`` does: the instance becomes
``replayed`` and a clone of it is scheduled and handed to its runner. Both
happen in one commit under the session's lock, so no crash leaves it
failed and not replayed, and a worker that ended the run meanwhile (the
status is checked again under the lock) is never overruled.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from ..manager import TriggerManager
from ..storages.base import BaseTriggerStorage
from ..types import TaskInstance
from .common import BadInput
from .unresolved import stuck_since

__all__ = ["STUCK", "RequeueManager", "stuck_age"]

#: the ``exceptionType`` a requeued instance is failed with
STUCK = "triggers.operations.requeue.Stuck"

_IN_PROGRESS = (TaskInstance.STATUS_SCHEDULED, TaskInstance.STATUS_RUNNING)


def stuck_age(instance: TaskInstance, now: datetime) -> float | None:
    """Seconds the instance has been scheduled or running (None: neither, or no timestamp)."""
    since = stuck_since(instance)
    if since is None:
        return None
    aware = since if since.tzinfo is not None else since.replace(tzinfo=timezone.utc)
    return (now - aware).total_seconds()


def check_stuck(instance: TaskInstance, uid: str, stuck_for: float, now: datetime) -> float:
    """The instance's age in its status, or BadInput if it is not stuck that long."""
    if instance.status not in _IN_PROGRESS:
        hint = (
            f"; replay a failed one (replay {uid} {instance.name})" if instance.can_replay else ""
        )
        raise BadInput(
            f"instance {instance.name!r} of session {uid!r} is {instance.status};"
            f" only a scheduled or running instance can be requeued{hint}"
        )
    age = stuck_age(instance, now)
    if age is None or age < stuck_for:
        waited = "for an unknown time" if age is None else f"for {age:.0f} s"
        raise BadInput(
            f"instance {instance.name!r} of session {uid!r} has been {instance.status} {waited},"
            f" less than --stuck-for {stuck_for:g} s; nothing was changed"
        )
    return age


def _stuck_metadata(status: str, age: float) -> dict[str, Any]:
    return {
        TaskInstance.META_EXCEPTION_TYPE: STUCK,
        TaskInstance.META_EXCEPTION_INFO: (
            f"Requeued by an operator: it had been {status} for {age:.0f} s, so it was"
            " marked failed and replayed.\n"
        ),
        TaskInstance.META_FAILURE: {"phase": "requeue", "status": status},
        TaskInstance.META_LOG_LEVEL: logging.ERROR,
    }


class RequeueManager(TriggerManager):
    """A manager whose replay takes a stuck instance (not a failed one) and
    fails it first, in the replay's own commit.

    The replay checks the instance it replays through ``_failed_instance``
    under the lock; here that check is "stuck at least ``stuck_for``
    seconds", and it marks the instance failed before the replay marks it
    replayed and schedules its clone.
    """

    #: Its tasks (the clone's run) are those of the default manager, which
    #: the commands use for everything else: they rebuild that one.
    triggers__registry_key = "default"

    def __init__(self, storage: BaseTriggerStorage, stuck_for: float) -> None:
        super().__init__(storage)
        self.stuck_for = stuck_for
        #: the status and age the instance was requeued from, once it was
        self.requeued_from: tuple[str, float] | None = None

    def _failed_instance(self, instance_or_name: TaskInstance | str, action: str) -> TaskInstance:
        instance = self.storage.get_instance(instance_or_name)
        now = datetime.now(timezone.utc)
        age = check_stuck(instance, self.storage.uid, self.stuck_for, now)
        status = instance.status
        self.set_status(instance, TaskInstance.STATUS_FAILED, _stuck_metadata(status, age))
        self.requeued_from = (status, age)
        return instance

    def requeue(self, name: str) -> TaskInstance:
        """Fail the stuck instance ``name`` and replay it, in one commit; returns the clone."""
        return self.replay_failed_instance(name)
