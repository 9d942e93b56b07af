"""Tasks, runners and helpers shared by the manager, runner, task and demo tests.

The tasks are real task bodies registered under ``tests.*`` names. What
``tests.behave`` does is chosen by the ``behave`` key of its kwargs (usually
set through the task configuration's ``withParams``), so one task covers
every outcome a task body can have.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
from pathlib import Path
from typing import Any, ClassVar

from tests.storage_support import fresh
from triggers import TriggerManager
from triggers.task import StatusChange, TriggerTask, task
from triggers.tasks.runners import BaseTaskRunner, ThreadingTaskRunner

#: Events a ``tests.behave`` task can wait for, by name.
EVENTS: dict[str, threading.Event] = {}


class Behave(TriggerTask):
    """Does what ``trigger_kwargs['behave']`` says; by default returns where and how it ran."""

    name = "tests.behave"
    max_retries = 2

    def _run(self, context):
        # From withParams, overridden by any trigger that fired with a "behave" key.
        behave = dict(context.trigger_kwargs.get("behave", {}))
        for kwargs in context.trigger_kwargs.values():
            if isinstance(kwargs, dict) and isinstance(kwargs.get("behave"), dict):
                behave.update(kwargs["behave"])
        if "log" in behave:
            context.logger.log(logging.getLevelName(behave["log"]), "logged by %s", context.instance_name)
        if "wait" in behave:
            EVENTS.setdefault(behave["wait"], threading.Event()).wait(30)
        if behave.get("join_all"):
            try:
                ThreadingTaskRunner.join_all()
            except RuntimeError as exc:
                return {"join_all_error": str(exc)}
        if "raise" in behave:
            raise ValueError(behave["raise"])
        if "skip" in behave:
            self.skip(behave["skip"])
        if "status" in behave:
            status, metadata = behave["status"]
            raise StatusChange(status, metadata)
        if "retry_until" in behave and self.request.retries < behave["retry_until"]:
            self.retry(
                exc=RuntimeError(f"attempt {self.request.retries} failed"),
                metadata={"attempt": self.request.retries},
                replacement_kwargs=behave.get("replacement_kwargs"),
                cooldown=behave.get("cooldown"),
            )
        if "return" in behave:
            return behave["return"]
        return {
            "ran": context.instance_name,
            "retries": self.request.retries,
            "thread": threading.current_thread().name,
        }


@task("tests.add")
def add(context):
    """Adds up every number found in the kwargs of every trigger."""
    total = 0
    for kwargs in context.trigger_kwargs.values():
        if isinstance(kwargs, dict):
            total += sum(v for v in kwargs.values() if isinstance(v, (int, float)) and not isinstance(v, bool))
    return {"sum": total}


class RecordingRunner(BaseTaskRunner):
    """Runs nothing: records the payload of every instance it is given."""

    name = "tests-recording"
    dispatched: ClassVar[list[tuple[str, str, dict[str, Any]]]] = []
    _lock = threading.Lock()

    def run(self, manager, task_instance):
        payload = self._prepare_task_kwargs(manager, task_instance)
        with RecordingRunner._lock:
            RecordingRunner.dispatched.append((manager.storage.uid, task_instance.name, payload))

    @classmethod
    def payloads(cls, uid: str) -> dict[str, dict[str, Any]]:
        with cls._lock:
            return {name: payload for u, name, payload in cls.dispatched if u == uid}


class FailingRunner(BaseTaskRunner):
    """Cannot start anything."""

    name = "tests-failing"

    def run(self, manager, task_instance):
        raise ConnectionError(f"the queue is down, cannot start {task_instance.name}")


def statuses(manager: TriggerManager) -> dict[str, str]:
    return {i.name: i.status for i in fresh(manager).iter_instances()}


def behave(**what: Any) -> dict[str, Any]:
    """``withParams`` that tell ``tests.behave`` what to do."""
    return {"behave": what}


EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


def load_example(name: str):
    """The module ``docs/examples/<name>.py``, loaded once (it may register tasks)."""
    module_name = f"docs_examples.{name}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
    return module
