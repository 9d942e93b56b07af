"""The manager: every operation on a session, each committed once.

The rules a firing follows are in :mod:`triggers.firing_rules`. Everything
happens under the session lock (or an optimistic try) and is saved once; ready
instances are handed to their runners only after the lock is released, so a
runner that runs a task in the calling thread (whose body then updates its
own instance through a fresh manager) cannot deadlock.
"""

from __future__ import annotations

import copy
import logging
import traceback
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple, Protocol, TypeVar

from .conf import get_setting
from .errors import DispatchFailed, InstanceNotFailed, InvalidArgument, safe_repr
from .firing_rules import apply_trigger
from .registry import EntryPointRegistry, task_runners
from .registry import trigger_managers as _trigger_managers
from .renamed import renamed_keywords
from .signals import CommitEvents, send_fired
from .storages.base import BaseTriggerStorage
from .storages.validation import (
    check_flag,
    check_instance_name,
    check_mapping,
    check_metadata,
    check_status,
    check_trigger_name,
)
from .types import TaskInstance, utc_now

__all__ = ["DispatchFailed", "TaskRunner", "TriggerManager", "trigger_managers"]

logger = logging.getLogger(__name__)

trigger_managers: EntryPointRegistry[TriggerManager] = _trigger_managers


T = TypeVar("T")


class TaskRunner(Protocol):
    """What the manager needs of a runner (:class:`triggers.tasks.runners.BaseTaskRunner` is one)."""

    name: str

    def run(self, manager: TriggerManager, task_instance: TaskInstance) -> None: ...


class _Firing(NamedTuple):
    """What applying one firing readied, and what is left to do once it is committed."""

    trigger_name: str
    kwargs: dict[str, Any]
    ready: list[TaskInstance]
    runners: list[tuple[TaskRunner, TaskInstance]]
    failures: dict[str, BaseException]


