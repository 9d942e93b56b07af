"""Reading a session's rows: the session row, and its instance rows by what is asked."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ...errors import StorageCorrupted
from ...models import Instance, Session
from .rows import INSTANCE_FIELDS

__all__ = ["SessionRow", "instance_rows", "read_session"]

#: instance names asked for in one query (SQLite takes at most 999 parameters
#: in old builds)
NAMES_PER_QUERY = 500

_SESSION_FIELDS = (
    "pk",
    "configuration_id",
    "metadata",
    "instance_index",
    "lifetime",
    "expires",
    "lock_token",
    "lock_expires",
    "modified",
)


@dataclass(frozen=True)
class SessionRow:
    """A session row as read (``pk`` None: there is none)."""

    pk: int | None = None
    digest: str | None = None
    metadata: bytes = b""
    index: dict[str, Any] = field(default_factory=dict)
    lifetime: float | None = None
    expires: dt.datetime | None = None
    lock_token: str = ""
    lock_expires: dt.datetime | None = None
    modified: dt.datetime | None = None
    #: the row had expired when it was read: the session starts over
    stale: bool = False

    @property
    def exists(self) -> bool:
        return self.pk is not None

    def expired(self, now: dt.datetime) -> bool:
        return self.expires is not None and self.expires <= now

    def locked(self, now: dt.datetime) -> bool:
        """Whether a holder's lock is in force at ``now``."""
        return bool(self.lock_token) and (self.lock_expires is None or self.lock_expires >= now)

    def counts(self, uid: str) -> tuple[dict[str, int], dict[str, list[str]]]:
        """The instance index: counts of regularly named instances, and the other names."""
        counts = self.index.get("counts", {})
        irregular = self.index.get("irregular", {})
        valid = (
            isinstance(counts, dict)
            and isinstance(irregular, dict)
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts.values())
            and all(
                isinstance(names, list) and all(isinstance(n, str) for n in names)
                for names in irregular.values()
            )
        )
        if not valid:
            raise StorageCorrupted(uid, f"its instance index is {self.index!r}")
        return counts, irregular


def read_session(using: str, uid: str, for_update: bool = False) -> SessionRow:
    """The session's row (locked for the caller's transaction with ``for_update``)."""
    rows = Session.objects.using(using).filter(uid=uid)
    if for_update:
        rows = rows.select_for_update()
    found = list(rows.values_list(*_SESSION_FIELDS))
    if not found:
        return SessionRow()
    pk, digest, metadata, index, lifetime, expires, token, lock_expires, modified = found[0]
    if not isinstance(index, dict):
        raise StorageCorrupted(uid, f"its instance index is {index!r}")
    return SessionRow(
        pk,
        digest,
        bytes(metadata or b""),
        index,
        lifetime,
        expires,
        token or "",
        lock_expires,
        modified,
    )


def _chunks(names: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(names), NAMES_PER_QUERY):
        yield names[start : start + NAMES_PER_QUERY]


def instance_rows(
    using: str,
    session_pk: int,
    *,
    names: Iterable[str] | None = None,
    unstarted_of: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """Instance rows of a session: every one, those ``names``, or the
    unstarted ones of the tasks ``unstarted_of``."""
    rows = Instance.objects.using(using).filter(session_id=session_pk)
    if unstarted_of is not None:
        rows = rows.filter(task__in=list(unstarted_of), status="unstarted")
    if names is None:
        return list(rows.values(*INSTANCE_FIELDS))
    found: list[dict[str, Any]] = []
    for chunk in _chunks(list(names)):
        found.extend(rows.filter(name__in=chunk).values(*INSTANCE_FIELDS))
    return found
