"""What can name a task, a trigger or an instance, and the trigger names of a definition.

A name is a non-empty str of valid Unicode: it ends up in cache keys, pickles
and JSON, none of which take a lone surrogate.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .errors import InvalidTaskConfig, safe_repr

__all__ = ["is_name", "trigger_set"]

_PLAIN_COLLECTIONS = (list, tuple, set, frozenset)


def is_name(value: object) -> bool:
    """Whether ``value`` can name a task, an instance or a trigger: a non-empty
    str of valid Unicode (a lone surrogate cannot be encoded into a cache key)."""
    if not isinstance(value, str) or not str.__len__(value):
        return False
    if str.isascii(value):
        return True
    try:
        str.encode(value, "utf-8")
    except UnicodeEncodeError:
        return False
    return True


def trigger_set(task_name: str, field: str, value: Any) -> set[str]:
    """The trigger names of a definition's ``after`` or ``unless`` (else InvalidTaskConfig)."""
    if value is None:
        return set()
    plain = type(value) in _PLAIN_COLLECTIONS  # skips the slow ABC check below
    if not plain and (isinstance(value, (str, bytes)) or not isinstance(value, Iterable)):
        raise InvalidTaskConfig(
            task_name, f"{field!r} must be a list of trigger names, not {safe_repr(value)}"
        )
    try:
        items = value if plain else list(value)
        for trigger in items:
            if not isinstance(trigger, str):  # an unhashable item, say: name it
                raise InvalidTaskConfig(
                    task_name, f"{field!r} holds {safe_repr(trigger)}, which is not a trigger name"
                )
        triggers = set(items)
    except InvalidTaskConfig:
        raise
    except Exception as exc:  # an iterable that fails, a str subclass that cannot hash
        raise InvalidTaskConfig(
            task_name, f"{field!r} cannot be read as trigger names ({type(exc).__name__})"
        ) from None
    for trigger in triggers:
        if type(trigger) is not str or not trigger:
            if isinstance(trigger, str) and trigger:
                continue  # a str subclass is fine
            raise InvalidTaskConfig(
                task_name, f"{field!r} holds {safe_repr(trigger)}, which is not a trigger name"
            )
    return triggers
