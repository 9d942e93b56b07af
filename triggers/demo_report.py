"""What ``python -m triggers demo`` prints, and the manager and runners that report it.

Events are printed one line each, as they happen, whichever thread they
happen in; the table at the end shows every instance with the kwargs it ran
with and its result. No line is longer than :data:`LINE_WIDTH`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from .manager import TriggerManager
from .signals import instance_status_changed
from .tasks.runners import SynchronousTaskRunner, ThreadingTaskRunner
from .types import TaskInstance

__all__ = [
    "LINE_WIDTH",
    "MANAGER_KEY",
    "DemoManager",
    "DemoSyncRunner",
    "DemoThreadingRunner",
    "EventPrinter",
    "compact",
    "fit",
    "print_table",
]

#: the registry key of the demo's manager, and the prefix of its runners' keys
MANAGER_KEY = "triggers-demo"


class EventPrinter:
    """Prints one line per event, whole lines only, whichever thread reports it."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self.out.write(line + "\n")
            self.out.flush()


class DemoManager(TriggerManager):
    """A manager that reports what happens, through status updates and its runners.

    Tasks rebuild their manager from its registry key, so the demo registers
    this class (``trigger_managers.register``); the cascades that tasks fire
    are then reported too. Its default runner is one of the demo's runners,
    which print each instance's "scheduled" line before they start it, so the
    line comes before the run's own lines with any runner.
    """

    events: EventPrinter | None = None
    #: ``threading`` or ``sync``: which of the demo's runners is the default
    runner = "threading"

    def __init__(self, storage: Any) -> None:
        super().__init__(storage)
        #: the trigger this manager is firing (None while it replays)
        self.firing: str | None = None

    @property
    def default_task_runner_name(self) -> str:
        return f"{MANAGER_KEY}-{DemoManager.runner}"

    def _emit(self, line: str) -> None:
        if DemoManager.events is not None:
            DemoManager.events(fit(line))

    def announce_scheduled(self, instance: TaskInstance) -> None:
        """Called by the demo's runners just before they start ``instance``."""
        parent = instance.metadata.get(TaskInstance.META_PARENT)
        cause = f"after {self.firing}" if self.firing else f"to replay {parent}"
        self._emit(f"  {instance.name:<{EVENT_WIDTH}} scheduled {cause}")

    def report_status(self, instance: TaskInstance, status: str) -> None:
        """Print a committed status change (the runners print "scheduled" lines)."""
        if status == TaskInstance.STATUS_SCHEDULED:
            return
        detail = ""
        if status == TaskInstance.STATUS_FINISHED:
            detail = " -> " + compact(instance.metadata.get(TaskInstance.META_RESULT))
        elif status == TaskInstance.STATUS_FAILED:
            detail = ": " + failure(instance)
        self._emit(f"  {instance.name:<{EVENT_WIDTH}} {status}{detail}")

    def _after_fire(self, firing: Any) -> list[TaskInstance]:
        # Committed: the instance that finished is reported (a signal), then its cascade.
        if firing.trigger_name in self.storage.tasks:  # a task's name: its instance finished
            what = "fire " + firing.trigger_name
            self._emit(f"  {what:<{EVENT_WIDTH}} (cascade) {compact(firing.kwargs)}")
        self.firing = firing.trigger_name
        return super()._after_fire(firing)

    def replay_failed_instance(
        self,
        instance_or_name: TaskInstance | str,
        replacement_kwargs: Mapping[str, Any] | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> TaskInstance:
        self.firing = None
        return super().replay_failed_instance(instance_or_name, replacement_kwargs, metadata=metadata)


def _announce(manager: TriggerManager, instance: TaskInstance) -> None:
    if isinstance(manager, DemoManager):
        manager.announce_scheduled(instance)


def _report_status(
    sender: type, manager: TriggerManager, instance: TaskInstance, status: str, **extra: Any
) -> None:
    if isinstance(manager, DemoManager):
        manager.report_status(instance, status)


instance_status_changed.connect(_report_status, dispatch_uid="triggers.demo_report")


class DemoThreadingRunner(ThreadingTaskRunner):
    """The threading runner, printing each instance's "scheduled" line before its thread starts."""

    name = f"{MANAGER_KEY}-threading"

    def run(self, manager: TriggerManager, task_instance: TaskInstance) -> None:
        _announce(manager, task_instance)
        super().run(manager, task_instance)


class DemoSyncRunner(SynchronousTaskRunner):
    """The sync runner, printing each instance's "scheduled" line before it runs it."""

    name = f"{MANAGER_KEY}-sync"

    def run(self, manager: TriggerManager, task_instance: TaskInstance) -> None:
        _announce(manager, task_instance)
        super().run(manager, task_instance)


#: width of the first column of event lines (the longest is a cascade's "fire ...")
EVENT_WIDTH = 28
#: no line the demo prints is longer
LINE_WIDTH = 100


def fit(line: str) -> str:
    return line if len(line) <= LINE_WIDTH else line[: LINE_WIDTH - 3] + "..."


def compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(", ", ": "), default=str)


def failure(instance: TaskInstance) -> str:
    info = (instance.metadata.get(TaskInstance.META_EXCEPTION_INFO) or "").strip().splitlines()
    return info[-1] if info else str(instance.metadata.get(TaskInstance.META_EXCEPTION_TYPE))


def print_table(instances: Sequence[TaskInstance], out: TextIO) -> None:
    """Every instance and its status; below it, the kwargs it ran with and its result."""
    width = max([len("instance")] + [len(i.name) for i in instances])
    out.write("\n")
    out.write(f"{'instance':<{width}}  status\n")
    out.write(f"{'-' * width}  {'-' * 9}\n")
    for instance in instances:
        metadata = instance.metadata
        ran_with = metadata.get(TaskInstance.META_ACTUAL_KWARGS)
        details: list[tuple[str, str]] = []
        if isinstance(ran_with, dict):
            details += [(f"with {name}", compact(ran_with[name])) for name in sorted(ran_with)]
        else:
            details.append(("with", "(did not run)"))
        if TaskInstance.META_RESULT in metadata:
            details.append(("result", compact(metadata[TaskInstance.META_RESULT])))
        elif (
            instance.status == TaskInstance.STATUS_FAILED
            or TaskInstance.META_EXCEPTION_INFO in metadata
        ):
            details.append(("error", failure(instance)))
        out.write(f"{instance.name:<{width}}  {instance.status}\n")
        if metadata.get(TaskInstance.META_PARENT):
            out.write(f"    replay of {metadata[TaskInstance.META_PARENT]}\n")
        label = max(len(name) for name, _ in details)
        for name, text in details:
            out.write(fit(f"    {name:<{label}}  {text}") + "\n")
