"""``copy``: sessions moved from one storage to another without losing a fire.

Each session is copied while both its locks are held (the source's first),
so nothing is fired into it between the read and the write; the values go
across as they are (no JSON in between), and the source is left in place.
This is the way from the cache backend to the database backend.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Iterable, Iterator
from typing import Any

from ..storages.base import BaseTriggerStorage
from .common import (
    BadInput,
    OperatorError,
    Place,
    Writer,
    cache_alias,
    location,
    open_storage,
    storage_class,
    takes_database,
    write_json,
)
from .transfer import delete_to_replace, has_state, write_new

__all__ = ["copy_sessions", "every_uid"]


def _redis_uids(alias: str) -> Iterator[str]:
    """The uids of the sessions in a Redis cache (their heads), by SCAN."""
    from django.core.cache import caches

    from ..cache_internals import redis_codec
    from ..storages.cache.keys import KEY_PREFIX

    cache = caches[alias]
    try:
        codec = redis_codec(cache)
    except AttributeError:
        raise BadInput(
            f"cache {alias!r} cannot list its sessions (only Redis caches can);"
            " give the uids to copy"
        ) from None
    prefix = codec.make_key(KEY_PREFIX)
    if codec.make_key(KEY_PREFIX + "x") != prefix + "x":
        raise BadInput(f"cache {alias!r} has a KEY_FUNCTION that hides the uids; give them")
    pattern = "".join(f"[{c}]" if c in "*?[]\\" else c for c in prefix) + "*"
    for key in codec.client().scan_iter(match=pattern, count=500):
        text = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        if fnmatch.fnmatchcase(text, prefix + "*"):
            yield text[len(prefix) :]


def every_uid(place: Place) -> Iterator[str]:
    """Every session uid ``place`` can enumerate (BadInput where it cannot)."""
    cls = storage_class(place)
    if takes_database(cls):
        from ..storages.database.queries import live_sessions

        yield from live_sessions(place.using).order_by("uid").values_list("uid", flat=True)
        return
    if place.storage == "cache":
        yield from _redis_uids(cache_alias(place.cache))
        return
    raise BadInput(f"storage {place.storage!r} cannot list its sessions; give the uids to copy")


def _parts(storage: BaseTriggerStorage) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A deep copy of the session's tasks, instances and metadata, as plain data."""
    tasks = {name: config.serialize() for name, config in storage.tasks.items()}
    instances = {i.name: i.serialize() for i in storage.iter_instances()}
    return copy.deepcopy((tasks, instances, dict(storage.metadata)))


def _copy_one(uid: str, source_place: Place, target_place: Place, replace: bool) -> str:
    """Copy one session; what happened: copied, replaced, missing or exists."""
    source = open_storage(uid, source_place)
    target = open_storage(uid, target_place)
    if location(source) == location(target) and source_place.using == target_place.using:
        raise BadInput(f"the source and the target of session {uid!r} are the same place")
    with source.acquire_lock():
        if not has_state(source):
            return "missing"
        replaced = delete_to_replace(target) if replace else False
        with target.acquire_lock():
            if has_state(target):
                return "exists"
            write_new(target, *_parts(source))
    return "replaced" if replaced else "copied"


def copy_sessions(
    uids: Iterable[str],
    source_place: Place,
    target_place: Place,
    out: Writer,
    replace: bool = False,
    as_json: bool = False,
) -> None:
    """Copy each session; OperatorError at the end if any was not copied."""
    outcomes: dict[str, str] = {}
    for uid in uids:
        outcomes[uid] = _copy_one(uid, source_place, target_place, replace)
        if not as_json:
            out.write(f"{outcomes[uid]:8}  {uid}\n")
    failed = {uid: what for uid, what in outcomes.items() if what in ("missing", "exists")}
    if as_json:
        write_json(out, {"sessions": outcomes, "copied": len(outcomes) - len(failed)})
    elif not outcomes:
        out.write("no sessions to copy\n")
    if failed:
        raise OperatorError(
            f"{len(failed)} of {len(outcomes)} sessions were not copied"
            " (missing: not in the source; exists: give --replace to overwrite)"
        )
