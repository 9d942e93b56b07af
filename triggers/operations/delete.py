"""``delete``: an operator removing a whole session, so that its uid starts over.

The command says what it would remove and does nothing without ``--yes``;
with it, the storage's public ``delete()`` removes the session (on the
cache backend, :meth:`~triggers.storages.cache.CacheStorageBackend.delete`
removes every key of the session under its lock). A session that cannot be
read (damaged) is deleted all the same: that is how an operator clears it.
A backend that does not implement ``delete()`` is refused (bad input) before
anything is done, ``--yes`` or not.
"""

from __future__ import annotations

from typing import Any

from ..errors import StorageCorrupted, StoredByNewerVersion
from .common import (
    BadInput,
    Place,
    Writer,
    can_delete,
    cannot_delete,
    location,
    open_storage,
    storage_key,
    write_json,
)

__all__ = ["delete"]


def _contents(storage: Any) -> tuple[dict[str, Any], str]:
    """What the session holds (counts, or why they are unknown), and that said in words."""
    try:
        tasks, instances = len(storage.tasks), len(storage.instances)
        extra = set(storage.metadata) - {"latest_kwargs"}
        stored = bool(tasks or instances or storage.latest_kwargs or extra)
    except StoredByNewerVersion as exc:
        # Not damage, and its other keys are not known here: say what goes.
        words = (
            f"stored by a newer version of triggers, in format {exc.stored_format!r}: its"
            " head and witness go, its other keys expire with the session's lifetime"
        )
        return {"newerFormat": exc.stored_format}, words
    except StorageCorrupted as exc:
        return {"damaged": str(exc)}, f"damaged: {exc}"
    if not stored:
        return {}, ""
    return {"tasks": tasks, "instances": instances}, f"{tasks} tasks, {instances} instances"


def delete(
    uid: str, out: Writer, place: Place | None = None, yes: bool = False, as_json: bool = False
) -> None:
    """Delete session ``uid`` (only with ``yes``; otherwise say what would go)."""
    storage = open_storage(uid, place)
    kind, name = location(storage)
    where = f"session {uid!r} in {kind} {name!r}"
    facts, words = _contents(storage)
    if not facts:
        raise BadInput(f"no {where}: nothing to delete")
    if not can_delete(storage):
        raise cannot_delete(storage)
    if not yes:
        raise BadInput(f"this deletes {where} ({words}) for good; give --yes to do it")
    storage.delete()
    if as_json:
        cache = name if kind == "cache" else None
        done = {"uid": uid, "storage": storage_key(storage), "cache": cache, "deleted": True}
        write_json(out, {**done, **facts})
        return
    out.write(f"deleted {where} ({words})\n")
