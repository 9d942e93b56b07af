"""Test helpers for applications that use triggers (``triggers.testing``, as in 2.x).

:class:`TriggerManagerTestCaseMixin` goes before ``TestCase`` in a test
class whose ``setUp`` sets ``self.manager``. While each test runs:

- tasks run on the threading runner: it is the default runner, and the
  runner keys in ``threaded_runners`` (``celery`` by default: a test has no
  broker) are served by it too (the settings ``TRIGGERS_DEFAULT_RUNNER``
  and ``TRIGGERS_RUNNER_ALIASES``, overridden for the test);
- a retry's cooldown is not waited out: the replay runs at once, as 2.x's
  threading runner ran it (outside tests the threading runner waits it out);
- a task configuration's ``run`` may name a :class:`~triggers.task.TriggerTask`
  subclass by its dotted path (``"app.tests.tasks.MyTask"``) even if that
  class is registered under no name (a resolver added to
  :data:`triggers.tasks.classes.task_fallbacks` for the test). This is for
  tests only: outside them, ``run`` is looked up among registered tasks and
  nothing is imported.

Its assertions wait for the task threads, then read the session afresh,
so they never see a stale copy. The task classes below are small,
predictable tasks to wire into a test's configuration by their names
(``"triggers.testing.PassThruTask"`` and so on).

:class:`StorageBackendTests` is the conformance kit for storage backends
(see :mod:`triggers.testing_backends`).
"""

from __future__ import annotations

import pprint
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar

from django.test.utils import override_settings

from .conf import get_setting
from .importlib import DottedPathError, InvalidDottedPath, dl
from .patcher import AttrPatcher, BasePatcher
from .task import TaskContext, TriggerTask, register_task, registered_tasks
from .tasks.classes import task_fallbacks
from .tasks.runners import ThreadingTaskRunner
from .testing_backends import StorageBackendTests
from .types import TaskInstance

if TYPE_CHECKING:
    import unittest

    from .manager import TriggerManager
    from .storages.base import BaseTriggerStorage

    _MixinBase = unittest.TestCase
else:
    _MixinBase = object

__all__ = [
    "DevNullTask",
    "FailingTask",
    "PassThruTask",
    "SelfRetryingTask",
    "SelfSkippingTask",
    "StorageBackendTests",
    "TriggerManagerTestCaseMixin",
    "name_matches_classpath",
]

_T = TypeVar("_T", bound=type[TriggerTask])


# --------------------------------------------------------------------------- tasks


def name_matches_classpath(cls: _T) -> _T:
    """Name a task class after its dotted path (``module.ClassName``) and register it so.

    Usable as a class decorator. The class stays registered under a name it
    had before, too.
    """
    if not (isinstance(cls, type) and issubclass(cls, TriggerTask)):
        raise TypeError(f"name_matches_classpath() takes a TriggerTask subclass, not {cls!r}")
    cls.name = f"{cls.__module__}.{cls.__qualname__}"
    register_task(cls.name, cls)
    return cls


class PassThruTask(TriggerTask):
    """Finishes with the kwargs it was given: ``{"kwargs": context.trigger_kwargs}``."""

    def _run(self, context: TaskContext) -> dict[str, Any]:
        return {"kwargs": context.trigger_kwargs}


class DevNullTask(TriggerTask):
    """Finishes with an empty result, whatever it was given."""

    def _run(self, context: TaskContext) -> dict[str, Any]:
        return {}


class FailingTask(TriggerTask):
    """Always fails, with a RuntimeError."""

    def _run(self, context: TaskContext) -> NoReturn:
        raise RuntimeError(f"{context.instance_name} failed, as FailingTask always does")


class SelfSkippingTask(TriggerTask):
    """Always ends as ``skipped``, by its own ``skip()``, with the kwargs it was given
    in its metadata under ``kwargs`` (as in 2.x)."""

    def _run(self, context: TaskContext) -> NoReturn:
        self.skip({"kwargs": context.trigger_kwargs})


class SelfRetryingTask(TriggerTask):
    """Retries itself until it has been retried ``retries.max`` times (from the task's
    ``withParams``, by default its ``max_retries``), then finishes with
    ``{"count": <retries>}``, as in 2.x.

    So with ``max`` 3, instances ``#0`` to ``#2`` end ``replayed`` and ``#3``
    finishes with ``{"count": 3}``. A ``max`` that is not a whole number >= 0
    fails the run with a ValueError naming it.
    """

    def _run(self, context: TaskContext) -> dict[str, int]:
        limit = self._limit(context)
        retries = self.request.retries
        if retries >= limit:
            return {"count": retries}
        self.max_retries = max(limit, self.max_retries)
        self.retry()

    def _limit(self, context: TaskContext) -> int:
        given = context.trigger_kwargs.get("retries")
        limit = given.get("max") if isinstance(given, dict) else None
        if limit is None:
            return self.max_retries
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"retries.max must be a whole number >= 0, not {limit!r}")
        return limit


