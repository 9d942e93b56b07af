"""What this process last committed of each session, so its next try starts there.

A storage object that commits without the lock knows the state it wrote:
the head, the witness and every instance record it had loaded or changed.
Another storage object of the same session in this process (the task a
fire just readied, a sibling task in another thread) starts its first try
from that state instead of reading it, and reads no record it holds. The
conditional commit checks that the witness is exactly the one remembered
(a generation and the random token of the save that wrote it), so a stale
entry costs one refused commit and is never written over newer state, even
when the session was deleted, expired or rolled back since.
"""

from __future__ import annotations

import pickle
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from ...locking.versions import generation_of
from ...process_state import register_state
from .read_state import Known

__all__ = ["CommittedHeads", "committed_heads", "generation"]

#: how many stripes the per-session turn-taking of a process's threads uses
TURN_STRIPES = 64
#: the most records kept per session, and the most sessions kept
RECORDS_PER_SESSION = 64
SESSIONS = 2048


def generation(known: Known | None, witness_key: str) -> int:
    """The witness generation of a starting point (0: none)."""
    return generation_of(known.values.get(witness_key) if known is not None else None)


@dataclass
class _Entry:
    #: the head and witness, the records known with them, the head's digest
    known: Known
    #: the witness of the state ``known`` describes
    witness: int


class CommittedHeads:
    """The state each session last committed from this process, by its identity.

    Keyed by the session's identity (server and full key), so two caches
    never mix; bounded, least recently used first out.
    """

    def __init__(self) -> None:
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._turns = [threading.RLock() for _ in range(TURN_STRIPES)]

    def get(self, identity: Hashable) -> Known | None:
        """The state last committed (head, witness, records, the head's digest), or None."""
        with self._lock:
            entry = self._entries.get(identity)
            if entry is None:
                return None
            self._entries.move_to_end(identity)
            # Shared, not copied: an entry's records are replaced, never changed.
            known = entry.known
            return Known(dict(known.values), known.records, known.head_digest)

    def put(
        self,
        identity: Hashable,
        known: Known,
        witness: int,
        started_from: Any,
    ) -> None:
        """Remember a commit that wrote ``witness`` over the state whose witness was ``started_from``.

        ``known.records`` hold what the commit wrote or had read; records kept from
        before stay only if the commit followed the very state they were
        kept with (the same witness, token included: a state with the same
        generation may be another one).
        """
        with self._lock:
            entry = self._entries.get(identity)
            same = entry is not None and entry.witness == started_from
            kept = entry.known.records if entry is not None and same else {}
            merged = {**kept, **known.records}
            while len(merged) > RECORDS_PER_SESSION:
                del merged[next(iter(merged))]
            self._entries[identity] = _Entry(
                Known(dict(known.values), merged, known.head_digest), witness
            )
            self._entries.move_to_end(identity)
            while len(self._entries) > SESSIONS:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every session: the next try of each starts from a read.

        The turn-taking locks stay (a thread may be holding one).
        """
        with self._lock:
            self._entries.clear()

    def forget(self, identity: Hashable, witness: Any = None) -> None:
        """Drop what is remembered of one session (it was deleted), or only
        if it is of the state whose witness is ``witness`` (found stale)."""
        with self._lock:
            entry = self._entries.get(identity)
            if entry is not None and (witness is None or entry.witness == witness):
                del self._entries[identity]

    def turn(self, identity: Hashable) -> threading.RLock:
        """The lock this process's threads take turns with on that session."""
        return self._turns[hash(identity) % TURN_STRIPES]


def pickled_records(records: dict[str, Any]) -> dict[str, bytes]:
    """Records as kept here (pickled: nobody shares a live copy)."""
    return {name: pickle.dumps(record, pickle.HIGHEST_PROTOCOL) for name, record in records.items()}


#: the committed state of this process
committed_heads = register_state(
    "committed heads",
    CommittedHeads(),
    settings=("CACHES", "TRIGGERS_CACHE_LAYOUT", "TRIGGERS_LOCK_DRIVERS"),
    about="what this process last committed of each session",
)
