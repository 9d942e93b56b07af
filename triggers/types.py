"""What a task is (TaskConfig) and what one run of it is (TaskInstance).

Both keep the serialized shapes of Triggers 2.x, so sessions stored by it
load unchanged.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from .errors import InvalidTaskConfig, safe_repr
from .names import is_name, trigger_set

__all__ = ["TaskConfig", "TaskInstance", "is_name", "utc_now"]


def utc_now() -> datetime:
    """Now in naive UTC, as Triggers 2.x stores the timestamps of instances."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class TaskConfig:
    """The configuration of one task in a session: when it runs and what it runs.

    Treat it as read-only once it is in a session (sessions with the same
    task table may share it); change a task with ``update_configuration``.
    """

    __slots__ = ("name", "after", "run", "unless", "using", "with_params", "and_every", "extra")

    def __init__(
        self,
        name: str,
        after: Iterable[str],
        run: str,
        unless: Iterable[str] | None = None,
        using: str | None = None,
        withParams: Mapping[str, Any] | None = None,
        andEvery: str | None = None,
        **extra: Any,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidTaskConfig(name, "a task name must be a non-empty string")
        if not isinstance(run, str) or not run:
            raise InvalidTaskConfig(name, f"'run' must name a task, not {safe_repr(run)}")
        if andEvery is not None and (not isinstance(andEvery, str) or not andEvery):
            raise InvalidTaskConfig(name, f"'andEvery' must be a trigger name, not {safe_repr(andEvery)}")
        if unless is not None and not isinstance(unless, (list, tuple, set, frozenset)):
            raise InvalidTaskConfig(name, f"'unless' must be a list, not {safe_repr(unless)}")
        if using is not None and (not isinstance(using, str) or not using):
            raise InvalidTaskConfig(name, f"'using' must name a task runner, not {safe_repr(using)}")
        if withParams is not None and not isinstance(withParams, (dict, Mapping)):
            raise InvalidTaskConfig(name, f"'withParams' must be a dict, not {safe_repr(withParams)}")
        self.name = name
        self.run = run
        self.using = using
        self.after = trigger_set(name, "after", after)
        self.unless = trigger_set(name, "unless", unless)
        self.and_every = andEvery
        if andEvery:
            self.after.add(andEvery)
        self.with_params: dict[str, Any] = dict(withParams or {})
        self.extra: dict[str, Any] = extra

    @classmethod
    def from_definition(cls, name: str, definition: object) -> TaskConfig:
        """Build a config from one entry of an ``update_configuration`` dict."""
        if isinstance(definition, TaskConfig):
            if definition.name != name:
                raise InvalidTaskConfig(
                    name, f"the TaskConfig given for it is named {safe_repr(definition.name)}"
                )
            return definition
        if not isinstance(definition, (dict, Mapping)):
            raise InvalidTaskConfig(name, f"a task definition must be a dict, not {safe_repr(definition)}")
        if not is_name(name):
            raise InvalidTaskConfig(name, "a task name must be a non-empty string of valid Unicode")
        if type(definition) is dict:
            config = cls._from_plain(name, definition, copy_params=False)
            if config is not None:
                return _checked_names(config)
        try:
            fields = dict(definition)
        except Exception as exc:  # a mapping whose items cannot be read
            raise InvalidTaskConfig(
                name, f"its definition cannot be read ({type(exc).__name__})"
            ) from None
        for key in fields:
            if not isinstance(key, str):
                raise InvalidTaskConfig(name, f"a definition's keys are strings, not {safe_repr(key)}")
        for required in ("after", "run"):
            if required not in fields:
                raise InvalidTaskConfig(name, f"missing {required!r}")
        fields.pop("name", None)
        return _checked_names(cls(name=name, **fields))

    _SERIALIZED_KEYS = frozenset({"after", "andEvery", "run", "unless", "using", "withParams"})

    @classmethod
    def from_stored(cls, name: str, data: Mapping[str, Any]) -> TaskConfig:
        """Rebuild a config from what :meth:`serialize` wrote.

        Stored configs were checked when first given, so the common shape
        is taken as it is (this runs for every task a fire touches); any
        other shape goes through the checking constructor.
        """
        # Stored data may be shared (a task table is kept per process).
        config = cls._from_plain(name, data, copy_params=True) if type(data) is dict else None
        return cls(name=name, **data) if config is None else config

    @classmethod
    def _from_plain(cls, name: str, data: dict[str, Any], copy_params: bool) -> TaskConfig | None:
        """A config from a definition made of plain lists, strings and dicts,
        checked field by field without the general constructor; None for any
        other shape (the constructor then checks it and names what is wrong)."""
        get: Callable[[str], Any] = data.get
        after, unless, run = get("after"), get("unless"), get("run")
        and_every, using, params = get("andEvery"), get("using"), get("withParams")
        if (
            type(after) not in (list, tuple)
            or (unless is not None and type(unless) not in (list, tuple))
            or type(run) is not str
            or not run
            or (and_every is not None and (type(and_every) is not str or not and_every))
            or (using is not None and (type(using) is not str or not using))
            or (params is not None and type(params) is not dict)
        ):
            return None
        for trigger in after:
            if type(trigger) is not str or not trigger:
                return None
        if unless:
            for trigger in unless:
                if type(trigger) is not str or not trigger:
                    return None
        config = cls.__new__(cls)
        config.name = name
        config.run = run
        config.using = using
        config.after = set(after)
        if and_every:
            config.after.add(and_every)
        config.unless = set(unless or ())
        config.and_every = and_every
        if not params:
            config.with_params = {}
        else:
            config.with_params = copy.deepcopy(params) if copy_params else dict(params)
        config.extra = {}
        if not data.keys() <= cls._SERIALIZED_KEYS:
            if "name" in data:
                return None
            config.extra = {k: v for k, v in data.items() if k not in cls._SERIALIZED_KEYS}
        return config

    @property
    def after_sorted(self) -> list[str]:
        return sorted(self.after) if len(self.after) > 1 else list(self.after)

    @property
    def unless_sorted(self) -> list[str]:
        return sorted(self.unless) if self.unless else []

    def uses_trigger(self, trigger_name: str) -> bool:
        return trigger_name in self.after or trigger_name in self.unless

    def serialize(self) -> dict[str, Any]:
        """A dict that ``TaskConfig(name=..., **that_dict)`` accepts."""
        data = {
            "after": self.after_sorted,
            "andEvery": self.and_every,
            "run": self.run,
            "unless": self.unless_sorted,
            "using": self.using,
            "withParams": self.with_params,
        }
        if self.extra:
            return {**self.extra, **data}
        return data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaskConfig):
            return NotImplemented
        return self.name == other.name and self.serialize() == other.serialize()

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"TaskConfig({self.name!r}, after={self.after_sorted!r}, run={self.run!r})"


