"""Tasks on a Celery app: one Celery task per registered task, all running :func:`task_body`.

In Triggers 2.x every task was a Celery task. Here a task is registered by
name (a :class:`~triggers.task.TriggerTask` subclass or an ``@task``
function, see :mod:`triggers.tasks.classes`), and the application's Celery
app gets a Celery task of the same name for each: what the ``celery``
runner sends, and what the app's workers run. Each runs :func:`task_body`,
which hands the payload it receives as keyword arguments to
:func:`triggers.tasks.execution.run_task`.

Celery is imported inside the functions that need it only, so that this
module (and :mod:`triggers.task`, which re-exports :func:`task_body`)
imports where Celery is not installed.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from typing import Any

from ..conf import get_setting
from ..errors import TriggersError
from ..importlib import dl
from ..process_state import register_state
from . import classes as task_classes
from .celery_state import celery_apps, celery_installed, current_celery_app, describe_app
from .classes import Retry
from .execution import run_task

__all__ = [
    "CELERY_ROUTING_OPTIONS",
    "CELERY_TASK_OPTIONS",
    "HANDOFF_HEADER",
    "CeleryAppNotFound",
    "CeleryUnavailable",
    "adopt_task_object",
    "autodiscover_celery_tasks",
    "celery_task_options",
    "get_celery_app",
    "resolve_celery_task",
    "routing_options",
    "task_body",
]

#: Celery task options that a task class may set as class attributes (as a
#: 2.x task class, itself a Celery task, did); the Celery task made for it
#: gets them.
CELERY_TASK_OPTIONS = (
    "expires",
    "serializer",
    "compression",
    "time_limit",
    "soft_time_limit",
    "rate_limit",
    "acks_late",
    "acks_on_failure_or_timeout",
    "reject_on_worker_lost",
    "ignore_result",
    "track_started",
)
#: Routing options a task class may set as class attributes. Celery deprecates
#: them on Celery tasks (6.0 drops them), so the runner sends them with each
#: task instead, where they weigh as they did: over ``task_routes``.
CELERY_ROUTING_OPTIONS = ("queue", "routing_key", "exchange", "priority")
#: the message header the runner sends the storage's handed state in (see
#: :mod:`triggers.storages.cache.handoff`); not in the payload, which 2.x workers read
HANDOFF_HEADER = "triggers_handoff"

_lock = threading.RLock()
#: apps whose workers register the tasks when they start (``clear()``: none
#: are, until autodiscover_celery_tasks() is called again; the receivers stay
#: connected and do nothing for an app not here)
_hooked: weakref.WeakSet[Any] = register_state(
    "celery hooked apps",
    weakref.WeakSet(),
    about="the Celery apps whose workers register every task when they start",
)


class CeleryUnavailable(TriggersError, ImportError):
    """The ``celery`` runner was asked for where Celery is not installed."""

    # The name failure metadata records (``exceptionType``), as before the module moved.
    __module__ = "triggers.celery_tasks"

    def __init__(self) -> None:
        super().__init__(
            "the 'celery' task runner needs Celery, which is not installed here:"
            " install the package's celery extra (pip install '.[celery]' in a checkout of"
            " triggers-django), or choose another runner with 'using' or TRIGGERS_DEFAULT_RUNNER"
        )


class CeleryAppNotFound(TriggersError, LookupError):
    """No Celery app to send tasks through could be told."""

    # The name failure metadata records (``exceptionType``), as before the module moved.
    __module__ = "triggers.celery_tasks"

    def __init__(self, apps: list[Any]) -> None:
        self.apps = apps
        if apps:
            found = ", ".join(describe_app(app) for app in apps)
            why = f"this process has several Celery apps ({found}) and none is current"
        else:
            why = "this process has no Celery app"
        super().__init__(
            f"the 'celery' task runner cannot tell which Celery app to send tasks through: {why};"
            " import your app where Django starts (<project>/__init__.py, as Celery's Django"
            " guide shows) or name it in TRIGGERS_CELERY_APP"
        )


def task_body(**payload: Any) -> dict[str, Any] | None:
    """What every Celery task of a registered task runs: the payload, as keyword arguments,
    given to :func:`triggers.tasks.execution.run_task` (which records every outcome).

    Returns the run's result (None unless it finished); raises what the run raised, after
    it was recorded, so that Celery reports the task as failed too. A run that asked to
    retry ends with Celery's own ``Retry``, so Celery records the attempt as RETRY and
    sends ``task_retry``; the replay itself was already sent, as the session's own
    (in eager mode the attempt ends as a success, as before).
    """
    retries: list[Retry] = []
    result = run_task(payload, on_retry=retries.append, handoff=_handed_state())
    if retries:
        _report_retry(retries[0])
    return result


def _handed_state() -> Any:
    """The state the runner sent with the task being run (its header), if any and
    if ``TRIGGERS_CELERY_HANDOFF`` is on."""
    if not celery_installed() or not get_setting("TRIGGERS_CELERY_HANDOFF"):
        return None
    from celery import current_task

    if current_task is None or current_task.request.is_eager:
        return None  # run where it was sent: the process knows what it committed
    return getattr(current_task.request, HANDOFF_HEADER, None)


def _report_retry(retry: Retry) -> None:
    """End the Celery task as retried (its replay is on its way, sent by the session).

    Not in eager mode: there Celery would raise its ``Retry`` into the code that
    sent the task (with ``task_eager_propagates``), which is the fire that started it.
    """
    from celery import current_task
    from celery.exceptions import Retry as CeleryRetry

    if current_task is None or current_task.request.is_eager:
        return
    raise CeleryRetry(
        f"replayed by the session{f' in {retry.cooldown}s' if retry.cooldown else ''}",
        exc=retry.exc,
        when=retry.cooldown,
    )


def get_celery_app(app: Any = None) -> Any:
    """The Celery app to use: ``app``, else ``TRIGGERS_CELERY_APP``, else Celery's current app."""
    if app is not None:
        return app
    configured = get_setting("TRIGGERS_CELERY_APP")
    if configured is not None:
        # A setting (application code), never stored data: importing it is safe.
        return dl(configured) if isinstance(configured, str) else configured
    if not celery_installed():
        raise CeleryUnavailable()
    found = current_celery_app()
    if found is None:
        raise CeleryAppNotFound(celery_apps())
    return found


