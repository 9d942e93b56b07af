"""2.x registered each task class with its Celery app: ``app.register_task(MyTask())``."""

from __future__ import annotations

import pytest

from triggers.task import TaskContext, TriggerTask

celery = pytest.importorskip("celery", reason="Celery is not installed here (tox -e celery has it)")


class RegisteredLikeIn2x(TriggerTask):
    name = "tests.compat.registered_like_in_2x"
    time_limit = 30  # a Celery task option on the class, as on a 2.x task

    def _run(self, context: TaskContext) -> dict[str, int]:
        return {"ran": 1}


def new_app():
    return celery.Celery("tests.compat.register_task", set_as_current=False)


def test_a_task_object_needs_no_context_and_runs_no_body() -> None:
    task = RegisteredLikeIn2x()
    with pytest.raises(TypeError, match="RegisteredLikeIn2x was made without a context"):
        task.context  # noqa: B018


def test_the_app_gets_this_packages_celery_task_in_its_place() -> None:
    app = new_app()
    returned = app.register_task(RegisteredLikeIn2x())
    assert isinstance(returned, RegisteredLikeIn2x)  # what Celery returns, as before
    celery_task = app.tasks[RegisteredLikeIn2x.name]
    assert isinstance(celery_task, celery.Task) and not isinstance(celery_task, TriggerTask)
    assert celery_task.time_limit == 30
    from triggers.tasks.celery_tasks import resolve_celery_task

    assert resolve_celery_task(RegisteredLikeIn2x.name, app) is celery_task


def test_registering_the_class_or_twice_keeps_one_celery_task() -> None:
    app = new_app()
    app.register_task(RegisteredLikeIn2x)  # the class, which Celery instantiates
    assert isinstance(app.tasks[RegisteredLikeIn2x.name], celery.Task)
    with pytest.warns(Warning):  # Celery's own warning: a task object replaced the task
        app.register_task(RegisteredLikeIn2x())
    again = app.tasks[RegisteredLikeIn2x.name]
    assert isinstance(again, celery.Task) and not isinstance(again, TriggerTask)
    assert again.name == RegisteredLikeIn2x.name
    assert [name for name in app.tasks if name == RegisteredLikeIn2x.name] == [again.name]


class Abstract(TriggerTask):
    """A base of task classes: no name and no body, so not a registered task."""


@pytest.mark.parametrize("task", [Abstract, Abstract(), TriggerTask()])
def test_an_abstract_task_class_is_refused_naming_it(task) -> None:
    app = new_app()
    label = "Abstract" if task is Abstract or isinstance(task, Abstract) else "TriggerTask"
    with pytest.raises(TypeError, match=f"{label} is not a registered task"):
        app.register_task(task)
    assert not [name for name in app.tasks if "Abstract" in name]