def _checked_names(config: TaskConfig) -> TaskConfig:
    """``config``, if every name in it is valid Unicode (else InvalidTaskConfig)."""
    for field, value in (("run", config.run), ("using", config.using), ("andEvery", config.and_every)):
        if value is not None and not is_name(value):
            raise InvalidTaskConfig(config.name, f"{field!r} is not valid Unicode: {safe_repr(value)}")
    for trigger in (*config.after, *config.unless):
        if not is_name(trigger):
            raise InvalidTaskConfig(config.name, f"trigger {safe_repr(trigger)} is not valid Unicode")
    return config


class TaskInstance:
    """One run of a task: its status, the trigger kwargs it collected, metadata."""

    STATUS_ABANDONED = "abandoned"
    STATUS_FAILED = "failed"
    STATUS_FINISHED = "finished"
    STATUS_REPLAYED = "replayed"
    STATUS_RUNNING = "running"
    STATUS_SCHEDULED = "scheduled"
    STATUS_SKIPPED = "skipped"
    STATUS_UNSTARTED = "unstarted"

    RESOLVED_STATUSES = frozenset(
        {STATUS_ABANDONED, STATUS_FINISHED, STATUS_SKIPPED, STATUS_REPLAYED}
    )
    ALL_STATUSES = frozenset(
        {
            STATUS_ABANDONED,
            STATUS_FAILED,
            STATUS_FINISHED,
            STATUS_REPLAYED,
            STATUS_RUNNING,
            STATUS_SCHEDULED,
            STATUS_SKIPPED,
            STATUS_UNSTARTED,
        }
    )

    META_ACTUAL_KWARGS = "actualKwargs"
    META_ACTUAL_SHARD = "actualShard"
    META_COOLDOWN = "cooldown"
    META_DEPTH = "depth"
    META_EXCEPTION_CONTEXT = "exceptionContext"
    META_EXCEPTION_INFO = "exceptionInfo"
    META_EXCEPTION_TYPE = "exceptionType"
    META_FAILURE = "failure"  # where a failure happened (task, instance, phase, kwargs)
    META_LOG_LEVEL = "logLevel"
    META_LOGS_RESOLVED = "logsResolved"
    META_PARENT = "parent"
    META_RESULT = "result"
    META_TIMESTAMPS = "timestamps"

    TIMESTAMP_CREATED = "created"
    TIMESTAMP_LAST_MODIFIED = "lastModified"

    LOG_LEVEL_THRESHOLD = logging.ERROR

    __slots__ = ("name", "config", "status", "metadata", "kwargs", "abandon_state")

    def __init__(
        self,
        name: str,
        config: TaskConfig,
        status: str | None = None,
        metadata: dict[str, Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        abandonState: Iterable[str] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.status = status or self.STATUS_UNSTARTED
        self.metadata: dict[str, Any] = metadata if metadata is not None else {}
        self.kwargs: dict[str, Any] = kwargs if kwargs is not None else {}
        self.abandon_state: set[str] = set(abandonState or ())

    @property
    def can_schedule(self) -> bool:
        return self.status == self.STATUS_UNSTARTED

    @property
    def can_skip(self) -> bool:
        return self.status == self.STATUS_FAILED

    can_replay = can_skip

    @property
    def can_abandon(self) -> bool:
        unless = self.config.unless
        return (
            self.status == self.STATUS_UNSTARTED and bool(unless) and unless <= self.abandon_state
        )

    @property
    def can_run(self) -> bool:
        if self.status != self.STATUS_UNSTARTED:
            return False
        config = self.config
        unless = config.unless
        return config.after <= self.kwargs.keys() and not (unless and unless <= self.abandon_state)

    @property
    def is_resolved(self) -> bool:
        return self.status in self.RESOLVED_STATUSES

    @property
    def cooldown(self) -> float:
        return self.metadata.get(self.META_COOLDOWN) or 0

    @property
    def depth(self) -> int:
        return self.metadata.get(self.META_DEPTH) or 0

    @property
    def last_modified(self) -> Any:
        return (self.metadata.get(self.META_TIMESTAMPS) or {}).get(self.TIMESTAMP_LAST_MODIFIED)

    @property
    def log_level(self) -> int:
        level = self.metadata.get(self.META_LOG_LEVEL)
        return logging.NOTSET if level is None else level

    @property
    def log_level_name(self) -> str:
        return logging.getLevelName(self.log_level)

    @property
    def logs_relevant(self) -> bool:
        return self.status not in (
            self.STATUS_ABANDONED,
            self.STATUS_REPLAYED,
            self.STATUS_SKIPPED,
        )

    @property
    def logs_resolved(self) -> bool:
        return (
            not self.logs_relevant
            or self.log_level < self.LOG_LEVEL_THRESHOLD
            or bool(self.metadata.get(self.META_LOGS_RESOLVED))
        )

    def change_status(
        self, status: str, metadata: Mapping[str, Any] | None = None, now: datetime | None = None
    ) -> None:
        """Set the status, merge ``metadata``, and stamp the time: ``created``
        once, ``lastModified`` always, and one named after the status."""
        stamps = self.merge_metadata(metadata, now)
        stamps.setdefault(self.TIMESTAMP_CREATED, stamps[self.TIMESTAMP_LAST_MODIFIED])
        stamps[status] = stamps[self.TIMESTAMP_LAST_MODIFIED]
        self.status = status

    def merge_metadata(
        self, metadata: Mapping[str, Any] | None, now: datetime | None = None
    ) -> dict[str, Any]:
        """Merge ``metadata`` and stamp ``lastModified``; returns the timestamps."""
        if metadata:
            self.metadata.update(metadata)
        stamps: dict[str, Any] = self.metadata.setdefault(self.META_TIMESTAMPS, {})
        stamps[self.TIMESTAMP_LAST_MODIFIED] = now or utc_now()
        return stamps

    def apply_trigger(self, trigger_name: str, kwargs: Mapping[str, Any] | None) -> bool:
        """Record a firing of ``trigger_name``; whether it changed this instance."""
        if self.status != self.STATUS_UNSTARTED:  # only unstarted instances take triggers
            return False
        applied = False
        if trigger_name in self.config.after and trigger_name not in self.kwargs:
            self.kwargs[trigger_name] = kwargs
            applied = True
        if trigger_name in self.config.unless:
            self.abandon_state.add(trigger_name)
            applied = True
        return applied

    def serialize(self) -> dict[str, Any]:
        return {
            "abandonState": sorted(self.abandon_state) if self.abandon_state else [],
            "kwargs": self.kwargs,
            "metadata": self.metadata,
            "status": self.status,
            "task": self.config.name,
        }

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    def __repr__(self) -> str:
        return f"<TaskInstance {self}>"
