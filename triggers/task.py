"""What happens inside one run of a task: the task registry and the task body rules.

A task is code registered under a name, either a :class:`TriggerTask`
subclass or a function decorated with :func:`task`. A task configuration's
``run`` names it. :func:`run_task` is what every runner finally calls with
the payload the runner prepared: it rebuilds the manager in whatever thread or
process it runs in, resolves the task by name *among registered tasks
only* (stored configuration can never make it import anything), runs it
and records the outcome on the instance.
"""

from __future__ import annotations

import importlib
import logging
import reprlib
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, overload

from .errors import TriggersError
from .types import TaskInstance

if TYPE_CHECKING:
    from .manager import TriggerManager
    from .storages.base import BaseTriggerStorage

__all__ = [
    "MaxRetriesExceeded",
    "Retry",
    "StatusChange",
    "TaskContext",
    "TaskLogger",
    "TriggerTask",
    "UnknownTaskError",
    "get_task",
    "registered_tasks",
    "run_task",
    "task",
]

logger = logging.getLogger(__name__)

#: Every registered task, by name.
registered_tasks: dict[str, type[TriggerTask]] = {}
_registry_lock = threading.Lock()
_discovery_lock = threading.Lock()
#: ``<app>.tasks`` modules already imported, or known not to exist.
_discovered: set[str] = set()

#: What ``TriggerTask.max_retries`` is unless a task says otherwise (Celery's default).
DEFAULT_MAX_RETRIES = 3


# --------------------------------------------------------------------------- outcomes


class StatusChange(Exception):
    """Raised by a task body to end with ``status`` (and ``metadata``) instead of ``finished``.

    No cascade follows: only a task that finishes fires its own name.
    """

    def __init__(self, status: str, metadata: Mapping[str, Any] | None = None) -> None:
        if status not in TaskInstance.ALL_STATUSES:
            raise ValueError(
                f"unknown status {status!r} (expected one of {sorted(TaskInstance.ALL_STATUSES)})"
            )
        self.status = status
        self.metadata: dict[str, Any] = dict(metadata or {})
        super().__init__(status, self.metadata)


class Retry(Exception):
    """Raised by a task body to fail this run and schedule a new one (a replay).

    ``exc``: the error that made the run fail (recorded on the instance).
    ``metadata``: merged into the failed instance's metadata.
    ``replacement_kwargs``: the kwargs of the new run (default: the same).
    ``cooldown``: seconds to wait before the new run is scheduled.
    """

    def __init__(
        self,
        exc: BaseException | None = None,
        metadata: Mapping[str, Any] | None = None,
        replacement_kwargs: Mapping[str, Any] | None = None,
        cooldown: float | None = None,
    ) -> None:
        if cooldown is not None and (
            isinstance(cooldown, bool) or not isinstance(cooldown, (int, float)) or cooldown < 0
        ):
            raise ValueError(f"cooldown must be a number of seconds >= 0, not {cooldown!r}")
        self.exc = exc
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.replacement_kwargs = replacement_kwargs
        self.cooldown = cooldown
        super().__init__(f"retry requested{f': {exc!r}' if exc is not None else ''}")


class MaxRetriesExceeded(TriggersError):
    """A task asked to retry after it had already been retried ``max_retries`` times."""

    def __init__(self, task_name: str, instance_name: str, retries: int, max_retries: int) -> None:
        self.task_name = task_name
        self.instance_name = instance_name
        self.retries = retries
        self.max_retries = max_retries
        super().__init__(
            f"task {task_name!r} ({instance_name}) asked to retry after {retries} retries;"
            f" max_retries is {max_retries}"
        )


class UnknownTaskError(TriggersError, LookupError):
    """A task configuration's ``run`` names no registered task."""

    def __init__(self, name: object, known: list[str]) -> None:
        self.name = name
        self.known = known
        shown = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
        super().__init__(
            f"no task is registered under the name {name!r} (registered: {shown or 'none'});"
            " register it with @triggers.task.task or a TriggerTask subclass in <app>.tasks"
        )


# --------------------------------------------------------------------------- context


