"""What one read of a cache session found, and where an unlocked try starts from.

:class:`ReadState` is everything a storage object learnt from reading its
session once (the layout it was stored in, the head, the indexes, the
records as read) and what its saves since then made of it; a new read
replaces it whole. :class:`Known` is the state an unlocked try starts from:
the head and witness as stored, and the records known to go with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...locking.versions import generation_of
from ...locking.writes import Writes

if TYPE_CHECKING:
    from .layouts import Layout

__all__ = ["LIFETIME_UNKNOWN", "Known", "ReadState"]

#: what a session stored without a lifetime (by 2.x, or before lifetimes were stored) has
LIFETIME_UNKNOWN: Any = object()


def _empty_table() -> dict[str, Any]:
    return {"tasks": {}, "triggers": {}}


@dataclass
class ReadState:
    """One read of a session, and the saves made on it since."""

    #: the layout the session was stored in (None: nothing stored)
    layout: Layout | None = None
    #: the split head as read (or as the last save wrote it)
    head: dict[str, Any] | None = None
    #: unstarted instances by task, as this object knows them
    open: dict[str, set[str]] = field(default_factory=dict)
    #: the same index as stored in the head
    stored_open: dict[str, list[str]] = field(default_factory=dict)
    #: the witness as read (None: none), which names the state read
    witness: int | None = None
    #: pickled records as read, to tell which changed (under the lock)
    snapshots: dict[str, bytes] = field(default_factory=dict)
    #: tasks whose configuration this object changed
    changed_tasks: set[str] = field(default_factory=set)
    #: the version and table of this session's first configuration, when known
    first_table: tuple[str, dict[str, Any]] | None = None
    #: the head and witness read with the lock (or handed to a try), for the next load
    prefetched: dict[str, Any] | None = None
    #: the task table of the head's version
    table: dict[str, Any] = field(default_factory=_empty_table)
    #: the version of every task table the session has written
    table_versions: list[str] = field(default_factory=list)
    #: pickled records known to be as stored in the state this try starts from
    known_records: dict[str, bytes] = field(default_factory=dict)
    #: other keys read together with the head this try starts from, by key, as
    #: the cache driver decodes them: this try's reads of them need no request
    stored: dict[str, Any] = field(default_factory=dict)
    #: the records of a session read in the single layout, as read
    single_records: dict[str, Any] = field(default_factory=dict)
    #: the lifetime stored with the session (LIFETIME_UNKNOWN: none)
    stored_lifetime: Any = LIFETIME_UNKNOWN
    #: what the last save recorded, to be written by the guard it ran under
    pending: Writes | None = None
    #: every loaded record as the last save pickled it (what a commit of it holds)
    saved_records: dict[str, bytes] | None = None
    #: the witness the last save wrote (its generation and token)
    saved_witness: int = 0

    @property
    def witness_generation(self) -> int:
        """The generation of the witness as read (0: none)."""
        return generation_of(self.witness)


@dataclass
class Known:
    """The state an unlocked try starts from: ``values`` (the head and the
    witness, by key, as stored or decoded), the pickled ``records`` known to
    belong to it, the SHA-1 of the head as stored when known (a commit
    then checks the head is still those bytes), and ``stored``: other keys
    read in the same atomic step as the head (by key, driver-decoded), for
    the first try from it only. ``read``: it was read (or a refused commit
    brought it back), not assumed: empty then means nothing is stored.
    ``unverified``: names of ``records`` known of an earlier state only (handed
    to a worker), which the commit checks are still stored as they are."""

    values: dict[str, Any] = field(default_factory=dict)
    records: dict[str, bytes] = field(default_factory=dict)
    head_digest: str | None = None
    stored: dict[str, Any] = field(default_factory=dict)
    read: bool = False
    unverified: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.values)