def celery_task_options(
    task_cls: type, keys: tuple[str, ...] = CELERY_TASK_OPTIONS
) -> dict[str, Any]:
    """The Celery task options (of ``keys``) that ``task_cls`` sets as class attributes."""
    options: dict[str, Any] = {}
    for key in keys:
        value = getattr(task_cls, key, None)
        if value is not None:
            options[key] = value
    return options


def routing_options(name: str) -> dict[str, Any]:
    """The routing options the task registered under ``name`` sets (none if it is not registered)."""
    task_cls = task_classes.registered_tasks.get(name)
    return {} if task_cls is None else celery_task_options(task_cls, CELERY_ROUTING_OPTIONS)


def _celery_task(app: Any, name: str, task_cls: type) -> Any:
    """The app's Celery task named ``name``, made for ``task_cls`` if the app has none."""
    with _lock:
        existing = app.tasks.get(name)
        if existing is not None:
            # The app's own (say with its own queue), or one made before: keep it.
            return existing
        return app.task(name=name, shared=False, lazy=False, **celery_task_options(task_cls))(
            task_body
        )


def _register_all(app: Any) -> dict[str, Any]:
    """A Celery task on ``app`` for every registered task, the apps' ``tasks`` modules imported first."""
    from django.apps import apps

    if not apps.ready:
        return {}  # at settings import time; done again once the worker starts
    task_classes.autodiscover_tasks()
    registered: Mapping[str, type] = dict(task_classes.registered_tasks)
    return {name: _celery_task(app, name, cls) for name, cls in sorted(registered.items())}


def _on_worker_start(sender: Any = None, **kwargs: Any) -> None:
    """Before a worker of a hooked app consumes: register every task (the worker must know them)."""
    app = getattr(sender, "app", sender)  # worker_init's sender is the worker
    if app in _hooked:
        _register_all(app)


def autodiscover_celery_tasks(app: Any = None) -> dict[str, Any]:
    """Give ``app`` (by default the one :func:`get_celery_app` finds) a Celery task for every
    registered task, named as it is.

    Call it in the module that makes the Celery app, after ``app.autodiscover_tasks()``.
    Once Django is set up, the tasks are made at once; in any case they are made again when
    a worker of ``app`` starts, after the ``tasks`` modules of the installed apps (and the
    app's ``include`` modules) are imported, so the worker knows every task before it
    consumes. A task the app already has under that name (declared by the application with
    options of its own) is kept. Returns the Celery tasks made or kept now, by name.
    """
    from celery import signals

    app = get_celery_app(app)
    with _lock:
        if not _hooked:
            signals.import_modules.connect(_on_worker_start, weak=False, dispatch_uid=__name__)
            signals.worker_init.connect(_on_worker_start, weak=False, dispatch_uid=__name__)
        _hooked.add(app)
    return _register_all(app)


def adopt_task_object(app: Any, name: str) -> Any:
    """Put the Celery task of the task registered under ``name`` on ``app``, in place of
    a task object that ``app.register_task()`` put there (2.x's way to register tasks)."""
    task_cls = task_classes.get_task(name)
    with _lock:
        if isinstance(app.tasks.get(name), task_classes.TriggerTask):
            app.tasks.unregister(name)
        return _celery_task(app, name, task_cls)


def resolve_celery_task(name: str, app: Any = None) -> Any:
    """The Celery task of ``app`` that runs the task registered under ``name``.

    The app's own Celery task of that name if it has one (so its options apply), else one
    made now. Only a registered task's name resolves, else
    :class:`~triggers.task.UnknownTaskError`: stored configuration cannot send a payload to
    any other Celery task of the app, nor import code.
    """
    app = get_celery_app(app)
    return _celery_task(app, name, task_classes.get_task(name))
