"""What every operator command shares: opening a session, reading options, the errors.

A command refuses bad input before it touches anything, so a refusal
(:class:`BadInput`, exit status 2) always leaves the stored session as it was.

A session is opened in any storage backend of the ``triggers.storages``
registry (``--storage NAME``, the cache backend by default), through the
storage's public interface only. ``--cache`` and ``--layout`` are options
of the cache backend (and of backends derived from it): given with any
other backend they are refused, as that backend has no cache to name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any

from ..conf import get_setting
from ..errors import InvalidSessionUid, UnknownInstance
from ..locking.naming import cache_words
from ..registry import UnknownRegistryKey
from ..storages.base import BaseTriggerStorage, storage_backends, validate_uid
from ..storages.cache import CacheStorageBackend
from ..storages.instances import name_number
from ..types import TaskInstance
from .terminal import Writer, json_text

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_FAILED_AGAIN",
    "EXIT_OK",
    "TOO_DEEP",
    "BadInput",
    "FailedAgain",
    "DATABASE_STORAGE",
    "DEFAULT_STORAGE",
    "LIFETIME_UNKNOWN",
    "OperatorError",
    "Place",
    "default_storage",
    "Writer",
    "cache_alias",
    "can_delete",
    "cannot_delete",
    "check_storage_name",
    "find_instance",
    "instance_order",
    "iso",
    "json_object",
    "lifetime",
    "location",
    "open_session",
    "open_storage",
    "parse_json",
    "plain",
    "shorten",
    "storage_class",
    "storage_key",
    "timestamp",
    "write_json",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
#: the command ran what it was asked to (a replay), and that failed again
EXIT_FAILED_AGAIN = 3

#: why JSON that json.loads gives up on (RecursionError) is refused
TOO_DEEP = "its arrays and objects nest too deeply to be read"


class OperatorError(Exception):
    """A command could not do its work; the message is the one line shown."""

    status = EXIT_FAILED


class FailedAgain(OperatorError):
    """What the command ran (a replayed instance) failed again; it says where it ended."""

    status = EXIT_FAILED_AGAIN


class BadInput(OperatorError):
    """The command was given something it refuses; nothing was changed."""

    status = EXIT_BAD_INPUT


def cache_alias(alias: str | None) -> str:
    """The cache alias to use (the setting when None), which must be in CACHES."""
    from django.conf import settings

    name: str | None = alias or get_setting("TRIGGERS_CACHE_ALIAS")
    if name is None:
        raise BadInput(
            "TRIGGERS_CACHE_ALIAS is None, so sessions live in the database only:"
            " use --storage database, or name a cache with --cache ALIAS"
        )
    known = getattr(settings, "CACHES", {}) or {"default": {}}
    if name not in known:
        raise BadInput(f"no cache {name!r} in CACHES (aliases: {', '.join(sorted(known))})")
    return name


#: the registry key of the storage backend the commands use unless told another
DEFAULT_STORAGE = "cache"
#: ... and the one they use when ``TRIGGERS_CACHE_ALIAS`` is None (no cache)
DATABASE_STORAGE = "database"


def default_storage() -> str:
    """The storage backend the commands use unless told another: the cache,
    or the database where ``TRIGGERS_CACHE_ALIAS = None`` says there is no cache."""
    from django.conf import settings

    if not settings.configured:  # the command line before it configured them
        return DEFAULT_STORAGE
    return DEFAULT_STORAGE if get_setting("TRIGGERS_CACHE_ALIAS") is not None else DATABASE_STORAGE

#: what :func:`lifetime` gives for a backend that does not say how long a session lives
LIFETIME_UNKNOWN: Any = object()


@dataclass(frozen=True)
class Place:
    """Where a command finds sessions: a storage backend by its registry key
    and, for the cache backend, the cache alias and the layout to write in."""

    storage: str = DEFAULT_STORAGE
    cache: str | None = None
    layout: str | None = None
    #: the database alias, for the database storage backend
    using: str | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], layout: bool = False) -> Place:
        """The place the command's options name (``--layout`` only when ``layout``)."""
        return cls(
            options.get("storage") or default_storage(),
            options.get("cache"),
            options.get("layout") if layout else None,
            options.get("using"),
        )


def _unknown_storage(name: str, known: list[str]) -> BadInput:
    return BadInput(f"no storage backend {name!r} (registered: {', '.join(known) or 'none'})")


def check_storage_name(name: str | None) -> None:
    """BadInput for a name the storage registry lacks (no plugin is imported)."""
    name, known = name or default_storage(), storage_backends.keys()
    if name not in known:
        raise _unknown_storage(name, known)


