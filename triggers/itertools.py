"""Merging mappings, as 2.x applications imported it from ``triggers.itertools``.

The recursive merge is the one the runners apply to a task's ``withParams``
and its instance's kwargs (:func:`triggers.tasks.payload.merge_kwargs`), so an
application that merges kwargs ahead of a fire gets the same result the task
will see.

2.x shim: kept so that code written for Triggers 2.x keeps working.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .tasks.payload import merge_kwargs

__all__ = ["merge_dict", "merge_dict_recursive"]


def merge_dict(*dicts: Mapping[Any, Any]) -> dict[Any, Any]:
    """A new dict with the items of every mapping; where keys repeat, the later mapping wins.

    Shallow: values are shared with the inputs, not copied.
    """
    merged: dict[Any, Any] = {}
    for mapping in dicts:
        merged.update(mapping)
    return merged


def merge_dict_recursive(*dicts: Mapping[str, Any]) -> dict[str, Any]:
    """Like :func:`merge_dict`, but mappings under the same key are merged the same way.

    Values are deep copies, so changing the result never changes an input.
    """
    merged: dict[str, Any] = {}
    for mapping in dicts:
        merged = merge_kwargs(merged, mapping)
    return merged
