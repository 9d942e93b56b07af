"""Re-dispatch: an instance stuck in ``scheduled`` or ``running`` set moving again.

An instance waits in ``scheduled`` until its runner starts it, and in
``running`` until its worker records how the run ended. When the runner's
message was lost (a queue emptied, a worker that never took it) or the
worker died mid-run, nothing else will ever move it. Re-dispatching it,
through the manager's public operations only (so the session's lock, the
signals and the runners apply as for any other change):

- a ``scheduled`` instance is handed again to its runner;
- a ``running`` instance is marked ``failed`` (its worker lost, said in its
  metadata) and replayed: a clone of it is scheduled;
- any other status is refused (:class:`~triggers.errors.InstanceNotStuck`).

Sending a ``scheduled`` instance again is safe: a second delivery is
refused at start. Whether a ``running`` instance is truly stuck (its worker
gone) is for the caller to judge, by how long it has waited: a worker that
was only slow is superseded (its end is not recorded, see
:mod:`triggers.tasks.ownership`), but its body will have run twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..errors import InstanceNotStuck
from ..manager import TriggerManager
from ..types import TaskInstance

__all__ = ["WORKER_LOST", "Redispatched", "redispatch", "send_again"]

#: the ``exceptionType`` a running instance re-dispatched is failed with
WORKER_LOST = "triggers.operations.redispatch.WorkerLost"


@dataclass(frozen=True)
class Redispatched:
    """What a re-dispatch did: ``status`` is what the instance was in;
    ``clone`` names the replay of a running one (None for a scheduled one)."""

    name: str
    status: str
    clone: str | None = None


def _worker_lost() -> dict[str, Any]:
    return {
        TaskInstance.META_EXCEPTION_TYPE: WORKER_LOST,
        TaskInstance.META_EXCEPTION_INFO: (
            "The worker running this instance was lost: it was still running when it was"
            " re-dispatched, so it was marked failed and replayed.\n"
        ),
        TaskInstance.META_FAILURE: {"phase": "redispatch"},
        TaskInstance.META_LOG_LEVEL: logging.ERROR,
    }


def redispatch(manager: TriggerManager, name: str) -> Redispatched:
    """Set the instance ``name`` of the manager's session moving again (see the module).

    Raises :class:`~triggers.errors.InstanceNotStuck` for an instance in any
    other status, and what the manager raises (an unknown instance, the lock
    not acquired, a runner that cannot start it).
    """
    instance = manager.storage.get_instance(name)
    if instance.status == TaskInstance.STATUS_SCHEDULED:
        _hand_to_runner(manager, instance)
        return Redispatched(instance.name, TaskInstance.STATUS_SCHEDULED)
    if instance.status != TaskInstance.STATUS_RUNNING:
        raise InstanceNotStuck(instance.name, instance.status)

    def fail(current: TaskInstance) -> None:
        # Checked again under the lock: the worker may have ended the run since.
        if current.status != TaskInstance.STATUS_RUNNING:
            raise InstanceNotStuck(current.name, current.status)
        manager.set_status(current, TaskInstance.STATUS_FAILED, _worker_lost())

    manager.change_instance(instance.name, fail)
    clone = manager.replay_failed_instance(instance.name)
    return Redispatched(instance.name, TaskInstance.STATUS_RUNNING, clone.name)


def send_again(manager: TriggerManager, name: str) -> bool:
    """Hand the instance ``name`` again to its runner if it is still ``scheduled``,
    as read now; False when it has moved on (a worker took it meanwhile).

    Unlike :func:`redispatch`, never fails and replays a ``running`` instance:
    for callers that look for instances left scheduled, whose worker may have
    taken one between their look and this call.
    """
    storage = manager.storage
    with storage.object_mutex():
        storage.invalidate_cache()
    instance = storage.get_instance(name)
    if instance.status != TaskInstance.STATUS_SCHEDULED:
        return False
    _hand_to_runner(manager, instance)
    return True


def _hand_to_runner(manager: TriggerManager, instance: TaskInstance) -> None:
    manager.runner_for(instance).run(manager, instance)
    storage = manager.storage
    with storage.object_mutex():  # what the runner did is read afresh next time
        storage.invalidate_cache()
