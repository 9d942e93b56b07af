"""The celery runner and the Celery tasks of registered tasks, on apps that need no broker.

Eager mode runs a task inline (``memory://`` is never reached); the Celery
tasks are inspected as Celery made them. The workers themselves are in
``test_workers``.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.celery_app import tasks  # noqa: F401  (registers the test project's tasks)
from tests.celery_app.config import QUEUE_IMPORTS, make_app
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import DispatchFailed
from triggers.task import TaskContext, TriggerTask, UnknownTaskError, task_body
from triggers.testing import PassThruTask
from triggers.types import TaskInstance


class TimeBound(TriggerTask):
    """A task class with Celery options of its own, as a 2.x class had."""

    name = "celery_tests.time_bound"
    time_limit = 30
    soft_time_limit = 20
    acks_late = True
    priority = 7

    def _run(self, context: TaskContext) -> dict[str, Any]:
        return {}


def eager_app(main: str) -> Any:
    return make_app("memory://", main=main, task_always_eager=True)


def eager_session(settings: Any, main: str) -> TriggerManager:
    settings.TRIGGERS_CELERY_APP = eager_app(main)
    manager = TriggerManager(CacheStorageBackend(f"eager-{uuid.uuid4().hex}", cache="locmem"))
    manager.update_configuration(
        {
            "t_echo": {"after": ["go"], "run": PassThruTask.name, "using": "celery"},
            "t_next": {"after": ["t_echo"], "run": PassThruTask.name, "using": "celery"},
        }
    )
    return manager


def test_eager_mode_is_refused_with_a_clear_error(settings):
    manager = eager_session(settings, "eager-refused")
    with pytest.raises(DispatchFailed) as raised:
        manager.fire("go", {"n": 1})
    assert "EagerModeRefused" in str(raised.value)
    failed = CacheStorageBackend(manager.storage.uid, cache="locmem")["t_echo#0"]
    assert failed.status == TaskInstance.STATUS_FAILED
    assert failed.metadata["exceptionType"] == "triggers.celery_runner.EagerModeRefused"
    info = failed.metadata["exceptionInfo"]
    assert "'eager-refused' is in eager mode (task_always_eager)" in info
    assert "TRIGGERS_CELERY_ALLOW_EAGER = True" in info


def test_eager_mode_runs_inline_when_allowed(settings):
    settings.TRIGGERS_CELERY_ALLOW_EAGER = True
    manager = eager_session(settings, "eager-allowed")
    manager.fire("go", {"n": 1})
    storage = CacheStorageBackend(manager.storage.uid, cache="locmem")
    assert storage["t_echo#0"].status == TaskInstance.STATUS_FINISHED
    assert storage["t_echo#0"].metadata["result"] == {"kwargs": {"go": {"n": 1}}}
    # The cascade went through Celery too, before fire() returned.
    assert storage["t_next#0"].status == TaskInstance.STATUS_FINISHED


@pytest.mark.parametrize("propagates", [False, True])
def test_an_eager_retry_replays_inline_and_reaches_no_caller(settings, propagates):
    # Celery would raise its Retry into the fire that sent the task: the attempt
    # ends quietly instead, and the replay runs inline too.
    settings.TRIGGERS_CELERY_ALLOW_EAGER = True
    settings.TRIGGERS_CELERY_APP = make_app(
        "memory://", main=f"eager-retry-{propagates}", task_always_eager=True,
        task_eager_propagates=propagates,
    )
    manager = TriggerManager(CacheStorageBackend(f"eager-{uuid.uuid4().hex}", cache="locmem"))
    manager.update_configuration(
        {"t_retrying": {"after": ["go"], "run": "celery_tests.retry_twice", "using": "celery"}}
    )
    manager.fire("go")
    storage = CacheStorageBackend(manager.storage.uid, cache="locmem")
    statuses = {instance.name: instance.status for instance in storage.iter_instances()}
    assert statuses == {"t_retrying#0": "replayed", "t_retrying#1": "replayed", "t_retrying#2": "finished"}


def test_every_registered_task_gets_a_celery_task_running_task_body():
    from triggers.task import registered_tasks
    from triggers.tasks.runners import autodiscover_celery_tasks

    app = make_app("memory://", main="discovery")
    made = autodiscover_celery_tasks(app)
    assert set(registered_tasks) <= set(made)
    for name in ("celery_tests.import_subject", "celery_tests.score_page", PassThruTask.name):
        assert made[name].name == name
        assert made[name].run is task_body
        assert app.tasks[name] is made[name]
    bound = made["celery_tests.time_bound"]
    assert (bound.time_limit, bound.soft_time_limit, bound.acks_late) == (30, 20, True)
    # Routing options are no Celery task attributes (Celery deprecates them): sent with each task.
    assert "queue" not in type(made["celery_tests.import_subject"]).__dict__
    assert bound.priority is None


def test_routing_options_of_a_task_class_go_with_each_send():
    from triggers.tasks.celery_tasks import routing_options

    assert routing_options("celery_tests.import_subject") == {"queue": QUEUE_IMPORTS}
    assert routing_options("celery_tests.time_bound") == {"priority": 7}
    assert routing_options("celery_tests.score_page") == {}
    assert routing_options("no.such.task") == {}


def test_the_apps_own_celery_task_is_the_one_sent():
    from triggers.tasks.runners import autodiscover_celery_tasks, resolve_celery_task

    app = make_app("memory://", main="own-task")
    # Declared by the application, with an option of its own (the decorator is lazy).
    app.task(name="celery_tests.score_page", shared=False, time_limit=5)(task_body)
    own = resolve_celery_task("celery_tests.score_page", app)
    assert own.time_limit == 5 and own is app.tasks["celery_tests.score_page"]
    assert autodiscover_celery_tasks(app)["celery_tests.score_page"] is own


def test_a_registered_task_gets_its_celery_task_on_demand():
    from triggers.tasks.runners import resolve_celery_task

    app = make_app("memory://", main="on-demand")
    assert "celery_tests.skip_self" not in app.tasks
    made = resolve_celery_task("celery_tests.skip_self", app)
    assert made.name == "celery_tests.skip_self" and made.run is task_body
    assert resolve_celery_task("celery_tests.skip_self", app) is made


def test_only_registered_tasks_are_resolved():
    from triggers.tasks.runners import resolve_celery_task

    app = make_app("memory://", main="unknown")
    with pytest.raises(UnknownTaskError):
        resolve_celery_task("os.system", app)
    assert "os.system" not in app.tasks
    # A Celery task of the app that runs no registered task is never sent a payload.
    def send_mail(**kwargs: Any) -> None:
        raise AssertionError("never called")

    app.task(name="proj.send_mail", shared=False)(send_mail)
    assert "celery.backend_cleanup" in app.tasks and "proj.send_mail" in app.tasks
    for name in ("celery.backend_cleanup", "proj.send_mail"):
        with pytest.raises(UnknownTaskError):
            resolve_celery_task(name, app)


def test_the_app_can_be_named_by_its_dotted_path(settings, monkeypatch):
    from triggers.tasks.celery_tasks import get_celery_app

    named = make_app("memory://", main="named")
    monkeypatch.setattr(tasks, "NAMED_APP", named, raising=False)
    settings.TRIGGERS_CELERY_APP = "tests.celery_app.tasks.NAMED_APP"
    assert get_celery_app() is named
    given = make_app("memory://", main="given")
    assert get_celery_app(given) is given


def test_the_runner_is_registered_and_exported():
    import triggers.tasks.runners as runners
    from triggers.registry import task_runners

    assert task_runners.get_class("celery") is runners.CeleryTaskRunner
    assert runners.CeleryTaskRunner.delays_by_cooldown is True
    for name in ("CeleryTaskRunner", "autodiscover_celery_tasks", "resolve_celery_task"):
        assert name in runners.__all__