# --------------------------------------------------------------------------- resolution


def _resolve_by_path(name: str) -> type[TriggerTask] | None:
    """The task a dotted path names, imported (None if it names no TriggerTask subclass).

    The mixin's fallback of :func:`triggers.task.get_task` while a test runs.
    """
    try:
        found = dl(name)
    except (DottedPathError, InvalidDottedPath):
        return None
    registered = registered_tasks.get(name)
    if registered is not None:  # importing the module registered it
        return registered
    if isinstance(found, type) and issubclass(found, TriggerTask):
        return found
    return None


# --------------------------------------------------------------------------- the mixin


class TriggerManagerTestCaseMixin(_MixinBase):
    """Assertions on a session's instances, with tasks run in threads (see the module doc).

    Put it before ``TestCase``; ``setUp`` sets ``self.manager``.
    """

    manager: TriggerManager

    #: runner keys that the threading runner serves while a test runs
    threaded_runners: ClassVar[frozenset[str]] = frozenset({"celery"})
    #: how long (seconds) to wait for task threads before failing the test
    task_timeout: ClassVar[float] = 60.0

    def run(self, result: Any = None) -> Any:
        patchers = self._trigger_patchers()
        for patcher in patchers:
            patcher.start()
        # Cleanups run last-added first: this one runs after the test's own.
        self.addCleanup(self._wait_for_tasks)
        try:
            return super().run(result)
        finally:
            for patcher in reversed(patchers):
                patcher.stop()

    def _trigger_patchers(self) -> list[BasePatcher]:
        """What holds while a test runs: two settings and a task fallback."""
        threaded = ThreadingTaskRunner.name
        replaced = self.threaded_runners
        aliases = {
            key: threaded if target in replaced else target
            for key, target in (get_setting("TRIGGERS_RUNNER_ALIASES") or {}).items()
        }
        aliases.update(dict.fromkeys(replaced, threaded))
        return [
            _SettingsPatcher(TRIGGERS_DEFAULT_RUNNER=threaded, TRIGGERS_RUNNER_ALIASES=aliases),
            _TaskFallbackPatcher(_resolve_by_path),
            # Retries replayed at once, cooldown or not, as 2.x's threading runner did.
            AttrPatcher(ThreadingTaskRunner, honours_cooldown=False),
        ]

    def _wait_for_tasks(self) -> None:
        try:
            ThreadingTaskRunner.join_all(timeout=self.task_timeout)
        except TimeoutError as exc:
            self.fail(f"task threads did not finish: {exc}")

    # ------------------------------------------------------------ reading the session
    def _fresh_storage(self) -> BaseTriggerStorage:
        self._wait_for_tasks()
        manager = getattr(self, "manager", None)
        if manager is None:
            self.fail(f"{type(self).__name__} must set self.manager (in setUp) before asserting")
        storage: BaseTriggerStorage = manager.storage
        storage.invalidate_cache()
        return storage

    def _fresh_instance(self, instance_name: str) -> TaskInstance:
        storage = self._fresh_storage()
        try:
            instance: TaskInstance = storage[instance_name]
        except KeyError:
            names = sorted(other.name for other in storage.iter_instances())
            self.fail(
                f"no task instance {instance_name!r} in session {storage.uid!r};"
                f" it has {', '.join(names) or 'none'}"
            )
        return instance

    @staticmethod
    def _describe(instance: TaskInstance) -> str:
        metadata = dict(instance.metadata)
        traceback = metadata.pop(TaskInstance.META_EXCEPTION_INFO, None)
        text = (
            f"{instance.name} is {instance.status}\n"
            f"kwargs: {pprint.pformat(instance.kwargs)}\n"
            f"metadata: {pprint.pformat(metadata)}"
        )
        return text + (f"\n{traceback}" if traceback else "")

    # ------------------------------------------------------------ assertions
    def assertInstanceStatus(self, instance_name: str, status: str) -> TaskInstance:  # noqa: N802
        """The instance has ``status``; returns it, as stored now."""
        instance = self._fresh_instance(instance_name)
        if instance.status != status:
            self.fail(f"expected {instance_name} to be {status}.\n{self._describe(instance)}")
        return instance

    def assertInstanceAbandoned(self, instance_name: str) -> TaskInstance:  # noqa: N802
        """The instance is abandoned; returns it."""
        return self.assertInstanceStatus(instance_name, TaskInstance.STATUS_ABANDONED)

    def assertInstanceFailed(  # noqa: N802
        self, instance_name: str, exc_type: type[BaseException]
    ) -> TaskInstance:
        """Failed with ``exc_type`` or a subclass of it (compared by ``module.Name``, never imported)."""
        instance = self.assertInstanceStatus(instance_name, TaskInstance.STATUS_FAILED)
        recorded = instance.metadata.get(TaskInstance.META_EXCEPTION_TYPE)
        if recorded not in _class_paths(exc_type):
            self.fail(
                f"expected {instance_name} to have failed with {_class_path(exc_type)},"
                f" not {recorded}.\n{self._describe(instance)}"
            )
        return instance

    def assertInstanceFinished(  # noqa: N802
        self, instance_name: str, expected_result: Any = None
    ) -> TaskInstance:
        """Finished; with ``expected_result``, its result is equal to it."""
        instance = self.assertInstanceStatus(instance_name, TaskInstance.STATUS_FINISHED)
        if expected_result is not None:
            result = instance.metadata.get(TaskInstance.META_RESULT)
            self.assertEqual(
                result, expected_result, f"result of {instance_name}.\n{self._describe(instance)}"
            )
        return instance

    def assertInstanceReplayed(self, instance_name: str) -> TaskInstance:  # noqa: N802
        """The instance is replayed; returns it."""
        return self.assertInstanceStatus(instance_name, TaskInstance.STATUS_REPLAYED)

    def assertInstanceSkipped(self, instance_name: str) -> TaskInstance:  # noqa: N802
        """The instance is skipped; returns it."""
        return self.assertInstanceStatus(instance_name, TaskInstance.STATUS_SKIPPED)

    def assertInstanceUnstarted(self, instance_name: str) -> TaskInstance:  # noqa: N802
        """The instance is unstarted; returns it."""
        return self.assertInstanceStatus(instance_name, TaskInstance.STATUS_UNSTARTED)

    def assertInstanceMissing(self, instance_name: str) -> None:  # noqa: N802
        """The session has no instance of that name."""
        storage = self._fresh_storage()
        try:
            instance = storage[instance_name]
        except KeyError:
            return
        self.fail(f"expected no instance {instance_name}.\n{self._describe(instance)}")

    def assertUnresolvedTasks(self, task_names: Iterable[str]) -> None:  # noqa: N802
        """The tasks not done yet are exactly these (in any order)."""
        storage = self._fresh_storage()
        actual = sorted(config.name for config in storage.get_unresolved_tasks())
        self.assertEqual(actual, sorted(task_names), self._session_summary(storage))

    def assertUnresolvedInstances(self, instance_names: Iterable[str]) -> None:  # noqa: N802
        """The instances not done yet are exactly these (in any order)."""
        storage = self._fresh_storage()
        actual = sorted(instance.name for instance in storage.get_unresolved_instances())
        self.assertEqual(actual, sorted(instance_names), self._session_summary(storage))

    @staticmethod
    def _session_summary(storage: BaseTriggerStorage) -> str:
        lines = [str(instance) for instance in sorted(storage.iter_instances(), key=str)]
        return "instances in the session: " + ("; ".join(lines) or "none")


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _class_paths(cls: type) -> set[str]:
    """The paths of ``cls`` and of every subclass of it defined so far."""
    found: set[str] = set()
    pending = [cls]
    while pending:
        current = pending.pop()
        path = _class_path(current)
        if path not in found:
            found.add(path)
            pending.extend(current.__subclasses__())
    return found


class _TaskFallbackPatcher(BasePatcher):
    """A resolver in :data:`triggers.tasks.classes.task_fallbacks`, as a patcher."""

    def __init__(self, resolver: Callable[[str], type[TriggerTask] | None]) -> None:
        super().__init__()
        self._resolver = resolver

    def _apply(self) -> None:
        task_fallbacks.add(self._resolver)

    def _restore(self) -> None:
        task_fallbacks.remove(self._resolver)


class _SettingsPatcher(BasePatcher):
    """Django's ``override_settings`` as a patcher (it is entered and left like one)."""

    def __init__(self, **settings: Any) -> None:
        super().__init__()
        self._override = override_settings(**settings)

    def _apply(self) -> None:
        self._override.enable()

    def _restore(self) -> None:
        self._override.disable()