class TriggerManager:
    """Fires triggers against one session and keeps its instances moving."""

    name = "default"
    triggers__registry_key = "default"

    def __init__(self, storage: BaseTriggerStorage) -> None:
        if not isinstance(storage, BaseTriggerStorage):
            raise InvalidArgument("storage", storage, "must be a BaseTriggerStorage")
        self.storage = storage
        self._runners: dict[str, TaskRunner] = {}
        self._events = CommitEvents()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.storage!r}>"

    @property
    def default_task_runner_name(self) -> str:
        name: str = get_setting("TRIGGERS_DEFAULT_RUNNER")
        return name

    # ------------------------------------------------------------ configuration
    @renamed_keywords(configuration="config")
    def update_configuration(self, config: Mapping[str, Any]) -> None:
        """Merge task definitions into the session and save them.

        The storage checks every definition before it applies any, so a bad
        one (InvalidTaskConfig, UnserializableValue) leaves the session as it was.
        """
        for attempt in self._events.tries(self.storage.attempts()):
            with attempt:
                new = self.storage.stored_nothing()
                self.storage.update_configuration(config)
                self.storage.save()
        self._events.send(self, new_session=new)

    # ------------------------------------------------------------ firing
    def fire(
        self, trigger_name: str, trigger_kwargs: Mapping[str, Any] | None = None
    ) -> list[TaskInstance]:
        """Fire a trigger; returns the instances it made ready (now scheduled)."""
        trigger_name = check_trigger_name(trigger_name)
        kwargs = self._trigger_kwargs(trigger_name, trigger_kwargs)
        storage = self.storage
        storage.expect(triggers=[trigger_name])
        for attempt in self._events.tries(storage.attempts()):
            with attempt:
                new = storage.stored_nothing()
                firing = self._fire_here(trigger_name, kwargs, utc_now())
                storage.save()
        self._events.send(self, new_session=new)
        return self._after_fire(firing)

    @staticmethod
    def _trigger_kwargs(trigger_name: str, kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
        """The kwargs of a firing, checked (InvalidArgument, UnserializableValue)."""
        if kwargs is None:
            return {}
        return check_mapping(f"kwargs of trigger {safe_repr(trigger_name)}", kwargs)

    def _fire_here(self, trigger_name: str, kwargs: dict[str, Any], now: datetime) -> _Firing:
        """Apply a firing to the loaded session (saved by the caller, with its other changes)."""
        ready = self._apply_trigger(trigger_name, kwargs, now)
        self.storage.latest_kwargs[trigger_name] = kwargs
        runners, failures = self._schedule(ready, now)
        return _Firing(trigger_name, kwargs, ready, runners, failures)

    def _after_fire(self, firing: _Firing) -> list[TaskInstance]:
        """Once a firing is committed: start its ready instances, then the hook."""
        send_fired(self, firing.trigger_name, firing.kwargs, firing.ready)
        self._dispatch(firing.runners, firing.failures)
        self._post_fire(firing.trigger_name, firing.ready)
        if firing.failures:
            raise DispatchFailed(firing.failures)
        return firing.ready

    def _apply_trigger(
        self, trigger_name: str, trigger_kwargs: dict[str, Any], now: datetime
    ) -> list[TaskInstance]:
        """Offer a firing to every task that listens to it; the instances it readied."""
        return apply_trigger(self.storage, trigger_name, trigger_kwargs, now, self.set_status)

    # ------------------------------------------------------------ dispatch
    def runner_for(self, instance: TaskInstance, default: str | None = None) -> TaskRunner:
        """The runner that runs ``instance``: its task's ``using``, else ``default``,
        else the manager's default (one object per key, kept by this manager).
        Raises what the ``task_runners`` registry raises for an unknown key."""
        key = instance.config.using or default or self.default_task_runner_name
        runner = self._runners.get(key)
        if runner is None:
            runner = self._runners[key] = task_runners.get(key)
        return runner

    def _schedule(
        self, ready: list[TaskInstance], now: datetime | None = None
    ) -> tuple[list[tuple[TaskRunner, TaskInstance]], dict[str, BaseException]]:
        """Mark ready instances scheduled (or failed, when no runner can take them)."""
        runners = []
        failures: dict[str, BaseException] = {}
        default = None
        for instance in ready:
            if default is None and not instance.config.using:
                default = self.default_task_runner_name
            try:
                runner = self.runner_for(instance, default)
            except Exception as exc:
                failures[instance.name] = exc
                self.set_status(
                    instance, TaskInstance.STATUS_FAILED, self._failure_metadata(exc, "runner"), now
                )
                continue
            self.set_status(instance, TaskInstance.STATUS_SCHEDULED, now=now)
            runners.append((runner, instance))
        return runners, failures

    def _dispatch(
        self,
        runners: list[tuple[TaskRunner, TaskInstance]],
        failures: dict[str, BaseException],
    ) -> None:
        """Hand each scheduled instance to its runner; one failure stops no other.

        Tasks may have run (the ``sync`` runner) or be running: what this
        manager's storage loaded is forgotten, so it next shows what they left.
        """
        for runner, instance in runners:
            try:
                runner.run(self, instance)
            except Exception as exc:
                logger.exception("runner %r could not start %s", runner.name, instance.name)
                failures[instance.name] = exc
                self.update_instance_status(
                    instance, TaskInstance.STATUS_FAILED, self._failure_metadata(exc, "dispatch")
                )
        storage = self.storage
        if runners and not storage.has_lock:  # inside a caller's lock, its state is its own
            with storage.object_mutex():  # threads may share this storage object
                storage.invalidate_cache()

    @staticmethod
    def _failure_metadata(exc: BaseException, phase: str) -> dict[str, Any]:
        return {
            TaskInstance.META_EXCEPTION_TYPE: f"{type(exc).__module__}.{type(exc).__qualname__}",
            TaskInstance.META_EXCEPTION_INFO: "".join(traceback.format_exception(exc)),
            TaskInstance.META_FAILURE: {"phase": phase},
            TaskInstance.META_LOG_LEVEL: logging.ERROR,
        }

    # ------------------------------------------------------------ instances
    def set_status(
        self,
        instance: TaskInstance,
        status: str,
        metadata: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> None:
        """Inside one of this manager's commits (``change_instance``'s change):
        set a loaded instance's status, merge ``metadata`` and stamp the times
        (``now``, default the current time), and note the change for the
        signals sent once the commit lands. It saves nothing and checks
        nothing: ``update_instance_status`` is the operation for callers."""
        instance.change_status(status, metadata, now)
        self._events.record(instance, status)

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
        name = instance_or_name.name if isinstance(instance_or_name, TaskInstance) else instance_or_name
        if isinstance(name, str):
            self.storage.expect(instances=[name])
        for attempt in self._events.tries(self.storage.attempts()):
            with attempt:
                outcome = change(self.storage.get_instance(instance_or_name))
                self.storage.save()
        self._events.send(self)
        return outcome

    @renamed_keywords(task_instance="instance_or_name")
    def update_instance_metadata(
        self, instance_or_name: TaskInstance | str, metadata: Mapping[str, Any]
    ) -> TaskInstance:
        """Merge ``metadata`` into an instance's metadata (stamping ``lastModified``)."""
        name = check_instance_name(instance_or_name, self.storage.uid)
        checked = check_metadata("instance metadata", metadata)

        def merge(instance: TaskInstance) -> TaskInstance:
            instance.merge_metadata(checked)
            return instance

        return self.change_instance(name, merge)

    @renamed_keywords(task_instance="instance_or_name")
    def mark_instance_logs_resolved(self, instance_or_name: TaskInstance | str) -> TaskInstance:
        return self.update_instance_metadata(
            instance_or_name, {TaskInstance.META_LOGS_RESOLVED: True}
        )

    def _failed_instance(self, instance_or_name: TaskInstance | str, action: str) -> TaskInstance:
        """The stored instance, which must have failed to be ``action`` (replayed, skipped)."""
        instance = self.storage.get_instance(instance_or_name)
        if not instance.can_replay:  # the same rule as can_skip: it failed
            raise InstanceNotFailed(instance.name, instance.status, action)
        return instance

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
        name = check_instance_name(instance_or_name, self.storage.uid)
        if replacement_kwargs is not None:
            replacement_kwargs = check_mapping("replacement kwargs", replacement_kwargs)
        if metadata is not None:
            metadata = check_metadata("metadata", metadata)
        self.storage.expect(instances=[name])
        for attempt in self._events.tries(self.storage.attempts()):
            with attempt:
                instance = self._failed_instance(name, "replayed")
                self.set_status(instance, TaskInstance.STATUS_REPLAYED)
                clone = self.storage.clone_instance(instance)
                clone.metadata[TaskInstance.META_TIMESTAMPS] = {
                    TaskInstance.TIMESTAMP_CREATED: utc_now()
                }
                if replacement_kwargs is not None:
                    clone.kwargs = copy.deepcopy(dict(replacement_kwargs))
                clone.metadata.update(copy.deepcopy(dict(metadata or {})))
                runners, failures = self._schedule([clone])
                self.storage.save()
        self._events.send(self)
        self._dispatch(runners, failures)
        self._post_replay(instance)
        if failures:
            raise DispatchFailed(failures)
        return clone

    @renamed_keywords(failed_instance="instance_or_name")
    def skip_failed_instance(
        self,
        instance_or_name: TaskInstance | str,
        cascade: bool = False,
        result: Mapping[str, Any] | None = None,
    ) -> TaskInstance:
        """Mark a failed instance skipped; with ``cascade``, fire its task's name with ``result``."""
        name = check_instance_name(instance_or_name, self.storage.uid)
        cascade = check_flag("cascade", cascade)
        if result is not None:
            result = check_mapping("skip result", result)
        firing = None
        self.storage.expect(instances=[name])
        for attempt in self._events.tries(self.storage.attempts()):
            with attempt:
                instance = self._failed_instance(name, "skipped")
                now = utc_now()
                self.set_status(
                    instance,
                    TaskInstance.STATUS_SKIPPED,
                    {"cascade": cascade, "result": dict(result or {})},
                    now,
                )
                if cascade:
                    firing = self._fire_here(instance.config.name, dict(result or {}), now)
                self.storage.save()
        self._events.send(self)
        if firing is not None:
            self._after_fire(firing)
        self._post_skip(instance, cascade)
        return instance

    # ------------------------------------------------------------ hooks
    def _post_fire(self, trigger_name: str, tasks_scheduled: list[TaskInstance]) -> None:
        """Called after a fire, outside the lock, with the instances it scheduled."""

    def _post_replay(self, task_instance: TaskInstance) -> None:
        """Called after a failed instance was replayed."""

    def _post_skip(self, task_instance: TaskInstance, cascade: bool) -> None:
        """Called after a failed instance was skipped."""
