"""The rules of firing: which instances a trigger creates, readies or abandons.

Applied to the loaded session (the manager saves it): for every task whose
``after`` or ``unless`` names the trigger, the trigger is offered to its
waiting instances; an ``andEvery`` task gets one more instance for a firing
none of them took, and a task with no instance its first one; then each
instance that can be abandoned is, and each that can run is ready.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from .storages.base import BaseTriggerStorage
from .types import TaskConfig, TaskInstance

__all__ = ["apply_trigger", "new_instance"]

#: how a status is set (the manager's, so its stamping applies)
SetStatus = Callable[..., None]


def apply_trigger(
    storage: BaseTriggerStorage,
    trigger_name: str,
    trigger_kwargs: dict[str, Any],
    now: datetime,
    set_status: SetStatus,
) -> list[TaskInstance]:
    """Offer a firing to every task that listens to it; the instances it readied."""
    latest = storage.latest_kwargs
    instances = storage.instances
    ready: list[TaskInstance] = []
    for config in storage.tasks_using_trigger(trigger_name):
        if instances.count_of_task(config.name):
            candidates = storage.schedulable_instances_of_task(config.name)
            taken = False
            for instance in candidates:
                if instance.apply_trigger(trigger_name, trigger_kwargs):
                    taken = True
            # An andEvery task gets one more instance per firing that no
            # waiting instance took.
            if config.and_every == trigger_name and not taken:
                candidates.append(
                    new_instance(storage, config, trigger_name, trigger_kwargs, now, latest)
                )
        else:  # the task's first instance
            candidates = [new_instance(storage, config, trigger_name, trigger_kwargs, now, latest)]
        for instance in candidates:
            if instance.can_abandon:
                set_status(instance, TaskInstance.STATUS_ABANDONED, now=now)
            elif instance.can_run:
                ready.append(instance)
    return ready


def new_instance(
    storage: BaseTriggerStorage,
    config: TaskConfig,
    trigger_name: str,
    trigger_kwargs: dict[str, Any],
    now: datetime,
    latest: dict[str, Any],
) -> TaskInstance:
    """A new instance that knows what fired before it existed, and this firing."""
    instance = storage.create_instance(
        config,
        metadata={TaskInstance.META_TIMESTAMPS: {TaskInstance.TIMESTAMP_CREATED: now}},
    )
    if latest:
        for trigger in config.after:
            if trigger != trigger_name and trigger in latest:
                instance.kwargs[trigger] = latest[trigger]
        for trigger in config.unless:
            if trigger != trigger_name and trigger in latest:
                instance.abandon_state.add(trigger)
    instance.apply_trigger(trigger_name, trigger_kwargs)
    return instance
