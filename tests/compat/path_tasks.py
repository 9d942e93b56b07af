"""Tasks the tests of triggers.testing name in their configurations.

``Unregistered`` is a TriggerTask subclass registered under no name, so only
the mixin's dotted-path resolution finds it; ``NotATask`` is importable but
is not a task.
"""

from __future__ import annotations

import threading
from typing import Any

from triggers.runners import ThreadingTaskRunner
from triggers.task import TaskContext, TriggerTask

#: What ``Blocking`` waits for; a test sets it.
RELEASE = threading.Event()


class Unregistered(TriggerTask):
    abstract = True  # not registered; the mixin resolves it by path

    def _run(self, context: TaskContext) -> dict[str, Any]:
        return {"resolved": "by path"}


class NotATask:
    def _run(self, context: TaskContext) -> dict[str, Any]:
        raise AssertionError("a class that is not a TriggerTask must never run")


class ThreadReporter(TriggerTask):
    name = "tests.compat.thread_reporter"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        return {"task_thread": ThreadingTaskRunner.is_task_thread()}


class Blocking(TriggerTask):
    name = "tests.compat.blocking"

    def _run(self, context: TaskContext) -> dict[str, Any]:
        # Bounded, so a broken test cannot hang the suite; the tests never rely on it.
        return {"released": RELEASE.wait(timeout=120)}


class FailingWithContext(TriggerTask):
    """Fails with a context attached the 2.x way (``with_context``)."""

    def _run(self, context):
        from triggers.exceptions import with_context

        raise with_context(ValueError("row 3 is bad"), {"row": 3, "handle": lambda: None})
