"""The manager: every operation on a session, each committed once.

The rules a firing follows are in :mod:`triggers.firing_rules`. Everything
happens under the session lock (or an optimistic try) and is saved once; ready
instances are handed to their runners only after the lock is released, so a
runner that runs a task in the calling thread (whose body then updates its
own instance through a fresh manager) cannot deadlock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .errors import DispatchFailed, InvalidArgument
from .manager_async import AsyncOperations
from .manager_ops import TaskRunner
from .registry import EntryPointRegistry
from .registry import trigger_managers as _trigger_managers
from .renamed import renamed_keywords
from .signals import CommitEvents
from .storages.base import BaseTriggerStorage
from .storages.validation import (
    check_flag,
    check_instance_name,
    check_metadata,
    check_status,
)
from .types import TaskInstance, utc_now

__all__ = ["DispatchFailed", "TaskRunner", "TriggerManager", "trigger_managers"]

logger = logging.getLogger(__name__)

trigger_managers: EntryPointRegistry[TriggerManager] = _trigger_managers


T = TypeVar("T")


class TriggerManager(AsyncOperations):
    """Fires triggers against one session and keeps its instances moving."""

    name = "default"
    triggers__registry_key = "default"
    #: a task run's fence (triggers.tasks.ownership): checked inside each status update
    run_owner: Callable[[TaskInstance, str], None] | None = None

    def __init__(self, storage: BaseTriggerStorage) -> None:
        if not isinstance(storage, BaseTriggerStorage):
            raise InvalidArgument("storage", storage, "must be a BaseTriggerStorage")
        self.storage = storage
        self._runners: dict[str, TaskRunner] = {}
        self._events = CommitEvents()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.storage!r}>"

    @renamed_keywords(configuration="config")
    def update_configuration(self, config: Mapping[str, Any]) -> None:
        """Merge task definitions into the session and save them.

        The storage checks every definition before it applies any, so a bad
        one (InvalidTaskConfig, UnserializableValue) leaves the session as it was.
        """
        self._run(self._configure_op(config))

    # ------------------------------------------------------------ firing
    def fire(
        self, trigger_name: str, trigger_kwargs: Mapping[str, Any] | None = None
    ) -> list[TaskInstance]:
        """Fire a trigger; returns the instances it made ready (now scheduled)."""
        result: list[TaskInstance] = self._run(self._fire_op(trigger_name, trigger_kwargs))
        return result

    @renamed_keywords(task_instance="instance_or_name")
    def update_instance_status(
        self,
        instance_or_name: TaskInstance | str,
        status: str,
        metadata: Mapping[str, Any] | None = None,
        cascade: bool = False,
        cascade_kwargs: Mapping[str, Any] | None = None,
    ) -> TaskInstance:
        """Set an instance's status (stamping the time); optionally fire its task's name.

        With ``cascade``, the status and the firing are committed together:
        no crash can leave the one without the other.
        """
        name = check_instance_name(instance_or_name, self.storage.uid)
        status = check_status(status)
        if metadata is not None:
            metadata = check_metadata("instance metadata", metadata)
        cascade = check_flag("cascade", cascade)
        kwargs = self._trigger_kwargs("cascade", cascade_kwargs) if cascade else {}
        firing = None
        self.storage.expect(instances=[name])
        for attempt in self._events.tries(self.storage.attempts()):
            with attempt:
                instance = self.storage.get_instance(name)
                if self.run_owner is not None:
                    self.run_owner(instance, status)
                now = utc_now()
                self.set_status(instance, status, metadata, now)
                if cascade:
                    firing = self._fire_here(instance.config.name, dict(kwargs), now)
                self.storage.save()
        self._events.send(self)
        if firing is not None:
            self._after_fire(firing)
        return instance

    def change_instance(
        self, instance_or_name: TaskInstance | str, change: Callable[[TaskInstance], T]
    ) -> T:
        """Apply ``change`` to the stored instance and save, in one commit;
        returns what ``change`` returned.

        ``change`` may run more than once (on fresher state each time) and
        must only change the instance (with ``set_status`` for its status);
        what it raises propagates, nothing saved.
        """
        outcome: T = self._run(self._change_op(instance_or_name, change))
        return outcome

    @renamed_keywords(task_instance="instance_or_name")
    def update_instance_metadata(
        self, instance_or_name: TaskInstance | str, metadata: Mapping[str, Any]
    ) -> TaskInstance:
        """Merge ``metadata`` into an instance's metadata (stamping ``lastModified``)."""
        result: TaskInstance = self._run(self._metadata_op(instance_or_name, metadata))
        return result

    @renamed_keywords(task_instance="instance_or_name")
    def mark_instance_logs_resolved(self, instance_or_name: TaskInstance | str) -> TaskInstance:
        return self.update_instance_metadata(
            instance_or_name, {TaskInstance.META_LOGS_RESOLVED: True}
        )

    @renamed_keywords(failed_instance="instance_or_name")
    def replay_failed_instance(
        self,
        instance_or_name: TaskInstance | str,
        replacement_kwargs: Mapping[str, Any] | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> TaskInstance:
        """Mark a failed instance replayed and schedule a clone of it; returns the clone.

        ``metadata`` (a retry's cooldown, say) is merged into the clone's, in the same commit.
        """
        op = self._replay_op(instance_or_name, replacement_kwargs, metadata)
        clone: TaskInstance = self._run(op)
        return clone

    @renamed_keywords(failed_instance="instance_or_name")
    def skip_failed_instance(
        self,
        instance_or_name: TaskInstance | str,
        cascade: bool = False,
        result: Mapping[str, Any] | None = None,
    ) -> TaskInstance:
        """Mark a failed instance skipped; with ``cascade``, fire its task's name with ``result``."""
        skipped: TaskInstance = self._run(self._skip_op(instance_or_name, cascade, result))
        return skipped

    # ------------------------------------------------------------ hooks
