"""Instances built straight from stored records of the plain form this package
writes: the loop a whole read runs once per record, so it is kept lean."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ...types import TaskConfig, TaskInstance
from ..validation import has_plain_fields
from .records import as_record, plain_fields, record_fields

__all__ = ["build_plain"]


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
    built: dict[str, TaskInstance] = {}
    others: dict[str, Any] = {}
    # Each task's config looked up once (None: not configured, the general way says so).
    config_of: dict[str, TaskConfig | None] = {}
    for key, stored in found.items():
        name = wanted[key]
        fields = plain_fields(stored, name, uid, key)
        if fields is None:
            others[name] = record_fields(stored, name, uid, key)
            continue
        abandon_state, kwargs, metadata, status, task = fields  # RECORD_FIELDS' order
        if not has_plain_fields(task, status, metadata, kwargs, abandon_state):
            others[name] = as_record(fields)
            continue
        config = config_of.get(task)
        if config is None and task not in config_of:
            config = config_of[task] = configs.get(task)
        if config is not None and task == indexed_task(name):
            built[name] = TaskInstance(name, config, status, metadata, kwargs, abandon_state)
        else:
            others[name] = as_record(fields)
    return built, others