class TaskLogger(logging.Logger):
    """A logger that remembers the highest level logged through it.

    Records are handed on to ``logging.getLogger(name)`` (and so to the
    application's handlers) when that logger is enabled for them; the level is
    remembered whether or not it is, and becomes the instance's ``logLevel``.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.max_level = logging.NOTSET

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 (logging's name)
        return level > logging.root.manager.disable

    def handle(self, record: logging.LogRecord) -> None:
        if record.levelno > self.max_level:
            self.max_level = record.levelno
        target = logging.getLogger(self.name)
        if target.isEnabledFor(record.levelno):
            target.handle(record)


class TaskContext:
    """What a task body knows: which instance it runs, with which kwargs, and how to reach the session.

    ``manager`` is rebuilt from the registry keys on first use, in the
    thread or process the task runs in; ``task_instance`` is read afresh
    from the storage each time it is accessed.
    """

    def __init__(
        self,
        instance_name: str,
        manager_type: str,
        storage_type: str,
        storage_uid: str,
        trigger_kwargs: Mapping[str, Any] | None = None,
        storage_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.instance_name = instance_name
        self.storage_kwargs: dict[str, Any] = dict(storage_kwargs or {})
        self.manager_type = manager_type
        self.storage_type = storage_type
        self.storage_uid = storage_uid
        self.trigger_kwargs: dict[str, Any] = dict(trigger_kwargs or {})
        self.task: TriggerTask | None = None
        self._manager: TriggerManager | None = None
        self._logger: TaskLogger | None = None

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> TaskContext:
        """A context from a runner's payload (see ``BaseTaskRunner._prepare_task_kwargs``)."""
        missing = [
            key
            for key in ("instance_name", "manager_type", "storage_type", "storage_uid")
            if not payload.get(key)
        ]
        if missing:
            raise ValueError(f"task payload lacks {', '.join(missing)}: {payload!r}")
        return cls(
            instance_name=payload["instance_name"],
            manager_type=payload["manager_type"],
            storage_type=payload["storage_type"],
            storage_uid=payload["storage_uid"],
            trigger_kwargs=payload.get("trigger_kwargs"),
            storage_kwargs=payload.get("storage_kwargs"),
        )

    def new_storage(self) -> BaseTriggerStorage:
        """A storage object of the session, with nothing loaded yet."""
        from .storages.base import storage_backends

        return storage_backends.get(self.storage_type, self.storage_uid, **self.storage_kwargs)

    @property
    def manager(self) -> TriggerManager:
        """A manager of the session, built here (not the one that fired)."""
        if self._manager is None:
            from .manager import trigger_managers

            self._manager = trigger_managers.get(self.manager_type, self.new_storage())
        return self._manager

    @property
    def task_instance(self) -> TaskInstance:
        """The instance as stored now."""
        return self.new_storage()[self.instance_name]

    @property
    def logger(self) -> TaskLogger:
        """A logger for the task body; the highest level logged becomes ``logLevel``."""
        if self._logger is None:
            name = self.task.name if self.task is not None else self.instance_name.partition("#")[0]
            self._logger = TaskLogger(f"triggers.tasks.{name}")
        return self._logger

    @property
    def log_level(self) -> int:
        return self._logger.max_level if self._logger is not None else logging.NOTSET

    def __repr__(self) -> str:
        return f"<TaskContext {self.instance_name} of {self.storage_uid!r}>"

    def get_logger_context(self) -> dict[str, Any]:
        """The fields that tell this run's log records apart (plain data).

        Put them on records with ``triggers.logging.LoggerAdapter(context.logger,
        context.get_logger_context())``; no key is a name ``LogRecord`` uses.
        ``task_name`` is the registered task, None until the task is resolved.
        """
        return {
            "storage_uid": self.storage_uid,
            "instance_name": self.instance_name,
            "task_config_name": self.instance_name.rpartition("#")[0] or self.instance_name,
            "task_name": self.task.name if self.task is not None else None,
            "manager_type": self.manager_type,
            "storage_type": self.storage_type,
        }

    def filter_kwargs(self, filters: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """The trigger kwargs, with the values ``filters`` names validated and converted.

        ``filters`` maps a trigger name to ``{kwarg name: filter}``; a filter
        is a callable that returns the cleaned value or raises, or an object
        with an ``apply(value)`` method (a filter of the 2.x ``filters``
        library, where it still imports). A missing trigger or kwarg is given
        to its filter as None, so the filter decides whether it is required.
        Triggers and kwargs no filter names are kept as they are. Raises
        :class:`triggers.exceptions.InvalidTriggerKwargs` naming every value
        that was rejected.
        """
        from .exceptions import InvalidTriggerKwargs

        cleaners = {
            trigger: {kwarg: self._kwarg_cleaner(trigger, kwarg, f) for kwarg, f in spec.items()}
            for trigger, spec in filters.items()
        }
        cleaned: dict[str, Any] = dict(self.trigger_kwargs)
        errors: dict[str, dict[str, str]] = {}
        for trigger, kwarg_cleaners in cleaners.items():
            given = self.trigger_kwargs.get(trigger)
            if given is not None and not isinstance(given, Mapping):
                problem = f"the kwargs of {trigger!r} are not a dict: {_safe_repr(given)}"
                errors[trigger] = dict.fromkeys(kwarg_cleaners, problem)
                continue
            values = dict(given or {})
            for kwarg, clean in kwarg_cleaners.items():
                value = values.get(kwarg)
                try:
                    values[kwarg] = clean(value)
                except Exception as exc:  # whatever a validator raises rejects the value
                    errors.setdefault(trigger, {})[kwarg] = (
                        f"{_safe_repr(value)} rejected ({type(exc).__name__}: {exc})"
                    )
            cleaned[trigger] = values
        if errors:
            raise InvalidTriggerKwargs(errors)
        return cleaned

    @staticmethod
    def _kwarg_cleaner(trigger: str, kwarg: str, filter_: Any) -> Callable[[Any], Any]:
        """The function that cleans one kwarg; TypeError now for something that is no filter."""
        if isinstance(filter_, type) and callable(getattr(filter_, "apply", None)):
            filter_ = filter_()  # a filter class given bare, as 2.x allowed (``f.Int``)
        cleaner = getattr(filter_, "apply", None)
        if not callable(cleaner):
            cleaner = filter_
        if callable(cleaner):
            found: Callable[[Any], Any] = cleaner
            return found
        raise TypeError(
            f"the filter of {trigger}.{kwarg} must be a callable or have an apply() method,"
            f" not {filter_!r}"
        )


# --------------------------------------------------------------------------- tasks


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
    max_retries: ClassVar[int] = DEFAULT_MAX_RETRIES

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name is None:
            if cls.__dict__.get("abstract", False) or "_run" not in cls.__dict__:
                return  # an abstract base, or a variant that only changes settings
            name = f"{cls.__module__}.{cls.__qualname__}"
            cls.name = name
        register_task(name, cls)

    def __init__(self, context: TaskContext) -> None:
        self.context = context
        self._retries: int | None = None

    @property
    def request(self) -> SimpleNamespace:
        """Celery-like request info: ``retries`` is how many times this run was retried."""
        if self._retries is None:
            self._retries = self.context.task_instance.depth
        return SimpleNamespace(retries=self._retries)

    @property
    def logger(self) -> TaskLogger:
        return self.context.logger

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
    the name is looked up again. The name itself is never imported: stored
    configuration cannot choose what code is loaded.
    """
    found = registered_tasks.get(name)
    if found is None:
        # Not under _registry_lock: the modules imported register tasks.
        autodiscover_tasks()
        found = registered_tasks.get(name)
    if found is None:
        raise UnknownTaskError(name, sorted(registered_tasks))
    return found


# --------------------------------------------------------------------------- running


def _exception_metadata(
    exc: BaseException, context: TaskContext, task_name: str, phase: str
) -> dict[str, Any]:
    return {
        TaskInstance.META_EXCEPTION_TYPE: f"{type(exc).__module__}.{type(exc).__qualname__}",
        TaskInstance.META_EXCEPTION_INFO: "".join(traceback.format_exception(exc)),
        TaskInstance.META_EXCEPTION_CONTEXT: {
            "task": task_name,
            "instance": context.instance_name,
            "phase": phase,
            "kwargs": _safe_repr(context.trigger_kwargs),
        },
        TaskInstance.META_LOG_LEVEL: max(context.log_level, logging.ERROR),
    }


_repr = reprlib.Repr()
_repr.maxstring = 200
_repr.maxother = 200
_repr.maxlevel = 4


def _safe_repr(value: Any) -> str:
    try:
        return _repr.repr(value)
    except Exception as exc:  # a __repr__ that raises must not hide the real error
        return f"<unrepresentable {type(value).__name__}: {exc!r}>"


def _mark_failed(
    context: TaskContext,
    exc: BaseException,
    task_name: str,
    phase: str,
    extra: Mapping[str, Any] | None = None,
) -> None:
    metadata = _exception_metadata(exc, context, task_name, phase)
    if extra:
        metadata.update(extra)
    try:
        context.manager.update_instance_status(
            context.instance_name, TaskInstance.STATUS_FAILED, metadata
        )
    except Exception:
        logger.exception("could not mark %s failed after %r", context.instance_name, exc)


def run_task(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """Run the instance a runner's payload names, recording every outcome on it.

    Returns the result of a finished run, else None. Re-raises what the task
    body raised (after recording it), and raises UnknownTaskError for a
    ``run`` that names no registered task and MaxRetriesExceeded for a retry
    too many; a runner logs those.
    """
    context = TaskContext.from_payload(payload)
    name = context.instance_name
    instance = context.task_instance
    task_name = instance.config.run
    if instance.status != TaskInstance.STATUS_SCHEDULED:
        # Delivered twice, or the operator moved it on meanwhile: never run twice.
        logger.warning("not running %s: it is %s, not scheduled", name, instance.status)
        return None

    try:
        task_cls = get_task(task_name)
    except Exception as exc:
        _mark_failed(context, exc, task_name, "resolve")
        raise

    task_obj = task_cls(context)
    task_obj._retries = instance.depth
    context.task = task_obj
    manager = context.manager
    manager.update_instance_status(
        name, TaskInstance.STATUS_RUNNING, {TaskInstance.META_ACTUAL_KWARGS: context.trigger_kwargs}
    )

    try:
        result = task_obj._run(context)
    except StatusChange as change:
        metadata = dict(change.metadata)
        metadata.setdefault(TaskInstance.META_LOG_LEVEL, context.log_level)
        manager.update_instance_status(name, change.status, metadata)
        return None
    except Retry as retry:
        _retry(context, task_obj, retry)
        return None
    except BaseException as exc:
        _mark_failed(context, exc, task_name, "run")
        raise

    if result is None:
        result = {}
    if not isinstance(result, Mapping):
        error = TypeError(
            f"task {task_name!r} returned {_safe_repr(result)} ({type(result).__name__})"
            " instead of a dict"
        )
        _mark_failed(context, error, task_name, "result")
        raise error
    result = dict(result)
    try:
        manager.update_instance_status(
            name,
            TaskInstance.STATUS_FINISHED,
            {TaskInstance.META_RESULT: result, TaskInstance.META_LOG_LEVEL: context.log_level},
        )
    except Exception as exc:  # an unstorable result, most likely
        _mark_failed(context, exc, task_name, "result")
        raise
    _cascade(context, instance.config.name, result)
    return result


def _cascade(context: TaskContext, task_config_name: str, result: dict[str, Any]) -> None:
    """Fire the task's own name with its result (what ``cascade=True`` does)."""
    from .manager import DispatchFailed

    try:
        context.manager.fire(task_config_name, result)
    except DispatchFailed:
        # The instances that could not start were marked failed; this one did finish.
        logger.exception("cascade of %s could not start every task", context.instance_name)


def _retry(context: TaskContext, task_obj: TriggerTask, retry: Retry) -> None:
    name = context.instance_name
    task_name = task_obj.name
    retries = task_obj.request.retries
    if retries >= task_obj.max_retries:
        # Raised directly rather than through TriggerTask.retry(): same rule.
        exceeded = MaxRetriesExceeded(task_name, name, retries, task_obj.max_retries)
        exceeded.__cause__ = retry.exc or retry
        _mark_failed(context, exceeded, task_name, "retry", retry.metadata)
        raise exceeded
    error = retry.exc if retry.exc is not None else retry
    _mark_failed(context, error, task_name, "retry", retry.metadata)
    if retry.cooldown:
        time.sleep(retry.cooldown)
    clone = context.manager.replay_failed_instance(name, retry.replacement_kwargs)
    if retry.cooldown:
        context.manager.update_instance_metadata(
            clone, {TaskInstance.META_COOLDOWN: retry.cooldown}
        )
