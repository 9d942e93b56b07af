"""``dump UID`` and ``load FILE``: a session as a JSON document, and back into a storage.

The document holds the session's task configurations, instances and
metadata in the forms :meth:`~triggers.storages.base.BaseTriggerStorage.debug_repr`
gives, with every value encoded by :mod:`.codec` so that loading it gives
back equal values (datetimes, sets, tuples, bytes...). Dumping a loaded
session gives the same document, but for its uid.

Loading checks the whole document before it writes anything, and writes
under the session's lock through the storage's public API
(``update_configuration``, then the instances and metadata, then
``save``), so it works on any storage backend. A session replaced
(``--replace``) is deleted first (``storage.delete()``, which on the cache
backend takes a damaged session too), so no process that remembers the
old session can commit over the new one: its witness is gone. A backend
that does not implement ``delete()`` cannot replace a session: that is
refused, and nothing is written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InvalidSessionUid, InvalidTaskConfig, StorageCorrupted
from ..storages.base import BaseTriggerStorage, validate_uid
from ..types import TaskConfig, TaskInstance
from .codec import UnencodableValue, decode, encode
from .common import (
    LIFETIME_UNKNOWN,
    BadInput,
    OperatorError,
    Place,
    Writer,
    can_delete,
    cannot_delete,
    instance_order,
    lifetime,
    location,
    open_storage,
    storage_key,
    write_json,
)

__all__ = [
    "DUMP_FORMAT",
    "DUMP_VERSION",
    "delete_to_replace",
    "dump",
    "dump_document",
    "dump_lifetime",
    "has_state",
    "load",
    "read_document",
    "write_new",
]

DUMP_FORMAT = "triggers-session"
DUMP_VERSION = 1


def dump_document(storage: BaseTriggerStorage) -> dict[str, Any]:
    """The session as a JSON-ready document."""
    state = storage.debug_repr()
    try:
        encoded = {part: encode(state[part], part) for part in ("tasks", "instances", "metas")}
    except UnencodableValue as exc:
        raise OperatorError(f"session {storage.uid!r}: {exc}") from None
    document = {"format": DUMP_FORMAT, "version": DUMP_VERSION, "uid": storage.uid, **encoded}
    seconds = lifetime(storage)
    if seconds is not LIFETIME_UNKNOWN:
        # Seconds it lives after a save (None: never), for load to restore.
        document["lifetime"] = seconds
    return document


def dump_lifetime(document: Mapping[str, Any]) -> Any:
    """The lifetime a dump carries (LIFETIME_UNKNOWN for a dump made before
    dumps carried one); BadInput for one no session can have."""
    if "lifetime" not in document:
        return LIFETIME_UNKNOWN
    value = document["lifetime"]
    if value is None or (type(value) in (int, float) and math.isfinite(value) and value > 0):
        return value
    raise BadInput(
        "the dump's lifetime must be a positive number of seconds or null (never expires),"
        f" not {value!r}"
    )


def dump(storage: BaseTriggerStorage, out: Writer, output: str | None = None) -> None:
    text = json.dumps(
        dump_document(storage), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False
    )
    if output is None:
        out.write(text + "\n")
        return
    try:
        Path(output).write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot write {output}: {exc.strerror or exc}") from None
    out.write(f"dumped session {storage.uid} to {output}\n")


def read_document(path: str) -> dict[str, Any]:
    """The dump document in ``path``, as JSON (not decoded yet)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise BadInput(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != DUMP_FORMAT:
        raise BadInput(f'{path} is not a session dump (no "format": "{DUMP_FORMAT}")')
    if document.get("version") != DUMP_VERSION:
        raise BadInput(
            f"{path} is a dump of version {document.get('version')!r};"
            f" this version of triggers reads version {DUMP_VERSION}"
        )
    return document


def _check_instance(name: Any, data: Any, tasks: Mapping[str, Any]) -> None:
    if not isinstance(name, str) or not name:
        raise BadInput(f"an instance name must be a non-empty string, not {name!r}")
    if not isinstance(data, dict) or not isinstance(data.get("task"), str):
        raise BadInput(f"instance {name!r} is not a stored instance (no task)")
    if data["task"] not in tasks:
        raise BadInput(f"instance {name!r} belongs to task {data['task']!r}, which the dump lacks")
    if data.get("status") not in TaskInstance.ALL_STATUSES | {None}:
        raise BadInput(f"instance {name!r} has the unknown status {data.get('status')!r}")
    for part in ("metadata", "kwargs"):
        if not isinstance(data.get(part, {}), (dict, type(None))):
            raise BadInput(f"instance {name!r}: {part} must be an object")
    abandon = data.get("abandonState") or []
    if not isinstance(abandon, list) or not all(isinstance(t, str) for t in abandon):
        raise BadInput(f"instance {name!r}: abandonState must be a list of trigger names")


def _session_parts(
    document: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Tasks, instances and metadata of a dump, decoded and checked."""
    try:
        tasks, instances, metas = (decode(document.get(p)) for p in ("tasks", "instances", "metas"))
    except ValueError as exc:
        raise BadInput(f"the dump holds a value it cannot have: {exc}") from None
    for part, value in (("tasks", tasks), ("instances", instances), ("metas", metas)):
        if not isinstance(value, dict):
            raise BadInput(f"the dump's {part!r} must be an object")
    for name, definition in tasks.items():
        try:
            TaskConfig.from_definition(name, definition)
        except (InvalidTaskConfig, TypeError, ValueError) as exc:
            raise BadInput(f"task {name!r} of the dump: {exc}") from None
    for name, data in instances.items():
        _check_instance(name, data, tasks)
    if not isinstance(metas.get("latest_kwargs", {}), dict):
        raise BadInput("the dump's latest_kwargs must be an object")
    return tasks, instances, metas


def has_state(storage: BaseTriggerStorage) -> bool:
    return bool(storage.tasks or len(storage.instances) or any(storage.metadata.values()))


def write_new(
    storage: BaseTriggerStorage,
    tasks: dict[str, Any],
    instances: dict[str, Any],
    metas: dict[str, Any],
) -> None:
    """Install the session in a storage that holds none (the caller holds the lock)."""
    storage.update_configuration(tasks)
    configs = storage.tasks
    # In name order, so that "t#0", "t#1"... keep their regular numbering.
    for name in sorted(instances, key=instance_order):
        data = instances[name]
        storage.instances.add(
            TaskInstance(
                name=name,
                config=configs[data["task"]],
                status=data.get("status"),
                metadata=data.get("metadata"),
                kwargs=data.get("kwargs"),
                abandonState=data.get("abandonState"),
            )
        )
    storage.metadata.update(metas)
    storage.save()


def _readable_state(storage: BaseTriggerStorage, replace: bool) -> bool:
    """Whether the session holds anything; a damaged one that is to be
    replaced counts as nothing here (``delete()`` takes it all the same)."""
    try:
        return has_state(storage)
    except StorageCorrupted:
        if not replace:
            raise
        return False


def delete_to_replace(storage: BaseTriggerStorage) -> bool:
    """Delete the session ``load --replace`` replaces; whether there was one.

    Refused (nothing written) when there is one and the backend cannot delete.
    """
    if can_delete(storage):
        return storage.delete()
    if has_state(storage):
        raise cannot_delete(storage)
    return False


def load(
    document: dict[str, Any],
    out: Writer,
    place: Place | None = None,
    uid: str | None = None,
    replace: bool = False,
    as_json: bool = False,
) -> BaseTriggerStorage:
    """Write a dumped session into the storage, under ``uid`` or the one it was dumped from,
    with the lifetime it carries (where the backend keeps one per session)."""
    uid = uid if uid is not None else document.get("uid")
    try:
        validate_uid(uid)
    except InvalidSessionUid as exc:
        raise BadInput(str(exc)) from None
    assert isinstance(uid, str)
    tasks, instances, metas = _session_parts(document)
    storage = open_storage(uid, place, timeout=dump_lifetime(document))
    kind, where = location(storage)
    # Deleted first, readable or not (damaged), under its own lock: on
    # Memcached a save is fenced by the head it found, so the new session
    # is written under a lock taken after the old head is gone.
    # Read first, as every command does: a cache that is down is reported
    # alike (BackendUnavailable), and a session there is refused at once.
    if _readable_state(storage, replace) and not replace:
        raise BadInput(
            f"session {uid!r} already exists in {kind} {where!r};"
            " give --replace to overwrite it, or --uid to load it under another uid"
        )
    replaced = delete_to_replace(storage) if replace else False
    storage.invalidate_cache()  # read again under the lock
    with storage.acquire_lock():
        if has_state(storage):
            raise BadInput(
                f"session {uid!r} already exists in {kind} {where!r};"
                " give --replace to overwrite it, or --uid to load it under another uid"
                if not replace
                else f"session {uid!r} was written again while it was being replaced;"
                " nothing was loaded: run the command again"
            )
        write_new(storage, tasks, instances, metas)
    what = "replaced" if replaced else "loaded"
    if as_json:
        done: dict[str, Any] = {"action": what, "uid": uid, "storage": storage_key(storage)}
        done["cache"] = where if kind == "cache" else None
        done.update(tasks=len(tasks), instances=len(instances))
        seconds = lifetime(storage)
        if seconds is not LIFETIME_UNKNOWN:
            done["lifetime"] = seconds
        write_json(out, done)
        return storage
    out.write(
        f"{what} session {uid} in {kind} {where}: {len(tasks)} tasks, {len(instances)} instances\n"
    )
    return storage
