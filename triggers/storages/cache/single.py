"""The single layout: the whole session in one value, as Triggers 2.x stores it.

Kept for rolling upgrades, when 2.x processes still read the session: every
save rewrites every instance. Both layouts read sessions stored in this
form; a split save converts them.
"""

from __future__ import annotations

from typing import Any

from ...locking.writes import Writes
from .formats import LAYOUT_SINGLE, pickled
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
        """The session as one plain value (every record checked to be storable)."""
        session = {
            "tasks": storage._serialize(storage.tasks),
            "instances": storage._serialized_instances(),
            "metas": storage.metadata,
        }
        for name, record in session["instances"].items():
            pickled(name, record)
        return session

    def writes(self, storage: CacheSessionState) -> Writes:
        """The writes of a save: the value, then the witness (a head without it reads fine)."""
        generation = storage._next_generation()
        batch = {storage.keys.head: self.value(storage), storage.keys.witness: generation}
        return Writes((batch,), storage.timeout)
