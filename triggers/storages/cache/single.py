"""The single layout: the whole session in one value, as Triggers 2.x stores it.

Kept for rolling upgrades, when 2.x processes still read the session: every
save rewrites every instance. Both layouts read sessions stored in this
form; a split save converts them.
"""

from __future__ import annotations

from typing import Any

from ...locking.writes import Writes
from .formats import LAYOUT_SINGLE
from .state import CacheSessionState

__all__ = ["SingleLayout"]


class SingleLayout:
    """Reads and writes sessions in the single layout (stateless: the state is the storage's)."""

    name = LAYOUT_SINGLE

    def install(self, storage: CacheSessionState, head: dict[str, Any]) -> None:
        """Install a session stored whole (``tasks``, ``instances``, ``metas``)."""
        storage._stored = LAYOUT_SINGLE
        storage._install(head["tasks"], head["instances"], head["metas"])
        storage._changed_tasks = set(storage._configs or ())

    def value(self, storage: CacheSessionState) -> dict[str, Any]:
        """The session as one plain value.

        Pickled once, by the cache client, as 2.x did; a value that cannot
        be is reported by the write (UnserializableValue) with nothing written.
        """
        return {
            "tasks": storage._serialize(storage.tasks),
            "instances": storage._serialized_instances(),
            "metas": storage.metadata,
        }

    def writes(self, storage: CacheSessionState) -> Writes:
        """The writes of a save: the value and the witness (an even generation).

        Over a split session (an odd witness) the witness goes first, so no
        crash can leave this value beside the odd witness, which would read
        as a split session a 2.x process wrote over; otherwise the value goes
        first (a value without a witness reads fine, as 2.x's does).
        """
        generation = storage._next_generation(split=False)
        head, witness = storage.keys.head, storage.keys.witness
        value = self.value(storage)
        if storage._witness_read % 2 == 1:
            return Writes(({witness: generation}, {head: value}), storage.timeout)
        return Writes(({head: value, witness: generation},), storage.timeout)
