"""Questions across sessions, answered by the database backend's tables.

Which sessions have failed work, unresolved work, work stuck in
``scheduled`` or ``running``; which instances those are. Every function
returns a Django queryset (so it can be paginated, counted or filtered
further) of live sessions only: an expired session reads as absent here as
everywhere, and a row that holds nothing (a lock taken on a session never
saved) is left out.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from ...errors import InvalidArgument, UnknownStatus
from ...models import Instance, Session
from ...types import TaskInstance
from .backend import database_alias

__all__ = [
    "STUCK_STATUSES",
    "UNRESOLVED_STATUSES",
    "find_instances",
    "find_sessions",
    "live_sessions",
    "with_counts",
]

#: the statuses an instance waits in for a runner or a worker
STUCK_STATUSES = (TaskInstance.STATUS_SCHEDULED, TaskInstance.STATUS_RUNNING)
#: the statuses of an instance that still needs something done
UNRESOLVED_STATUSES = tuple(sorted(TaskInstance.ALL_STATUSES - TaskInstance.RESOLVED_STATUSES))


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 10**10:
        raise InvalidArgument(name, value, "must be a number of seconds, 0 or more")
    return float(value)


def _when(name: str, value: object) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise InvalidArgument(name, value, "must be a datetime")
    return value if timezone.is_aware(value) else timezone.make_aware(value, dt.timezone.utc)


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise InvalidArgument(name, value, "must be a non-empty string")
    return value


def live_sessions(using: str | None = None) -> QuerySet[Session]:
    """Sessions not expired that hold something (tasks, instances or metadata)."""
    now = timezone.now()
    rows = Session.objects.using(database_alias(using))
    rows = rows.filter(Q(expires__isnull=True) | Q(expires__gt=now))
    return rows.filter(configuration__isnull=False)


def _instance_filter(
    *,
    status: str | tuple[str, ...] | None = None,
    task: str | None = None,
    error_type: str | None = None,
    stuck_for: float | None = None,
) -> Q:
    """The conditions on an instance row; each argument given narrows them."""
    condition = Q()
    if isinstance(status, str):
        if status not in TaskInstance.ALL_STATUSES:
            raise UnknownStatus(status, sorted(TaskInstance.ALL_STATUSES))
        condition &= Q(status=status)
    elif status is not None:
        condition &= Q(status__in=status)
    if task is not None:
        condition &= Q(task=_text("task", task))
    if error_type is not None:
        condition &= Q(error_type=_text("error_type", error_type))
    if stuck_for is not None:
        since = timezone.now() - dt.timedelta(seconds=_seconds("stuck_for", stuck_for))
        condition &= Q(status__in=STUCK_STATUSES) & (
            Q(status_since__lt=since) | Q(status_since__isnull=True, modified__lt=since)
        )
    return condition


def find_sessions(
    using: str | None = None,
    *,
    failed: bool = False,
    unresolved: bool = False,
    stuck_for: float | None = None,
    task: str | None = None,
    modified_after: dt.datetime | None = None,
    modified_before: dt.datetime | None = None,
) -> QuerySet[Session]:
    """Live sessions, newest change first, narrowed by each argument given.

    ``failed``: with a failed instance; ``unresolved``: with an instance not
    resolved; ``stuck_for``: with an instance ``scheduled`` or ``running``
    for longer than that many seconds; ``task``: with an instance of that
    task (of that task among those the other arguments ask for, if any);
    ``modified_after``/``modified_before``: last saved in that span.
    """
    rows = live_sessions(using)
    wanted: list[Q] = []
    if failed:
        wanted.append(_instance_filter(status=TaskInstance.STATUS_FAILED, task=task))
    if unresolved:
        wanted.append(_instance_filter(status=UNRESOLVED_STATUSES, task=task))
    if stuck_for is not None:
        wanted.append(_instance_filter(stuck_for=stuck_for, task=task))
    if not wanted and task is not None:
        wanted.append(_instance_filter(task=task))
    for condition in wanted:
        rows = rows.filter(Exists(Instance.objects.filter(condition, session=OuterRef("pk"))))
    if modified_after is not None:
        rows = rows.filter(modified__gte=_when("modified_after", modified_after))
    if modified_before is not None:
        rows = rows.filter(modified__lt=_when("modified_before", modified_before))
    return rows.order_by("-modified", "uid")


def find_instances(
    using: str | None = None,
    *,
    status: str | tuple[str, ...] | None = None,
    task: str | None = None,
    error_type: str | None = None,
    stuck_for: float | None = None,
    uid: str | None = None,
) -> QuerySet[Instance]:
    """Instances of live sessions, last changed first, narrowed by each argument given."""
    rows = Instance.objects.using(database_alias(using)).filter(
        _instance_filter(status=status, task=task, error_type=error_type, stuck_for=stuck_for),
        session__in=live_sessions(using),
    )
    if uid is not None:
        rows = rows.filter(session__uid=_text("uid", uid))
    return rows.select_related("session").order_by("-modified", "session__uid", "name")


def with_counts(rows: QuerySet[Session]) -> QuerySet[Session]:
    """``rows`` annotated with ``instance_count``, ``failed_count``,
    ``unresolved_count`` and ``running_count``."""
    counts: dict[str, Any] = {
        "instance_count": Count("instances"),
        "failed_count": Count("instances", filter=Q(instances__status=TaskInstance.STATUS_FAILED)),
        "unresolved_count": Count(
            "instances", filter=Q(instances__status__in=UNRESOLVED_STATUSES)
        ),
        "running_count": Count("instances", filter=Q(instances__status__in=STUCK_STATUSES)),
    }
    return rows.annotate(**counts)
