"""The public face of tasks: everything a task and a runner import, in one place.

What the names do lives in focused modules, none of which imports this one:
:mod:`triggers.tasks.classes` (:class:`TriggerTask`, :func:`task`, the
outcomes a body raises, the registry of tasks), :mod:`triggers.tasks.context`
(:class:`TaskContext`, given to every body), :mod:`triggers.tasks.execution`
(:func:`run_task`, what every runner finally calls with its payload) and
:mod:`triggers.tasks.celery_tasks` (:func:`task_body`, what a Celery task of a
registered task runs; Celery itself is not imported).
"""

from __future__ import annotations

from .tasks.celery_tasks import task_body
from .tasks.classes import (
    DEFAULT_MAX_RETRIES,
    FunctionTask,
    MaxRetriesExceeded,
    Retry,
    StatusChange,
    TriggerTask,
    UnknownTaskError,
    autodiscover_tasks,
    get_task,
    register_task,
    registered_tasks,
    task,
)
from .tasks.context import TaskContext, TaskLogger
from .tasks.execution import run_task
from .tasks.payload import TaskPayload

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "FunctionTask",
    "MaxRetriesExceeded",
    "Retry",
    "StatusChange",
    "TaskContext",
    "TaskLogger",
    "TaskPayload",
    "TriggerTask",
    "UnknownTaskError",
    "autodiscover_tasks",
    "get_task",
    "register_task",
    "registered_tasks",
    "run_task",
    "task",
    "task_body",
]
