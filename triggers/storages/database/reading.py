"""Reading a session's rows: the session row, and its instance rows by what is asked."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import connections
from django.db.models import FilteredRelation, OuterRef, Q, Subquery

from ...errors import StorageCorrupted
from . import tables
from .rows import INSTANCE_FIELDS

__all__ = ["SessionRow", "instance_rows", "read_session", "read_session_with"]

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
            and all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts.values()
            )
            and all(
                isinstance(names, list) and all(isinstance(n, str) for n in names)
                for names in irregular.values()
            )
        )
        if not valid:
            raise StorageCorrupted(uid, f"its instance index is {self.index!r}")
        return counts, irregular


def _claimed_on_sqlite(using: str, uid: str) -> list[tuple[Any, ...]]:
    """On SQLite, the row read by the write that takes the database's write lock
    (a transaction that read first and wrote later could meet another writer)."""
    meta = tables.Session._meta
    columns = [meta.get_field("id" if f == "pk" else f).column for f in _SESSION_FIELDS]
    table = connections[using].ops.quote_name(meta.db_table)
    token = connections[using].ops.quote_name(meta.get_field("lock_token").column)
    uid_column = connections[using].ops.quote_name(meta.get_field("uid").column)
    returning = ", ".join(connections[using].ops.quote_name(c) for c in columns)
    sql = f"UPDATE {table} SET {token} = {token} WHERE {uid_column} = %s RETURNING {returning}"
    return [
        tuple(getattr(row, "pk" if f == "pk" else f) for f in _SESSION_FIELDS)
        for row in tables.Session.objects.using(using).raw(sql, [uid])
    ]


def read_session(using: str, uid: str, for_update: bool = False) -> SessionRow:
    """The session's row (locked for the caller's transaction with ``for_update``)."""
    if for_update and connections[using].vendor == "sqlite":
        found = _claimed_on_sqlite(using, uid)
    else:
        rows = tables.Session.objects.using(using).filter(uid=uid)
        if for_update:
            rows = rows.select_for_update()
        found = list(rows.values_list(*_SESSION_FIELDS))
    return _session_row(uid, found[0] if found else None)


def _session_row(uid: str, values: tuple[Any, ...] | None) -> SessionRow:
    if values is None:
        return SessionRow()
    pk, digest, metadata, index, lifetime, expires, token, lock_expires, modified = values
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


def read_session_with(
    using: str, uid: str, names: list[str], unstarted_of: list[str]
) -> tuple[SessionRow, list[dict[str, Any]]]:
    """The session's row, locked for the caller's transaction, and in the same
    statement the instance rows ``names`` and the unstarted ones of the tasks
    ``unstarted_of`` (on SQLite, whose lock is taken by a write, in two)."""
    if not names and not unstarted_of:
        return read_session(using, uid, for_update=True), []
    connection = connections[using]
    if connection.vendor == "sqlite" or len(names) > NAMES_PER_QUERY:
        row = read_session(using, uid, for_update=True)
        if row.pk is None:
            return row, []
        counts, irregular = row.counts(uid)
        unstarted_of = [t for t in unstarted_of if counts.get(t) or irregular.get(t)]
        if not names and not unstarted_of:
            return row, []
        return row, instance_rows(using, row.pk, names=names, unstarted_of=unstarted_of)
    wanted = Q(instances__name__in=names) if names else Q(pk__in=[])
    if unstarted_of:
        wanted |= Q(instances__task__in=unstarted_of, instances__status="unstarted")
    rows = (
        tables.Session.objects.using(using)
        .filter(uid=uid)
        .annotate(wanted=FilteredRelation("instances", condition=wanted))
    )
    # PostgreSQL locks only the session's row (FOR UPDATE OF); MySQL locks the
    # instance rows read with it too, which only the session's lock holder writes.
    of = ("self",) if connection.features.has_select_for_update_of else ()
    rows = rows.select_for_update(of=of)
    joined = [f"wanted__{f}" for f in INSTANCE_FIELDS]
    revisions: list[str] = []
    if connection.vendor == "postgresql":
        rows = rows.annotate(seen_revision=_revision_in_snapshot())
        revisions = ["revision", "seen_revision"]
    found = list(rows.values_list(*_SESSION_FIELDS, *revisions, *joined))
    if not found:
        return SessionRow(), []
    session_width = len(_SESSION_FIELDS)
    width = session_width + len(revisions)
    first = found[0]
    row = _session_row(uid, first[:session_width])
    if revisions and first[session_width] != first[session_width + 1]:
        # The read waited for a commit: the row locked is the committed one,
        # the instances joined are as they were when the read began.
        assert row.pk is not None
        return row, instance_rows(using, row.pk, names=names, unstarted_of=unstarted_of)
    instances = [
        dict(zip(INSTANCE_FIELDS, values[width:], strict=True))
        for values in found
        if values[width] is not None
    ]
    return row, instances


def _revision_in_snapshot() -> Subquery:
    """The session's revision as the statement's snapshot holds it.

    A PostgreSQL locking read that waits for another transaction returns the
    row as that one committed it, but every other row as of the statement's
    start: a revision that differs from the locked row's tells that it waited
    (every commit that writes instance rows moves the revision: see
    :mod:`.writing`).
    """
    return Subquery(tables.Session.objects.filter(pk=OuterRef("pk")).values("revision")[:1])


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
    """Instance rows of a session: every one (neither argument), or those
    ``names`` and the unstarted ones of the tasks ``unstarted_of``, in one query
    where they fit."""
    rows = tables.Instance.objects.using(using).filter(session_id=session_pk)
    if names is None and unstarted_of is None:
        return list(rows.values(*INSTANCE_FIELDS))
    unstarted = Q()
    tasks = list(unstarted_of or ())
    if tasks:
        unstarted = Q(task__in=tasks, status="unstarted")
    chunks = list(_chunks(list(names or ()))) or [[]]
    found: list[dict[str, Any]] = []
    for n, chunk in enumerate(chunks):
        wanted = Q(name__in=chunk) if chunk else Q(pk__in=[])
        if n == 0 and tasks:
            wanted |= unstarted
        found.extend(rows.filter(wanted).values(*INSTANCE_FIELDS))
    return found
