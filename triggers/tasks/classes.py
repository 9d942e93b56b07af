"""Task classes: :class:`TriggerTask`, the :func:`task` decorator, the
outcomes a task body raises, and the registry of tasks by name.

A task is code registered under a name, either a :class:`TriggerTask`
subclass or a function decorated with :func:`task`. A task configuration's
``run`` names it, and it is resolved *among registered tasks only*: stored
configuration can never make this package import anything. The public home
of these names is :mod:`triggers.task`.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any, ClassVar, NoReturn, overload

from ..process_state import register_state
from ..registry import EntryPointRegistry, task_runners
from ..types import TaskInstance
from .context import TaskContext, TaskLogger
from .outcomes import (
    MaxRetriesExceeded,
    Retry,
    StatusChange,
    UnknownTaskError,
)

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "FunctionTask",
    "TaskFallbacks",
    "MaxRetriesExceeded",
    "Retry",
    "StatusChange",
    "TriggerTask",
    "UnknownTaskError",
    "autodiscover_tasks",
    "get_task",
    "register_task",
    "registered_tasks",
    "task",
    "task_fallbacks",
]


#: Every registered task, by name.
registered_tasks: dict[str, type[TriggerTask]] = {}
_registry_lock = threading.Lock()
_discovery_lock = threading.Lock()
#: ``<app>.tasks`` modules already imported, or known not to exist
#: (``clear()``: all are tried again on the next miss).
_discovered: set[str] = register_state(
    "discovered tasks modules",
    set(),
    settings=("INSTALLED_APPS",),
    about="the <app>.tasks modules already imported (or found missing)",
)

#: What ``TriggerTask.max_retries`` is unless a task says otherwise (Celery's default).
DEFAULT_MAX_RETRIES = 3


class TriggerTask:
    """Base class of tasks. A subclass implements ``_run(context)``.

    A subclass that defines a ``name`` class attribute is registered under
    it; one that defines ``_run`` but no ``name`` is registered under its
    dotted path (``"module.ClassName"``); one that sets ``abstract = True``
    (and no ``name``) is not registered. ``_run`` returns a dict (the
    result, fired as the kwargs of the task's own name) or None (an empty
    result).
    """

    #: the name a configuration's ``run`` uses
    name: ClassVar[str]
    #: how many times ``retry()`` may replay one run (the first run excluded)
    max_retries: int = DEFAULT_MAX_RETRIES

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name is None:
            if cls.__dict__.get("abstract", False) or "_run" not in cls.__dict__:
                return  # an abstract base, or a variant that only changes settings
            name = f"{cls.__module__}.{cls.__qualname__}"
            cls.name = name
        register_task(name, cls)

    def __init__(self, context: TaskContext | None = None) -> None:
        # No context: an object made to be registered with a Celery app (2.x's
        # ``app.register_task(MyTask())``), which never runs a body itself.
        self._context = context
        self._retries: int | None = None

    @property
    def context(self) -> TaskContext:
        """The context of the run; a TypeError on an object made without one."""
        if self._context is None:
            raise TypeError(
                f"{type(self).__qualname__} was made without a context, so it runs no task"
                " body: a run makes its own task object with the run's context"
            )
        return self._context

    @context.setter
    def context(self, context: TaskContext) -> None:
        self._context = context

    def __getattr__(self, attribute: str) -> Any:
        # Celery's register_task() reads ``name`` before it calls bind(): an
        # abstract task (no name) reads None there, so bind() can say what it is.
        if attribute == "name":
            return None
        raise AttributeError(f"{type(self).__qualname__!r} object has no attribute {attribute!r}")

    def bind(self, app: Any) -> Any:
        """What Celery's ``app.register_task(<task object>)`` calls, as 2.x applications
        registered their task classes: the app gets this package's Celery task for this
        task's name in place of this object, so its workers run it as any registered task."""
        # Found through the registry (the runner's module is below this one), under
        # its own key: not a runner the settings alias "celery" to.
        name = getattr(type(self), "name", None)
        if not isinstance(name, str):
            # Celery put this object in its registry under a made-up name first.
            made_up = self.__dict__.get("name")
            if made_up is not None and app.tasks.get(made_up) is self:
                del app.tasks[made_up]
            raise TypeError(
                f"{type(self).__qualname__} is not a registered task (it has no 'name' and"
                " no '_run'), so there is no task of its name to give the Celery app"
            )
        runner_cls = EntryPointRegistry.get_class(task_runners, "celery")
        runner_cls.adopt_task_object(app, name)
        return app

    @property
    def request(self) -> SimpleNamespace:
        """Celery-like request info: ``retries`` is how many times this run was retried."""
        if self._retries is None:
            self._retries = self.context.task_instance.depth
        return SimpleNamespace(retries=self._retries)

    @property
    def logger(self) -> TaskLogger:
        return self.context.logger

    def run_body(self, instance: TaskInstance) -> Mapping[str, Any] | None:
        """Run the body, ``_run(context)``, for ``instance`` as it was when
        its run began (its depth is how many times it was retried): what
        :func:`triggers.tasks.execution.run_task` calls. Not to be overridden."""
        self._retries = instance.depth
        return self._run(self.context)

    def _run(self, context: TaskContext) -> Mapping[str, Any] | None:
        raise NotImplementedError(f"{type(self).__qualname__} must implement _run(context)")

    def skip(self, metadata: Mapping[str, Any] | None = None) -> NoReturn:
        """End this run as ``skipped`` (no cascade)."""
        raise StatusChange(TaskInstance.STATUS_SKIPPED, metadata)

    def retry(
        self,
        exc: BaseException | None = None,
        metadata: Mapping[str, Any] | None = None,
        replacement_kwargs: Mapping[str, Any] | None = None,
        cooldown: float | None = None,
    ) -> NoReturn:
        """Fail this run and replay it, or raise MaxRetriesExceeded past ``max_retries``."""
        retries = self.request.retries
        if retries >= self.max_retries:
            raise MaxRetriesExceeded(
                self.name, self.context.instance_name, retries, self.max_retries
            ) from exc
        raise Retry(
            exc=exc, metadata=metadata, replacement_kwargs=replacement_kwargs, cooldown=cooldown
        )


