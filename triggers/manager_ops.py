"""What each manager operation is, apart from how it is called.

An operation's checks are made when it is built; its :class:`Operation`
says what each try commits and what follows the commit. The sync entry
points of :class:`~triggers.manager.TriggerManager` run one with
``_run``, their async twins (:mod:`triggers.manager_async`) with ``_arun``:
the same errors, signals and guarantees either way.
"""

from __future__ import annotations

import copy
import logging
import traceback
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from .conf import get_setting
from .errors import DispatchFailed, InstanceNotFailed, safe_repr
from .firing_rules import apply_trigger
from .registry import task_runners
from .signals import CommitEvents, send_fired
from .storages.base import BaseTriggerStorage
from .storages.validation import (
    check_flag,
    check_instance_name,
    check_mapping,
    check_metadata,
    check_trigger_name,
)
from .types import TaskInstance, utc_now

__all__ = ["Firing", "ManagerOperations", "Operation", "TaskRunner"]

logger = logging.getLogger("triggers.manager")


class TaskRunner(Protocol):
    """What the manager needs of a runner (:class:`triggers.tasks.runners.BaseTaskRunner` is one)."""

    name: str

    def run(self, manager: Any, task_instance: TaskInstance) -> None: ...


class Firing(NamedTuple):
    """What applying one firing readied, and what is left to do once it is committed."""

    trigger_name: str
    kwargs: dict[str, Any]
    ready: list[TaskInstance]
    runners: list[tuple[TaskRunner, TaskInstance]]
    failures: dict[str, BaseException]


def _nothing(result: Any) -> bool:
    return False


class Operation(NamedTuple):
    """One operation: its checks made, what it commits, and what follows.

    ``block`` runs inside each try (it reads, changes and saves the storage;
    it may run more than once) and returns what ``finish`` needs once the
    commit landed and its signals went out; ``finish`` returns the
    operation's result. Both entry points, sync and async, run the same one.
    """

    block: Callable[[], Any]
    finish: Callable[[Any], Any]
    expect: Mapping[str, list[str]]
    #: whether the commit made a new session (for the log and signals)
    new_session: Callable[[Any], bool] = _nothing
    #: whether ``finish`` hands instances to runners (which may block a while)
    dispatches: Callable[[Any], bool] = _nothing


