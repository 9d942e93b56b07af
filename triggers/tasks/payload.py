"""What a runner sends to have one task instance run: the task payload.

A payload is plain data, so it can cross threads, processes and message
brokers. It names the manager and storage classes by their registry keys
(their brands), so the code that runs the task rebuilds them wherever it
runs. ``to_dict()`` gives the keys Triggers 2.x runners sent
(``instance_name``, ``manager_type``, ``storage_type``, ``storage_uid``,
``trigger_kwargs``) plus ``storage_kwargs``; ``from_dict()`` reads both that
and a 2.x payload, which lacks ``storage_kwargs``.
"""

from __future__ import annotations

import copy
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..process_state import register_state
from ..registry import storage_backends, trigger_managers

if TYPE_CHECKING:
    from ..manager import TriggerManager
    from ..types import TaskInstance

__all__ = ["TaskPayload", "merge_kwargs"]

#: keys a payload must carry, each a non-empty string
REQUIRED_KEYS = ("instance_name", "manager_type", "storage_type", "storage_uid")


def merge_kwargs(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``override``, recursively; neither is changed.

    Where both hold a dict under the same key, the dicts are merged the same
    way; anywhere else the value of ``override`` wins.
    """
    merged: dict[str, Any] = {key: copy.deepcopy(value) for key, value in base.items()}
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_kwargs(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


#: unregistered manager classes already warned about (``clear()``: warn again)
_warned: set[type] = register_state(
    "warned manager classes",
    set(),
    about="the unregistered manager classes already warned about",
)
_warned_lock = threading.Lock()


def _manager_key(cls: type) -> str | None:
    """The registry key tasks rebuild a manager of ``cls`` by.

    A subclass nobody registered runs its tasks with the nearest registered
    class it inherits from, as in Triggers 2.x; it is warned about once,
    since its own hooks then do not run inside tasks.
    """
    key = trigger_managers.key_of(cls)
    if key is not None:
        return key
    for base in cls.__mro__[1:]:
        key = trigger_managers.key_of(base)
        if key is not None:
            with _warned_lock:
                first = cls not in _warned
                _warned.add(cls)
            if first:
                warnings.warn(
                    f"{_qualified(cls)} is not registered in 'triggers.managers', so its tasks"
                    f" rebuild {_qualified(base)} (key {key!r}) and its own hooks do not run"
                    " inside them; register it (an entry point, or trigger_managers.register())",
                    RuntimeWarning,
                    stacklevel=4,
                )
            return key
    return None


@dataclass(frozen=True)
class TaskPayload:
    """Which instance of which session to run, and with which kwargs."""

    instance_name: str
    manager_type: str
    storage_type: str
    storage_uid: str
    #: the config's ``withParams`` merged recursively with the instance's kwargs
    trigger_kwargs: dict[str, Any] = field(default_factory=dict)
    #: constructor arguments besides the uid that rebuild the storage
    storage_kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_instance(cls, manager: TriggerManager, task_instance: TaskInstance) -> TaskPayload:
        """The payload that runs ``task_instance`` of ``manager``'s session.

        RuntimeError when the manager's or the storage's class has no
        registry key: the task could not rebuild it.
        """
        storage = manager.storage
        manager_type = _manager_key(type(manager))
        if manager_type is None:
            raise RuntimeError(
                f"{_qualified(type(manager))} has no key in the 'triggers.managers' registry, so a"
                f" task could not rebuild it; register it (an entry point in that group, or"
                f" trigger_managers.register(key, cls)) before firing triggers with it"
            )
        storage_type = storage_backends.key_of(type(storage))
        if storage_type is None:
            raise RuntimeError(
                f"{_qualified(type(storage))} has no key in the 'triggers.storages' registry, so a"
                f" task could not rebuild it; register it (an entry point in that group, or"
                f" storage_backends.register(key, cls)) before firing triggers with it"
            )
        return cls(
            instance_name=task_instance.name,
            manager_type=manager_type,
            storage_type=storage_type,
            storage_uid=storage.uid,
            trigger_kwargs=merge_kwargs(task_instance.config.with_params, task_instance.kwargs),
            storage_kwargs=storage.rebuild_kwargs(),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskPayload:
        """A payload from its dict form (ValueError naming what is missing or wrong)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a task payload must be a dict, not {type(data).__name__}")
        missing = [key for key in REQUIRED_KEYS if not data.get(key)]
        if missing:
            raise ValueError(f"task payload lacks {', '.join(missing)}: {data!r}")
        wrong = [key for key in REQUIRED_KEYS if not isinstance(data[key], str)]
        for key in ("trigger_kwargs", "storage_kwargs"):
            if data.get(key) is not None and not isinstance(data[key], Mapping):
                wrong.append(key)
        if wrong:
            raise ValueError(f"task payload has {', '.join(wrong)} of the wrong type: {data!r}")
        return cls(
            instance_name=data["instance_name"],
            manager_type=data["manager_type"],
            storage_type=data["storage_type"],
            storage_uid=data["storage_uid"],
            trigger_kwargs=dict(data.get("trigger_kwargs") or {}),
            storage_kwargs=dict(data.get("storage_kwargs") or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        """The payload as plain keyword arguments (the 2.x keys, and ``storage_kwargs``)."""
        return {
            "instance_name": self.instance_name,
            "manager_type": self.manager_type,
            "storage_type": self.storage_type,
            "storage_uid": self.storage_uid,
            "storage_kwargs": dict(self.storage_kwargs),
            "trigger_kwargs": self.trigger_kwargs,
        }
