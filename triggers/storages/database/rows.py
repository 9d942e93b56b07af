"""Between live objects and the database backend's rows.

Values are pickled as the cache backend pickles them, so whatever it accepts
comes back equal; the columns the queries filter on are derived here from
the same objects, and nothing reads them back into a session.
"""

from __future__ import annotations

import datetime as dt
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone

from ...errors import InvalidArgument, InvalidTaskConfig, StorageCorrupted
from ...types import TaskInstance
from .limits import LONGEST_TASK_NAME, NAME_LENGTH

__all__ = [
    "INSTANCE_FIELDS",
    "LONGEST_TASK_NAME",
    "InstanceRow",
    "check_instance_row_name",
    "check_task_row_name",
    "column_text",
    "column_time",
    "dumps",
    "instance_row",
    "loads",
]

#: the columns of an instance row the backend writes (besides ``session``)
INSTANCE_FIELDS = (
    "name",
    "task",
    "status",
    "log_level",
    "logs_resolved",
    "error_type",
    "created",
    "modified",
    "status_since",
    "kwargs",
    "metadata",
    "abandon_state",
)


def dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def loads(uid: str, data: Any, what: str) -> Any:
    """Unpickle a stored value (StorageCorrupted, naming it, if it does not unpickle)."""
    try:
        return pickle.loads(bytes(data))
    except Exception as exc:
        raise StorageCorrupted(uid, f"{what} does not unpickle ({type(exc).__name__})") from None


def column_time(value: Any) -> dt.datetime | None:
    """A datetime as a DateTimeField takes it under the project's USE_TZ (None if not one)."""
    if not isinstance(value, dt.datetime):
        return None
    aware = timezone.is_aware(value)
    if settings.USE_TZ:
        return value if aware else timezone.make_aware(value, dt.timezone.utc)
    return timezone.make_naive(value, dt.timezone.utc) if aware else value


def column_text(value: Any) -> str:
    """Text for a derived column: a str, no NUL (PostgreSQL refuses it), cut to fit."""
    if not isinstance(value, str):
        return ""
    return value.replace("\x00", "\ufffd")[:NAME_LENGTH]


def _unstorable_name(name: str) -> str | None:
    if "\x00" in name:
        return "holds a NUL character, which the database storage backend cannot store"
    return None


def check_task_row_name(name: str) -> None:
    """InvalidTaskConfig for a task name the tables cannot hold exactly."""
    reason = _unstorable_name(name)
    if reason is None and len(name) > LONGEST_TASK_NAME:
        reason = (
            f"is longer than {LONGEST_TASK_NAME} characters, the longest the database"
            " storage backend stores"
        )
    if reason is not None:
        raise InvalidTaskConfig(name, reason)


def check_instance_row_name(name: str) -> None:
    """InvalidArgument for an instance name the tables cannot hold exactly."""
    reason = _unstorable_name(name)
    if reason is None and len(name) > NAME_LENGTH:
        reason = f"is longer than {NAME_LENGTH} characters, the longest the database stores"
    if reason is not None:
        raise InvalidArgument("instance name", name, reason)


@dataclass(frozen=True)
class InstanceRow:
    """The columns of one instance row; ``fingerprint`` tells a changed one."""

    columns: Mapping[str, Any]

    @property
    def fingerprint(self) -> tuple[Any, ...]:
        c = self.columns
        return (c["task"], c["status"], c["kwargs"], c["metadata"], tuple(c["abandon_state"]))


def _log_level(metadata: Mapping[str, Any]) -> int | None:
    level = metadata.get(TaskInstance.META_LOG_LEVEL)
    if isinstance(level, bool) or not isinstance(level, int) or not -(2**31) <= level < 2**31:
        return None
    return level


def instance_row(instance: TaskInstance) -> InstanceRow:
    """The row of a live instance."""
    metadata = instance.metadata
    stamps = metadata.get(TaskInstance.META_TIMESTAMPS)
    stamps = stamps if isinstance(stamps, Mapping) else {}
    columns = {
        "name": instance.name,
        "task": instance.config.name,
        "status": instance.status,
        "log_level": _log_level(metadata),
        "logs_resolved": instance.logs_resolved,
        "error_type": column_text(metadata.get(TaskInstance.META_EXCEPTION_TYPE)),
        "created": column_time(stamps.get(TaskInstance.TIMESTAMP_CREATED)),
        "modified": column_time(stamps.get(TaskInstance.TIMESTAMP_LAST_MODIFIED)),
        "status_since": column_time(stamps.get(instance.status)),
        "kwargs": dumps(instance.kwargs),
        "metadata": dumps(metadata),
        "abandon_state": sorted(instance.abandon_state),
    }
    return InstanceRow(columns)


def stored_record(uid: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """The serialized form of an instance (as ``TaskInstance.serialize()`` gives) from its row."""
    name = row["name"]
    abandon = row["abandon_state"]
    if not isinstance(abandon, list):
        raise StorageCorrupted(uid, f"instance {name!r}: abandon state is {abandon!r}")
    return {
        "task": row["task"],
        "status": row["status"],
        "kwargs": loads(uid, row["kwargs"], f"the kwargs of instance {name!r}"),
        "metadata": loads(uid, row["metadata"], f"the metadata of instance {name!r}"),
        "abandonState": abandon,
    }