class ManagerOperations:
    """The operations a manager runs and the steps they share (the base of
    :class:`~triggers.manager.TriggerManager`, which sets these attributes)."""

    storage: BaseTriggerStorage
    _runners: dict[str, TaskRunner]
    _events: CommitEvents
    update_instance_status: Callable[..., TaskInstance]

    def _configure_op(self, config: Mapping[str, Any]) -> Operation:
        storage = self.storage

        def block() -> bool:
            new = storage.stored_nothing()
            storage.update_configuration(config)
            storage.save()
            return new

        return Operation(block, _nothing, {}, new_session=bool)

    def _run(self, operation: Operation) -> Any:
        """Commit ``operation`` (as many tries as it takes), signal, then finish it."""
        self.storage.expect(**operation.expect)
        for attempt in self._events.tries(self.storage.attempts()):
            with attempt:
                result = operation.block()
        self._events.send(self, new_session=operation.new_session(result))
        return operation.finish(result)

    def _fire_op(self, trigger_name: str, trigger_kwargs: Mapping[str, Any] | None) -> Operation:
        trigger_name = check_trigger_name(trigger_name)
        kwargs = self._trigger_kwargs(trigger_name, trigger_kwargs)
        storage = self.storage

        def block() -> tuple[bool, Firing]:
            new = storage.stored_nothing()
            firing = self._fire_here(trigger_name, kwargs, utc_now())
            storage.save()
            return new, firing

        return Operation(
            block,
            lambda done: self._after_fire(done[1]),
            {"triggers": [trigger_name]},
            new_session=lambda done: done[0],
            dispatches=lambda done: bool(done[1].runners),
        )

    def _change_op(
        self, instance_or_name: TaskInstance | str, change: Callable[[TaskInstance], Any]
    ) -> Operation:
        name = (
            instance_or_name.name
            if isinstance(instance_or_name, TaskInstance)
            else instance_or_name
        )
        storage = self.storage

        def block() -> Any:
            outcome = change(storage.get_instance(instance_or_name))
            storage.save()
            return outcome

        return Operation(
            block, lambda outcome: outcome, {"instances": [name]} if isinstance(name, str) else {}
        )

    def _metadata_op(
        self, instance_or_name: TaskInstance | str, metadata: Mapping[str, Any]
    ) -> Operation:
        name = check_instance_name(instance_or_name, self.storage.uid)
        checked = check_metadata("instance metadata", metadata)

        def merge(instance: TaskInstance) -> TaskInstance:
            instance.merge_metadata(checked)
            return instance

        return self._change_op(name, merge)

    def _replay_op(
        self,
        instance_or_name: TaskInstance | str,
        replacement_kwargs: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
    ) -> Operation:
        name = check_instance_name(instance_or_name, self.storage.uid)
        if replacement_kwargs is not None:
            replacement_kwargs = check_mapping("replacement kwargs", replacement_kwargs)
        if metadata is not None:
            metadata = check_metadata("metadata", metadata)

        def block() -> tuple[TaskInstance, TaskInstance, Any, dict[str, BaseException]]:
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
            return instance, clone, runners, failures

        def finish(
            done: tuple[TaskInstance, TaskInstance, Any, dict[str, BaseException]],
        ) -> TaskInstance:
            instance, clone, runners, failures = done
            self._dispatch(runners, failures)
            self._post_replay(instance)
            if failures:
                raise DispatchFailed(failures)
            return clone

        return Operation(
            block, finish, {"instances": [name]}, dispatches=lambda done: bool(done[2])
        )

    def _skip_op(
        self,
        instance_or_name: TaskInstance | str,
        cascade: bool,
        result: Mapping[str, Any] | None,
    ) -> Operation:
        name = check_instance_name(instance_or_name, self.storage.uid)
        cascade = check_flag("cascade", cascade)
        if result is not None:
            result = check_mapping("skip result", result)

        def block() -> tuple[TaskInstance, Firing | None]:
            instance = self._failed_instance(name, "skipped")
            now = utc_now()
            meta = {"cascade": cascade, "result": dict(result or {})}
            self.set_status(instance, TaskInstance.STATUS_SKIPPED, meta, now)
            firing = None
            if cascade:
                firing = self._fire_here(instance.config.name, dict(result or {}), now)
            self.storage.save()
            return instance, firing

        def finish(done: tuple[TaskInstance, Firing | None]) -> TaskInstance:
            instance, firing = done
            if firing is not None:
                self._after_fire(firing)
            self._post_skip(instance, cascade)
            return instance

        return Operation(
            block,
            finish,
            {"instances": [name]},
            dispatches=lambda done: done[1] is not None and bool(done[1].runners),
        )

    @property
    def default_task_runner_name(self) -> str:
        name: str = get_setting("TRIGGERS_DEFAULT_RUNNER")
        return name

    @staticmethod
    def _trigger_kwargs(trigger_name: str, kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
        """The kwargs of a firing, checked (InvalidArgument, UnserializableValue)."""
        if kwargs is None:
            return {}
        return check_mapping(f"kwargs of trigger {safe_repr(trigger_name)}", kwargs)

    def _fire_here(self, trigger_name: str, kwargs: dict[str, Any], now: datetime) -> Firing:
        """Apply a firing to the loaded session (saved by the caller, with its other changes)."""
        ready = self._apply_trigger(trigger_name, kwargs, now)
        self.storage.latest_kwargs[trigger_name] = kwargs
        runners, failures = self._schedule(ready, now)
        return Firing(trigger_name, kwargs, ready, runners, failures)

    def _after_fire(self, firing: Firing) -> list[TaskInstance]:
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

    def _failed_instance(self, instance_or_name: TaskInstance | str, action: str) -> TaskInstance:
        """The stored instance, which must have failed to be ``action`` (replayed, skipped)."""
        instance = self.storage.get_instance(instance_or_name)
        if not instance.can_replay:  # the same rule as can_skip: it failed
            raise InstanceNotFailed(instance.name, instance.status, action)
        return instance

    def _post_fire(self, trigger_name: str, tasks_scheduled: list[TaskInstance]) -> None:
        """Called after a fire, outside the lock, with the instances it scheduled."""

    def _post_replay(self, task_instance: TaskInstance) -> None:
        """Called after a failed instance was replayed."""

    def _post_skip(self, task_instance: TaskInstance, cascade: bool) -> None:
        """Called after a failed instance was skipped."""
