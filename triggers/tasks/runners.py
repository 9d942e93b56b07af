"""How a ready task instance is sent to be run: the task runners.

A runner receives ``run(manager, task_instance)`` from the manager once the
instance is saved as ``scheduled`` and the session lock is released. It turns
the instance into a payload of plain data (:class:`triggers.tasks.payload.TaskPayload`,
as a dict from :meth:`BaseTaskRunner._prepare_task_kwargs`) and hands that to
:func:`triggers.tasks.execution.run_task` somewhere: in a new thread
(:class:`ThreadingTaskRunner`), in the calling thread
(:class:`SynchronousTaskRunner`), or, for a distributed runner, in another
process. The payload names the manager and storage classes by their
registry keys, so the task can rebuild them wherever it runs.

The manager never imports this module: it finds runners through the
``task_runners`` registry, so a plugin module may import this one at its top.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from django.db import connections

from ..conf import FALLBACK_RUNNER
from ..registry import EntryPointRegistry
from ..registry import task_runners as _task_runners
from .celery_runner import CeleryTaskRunner, EagerModeRefused
from .celery_tasks import (
    CeleryAppNotFound,
    CeleryUnavailable,
    autodiscover_celery_tasks,
    resolve_celery_task,
)
from .execution import run_task
from .payload import TaskPayload, merge_kwargs  # noqa: F401 (TaskPayload: importable here, as before)
from .runner_base import BaseTaskRunner

if TYPE_CHECKING:
    from ..manager import TriggerManager
    from ..types import TaskInstance

__all__ = [
    "DEFAULT_TASK_RUNNER",
    "BaseTaskRunner",
    "CeleryAppNotFound",
    "CeleryTaskRunner",
    "CeleryUnavailable",
    "EagerModeRefused",
    "SynchronousTaskRunner",
    "TaskThreads",
    "ThreadingTaskRunner",
    "autodiscover_celery_tasks",
    "merge_kwargs",
    "resolve_celery_task",
    "task_runners",
]

# Named as before the move (and not "triggers.tasks...", where task bodies log).
logger = logging.getLogger("triggers.runners")

#: Key of the runner used when neither the task's ``using`` nor the
#: ``TRIGGERS_DEFAULT_RUNNER`` setting says otherwise and Celery is not in
#: use (see :func:`triggers.conf.default_runner_choice`).
DEFAULT_TASK_RUNNER = FALLBACK_RUNNER

task_runners: EntryPointRegistry[BaseTaskRunner] = _task_runners


class SynchronousTaskRunner(BaseTaskRunner):
    """Runs each task in the calling thread, before ``fire()`` returns.

    Cascades run the same way, depth first, so a single ``fire()`` may run a
    whole workflow. Whatever the task body raises is recorded on its
    instance (``failed``) and logged here, not raised to the caller of
    ``fire()``. Useful for tests, scripts and debugging.
    """

    name = "sync"
    triggers__registry_key = "sync"
    runs_in_process = True

    def run(self, manager: TriggerManager, task_instance: TaskInstance) -> None:
        payload = self._prepare_task_kwargs(manager, task_instance)
        try:
            run_task(payload)
        except Exception:
            logger.error("task instance %s failed", task_instance.name, exc_info=True)


class TaskThreads:
    """The task threads of this process, which every ThreadingTaskRunner shares
    (so ``join_all()`` sees them all), and which thread is one of them."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every thread. In a forked child, the parent's threads do not
        exist, and the lock may have been held by one of them at the fork."""
        self.lock = threading.Lock()
        self.threads: set[threading.Thread] = set()
        self.local = threading.local()

    def add(self, thread: threading.Thread) -> None:
        with self.lock:
            self.threads.add(thread)

    def discard(self, thread: threading.Thread) -> None:
        with self.lock:
            self.threads.discard(thread)

    def running(self) -> list[threading.Thread]:
        """Tracked threads that have not finished, by name."""
        with self.lock:
            return sorted(self.threads, key=lambda t: t.name)

    def mark_current(self) -> None:
        """Mark the calling thread as a task thread."""
        self.local.is_task_thread = True

    def is_current(self) -> bool:
        """Whether the calling thread was marked as a task thread."""
        return bool(getattr(self.local, "is_task_thread", False))


#: the process's task threads
task_threads = TaskThreads()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=task_threads.reset)


class ThreadingTaskRunner(BaseTaskRunner):
    """Runs each task in a new thread of the current process.

    A retry's replay starts once its cooldown has passed (see
    :attr:`honours_cooldown`). Task threads are not daemons: a process that exits normally waits for
    them, so no instance is left ``running``. Each thread closes its Django
    database connections when its task ends. :meth:`join_all` waits for
    every task thread started so far, and for those their cascades start.
    """

    name = "threading"
    triggers__registry_key = "threading"
    runs_in_process = True
    #: whether a retry's cooldown is waited out (in the task's thread) before its
    #: replay starts; the 2.x test mixin turns it off while a test runs, as 2.x's
    #: threading runner never waited
    honours_cooldown: bool = True

    def run(self, manager: TriggerManager, task_instance: TaskInstance) -> None:
        payload = self._prepare_task_kwargs(manager, task_instance)
        thread = threading.Thread(
            target=self._run_in_thread,
            args=(payload,),
            name=f"triggers:{manager.storage.uid}:{task_instance.name}",
        )
        # Tracked before it starts, so a join_all() running now cannot miss it.
        task_threads.add(thread)
        try:
            thread.start()
        except BaseException:
            task_threads.discard(thread)
            raise

    @staticmethod
    def _run_in_thread(payload: dict[str, Any]) -> None:
        task_threads.mark_current()
        try:
            run_task(payload)
        except Exception:
            # Already recorded on the instance; the thread has no caller to tell.
            logger.error("task instance %s failed", payload.get("instance_name"), exc_info=True)
        finally:
            try:
                connections.close_all()
            finally:
                # Any cascade this task started was tracked before this point.
                task_threads.discard(threading.current_thread())

    @classmethod
    def is_task_thread(cls) -> bool:
        """Whether the calling thread is one this runner started."""
        return task_threads.is_current()

    @classmethod
    def running_threads(cls) -> list[threading.Thread]:
        """Task threads started and not finished yet."""
        return task_threads.running()

    @classmethod
    def join_all(cls, timeout: float | None = None) -> None:
        """Wait until every task thread has finished, cascades included.

        Threads that tasks start while this waits are waited for too. With
        ``timeout`` (seconds), raises TimeoutError if threads are still
        running by then. Calling it from a task thread raises RuntimeError:
        that thread would wait for itself.
        """
        if cls.is_task_thread():
            raise RuntimeError(
                "ThreadingTaskRunner.join_all() was called from a task thread, which would"
                " wait for itself; call it from the thread that fires the triggers"
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            threads = cls.running_threads()
            if not threads:
                return
            for thread in threads:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    thread.join(remaining)
                except RuntimeError:
                    # Tracked, but start() has not returned yet (or is failing,
                    # and run() will forget it): look again in a moment.
                    time.sleep(0.001)
                if deadline is not None and time.monotonic() >= deadline and thread.is_alive():
                    alive = ", ".join(t.name for t in cls.running_threads())
                    raise TimeoutError(f"task threads still running after {timeout}s: {alive}")
