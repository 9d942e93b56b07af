"""Sessions in the database backend for the admin's tests (tests/database/test_admin.py,
tests/browser), and the task they run."""

from __future__ import annotations

import datetime as dt
from typing import Any

from triggers import TriggerManager
from triggers.models import Session
from triggers.storages.database import DatabaseStorageBackend
from triggers.task import task
from triggers.types import TaskInstance

FLAKY = "tests.fails_first_time"


@task(FLAKY)
def fails_first_time(context):
    """Fails when first run; its replay (a clone, one deeper) finishes."""
    if context.task_instance.depth == 0:
        # Logged, as a task logs why it fails: its logs await an operator.
        context.logger.error("the first run of %s fails", context.instance_name)
        raise ValueError(f"the first run of {context.instance_name} fails (replay it)")
    return {"replayed": context.instance_name}


def flaky_session(uid: str, alias: str) -> TriggerManager:
    """A session whose ``flaky#0`` failed (on the ``sync`` runner); ``after_flaky``
    runs once ``flaky`` finishes or is skipped with a cascade."""
    manager = TriggerManager(DatabaseStorageBackend(uid, using=alias))
    manager.update_configuration(
        {
            "flaky": {"after": ["go"], "run": FLAKY, "using": "sync"},
            "after_flaky": {"after": ["flaky"], "run": "tests.add", "using": "sync"},
        }
    )
    manager.fire("go", {"n": 1})
    return manager


def session_with(uid: str, alias: str, *instances: dict[str, Any]) -> DatabaseStorageBackend:
    """A session of one ``add`` task (sync runner) holding ``instances`` (fields as
    ``create_instance`` takes them, and ``task``)."""
    storage = DatabaseStorageBackend(uid, using=alias)
    with storage.acquire_lock():
        storage.update_configuration(
            {
                "add": {"after": ["go"], "run": "tests.add", "using": "sync"},
                "other": {"after": ["never"], "run": "tests.add", "using": "sync"},
            }
        )
        for fields in instances:
            fields = dict(fields)
            storage.create_instance(fields.pop("task", "add"), **fields)
        storage.save()
    return storage


def ago(**delta: float) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) - dt.timedelta(**delta)


def waiting(status: str, since: dt.datetime, **fields: Any) -> dict[str, Any]:
    """An instance in ``status`` since ``since``."""
    stamps = {"created": since, "lastModified": since, status: since}
    return {"status": status, "metadata": {TaskInstance.META_TIMESTAMPS: stamps}, **fields}


def expire(uid: str, alias: str) -> None:
    """Make a stored session expired (as if its lifetime had run out)."""
    Session.objects.using(alias).filter(uid=uid).update(expires=ago(minutes=1))
