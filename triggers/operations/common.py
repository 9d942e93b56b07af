"""What every operator command shares: opening a session, reading options, the errors.

A command refuses bad input before it touches anything, so a refusal
(:class:`BadInput`, exit status 2) always leaves the cache as it was.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime, time, timezone
from typing import Any

from ..conf import get_setting
from ..errors import InvalidSessionUid, UnknownInstance
from ..storages.base import validate_uid
from ..storages.cache import CacheStorageBackend
from ..types import TaskInstance
from .terminal import Writer, json_text

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_OK",
    "TOO_DEEP",
    "BadInput",
    "OperatorError",
    "Writer",
    "cache_alias",
    "find_instance",
    "instance_order",
    "iso",
    "json_object",
    "open_session",
    "open_storage",
    "parse_json",
    "plain",
    "shorten",
    "timestamp",
    "write_json",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

#: why JSON that json.loads gives up on (RecursionError) is refused
TOO_DEEP = "its arrays and objects nest too deeply to be read"


class OperatorError(Exception):
    """A command could not do its work; the message is the one line shown."""

    status = EXIT_FAILED


class BadInput(OperatorError):
    """The command was given something it refuses; nothing was changed."""

    status = EXIT_BAD_INPUT


def cache_alias(alias: str | None) -> str:
    """The cache alias to use (the setting when None), which must be in CACHES."""
    from django.conf import settings

    name: str = alias or get_setting("TRIGGERS_CACHE_ALIAS")
    known = getattr(settings, "CACHES", {}) or {"default": {}}
    if name not in known:
        raise BadInput(f"no cache {name!r} in CACHES (aliases: {', '.join(sorted(known))})")
    return name


def open_storage(
    uid: str, cache: str | None = None, layout: str | None = None
) -> CacheStorageBackend:
    """A storage for ``uid``, refusing an invalid uid or an unknown cache alias."""
    try:
        validate_uid(uid)
    except InvalidSessionUid as exc:
        raise BadInput(str(exc)) from None
    return CacheStorageBackend(uid, cache=cache_alias(cache), layout=layout)


def open_session(
    uid: str, cache: str | None = None, layout: str | None = None
) -> CacheStorageBackend:
    """The storage of an existing session: one with tasks or instances."""
    storage = open_storage(uid, cache, layout)
    if not storage.tasks and not len(storage.instances):
        raise BadInput(f"no session {uid!r} in cache {cache_alias(cache)!r}")
    return storage


def find_instance(storage: CacheStorageBackend, name: str) -> TaskInstance:
    """The named instance of the session, or BadInput naming the ones there are."""
    try:
        return storage[name]
    except UnknownInstance:
        names = sorted(storage.instances, key=instance_order)
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise BadInput(
            f"no instance {name!r} in session {storage.uid!r} (instances: {shown or 'none'})"
        ) from None


def instance_order(name: str) -> tuple[str, int, str]:
    """Sort key for instance names: by task, then by number (``t#10`` after ``t#9``)."""
    task, _, number = name.rpartition("#")
    if task and number.isdigit():
        return task, int(number), name
    return name, -1, name


def parse_json(text: str, what: str) -> Any:
    """JSON text an operator gave (``what`` names it); BadInput for any it cannot read.

    That includes text nested deeper than the decoder goes: json.loads raises
    RecursionError for it, which is no reason for a traceback.
    """
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BadInput(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadInput(f"{what} is not valid JSON: {TOO_DEEP}") from None


def json_object(text: str | None, option: str) -> dict[str, Any] | None:
    """The JSON object given to ``option``; None when the option was not given."""
    if text is None:
        return None
    value = parse_json(text, option)
    if not isinstance(value, dict):
        raise BadInput(f"{option} must be a JSON object ({{...}}), not {type(value).__name__}")
    return value


def timestamp(instance: TaskInstance, name: str) -> datetime | None:
    """One of the instance's timestamps (naive UTC), or None."""
    stamps = instance.metadata.get(TaskInstance.META_TIMESTAMPS) or {}
    value = stamps.get(name) if isinstance(stamps, dict) else None
    return value if isinstance(value, datetime) else None


def iso(value: datetime | None) -> str | None:
    """A timestamp as ISO 8601 text; naive ones are UTC, as the manager writes them."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()


def plain(value: Any) -> Any:
    """``value`` as JSON data for display: datetimes as ISO text, sets as sorted lists."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (set, frozenset)):
        items = [plain(item) for item in value]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, marked with "..." where it was cut."""
    return text if len(text) <= width else text[: max(0, width - 3)] + "..."


def write_json(out: Writer, data: Any) -> None:
    """``data`` as indented JSON, with no control character outside JSON escapes."""
    out.write(json_text(data) + "\n")