class FunctionTask(TriggerTask):
    """A task made by :func:`task` from a function of the context."""

    abstract = True
    func: ClassVar[Callable[[TaskContext], Any]]

    def _run(self, context: TaskContext) -> Any:
        return type(self).func(context)


def register_task(name: str, cls: type[TriggerTask]) -> None:
    """Register ``cls`` under ``name``; a different task already there is an error."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a task name must be a non-empty string, not {name!r}")
    with _registry_lock:
        existing = registered_tasks.get(name)
        if existing is not None and existing is not cls and _origin(existing) != _origin(cls):
            raise ValueError(
                f"task name {name!r} is already registered by {_origin(existing)},"
                f" cannot register {_origin(cls)} under it"
            )
        # The same origin again is a module imported twice (a reload): the newest wins.
        registered_tasks[name] = cls


def _origin(cls: type[TriggerTask]) -> str:
    func = cls.__dict__.get("func")
    target = getattr(func, "__func__", func) if func is not None else cls
    return f"{target.__module__}.{target.__qualname__}"


@overload
def task(name: Callable[[TaskContext], Any]) -> Callable[[TaskContext], Any]: ...
@overload
def task(
    name: str | None = None, *, max_retries: int = DEFAULT_MAX_RETRIES
) -> Callable[[Callable[[TaskContext], Any]], Callable[[TaskContext], Any]]: ...


def task(name: Any = None, *, max_retries: int = DEFAULT_MAX_RETRIES) -> Any:
    """Register a function ``f(context)`` as a task.

    ``@task`` registers it under its dotted path (``"module.function"``),
    ``@task("name")`` or ``@task(name="name")`` under that name. The
    function is returned unchanged, with ``task_name`` and ``task_class``
    attributes. Inside, ``context.task`` is the running :class:`TriggerTask`,
    for ``context.task.retry(...)`` and ``context.task.skip(...)``.
    """
    if callable(name):
        return _make_function_task(name, None, max_retries)

    def decorator(func: Callable[[TaskContext], Any]) -> Callable[[TaskContext], Any]:
        return _make_function_task(func, name, max_retries)

    return decorator


def _make_function_task(
    func: Callable[[TaskContext], Any], name: str | None, max_retries: int
) -> Callable[[TaskContext], Any]:
    if not callable(func):
        raise TypeError(f"@task decorates a function, not {func!r}")
    task_name = name or f"{func.__module__}.{func.__qualname__}"
    attrs = {
        "name": task_name,
        "func": staticmethod(func),
        "max_retries": max_retries,
        "__module__": func.__module__,
        "__qualname__": f"{func.__qualname__}[task]",
        "__doc__": func.__doc__,
    }
    cls = type(f"{func.__name__}_task", (FunctionTask,), attrs)
    func.task_name = task_name  # type: ignore[attr-defined]
    func.task_class = cls  # type: ignore[attr-defined]
    return func


class TaskFallbacks:
    """Resolvers :func:`get_task` asks for a name no registered task has.

    There are none unless a test helper adds one:
    :class:`triggers.testing.TriggerManagerTestCaseMixin` adds one while
    each test runs (it resolves the dotted path of a ``TriggerTask``
    subclass). A resolver takes the name and returns a ``TriggerTask``
    subclass or None; the one added last is asked first. Tests only: stored
    configuration names what ``get_task`` looks up.
    """

    def __init__(self) -> None:
        self._resolvers: list[Callable[[str], type[TriggerTask] | None]] = []
        self._lock = threading.Lock()

    def add(self, resolver: Callable[[str], type[TriggerTask] | None]) -> None:
        with self._lock:
            self._resolvers.append(resolver)

    def remove(self, resolver: Callable[[str], type[TriggerTask] | None]) -> None:
        """Take ``resolver`` out (its last addition; nothing if it is not there)."""
        with self._lock:
            for index in range(len(self._resolvers) - 1, -1, -1):
                if self._resolvers[index] is resolver:
                    del self._resolvers[index]
                    return

    def reset(self) -> None:
        """Take every resolver out: only registered tasks resolve."""
        with self._lock:
            self._resolvers.clear()

    def resolve(self, name: str) -> type[TriggerTask] | None:
        """What the resolvers make of ``name``, the last added first; None if none does."""
        with self._lock:
            resolvers = list(reversed(self._resolvers))
        for resolver in resolvers:
            found = resolver(name)
            if found is not None:
                if not (isinstance(found, type) and issubclass(found, TriggerTask)):
                    raise TypeError(
                        f"task fallback {resolver!r} resolved {name!r} to {found!r},"
                        " which is not a TriggerTask subclass"
                    )
                return found
        return None


#: the fallbacks of :func:`get_task` (none outside tests)
task_fallbacks = register_state(
    "task fallbacks",
    TaskFallbacks(),
    about="the resolvers get_task asks for unregistered names (tests only)",
)


def autodiscover_tasks() -> None:
    """Import ``<app>.tasks`` of every installed Django app that has one.

    Apps whose module was imported (or found missing) before are not tried
    again; an error raised by a ``tasks`` module propagates, and that module
    is tried again next time.
    """
    from django.apps import apps

    with _discovery_lock:
        for app_config in apps.get_app_configs():
            module_name = f"{app_config.name}.tasks"
            if module_name in _discovered:
                continue
            try:
                importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    raise  # the module exists and one of its own imports is missing
            _discovered.add(module_name)


def get_task(name: str) -> type[TriggerTask]:
    """The task registered under ``name``; UnknownTaskError if there is none.

    On a miss, the ``tasks`` modules of the installed apps are imported and
    the name is looked up again, then :data:`task_fallbacks` are asked (a
    test helper's; there are none otherwise). The name itself is never
    imported: stored configuration cannot choose what code is loaded.
    """
    found = registered_tasks.get(name)
    if found is None:
        # Not under _registry_lock: the modules imported register tasks.
        autodiscover_tasks()
        found = registered_tasks.get(name)
    if found is None:
        found = task_fallbacks.resolve(name)
    if found is None:
        raise UnknownTaskError(name, sorted(registered_tasks))
    return found
