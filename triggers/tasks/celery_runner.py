"""The ``celery`` runner: each ready instance sent to the application's Celery workers.

As in Triggers 2.x, the runner sends the instance's Celery task (see
:mod:`triggers.tasks.celery_tasks`) with ``apply_async(kwargs=<payload>,
countdown=<instance cooldown>, retries=<instance depth>)``, and refuses to
send while Celery is eager: the task would then run inline, in the thread
that fires. This module does not import Celery; it reaches Celery only
through the app it sends with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..conf import get_setting
from ..errors import TriggersError
from .celery_state import describe_app
from .celery_tasks import (
    HANDOFF_HEADER,
    adopt_task_object,
    get_celery_app,
    resolve_celery_task,
    routing_options,
)
from .runner_base import BaseTaskRunner

if TYPE_CHECKING:
    from ..manager import TriggerManager
    from ..types import TaskInstance

__all__ = ["CeleryTaskRunner", "EagerModeRefused"]


class EagerModeRefused(TriggersError, RuntimeError):
    """The Celery app runs tasks eagerly (``task_always_eager``) and that was not allowed."""

    # The name failure metadata records (``exceptionType``), as before the module moved.
    __module__ = "triggers.celery_runner"

    def __init__(self, app: Any) -> None:
        super().__init__(
            f"the Celery app {describe_app(app)} is in eager mode (task_always_eager), so the"
            " task would run inline in the thread that fires, which the 'celery' runner refuses"
            " (a fire from inside a session's lock would wait for itself); turn eager mode"
            " off, run tasks inline with the 'sync' runner, or, in tests, set"
            " TRIGGERS_CELERY_ALLOW_EAGER = True"
        )


class CeleryTaskRunner(BaseTaskRunner):
    """Sends each task to Celery; the application's workers run it.

    ``app``: the Celery app to send through; by default the one
    ``TRIGGERS_CELERY_APP`` names, else Celery's current app, looked up at
    each send. Routing is Celery's: the app's ``task_routes`` and its
    Celery task's options; a task class's own ``queue`` (``routing_key``,
    ``exchange``, ``priority``) goes with each send, as in 2.x.
    """

    name = "celery"
    triggers__registry_key = "celery"
    # The broker holds a replay back by its cooldown (the countdown below).
    delays_by_cooldown = True

    def __init__(self, app: Any = None) -> None:
        self.app = app

    @staticmethod
    def adopt_task_object(app: Any, name: str) -> Any:
        """Give ``app`` the Celery task of ``name`` in place of a task object registered
        with ``app.register_task()`` (see :meth:`triggers.task.TriggerTask.bind`)."""
        return adopt_task_object(app, name)

    def run(self, manager: TriggerManager, task_instance: TaskInstance) -> None:
        app = get_celery_app(self.app)
        if app.conf.task_always_eager and not get_setting("TRIGGERS_CELERY_ALLOW_EAGER"):
            raise EagerModeRefused(app)
        name = task_instance.config.run
        celery_task = resolve_celery_task(name, app)
        options = routing_options(name)
        handed = _handoff(manager, task_instance)
        if handed is not None:
            options["headers"] = {HANDOFF_HEADER: handed}
        celery_task.apply_async(
            kwargs=self._prepare_task_kwargs(manager, task_instance),
            countdown=task_instance.cooldown,
            retries=task_instance.depth,
            **options,
        )


def _handoff(manager: TriggerManager, task_instance: TaskInstance) -> str | None:
    """What the storage hands the worker with the task (the state it just committed,
    so the worker's first commit needs no read first); None from a storage that hands none,
    or when ``TRIGGERS_CELERY_HANDOFF`` is off."""
    handoff = getattr(manager.storage, "handoff", None)
    if handoff is None or not get_setting("TRIGGERS_CELERY_HANDOFF"):
        return None
    token: str | None = handoff(task_instance.name)
    return token
