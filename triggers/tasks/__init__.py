"""The task side: what a task is, what it is given, how one run goes, and the runners.

Its modules, each imported by its own path (this package imports none of
them, so that :mod:`triggers.conf` may import :mod:`.celery_state` without
loading the rest):

- :mod:`.celery_state`: what the process knows of Celery, read without
  importing it;
- :mod:`.payload`: :class:`~triggers.tasks.payload.TaskPayload`, what a
  runner sends;
- :mod:`.context`: :class:`~triggers.task.TaskContext`, what a task body
  is given;
- :mod:`.outcomes`: what a body raises to end its run;
- :mod:`.classes`: :class:`~triggers.task.TriggerTask`, ``@task`` and the
  registry of tasks;
- :mod:`.execution`: :func:`~triggers.task.run_task`, one run of one
  instance;
- :mod:`.celery_tasks`: the Celery task of each registered task;
- :mod:`.runner_base`, :mod:`.celery_runner`, :mod:`.runners`: the runners.

:mod:`triggers.task` is the public face of tasks (it re-exports what a task
and a runner import). The modules' earlier paths (``triggers.runners``,
``triggers.task_classes``, ...) still import, each as the module itself.

The loggers of task bodies are named ``triggers.tasks.<task name>``, so no
module here logs under its own ``__name__``: the runners log to
``triggers.runners`` and a run to ``triggers.task``, as before.
"""
