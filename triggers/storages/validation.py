"""What a session accepts before anything reaches a cache: uids, names, values.

Every public method of the manager and the storage checks its input here,
where it enters, so that nothing deeper ever sees a bad value: a bad one
gets an error of this package naming it (through ``safe_repr``), before
the session is read or written.
"""

from __future__ import annotations

import math
import pickle
import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from ..errors import (
    InvalidArgument,
    InvalidSessionUid,
    InvalidTaskConfig,
    StorageCorrupted,
    UnknownCache,
    UnknownInstance,
    UnknownStatus,
    UnserializableValue,
    safe_repr,
)
from ..locking.drivers.base import is_cache
from ..names import is_name
from ..types import TaskConfig, TaskInstance

__all__ = [
    "MAX_DEPTH",
    "MAX_UID_BYTES",
    "check_cache",
    "check_configuration",
    "check_instance_fields",
    "check_layout",
    "check_flag",
    "check_instance_name",
    "has_plain_fields",
    "check_mapping",
    "check_picklable",
    "check_metadata",
    "check_status",
    "check_storable",
    "check_stored_metadata",
    "check_task_name",
    "check_timeout",
    "check_trigger_name",
    "check_trigger_names",
    "stored_record_config",
    "validate_uid",
]

#: Longest uid accepted, in UTF-8 bytes: keeps every derived cache key
#: within Memcached's 250-byte limit, with room for Django's key prefix.
MAX_UID_BYTES = 150

#: Deepest nesting of lists, tuples, sets and dicts a stored value may have:
#: deeper ones pickle, but copying or comparing them can exhaust the stack.
MAX_DEPTH = 100

_WHITESPACE = re.compile(r"\s")
_CONTAINERS = (dict, list, tuple, set, frozenset)
_STATUSES = TaskInstance.ALL_STATUSES


