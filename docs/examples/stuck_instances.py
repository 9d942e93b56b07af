"""Instances a dead process left ``scheduled``: finding them and dispatching them again.

The manager saves ready instances as ``scheduled`` and only then hands them
to their runners. A process that dies between the two leaves instances that
are ``scheduled`` and never reach ``running``.
"""

from datetime import datetime, timedelta, timezone

from triggers.types import TaskInstance


def find_stuck_instances(storage, older_than=300):
    """Instances scheduled more than ``older_than`` seconds ago that never started."""
    storage.invalidate_cache()  # read what is saved now
    now = datetime.now(timezone.utc).replace(tzinfo=None)  # timestamps are naive UTC
    stuck = []
    for instance in storage.get_unresolved_instances():
        stamps = instance.metadata.get(TaskInstance.META_TIMESTAMPS, {})
        scheduled_at = stamps.get(TaskInstance.STATUS_SCHEDULED)
        if (
            instance.status == TaskInstance.STATUS_SCHEDULED
            and TaskInstance.STATUS_RUNNING not in stamps
            and scheduled_at is not None
            and now - scheduled_at >= timedelta(seconds=older_than)
        ):
            stuck.append(instance)
    return sorted(stuck, key=lambda instance: instance.name)


def redispatch_stuck_instances(manager, older_than=300):
    """Mark each stuck instance failed, then replay it; returns the clones."""
    clones = []
    for instance in find_stuck_instances(manager.storage, older_than):
        with manager.storage.acquire_lock():
            # Under the lock: only if it still has not started meanwhile.
            if manager.storage[instance.name].status != TaskInstance.STATUS_SCHEDULED:
                continue
            manager.update_instance_status(
                instance,
                TaskInstance.STATUS_FAILED,
                {TaskInstance.META_EXCEPTION_CONTEXT: {"reason": "scheduled, never started"}},
            )
        clones.append(manager.replay_failed_instance(instance))
    return clones
