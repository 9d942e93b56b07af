"""Instances built straight from stored records of the plain form this package
writes: the loop a whole read runs once per record, so it is kept lean."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ...locking.raw_values import RAW_MARK
from ...types import TaskConfig, TaskInstance
from ..validation import has_plain_fields
from .records import as_record, plain_fields, plain_record_at, record_fields

__all__ = ["PlainInstances", "build_plain"]


class PlainInstances:
    """Instances built from plain records as they come, and every other record
    decoded (by instance name) for the general way, which checks it in full."""

    def __init__(
        self, configs: Mapping[str, TaskConfig], indexed_task: Callable[[str], str]
    ) -> None:
        #: instances built, by name
        self.built: dict[str, TaskInstance] = {}
        #: the other records, by instance name
        self.others: dict[str, Any] = {}
        self._configs = configs
        self._indexed_task = indexed_task
        # Each task's config looked up once (None: not configured, the general way says so).
        self._config_of: dict[str, TaskConfig | None] = {}

    def add(self, name: str, fields: tuple[Any, ...]) -> None:
        """Build instance ``name`` from the plain tuple of its record's fields
        (in ``RECORD_FIELDS``' order) if they are plain and name the task the
        index gives the instance; else keep its record for the general way."""
        abandon_state, kwargs, metadata, status, task = fields
        if has_plain_fields(task, status, metadata, kwargs, abandon_state):
            config_of = self._config_of
            config = config_of.get(task)
            if config is None and task not in config_of:
                config = config_of[task] = self._configs.get(task)
            if config is not None and task == self._indexed_task(name):
                self.built[name] = TaskInstance(
                    name, config, status, metadata, kwargs, abandon_state
                )
                return
        self.others[name] = as_record(fields)


def build_plain(
    found: Mapping[str, Any],
    wanted: Mapping[str, str],
    configs: Mapping[str, TaskConfig],
    indexed_task: Callable[[str], str],
    uid: str,
) -> tuple[dict[str, TaskInstance], dict[str, Any]]:
    """The instances of the records ``found`` (stored values by key; ``wanted``
    names each key's instance) that are of the plain form and name the task
    ``indexed_task`` gives their instance, and every other record decoded (by
    instance name) for the general way, which checks it in full.

    Damage is StorageCorrupted naming ``uid`` and the key.
    """
    instances = PlainInstances(configs, indexed_task)
    add, others = instances.add, instances.others
    mark, past_mark = RAW_MARK, len(RAW_MARK)
    for key, stored in found.items():
        name = wanted[key]
        if type(stored) is bytes and stored.startswith(mark):
            fields = plain_record_at(stored, memoryview(stored), past_mark, len(stored), name)
            if fields is not None:
                add(name, fields)
                continue
        # Any other record, or damage: the general way, which names it.
        fields = plain_fields(stored, name, uid, key)
        if fields is None:
            others[name] = record_fields(stored, name, uid, key)
        else:
            add(name, fields)
    return instances.built, others