def validate_uid(uid: object) -> str:
    """Return ``uid`` if every supported cache can key it, else raise InvalidSessionUid."""
    if not isinstance(uid, str):
        raise InvalidSessionUid(uid, f"must be a string, not {type(uid).__name__}")
    uid = str.__str__(uid)  # a plain str: a subclass may hash or compare oddly
    if not uid:
        raise InvalidSessionUid(uid, "must not be empty")
    try:
        size = len(uid.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidSessionUid(uid, "is not valid Unicode (a lone surrogate)") from None
    if size > MAX_UID_BYTES:
        raise InvalidSessionUid(uid, f"longer than {MAX_UID_BYTES} bytes")
    if uid.isprintable() and _WHITESPACE.search(uid) is None:
        return uid
    for char in uid:
        if char.isspace() or not char.isprintable():
            raise InvalidSessionUid(uid, f"contains whitespace or a control character ({char!r})")
    return uid


# --------------------------------------------------------------------------- values


def _check_shape(what: str, value: Any) -> None:
    """UnserializableValue if ``value`` contains itself or nests deeper than MAX_DEPTH.

    The walk stops at MAX_DEPTH, so it cannot exhaust the stack itself, and
    visits each container once (shared ones included).
    """
    on_path: set[int] = set()
    done: set[int] = set()

    def walk(item: Any, depth: int) -> None:
        key = id(item)
        if key in on_path:
            raise UnserializableValue(what, value, ValueError("it contains itself"))
        if key in done:
            return
        if depth > MAX_DEPTH:
            raise UnserializableValue(what, value, ValueError(f"nested deeper than {MAX_DEPTH}"))
        on_path.add(key)
        if isinstance(item, dict):
            for child in item.values():
                if isinstance(child, _CONTAINERS):
                    walk(child, depth + 1)
            children: Any = item.keys()
        else:
            children = item
        for child in children:
            if isinstance(child, _CONTAINERS):
                walk(child, depth + 1)
        on_path.discard(key)
        done.add(key)

    if isinstance(value, _CONTAINERS):
        walk(value, 1)


def check_storable(what: str, value: Any) -> None:
    """Raise UnserializableValue now if ``value`` cannot be pickled by a cache.

    Also for a value that contains itself or nests deeper than MAX_DEPTH:
    it may pickle, but copying or comparing it later would fail.
    """
    try:
        _check_shape(what, value)
    except UnserializableValue:
        raise
    except Exception as exc:  # a container that cannot be walked (an odd subclass)
        raise UnserializableValue(what, value, exc) from exc
    check_picklable(what, value)


def check_picklable(what: str, value: Any) -> None:
    """Raise UnserializableValue if pickle refuses ``value`` (whatever pickle raised)."""
    try:
        pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # pickle raises several types for the same problem
        raise UnserializableValue(what, value, exc) from exc


def check_mapping(what: str, value: object) -> dict[Any, Any]:
    """``value`` as a new plain dict, if it is a storable mapping; else a typed error."""
    if not isinstance(value, (dict, Mapping)):
        raise InvalidArgument(what, value, f"must be a dict, not {type(value).__name__}")
    try:
        plain = dict(value)
    except Exception as exc:  # a mapping whose items cannot be read
        raise InvalidArgument(
            what, value, f"its items cannot be read ({type(exc).__name__})"
        ) from exc
    check_storable(what, plain)
    return plain


def _number(value: object, integral: bool) -> bool:
    if isinstance(value, bool):
        return False
    if integral:
        return isinstance(value, int) and value >= 0
    return isinstance(value, (int, float)) and math.isfinite(value) and value >= 0


#: the metadata keys the package reads back, and what each must hold
_RESERVED: dict[str, tuple[str, Any]] = {
    TaskInstance.META_TIMESTAMPS: ("a dict", lambda v: isinstance(v, dict)),
    TaskInstance.META_DEPTH: ("a whole number >= 0", lambda v: _number(v, True)),
    TaskInstance.META_COOLDOWN: ("a finite number of seconds >= 0", lambda v: _number(v, False)),
    TaskInstance.META_LOG_LEVEL: (
        "a logging level (an int)",
        lambda v: isinstance(v, int) and not isinstance(v, bool),
    ),
    TaskInstance.META_LOGS_RESOLVED: ("True or False", lambda v: isinstance(v, bool)),
    TaskInstance.META_PARENT: ("an instance name or None", lambda v: v is None or is_name(v)),
}


def check_metadata(what: str, value: object) -> dict[Any, Any]:
    """Instance metadata as a plain dict: storable, and the keys the package reads well-typed."""
    plain = check_mapping(what, value)
    for key, (expected, accepts) in _RESERVED.items():
        if key in plain and not accepts(plain[key]):
            raise InvalidArgument(f"{what} {key!r}", plain[key], f"must be {expected}")
    return plain


def check_flag(what: str, value: object) -> bool:
    """A yes-or-no argument: a bool (or 0 and 1, as 2.x callers passed)."""
    if isinstance(value, bool):
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    raise InvalidArgument(what, value, "must be True or False")


# --------------------------------------------------------------------------- names


def check_trigger_name(value: object, what: str = "trigger name") -> str:
    """A trigger name as a plain str: non-empty, valid Unicode."""
    if not is_name(value):
        raise InvalidArgument(what, value, "must be a non-empty string of valid Unicode")
    assert isinstance(value, str)
    return str.__str__(value)


def check_trigger_names(what: str, value: object) -> set[str]:
    """A collection of trigger names (an instance's abandon state)."""
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise InvalidArgument(what, value, "must be a list of trigger names")
    return {check_trigger_name(name, f"trigger name in {what}") for name in value}


def check_instance_name(value: object, uid: str) -> str:
    """The name of an instance (or of the TaskInstance given); UnknownInstance for a non-name."""
    name = value.name if isinstance(value, TaskInstance) else value
    if not is_name(name):
        raise UnknownInstance(name, uid)
    assert isinstance(name, str)
    return str.__str__(name)


def check_task_name(value: object) -> str | None:
    """The name of a task (or of the TaskConfig given); None if it cannot be one."""
    name = value.name if isinstance(value, TaskConfig) else value
    return str.__str__(name) if is_name(name) else None


def check_status(value: object) -> str:
    """One of TaskInstance.ALL_STATUSES, as a plain str."""
    if not isinstance(value, str) or str.__str__(value) not in TaskInstance.ALL_STATUSES:
        raise UnknownStatus(value, sorted(TaskInstance.ALL_STATUSES))
    return str.__str__(value)


_INSTANCE_FIELDS = frozenset({"status", "metadata", "kwargs", "abandonState"})


def check_instance_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields of a new instance, checked (InvalidArgument, UnserializableValue)."""
    checked: dict[str, Any] = {}
    for key, value in fields.items():
        if key not in _INSTANCE_FIELDS:
            raise InvalidArgument(
                "keyword", key, "an instance takes status, metadata, kwargs and abandonState"
            )
        if value is None:
            checked[key] = None
        elif key == "status":
            checked[key] = check_status(value)
        elif key == "metadata":
            checked[key] = check_metadata("instance metadata", value)
        elif key == "kwargs":
            checked[key] = check_mapping("instance kwargs", value)
        else:
            checked[key] = check_trigger_names("abandonState", value)
    return checked


def check_configuration(config_dict: object) -> dict[str, TaskConfig]:
    """Every definition built and found storable (InvalidTaskConfig, UnserializableValue)."""
    if not isinstance(config_dict, (dict, Mapping)):
        raise InvalidTaskConfig(config_dict, "the configuration must be a dict of task definitions")
    try:
        definitions = list(config_dict.items())
    except Exception as exc:  # a mapping whose items cannot be read
        raise InvalidTaskConfig(
            config_dict, f"the configuration cannot be read ({type(exc).__name__})"
        ) from None
    built = {}
    for name, definition in definitions:
        config = TaskConfig.from_definition(name, definition)
        check_storable(f"the definition of task {safe_repr(name)}", config.serialize())
        built[config.name] = config
    return built


# --------------------------------------------------------------------------- storage arguments


def check_timeout(value: Any) -> Any:
    """A positive, finite number of seconds (not a bool), or None for no expiry."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidArgument("timeout", value, "must be a positive number of seconds or None")
    if not math.isfinite(value):
        raise InvalidArgument("timeout", value, "must be finite (None for no expiry)")
    return value


def check_layout(value: object, layouts: tuple[str, ...]) -> str:
    """One of ``layouts``, as a plain str."""
    if not isinstance(value, str) or str.__str__(value) not in layouts:
        raise InvalidArgument("layout", value, f"must be one of {layouts}")
    return str.__str__(value)


def check_cache(value: object) -> None:
    """A cache alias of ``CACHES``, or a Django cache object."""
    if is_cache(value):
        return
    if not isinstance(value, str):
        raise InvalidArgument("cache", value, "must be a cache alias or a Django cache object")
    if str.__str__(value) not in settings.CACHES:
        raise UnknownCache("cache", value, f"is not an alias in CACHES ({sorted(settings.CACHES)})")


# --------------------------------------------------------------- read back


def check_stored_metadata(uid: str, metas: Any) -> dict[str, Any]:
    """A session's stored metadata as a new dict holding ``latest_kwargs`` (StorageCorrupted)."""
    if not isinstance(metas, (dict, Mapping)):
        raise StorageCorrupted(uid, f"metadata must be a dict, not {metas!r}")
    built: dict[str, Any] = dict(metas)
    if not isinstance(built.setdefault("latest_kwargs", {}), dict):
        raise StorageCorrupted(uid, f"latest_kwargs must be a dict, not {built['latest_kwargs']!r}")
    return built


def stored_record_config(
    uid: str, configs: Mapping[str, TaskConfig], name: str, data: Any
) -> TaskConfig:
    """The config of a stored instance record, if the record is one (else StorageCorrupted)."""
    if type(data) is dict:
        # The record as this package writes it, checked in fewer steps (this runs
        # once per record of a session read whole); any other is checked below.
        get = data.get
        task: Any = get("task")
        if has_plain_fields(task, get("status"), get("metadata"), get("kwargs"), get("abandonState")):
            config = configs.get(task)
            if config is not None:
                return config
    if not isinstance(data, (dict, Mapping)) or "task" not in data:
        raise StorageCorrupted(uid, f"instance {name!r} is stored as {data!r}")
    try:
        config = configs[data["task"]]
    except (KeyError, TypeError):
        raise StorageCorrupted(
            uid, f"instance {name!r} belongs to task {data['task']!r}, which is not configured"
        ) from None
    if not _stored_fields_are_valid(data):
        raise StorageCorrupted(uid, f"instance {name!r} is stored as {data!r}")
    return config


def has_plain_fields(task: Any, status: Any, metadata: Any, kwargs: Any, abandon_state: Any) -> bool:
    """Whether a record's fields have exactly the types :meth:`TaskInstance.serialize`
    gives them (a task name, a known status, two dicts, a list of trigger names),
    all of which :func:`_stored_fields_are_valid` accepts."""
    return (
        type(task) is str
        and type(status) is str
        and status in _STATUSES
        and type(metadata) is dict
        and type(kwargs) is dict
        and type(abandon_state) is list
        and (not abandon_state or all(type(trigger) is str for trigger in abandon_state))
    )


def _stored_fields_are_valid(data: Mapping[str, Any]) -> bool:
    """Whether a stored instance record's fields have the types a TaskInstance takes."""
    status = data.get("status")
    metadata = data.get("metadata")
    kwargs = data.get("kwargs")
    abandon_state = data.get("abandonState")
    return (
        (status is None or (isinstance(status, str) and status in _STATUSES))
        and (metadata is None or isinstance(metadata, dict))
        and (kwargs is None or isinstance(kwargs, dict))
        and (
            abandon_state is None
            or (
                isinstance(abandon_state, (list, tuple, set, frozenset))
                and all(isinstance(trigger, str) for trigger in abandon_state)
            )
        )
    )
