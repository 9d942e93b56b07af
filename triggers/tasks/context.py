"""What a task body is given: its context, and the logger whose level it records.

The context is built from the runner's payload wherever the task runs; it
rebuilds the manager and the storage through the registries, so this module
needs neither the manager's module nor the task classes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from ..errors import safe_repr
from ..exceptions import InvalidTriggerKwargs
from ..logging import LoggerAdapter, LogLevelHandler
from ..registry import storage_backends, trigger_managers
from .payload import TaskPayload

if TYPE_CHECKING:
    from ..manager import TriggerManager
    from ..storages.base import BaseTriggerStorage
    from ..types import TaskInstance

__all__ = ["LoggerContext", "RunningTask", "TaskContext", "TaskLogger"]

#: what a LogRecord holds itself: no extra field may take these names
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.NOTSET, "", 0, "", None, None))
) | {"message", "asctime"}


class RunningTask(Protocol):
    """What a task body reaches as ``context.task``: the running task object."""

    @property
    def name(self) -> str: ...

    def skip(self, metadata: Mapping[str, Any] | None = None) -> NoReturn: ...

    def retry(
        self,
        exc: BaseException | None = None,
        metadata: Mapping[str, Any] | None = None,
        replacement_kwargs: Mapping[str, Any] | None = None,
        cooldown: float | None = None,
    ) -> NoReturn: ...


class TaskLogger(logging.Logger):
    """A logger that remembers the highest level logged through it.

    Records are handed on to ``logging.getLogger(name)`` (and so to the
    application's handlers) when that logger is enabled for them; the level is
    remembered whether or not it is, and becomes the instance's ``logLevel``.
    """

    def __init__(self, name: str, context: Callable[[], Mapping[str, Any]] | None = None) -> None:
        super().__init__(name)
        self.max_level = logging.NOTSET
        self._context = context

    def makeRecord(self, *args: Any, **kwargs: Any) -> logging.LogRecord:  # noqa: N802
        # Every record of the task carries the run's context (uid, instance...).
        record = super().makeRecord(*args, **kwargs)
        if self._context is not None:
            for key, value in self._context().items():
                record.__dict__.setdefault(key, value)
        return record

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 (logging's name)
        return level > logging.root.manager.disable

    def handle(self, record: logging.LogRecord) -> None:
        if record.levelno > self.max_level:
            self.max_level = record.levelno
        target = logging.getLogger(self.name)
        if target.isEnabledFor(record.levelno):
            target.handle(record)

    def note_level(self, level: int) -> None:
        """Count ``level`` as logged by the task (a record it sent to a logger of its own)."""
        if level > self.max_level:
            self.max_level = level


class LoggerContext(dict[str, Any]):
    """What :meth:`TaskContext.get_logger_context` returns: the run's log fields, as a dict,
    and, entered with ``with``, a logger whose records carry them (as in 2.x).

    The logger is an adapter over the ``logger`` given, or over the task's own
    logger; records logged through a given logger count towards the
    instance's ``logLevel`` as the task logger's do.
    """

    def __init__(
        self, fields: Mapping[str, Any], task_logger: TaskLogger, logger: logging.Logger | None
    ) -> None:
        super().__init__(fields)
        self.task_logger = task_logger
        self.logger = logger
        self.level_handler: LogLevelHandler | None = None

    def __enter__(self) -> LoggerAdapter:
        target = self.task_logger if self.logger is None else self.logger
        if self.logger is not None:
            self.level_handler = LogLevelHandler()
            self.logger.addHandler(self.level_handler)
        return LoggerAdapter(target, dict(self))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        handler, self.level_handler = self.level_handler, None
        if handler is not None and self.logger is not None:
            self.logger.removeHandler(handler)
            self.task_logger.note_level(handler.max_level)


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
        self.task: RunningTask | None = None
        self._storage: BaseTriggerStorage | None = None
        self._manager: TriggerManager | None = None
        self._logger: TaskLogger | None = None

    @classmethod
    def from_payload(cls, payload: TaskPayload | Mapping[str, Any]) -> TaskContext:
        """A context from a runner's payload (a :class:`TaskPayload` or its dict form)."""
        if not isinstance(payload, TaskPayload):
            payload = TaskPayload.from_dict(payload)
        return cls(
            instance_name=payload.instance_name,
            manager_type=payload.manager_type,
            storage_type=payload.storage_type,
            storage_uid=payload.storage_uid,
            trigger_kwargs=payload.trigger_kwargs,
            storage_kwargs=payload.storage_kwargs,
        )

    def new_storage(self) -> BaseTriggerStorage:
        """A storage object of the session, with nothing loaded yet."""
        storage: BaseTriggerStorage = storage_backends.get(
            self.storage_type, self.storage_uid, **self.storage_kwargs
        )
        return storage

    @property
    def storage(self) -> BaseTriggerStorage:
        """The storage object of this run: made once, kept for the whole run."""
        if self._storage is None:
            self._storage = self.new_storage()
        return self._storage

    @property
    def manager(self) -> TriggerManager:
        """A manager of the session, built here (not the one that fired), on :attr:`storage`."""
        if self._manager is None:
            self._manager = trigger_managers.get(self.manager_type, self.storage)
        return self._manager

    @property
    def task_instance(self) -> TaskInstance:
        """The instance as stored now."""
        return self.new_storage()[self.instance_name]

    @property
    def logger(self) -> TaskLogger:
        """A logger for the task body; the highest level logged becomes ``logLevel``."""
        if self._logger is None:
            name = self.task.name if self.task is not None else self._task_config_name()
            self._logger = TaskLogger(f"triggers.tasks.{name}", self.log_fields)
        return self._logger

    @property
    def log_level(self) -> int:
        return self._logger.max_level if self._logger is not None else logging.NOTSET

    def __repr__(self) -> str:
        return f"<TaskContext {self.instance_name} of {self.storage_uid!r}>"

    def _task_config_name(self) -> str:
        return self.instance_name.rpartition("#")[0] or self.instance_name

    def get_logger_context(
        self, logger: logging.Logger | None = None, context: Mapping[str, Any] | None = None
    ) -> LoggerContext:
        """2.x's ``with context.get_logger_context() as logger:``: a logger (an adapter over
        ``logger``, by default the task's own) whose records carry :meth:`log_fields` and
        ``context``. Read as a dict, it is those fields (see :class:`LoggerContext`)."""
        extra = dict(context or {})
        taken = sorted(str(key) for key in extra if key in _RECORD_ATTRIBUTES)
        if taken:
            raise ValueError(
                f"get_logger_context(context=...) keys {taken} are LogRecord attributes,"
                " which a record cannot carry as extra fields: rename them"
            )
        return LoggerContext({**self.log_fields(), **extra}, self.logger, logger)

    def log_fields(self) -> dict[str, Any]:
        """The fields that tell this run's log records apart (plain data).

        Every record logged through :attr:`logger` carries them as attributes;
        no key is a name ``LogRecord`` uses. ``task_name`` is the registered
        task, None until the task is resolved.
        """
        return {
            "storage_uid": self.storage_uid,
            "instance_name": self.instance_name,
            "task_config_name": self._task_config_name(),
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
        cleaners = {
            trigger: {kwarg: self._kwarg_cleaner(trigger, kwarg, f) for kwarg, f in spec.items()}
            for trigger, spec in filters.items()
        }
        cleaned: dict[str, Any] = dict(self.trigger_kwargs)
        errors: dict[str, dict[str, str]] = {}
        for trigger, kwarg_cleaners in cleaners.items():
            given = self.trigger_kwargs.get(trigger)
            if given is not None and not isinstance(given, Mapping):
                problem = f"the kwargs of {trigger!r} are not a dict: {safe_repr(given)}"
                errors[trigger] = dict.fromkeys(kwarg_cleaners, problem)
                continue
            values = dict(given or {})
            for kwarg, clean in kwarg_cleaners.items():
                value = values.get(kwarg)
                try:
                    values[kwarg] = clean(value)
                except Exception as exc:  # whatever a validator raises rejects the value
                    errors.setdefault(trigger, {})[kwarg] = (
                        f"{safe_repr(value)} rejected ({type(exc).__name__}: {exc})"
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
