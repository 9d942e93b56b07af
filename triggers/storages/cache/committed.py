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

What a process commits is also kept for the processes forked from the same
parent, and they take turns on a session with it (see :mod:`.forked`): the
children of a prefork worker then start from each other's commits.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from ...locking.versions import generation_of
from ...process_state import register_state
from .forked import STRIPES, ForkShared, identity_digest, stripe_of
from .read_state import Known

logger = logging.getLogger(__name__)

__all__ = ["CommittedHeads", "committed_heads", "generation"]

#: how many stripes the per-session turn-taking uses (threads and forked processes alike)
TURN_STRIPES = STRIPES
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


class Turn:
    """One stripe's turn on its sessions: this process's threads take it in
    order, and the thread holding it also holds it from the forked processes."""

    def __init__(self, stripe: int, shared: Callable[[], ForkShared | None]) -> None:
        self.stripe = stripe
        self._local = threading.RLock()
        #: the memory shared with forked processes, while there are any
        self._shared = shared
        #: how deep the thread holding ``_local`` holds it (it is re-entrant)
        self._depth = 0
        #: the memory whose turn that thread holds
        self._held: ForkShared | None = None

    def acquire(self) -> None:
        self._local.acquire()
        if self._depth == 0:
            shared = self._shared()
            if shared is not None and shared.take_turn(self.stripe):
                self._held = shared
        self._depth += 1

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._held is not None:
            self._held.end_turn(self.stripe)
            self._held = None
        self._local.release()


def _shared_memory() -> ForkShared | None:
    """What forked processes share, or None where it cannot be made (no sharing then)."""
    try:
        return ForkShared()
    except OSError as exc:  # no memory file, no mmap: each process keeps its own
        logger.debug("triggers: committed states are not shared with forks: %s", exc)
        return None


class CommittedHeads:
    """The state each session last committed from this process (or a process
    forked from the same parent), by its identity.

    Keyed by the session's identity (server and full key), so two caches
    never mix; bounded, least recently used first out.
    """

    def __init__(self, shared: ForkShared | None = None, forked: bool = False) -> None:
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._memory = shared
        #: each session's identity digest, made once (every try asks for it
        #: for its turn, its start and its commit)
        self._digests: dict[Hashable, bytes] = {}
        #: whether this process forked or was forked since the memory was
        #: made: only then is there anyone to share with (a lone process pays nothing)
        self._forked = forked
        self._turns = self._new_turns()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_parent=self._has_forked, after_in_child=self._after_fork)

    def _new_turns(self) -> list[Turn]:
        return [Turn(stripe, self._shared) for stripe in range(TURN_STRIPES)]

    def _shared(self) -> ForkShared | None:
        return self._memory if self._forked else None

    def _has_forked(self) -> None:
        self._forked = True

    def _after_fork(self) -> None:
        # A turn some other thread held at the fork stays held in the
        # child's copy, by nobody: the child gets turns of its own.
        self._turns = self._new_turns()
        self._lock = threading.Lock()
        self._forked = True

    def get(self, identity: Hashable) -> Known | None:
        """The state last committed (head, witness, records, the head's digest), or None."""
        with self._lock:
            entry = self._entries.get(identity)
            if entry is not None:
                self._entries.move_to_end(identity)
        forked = self._forked_entry(identity)
        if forked is not None and (
            entry is None or generation_of(forked.witness) > generation_of(entry.witness)
        ):
            entry = forked
        if entry is None:
            return None
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
            entry = _Entry(Known(dict(known.values), merged, known.head_digest), witness)
            self._entries[identity] = entry
            self._entries.move_to_end(identity)
            while len(self._entries) > SESSIONS:
                self._entries.popitem(last=False)
        shared = self._shared()
        if shared is not None:
            kept_known = entry.known
            state = (witness, kept_known.values, kept_known.records, kept_known.head_digest)
            shared.store(self._digest(identity), pickle.dumps(state, pickle.HIGHEST_PROTOCOL))

    def clear(self) -> None:
        """Forget every session: the next try of each starts from a read.

        The turn-taking locks stay (a thread may be holding one).
        """
        with self._lock:
            self._entries.clear()
        if self._memory is not None:
            self._memory.clear()

    def forget(self, identity: Hashable, witness: Any = None) -> None:
        """Drop what is remembered of one session (it was deleted), or only
        if it is of the state whose witness is ``witness`` (found stale)."""
        with self._lock:
            entry = self._entries.get(identity)
            if entry is not None and (witness is None or entry.witness == witness):
                del self._entries[identity]
        forked = self._forked_entry(identity)
        if forked is not None and (witness is None or forked.witness == witness):
            assert self._memory is not None
            self._memory.drop(self._digest(identity))

    def turn(self, identity: Hashable) -> Turn:
        """The turn this process's threads, and the processes forked from the
        same parent, take on that session."""
        return self._turns[stripe_of(self._digest(identity), TURN_STRIPES)]

    def _digest(self, identity: Hashable) -> bytes:
        digest = self._digests.get(identity)
        if digest is None:
            if len(self._digests) >= SESSIONS:
                self._digests.clear()
            digest = self._digests[identity] = identity_digest(identity)
        return digest

    def _forked_entry(self, identity: Hashable) -> _Entry | None:
        """The state a forked process sharing this memory last committed, if kept whole."""
        shared = self._shared()
        if shared is None:
            return None
        payload = shared.load(self._digest(identity))
        if payload is None:
            return None
        try:
            witness, values, records, head_digest = pickle.loads(payload)
        except Exception:  # noqa: BLE001 - a slot is a hint: one that does not decode is none
            return None
        return _Entry(Known(values, records, head_digest), witness)


def pickled_records(records: dict[str, Any]) -> dict[str, bytes]:
    """Records as kept here (pickled: nobody shares a live copy)."""
    return {name: pickle.dumps(record, pickle.HIGHEST_PROTOCOL) for name, record in records.items()}


#: the committed state of this process
committed_heads = register_state(
    "committed heads",
    CommittedHeads(_shared_memory()),
    settings=("CACHES", "TRIGGERS_CACHE_LAYOUT", "TRIGGERS_LOCK_DRIVERS"),
    about="what this process last committed of each session",
)