def storage_class(place: Place) -> type[BaseTriggerStorage]:
    """The backend class of ``place``; BadInput for an unknown name, or for
    ``--cache``/``--layout`` given with a backend that is not the cache's."""
    try:
        cls: type[BaseTriggerStorage] = storage_backends.get_class(place.storage)
    except UnknownRegistryKey as exc:
        raise _unknown_storage(place.storage, exc.known) from None
    if not issubclass(cls, CacheStorageBackend):
        for option, value in (("--cache", place.cache), ("--layout", place.layout)):
            if value is not None:
                raise BadInput(
                    f"{option} is an option of the cache storage backend;"
                    f" storage {place.storage!r} ({cls.__name__}) takes none"
                )
    if place.using is not None and not takes_database(cls):
        raise BadInput(
            f"--using is an option of the database storage backend;"
            f" storage {place.storage!r} ({cls.__name__}) takes none"
        )
    return cls


def takes_database(cls: type[BaseTriggerStorage]) -> bool:
    """Whether ``cls`` is the database storage backend (or built on it)."""
    from ..storages.database import DatabaseStorageBackend  # needs the app registry

    return issubclass(cls, DatabaseStorageBackend)


def open_storage(
    uid: str, place: Place | None = None, timeout: Any = LIFETIME_UNKNOWN
) -> BaseTriggerStorage:
    """A storage for ``uid`` built from the registry, refusing an invalid uid,
    an unknown backend or cache alias, or cache options for another backend.

    ``timeout`` (seconds, None: never) is the lifetime a cache session is
    saved with; other backends take theirs from the settings."""
    try:
        validate_uid(uid)
    except InvalidSessionUid as exc:
        raise BadInput(str(exc)) from None
    place = place or Place()
    cls = storage_class(place)
    if issubclass(cls, CacheStorageBackend):
        kwargs = {"cache": cache_alias(place.cache), "layout": place.layout}
        if timeout is not LIFETIME_UNKNOWN:
            kwargs["timeout"] = timeout
        return storage_backends.get(place.storage, uid, **kwargs)
    if place.using is not None:
        return storage_backends.get(place.storage, uid, using=database_alias(place.using))
    return storage_backends.get(place.storage, uid)


def database_alias(alias: str) -> str:
    """``alias`` if DATABASES names it, else BadInput naming the ones it does."""
    from django.conf import settings

    if alias not in settings.DATABASES:
        known = ", ".join(sorted(settings.DATABASES))
        raise BadInput(f"no database {alias!r} in DATABASES (databases: {known})")
    return alias


def open_session(uid: str, place: Place | None = None) -> BaseTriggerStorage:
    """The storage of an existing session: one with tasks or instances."""
    storage = open_storage(uid, place)
    if not storage.tasks and not len(storage.instances):
        if isinstance(storage, CacheStorageBackend):
            where = f"cache {cache_words(storage.cache)}"  # alias and address
        else:
            where = " ".join(location(storage, quote=True))
        raise BadInput(f"no session {uid!r} in {where}")
    return storage


def location(storage: BaseTriggerStorage, quote: bool = False) -> tuple[str, str]:
    """Where the session is, for the operator: ``("cache", alias)`` for the
    cache backend, else ``("storage", registry key)``; quoted with ``quote``."""
    if isinstance(storage, CacheStorageBackend) and storage.cache_alias is not None:
        kind, name = "cache", storage.cache_alias
    else:
        kind, name = "storage", storage_key(storage)
    return kind, repr(name) if quote else name


def storage_key(storage: BaseTriggerStorage) -> str:
    """The registry key of the storage's backend (its class name if it has none)."""
    return storage_backends.key_of(type(storage)) or type(storage).__name__


def lifetime(storage: BaseTriggerStorage) -> Any:
    """Seconds the session lives after a save (None: it never expires), as
    the backend's public ``lifetime`` says; LIFETIME_UNKNOWN if it has none."""
    return getattr(storage, "lifetime", LIFETIME_UNKNOWN)


def can_delete(storage: BaseTriggerStorage) -> bool:
    """Whether the backend implements :meth:`~BaseTriggerStorage.delete` (the
    base class's only says it does not)."""
    return type(storage).delete is not BaseTriggerStorage.delete


def cannot_delete(storage: BaseTriggerStorage) -> BadInput:
    """The refusal of a deletion the backend cannot do."""
    return BadInput(
        f"storage {storage_key(storage)!r} cannot delete a session:"
        f" {type(storage).__name__} does not implement delete()"
    )


def find_instance(storage: BaseTriggerStorage, name: str) -> TaskInstance:
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
    numbered = name_number(name)
    if numbered is not None and numbered[0]:
        return numbered[0], numbered[1], name
    return name, -1, name


def read_lines(path: str, option: str) -> list[str]:
    """The non-blank lines of ``path`` (``-``: standard input), stripped; BadInput
    naming ``option`` when the file cannot be read as text."""
    import sys

    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{option} {path}: {exc}") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


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
