"""What a task body is given: its context, and the logger whose level it records.

The context is built from the runner's payload wherever the task runs; it
rebuilds the manager and the storage through the registries, so this module
needs neither the manager's module nor the task classes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from .payload import TaskPayload
from .registry import storage_backends, trigger_managers

if TYPE_CHECKING:
    from .manager import TriggerManager
    from .storages.base import BaseTriggerStorage
    from .types import TaskInstance

__all__ = ["RunningTask", "TaskContext", "TaskLogger"]


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
            name = self.task.name if self.task is not None else self.instance_name.partition("#")[0]
            self._logger = TaskLogger(f"triggers.tasks.{name}")
        return self._logger

    @property
    def log_level(self) -> int:
        return self._logger.max_level if self._logger is not None else logging.NOTSET

    def __repr__(self) -> str:
        return f"<TaskContext {self.instance_name} of {self.storage_uid!r}>"
