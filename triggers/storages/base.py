"""The session state every storage backend shares, and the logic over it.

A backend only says how to load and save (``_load_from_backend``, ``_save``);
this class holds the configuration, the instances and the metadata, loads
them lazily, caches them per object and answers every query. What the
manager asks of a storage is public here; see :class:`BaseTriggerStorage`.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar

from ..errors import (
    StorageCorrupted,
    UnknownInstance,
    UnknownTask,
)
from ..locking import Lockable
from ..registry import EntryPointRegistry
from ..registry import storage_backends as _storage_backends
from ..renamed import renamed_keywords
from ..types import TaskConfig, TaskInstance
from .async_api import AsyncStorage
from .instances import TaskInstanceCollection, instance_name
from .validation import (
    check_configuration,
    check_instance_fields,
    check_instance_name,
    check_picklable,
    check_storable,
    check_stored_metadata,
    check_task_name,
    stored_record_config,
    validate_uid,
)

__all__ = [
    "BaseTriggerStorage",
    "TaskInstanceCollection",
    "check_storable",
    "instance_name",
    "storage_backends",
    "validate_uid",
]

storage_backends: EntryPointRegistry[BaseTriggerStorage] = _storage_backends


class BaseTriggerStorage(AsyncStorage, Lockable):
    """Holds one session's task configs, instances and metadata.

    A backend must define ``name``, ``_load_from_backend`` and ``_save``; all
    else, locking included, works from those three. What the manager asks
    of a storage is public, and a backend may override it: ``attempts()``
    (how an operation commits), the queries of a firing (``stored_nothing``,
    ``tasks_using_trigger``, ``schedulable_instances_of_task``), for speed,
    and ``get_lock_guard()`` (from Lockable), to lock its own way.
    """

    #: unique identifier of the backend, usually its entry point name
    name: ClassVar[str]

    def __init__(self, uid: str) -> None:
        self.uid = validate_uid(uid)
        self._configs: dict[str, TaskConfig] | None = None
        self._instances: TaskInstanceCollection | None = None
        self._metas: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.uid!r}>"

    # ------------------------------------------------------------- locking
    def get_lock_name(self) -> str:
        return f"triggers:{self.uid}:lock"

    def _on_lock_acquired(self, prefetched: dict[str, Any]) -> None:
        # Whatever was read before the lock may be stale now.
        self.invalidate_cache()

    # ------------------------------------------------------------- loading
    @property
    def is_loaded(self) -> bool:
        return self._configs is not None

    def _load(self) -> None:
        if self._configs is None or self._instances is None or self._metas is None:
            try:
                self._load_state()
            except BaseException:
                # A load that failed part way leaves nothing half-read behind:
                # the next access reads (and fails) again.
                self._configs = self._instances = self._metas = None
                raise

    def _load_state(self) -> None:
        """Read the session from the backend into ``_configs``, ``_instances``, ``_metas``."""
        configs, instances, metas = self._load_from_backend()
        if not configs and not instances:
            configs = self._load_default_configuration() or configs or {}
        self._install(configs, instances or {}, metas or {})

    def _install(
        self,
        configs: Mapping[str, Any],
        instances: Mapping[str, Any],
        metas: Mapping[str, Any],
    ) -> None:
        """Build live objects from the serialized forms."""
        if not isinstance(configs, (dict, Mapping)) or not isinstance(instances, (dict, Mapping)):
            raise StorageCorrupted(self.uid, "task configs and instances must be dicts")
        self._configs = self._build_configs(configs)
        self._metas = self._build_metas(metas)
        self._instances = TaskInstanceCollection(
            self._build_instance(name, data) for name, data in instances.items()
        )

    def _build_metas(self, metas: Any) -> dict[str, Any]:
        return check_stored_metadata(self.uid, metas)

    def _build_configs(self, configs: Mapping[str, Any]) -> dict[str, TaskConfig]:
        return {name: self._build_config(name, data) for name, data in configs.items()}

    def _build_config(self, task_name: str, data: Any) -> TaskConfig:
        if isinstance(data, TaskConfig):
            return data
        if not isinstance(data, (dict, Mapping)):
            raise StorageCorrupted(self.uid, f"task {task_name!r} is stored as {data!r}")
        try:
            return TaskConfig.from_stored(task_name, data)
        except (TypeError, ValueError) as exc:
            raise StorageCorrupted(self.uid, f"task {task_name!r}: {exc}") from exc

    def _build_instance(self, name: str, data: Any) -> TaskInstance:
        """A live instance from its serialized form."""
        if isinstance(data, TaskInstance):
            return data
        config = self._check_record(name, data)
        get = data.get
        # name, config, status, metadata, kwargs, abandonState
        return TaskInstance(
            name, config, get("status"), get("metadata"), get("kwargs"), get("abandonState")
        )

    def _check_record(self, name: str, data: Any) -> TaskConfig:
        """The config of a stored instance record, if the record is one (else StorageCorrupted)."""
        assert self._configs is not None
        return stored_record_config(self.uid, self._configs, name, data)

    def _load_default_configuration(self) -> Mapping[str, Any] | None:
        """Task definitions for a session the backend knows nothing of."""
        return None

    def _load_from_backend(self) -> tuple[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]:
        """Return ``(task configs, task instances, metadata)`` as plain dicts."""
        raise NotImplementedError

    def _save(self) -> None:
        """Persist ``self._configs``, ``self._instances`` and ``self._metas``."""
        raise NotImplementedError

    # ------------------------------------------------------------- state
    @property
    def tasks(self) -> dict[str, TaskConfig]:
        if self._configs is None:
            self._load()
            assert self._configs is not None
        return self._configs

    @property
    def instances(self) -> TaskInstanceCollection:
        if self._instances is None:
            self._load()
            assert self._instances is not None
        return self._instances

    @property
    def metadata(self) -> dict[str, Any]:
        if self._metas is None:
            self._load()
            assert self._metas is not None
        return self._metas

    @property
    def latest_kwargs(self) -> dict[str, Any]:
        latest: dict[str, Any] = self.metadata.setdefault("latest_kwargs", {})
        return latest

    def __getitem__(self, instance_name: str) -> TaskInstance:
        name = check_instance_name(instance_name, self.uid)
        try:
            return self.instances[name]
        except KeyError:
            raise UnknownInstance(name, self.uid) from None

    def __iter__(self) -> Iterator[TaskInstance]:
        return self.iter_instances()

    def iter_instances(self) -> Iterator[TaskInstance]:
        """Every instance of the session (read in one batch)."""
        return iter(self.instances.every_instance())

    def get_task(self, task_config_or_name: TaskConfig | str) -> TaskConfig:
        """The configured task of that name (UnknownTask if there is none)."""
        name = check_task_name(task_config_or_name)
        try:
            if name is None:
                raise KeyError(task_config_or_name)
            return self.tasks[name]
        except KeyError:
            raise UnknownTask(name or task_config_or_name, self.uid) from None

    def get_instance(self, instance_or_name: TaskInstance | str) -> TaskInstance:
        """The stored instance of that name, as loaded now."""
        return self[check_instance_name(instance_or_name, self.uid)]

    @renamed_keywords(task_config="task_config_or_name")
    def create_instance(self, task_config_or_name: TaskConfig | str, **kwargs: Any) -> TaskInstance:
        """A new unstarted instance of the task, installed in the session.

        ``kwargs`` are the instance's fields (``status``, ``metadata``,
        ``kwargs``, ``abandonState``), checked here.
        """
        kwargs = check_instance_fields(kwargs)
        config = None
        if isinstance(task_config_or_name, TaskConfig) and self._configs is not None:
            config = self._configs.get(task_config_or_name.name)
        if config is None:
            config = self.get_task(task_config_or_name)
        instances = self._instances if self._instances is not None else self.instances
        return instances.create(config, **kwargs)

    @renamed_keywords(task_instance="instance_or_name")
    def clone_instance(self, instance_or_name: TaskInstance | str) -> TaskInstance:
        """A new instance of the same task carrying on from the original."""
        original = self.get_instance(instance_or_name)
        return self.create_instance(
            original.config,
            kwargs=copy.deepcopy(original.kwargs),
            abandonState=set(original.abandon_state),
            metadata={
                TaskInstance.META_DEPTH: original.depth + 1,
                TaskInstance.META_PARENT: original.name,
            },
        )

    @renamed_keywords(task_config="task_config_or_name")
    def instances_of_task(self, task_config_or_name: TaskConfig | str) -> dict[str, TaskInstance]:
        name = check_task_name(task_config_or_name)
        if name is None:
            raise UnknownTask(task_config_or_name, self.uid)
        return self.instances.of_task(name)

    # ------------------------------------------------- what a firing asks
    # Each works on any backend, from the loaded state; a backend may
    # override it for speed (the cache backend reads only what it needs).
    def tasks_using_trigger(self, trigger_name: str) -> list[TaskConfig]:
        """Tasks whose ``after`` or ``unless`` names the trigger."""
        return [config for config in self.tasks.values() if config.uses_trigger(trigger_name)]

    def schedulable_instances_of_task(self, task_name: str) -> list[TaskInstance]:
        """The task's instances still unstarted (the only ones a trigger can
        change), as live objects: the caller changes them, then saves."""
        return [i for i in self.instances.of_task(task_name).values() if i.can_schedule]

    def stored_nothing(self) -> bool:
        """Whether the backend held nothing of this session when it was read
        (the manager then reports a new session)."""
        return not self.tasks and not len(self.instances) and not self.latest_kwargs

    # Their names before they were public. A subclass that overrides an old
    # name (and not the new one) has its override called under both names.
    _tasks_using_trigger = tasks_using_trigger
    _schedulable_instances_of_task = schedulable_instances_of_task
    _stored_nothing = stored_nothing

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for new in ("tasks_using_trigger", "schedulable_instances_of_task", "stored_nothing"):
            old = "_" + new
            if old in cls.__dict__ and new not in cls.__dict__:
                setattr(cls, new, cls.__dict__[old])  # a backend written before the rename
            elif new in cls.__dict__ and old not in cls.__dict__:
                setattr(cls, old, cls.__dict__[new])  # for callers of the old name

    def attempts(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        """Tries at one operation, each committed whole or not at all::

            for attempt in storage.attempts():
                with attempt:
                    ...  # read, change, save() once

        Inside a try ``has_lock`` is true and reads start from the state the
        try commits against; leaving it commits what was saved. A try that
        cannot commit is followed by another, so the block must only read and
        change this storage. By default the one try is ``acquire_lock()``; a
        backend may first try cheaper ways (Redis: no lock; a database: one
        transaction), the last try being the lock."""
        yield from super().attempts()

    def expect(self, *, instances: Iterable[str] = (), triggers: Iterable[str] = ()) -> None:
        """A hint, for speed: this thread's next ``attempts()`` reads these instances or fires
        these triggers; a backend may read what they need with the session (default: no)."""

    def get_unresolved_tasks(self) -> list[TaskConfig]:
        unresolved = []
        instances = self.instances
        instances.load_all()
        for config in self.tasks.values():
            mine = instances.of_task(config.name)
            if not mine or any(not i.is_resolved for i in mine.values()):
                unresolved.append(config)
        return unresolved

    def get_unresolved_instances(self) -> list[TaskInstance]:
        return [i for i in self.iter_instances() if not i.is_resolved]

    def get_instances_with_unresolved_logs(self) -> list[TaskInstance]:
        return [i for i in self.iter_instances() if not i.logs_resolved]

    def update_configuration(self, config_dict: Mapping[str, Any]) -> None:
        """Merge task definitions by name; all are checked before any is applied."""
        built = check_configuration(config_dict)
        tasks = self.tasks
        tasks.update(built)
        # Existing instances follow the new definition of their task.
        for instance in self.instances.loaded.values():
            config = built.get(instance.config.name)
            if config is not None:
                instance.config = config
        self._configuration_changed(built)

    def _configuration_changed(self, configs: Mapping[str, TaskConfig]) -> None:
        """Hook for backends that index configurations."""

    # ------------------------------------------------------------- saving
    def save(self) -> None:
        """Persist the loaded state; only the holder of the lock may."""
        if not self.has_lock:
            raise RuntimeError(
                f"{type(self).__name__}.save() needs the session lock; "
                "call it inside 'with storage.acquire_lock():'"
            )
        if self._configs is None:
            return
        # Pickled once first, so that a value pickle refuses is refused before any
        # write (the manager's entry points checked its own values fully).
        check_picklable("the session's metadata", self._metas)
        self._save()

    def delete(self) -> bool:
        """Remove the whole session from the backend, under its lock; True if
        anything was stored. Afterwards the uid starts as a new, empty session."""
        raise NotImplementedError(f"{type(self).__name__} does not implement delete()")

    def invalidate_cache(self) -> None:
        """Forget what was loaded; the next read goes to the backend."""
        self._configs = None
        self._instances = None
        self._metas = None

    def close(self, *args: Any, **kwargs: Any) -> None:
        """Release whatever connection the backend holds (arguments as 2.x took them)."""

    def rebuild_kwargs(self) -> dict[str, Any]:
        """Constructor arguments besides the uid that rebuild this storage elsewhere.

        A task running in another thread or process makes its own storage
        from the registry key, the uid and these; they must be plain data.
        """
        return {}

    def _serialize(
        self, dict_: Mapping[str, Any], optimize_for_backend: bool = True
    ) -> dict[str, Any]:
        """Plain dicts for a dict of TaskConfig or TaskInstance objects."""
        return {key: value.serialize() for key, value in dict_.items()}

    def _serialized_instances(self) -> dict[str, dict[str, Any]]:
        instances = self.instances
        instances.load_all()
        return self._serialize(instances.loaded)

    def debug_repr(self) -> dict[str, Any]:
        """The whole session as plain data, for logs and debugging (a copy)."""
        return copy.deepcopy(
            {
                "tasks": self._serialize(self.tasks),
                "instances": self._serialized_instances(),
                "metas": self.metadata,
            }
        )
