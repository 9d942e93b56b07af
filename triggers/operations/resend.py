"""``redispatch``: send again the ``scheduled`` instances whose message may be lost.

An instance is ``scheduled`` from the commit that readied it until its run
starts. Its message can be lost on the way: the process that committed it
died before sending (a worker killed between its ``finished`` commit and the
sends of its cascade), or the broker lost its queue (a restart without
persistence). Nothing else would ever start such an instance.

Sending it again is safe: a run starts only from ``scheduled``, in one
commit, so when the first message was not lost after all, whichever
delivery comes second is refused at start and its body never runs. Only
instances scheduled for longer than ``older_than`` seconds (by their
``scheduled`` timestamp) are sent, so that a message still queued is not
doubled for nothing. ``running`` instances are left alone: a paused worker
may still end its run; ``requeue`` is for those.

The same work runs as the ``redispatch`` operator command and as the Celery
task :data:`CELERY_TASK_NAME`, which :func:`add_celery_task` gives an app
(for celery beat to run periodically).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from ..errors import InvalidArgument
from ..manager import TriggerManager
from ..storages.base import BaseTriggerStorage
from ..types import TaskInstance
from .common import Place, open_storage
from .redispatch import send_again
from .unresolved import stuck_since

__all__ = [
    "CELERY_TASK_NAME",
    "add_celery_task",
    "check_age",
    "redispatch_task",
    "resend_scheduled",
    "resend_sessions",
    "waiting_too_long",
]

logger = logging.getLogger("triggers.operations")

#: the name of the Celery task an application schedules with celery beat
CELERY_TASK_NAME = "triggers.redispatch"


def check_age(older_than: Any, what: str = "--older-than") -> float:
    """``older_than`` as seconds: a finite number, 0 or more (else InvalidArgument)."""
    if isinstance(older_than, bool) or not isinstance(older_than, (int, float)):
        raise InvalidArgument(what, older_than, "must be a number of seconds")
    if not (math.isfinite(older_than) and older_than >= 0):
        raise InvalidArgument(what, older_than, "must be a finite number of seconds, 0 or more")
    return float(older_than)


def waiting_too_long(
    storage: BaseTriggerStorage,
    older_than: float,
    names: Iterable[str] | None = None,
    now: datetime | None = None,
) -> list[TaskInstance]:
    """The session's instances ``scheduled`` for ``older_than`` seconds or more (of ``names``, if given)."""
    now = now or datetime.now(timezone.utc)
    wanted = None if names is None else set(names)
    found = []
    for instance in storage.iter_instances():
        if instance.status != TaskInstance.STATUS_SCHEDULED:
            continue
        if wanted is not None and instance.name not in wanted:
            continue
        since = stuck_since(instance)
        if since is None:
            continue
        aware = since if since.tzinfo is not None else since.replace(tzinfo=timezone.utc)
        if (now - aware).total_seconds() >= older_than:
            found.append(instance)
    return sorted(found, key=lambda instance: instance.name)


def resend_scheduled(
    manager: TriggerManager, older_than: float, names: Iterable[str] | None = None
) -> dict[str, Any]:
    """Send again every instance of the manager's session scheduled too long; what was done.

    One failure (a runner that cannot send) stops no other: it is reported
    under ``errors``, by instance.
    """
    storage = manager.storage
    sent: list[str] = []
    errors: dict[str, str] = {}
    for instance in waiting_too_long(storage, older_than, names):
        try:
            if not send_again(manager, instance.name):
                logger.info(
                    "%s of session %r moved on before it was sent again", instance.name, storage.uid
                )
                continue
        except Exception as exc:
            logger.exception("could not send %s of session %r again", instance.name, storage.uid)
            errors[instance.name] = f"{type(exc).__name__}: {exc}"
        else:
            sent.append(instance.name)
    if sent:
        logger.info("sent %d scheduled instance(s) of session %r again", len(sent), storage.uid)
    return {"uid": storage.uid, "redispatched": sent, "errors": errors}


def resend_sessions(
    uids: Iterable[str], place: Place, older_than: float, names: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """:func:`resend_scheduled` on each session; a session that cannot be read is reported, not fatal."""
    reports = []
    for uid in uids:
        try:
            storage = open_storage(uid, place)
            reports.append(resend_scheduled(TriggerManager(storage), older_than, names))
        except Exception as exc:  # one session unreadable (damaged, a bad uid): the others go on
            logger.exception("could not check session %r for instances to send again", uid)
            error = f"{type(exc).__name__}: {exc}"
            reports.append({"uid": uid, "redispatched": [], "errors": {"": error}})
    return reports


def redispatch_task(
    older_than: float = 600.0,
    uids: list[str] | None = None,
    storage: str = "cache",
    cache: str | None = None,
    using: str | None = None,
) -> dict[str, Any]:
    """What the Celery task :data:`CELERY_TASK_NAME` runs: every listed session (or
    every session the storage can list: Redis caches, the database) checked, and its
    instances scheduled for ``older_than`` seconds or more sent again.

    Returns plain data (JSON-serializable): how many were sent, and the errors by session.
    """
    from .copying import every_uid

    older_than = check_age(older_than, "older_than")
    place = Place(storage, cache, None, using)
    reports = resend_sessions(uids if uids is not None else every_uid(place), place, older_than)
    return {
        "olderThan": older_than,
        "redispatched": sum(len(report["redispatched"]) for report in reports),
        "sessions": len(reports),
        "errors": {r["uid"]: r["errors"] for r in reports if r["errors"]},
    }


def add_celery_task(app: Any) -> Any:
    """Give the Celery ``app`` the task :data:`CELERY_TASK_NAME` (running :func:`redispatch_task`),
    for its beat schedule; the app's own task of that name is kept. Returns the task."""
    existing = app.tasks.get(CELERY_TASK_NAME)
    if existing is not None:
        return existing
    return app.task(name=CELERY_TASK_NAME, shared=False, lazy=False)(redispatch_task)
