"""Reading a session to see where it stands (docs/inspecting.rst)."""

import json
from datetime import timezone

from triggers import CacheStorageBackend
from triggers.types import TaskInstance


def status_report(uid, cache="default"):
    """One line per instance: name, status, when it last changed (UTC)."""
    storage = CacheStorageBackend(uid, cache=cache)
    lines = []
    for instance in sorted(storage.iter_instances(), key=lambda i: i.name):
        changed = instance.last_modified  # naive UTC datetime, or None
        when = changed.replace(tzinfo=timezone.utc).isoformat() if changed else "-"
        lines.append(f"{instance.name:<24} {instance.status:<10} {when}")
    return lines


def needs_attention(uid, cache="default"):
    """What is still open in the session, and which failures nobody has looked at."""
    storage = CacheStorageBackend(uid, cache=cache)
    return {
        "tasks": sorted(task.name for task in storage.get_unresolved_tasks()),
        "instances": sorted(instance.name for instance in storage.get_unresolved_instances()),
        "unread_failures": {
            instance.name: {
                "level": instance.log_level_name,
                "error": instance.metadata.get(TaskInstance.META_EXCEPTION_TYPE),
            }
            for instance in storage.get_instances_with_unresolved_logs()
        },
    }


def history(uid, instance_name, cache="default"):
    """The timestamps of one instance, oldest first."""
    stamps = CacheStorageBackend(uid, cache=cache)[instance_name].metadata.get(
        TaskInstance.META_TIMESTAMPS, {}
    )
    return sorted(stamps.items(), key=lambda item: item[1])


def dump(uid, cache="default"):
    """The whole session as JSON, for a bug report (datetimes as ISO strings)."""
    state = CacheStorageBackend(uid, cache=cache).debug_repr()
    return json.dumps(state, indent=2, sort_keys=True, default=lambda value: value.isoformat())
