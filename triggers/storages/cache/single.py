"""The single layout: the whole session in one value, as Triggers 2.x stores it.

Kept for rolling upgrades, when 2.x processes still read the session: every
save rewrites every instance. Both layouts read sessions stored in this
form; a split save converts them.

The methods here are mixed into the storage class. Instances are built
from the value only when used: a fire looks at the raw
status of each record to find the waiting ones, and a save writes the
records it did not touch back as they were read, so a fire costs one
unpickling and one pickling of the value, and Python work only for the
instances it touches.
"""

from __future__ import annotations

from typing import Any

from ...errors import StorageCorrupted
from ...locking.versions import new_version
from ...locking.writes import Writes
from ...types import TaskInstance
from ..instances import TaskInstanceCollection, instance_name, name_number
from .state import CacheSessionState

__all__ = ["SingleLayout"]


class SingleLayout(CacheSessionState):
    """Reading and writing sessions in the single layout (mixed into the storage)."""

    def _single_install(self, head: dict[str, Any]) -> None:
        """Install a session stored whole (``tasks``, ``instances``, ``metas``)."""
        records = head["instances"]
        if not isinstance(records, dict):
            raise StorageCorrupted(self.uid, "task configs and instances must be dicts")
        self._install(head["tasks"], {}, head["metas"])
        read = self._read
        read.layout = self._layouts.single
        read.changed_tasks = set(self._configs or ())
        for name, record in records.items():
            self._check_record(name, record)  # read whole, or refused whole
        read.single_records = records
        counts, irregular = _index(records)
        self._instances = TaskInstanceCollection(
            counts=counts, irregular=irregular, fetch=self._single_fetch
        )

    def _single_fetch(self, names: list[str]) -> dict[str, TaskInstance]:
        """Instances built from the records of the value read."""
        records = self._read.single_records
        return {name: self._build_instance(name, records[name]) for name in names}

    def _single_schedulable(self, task_name: str) -> list[TaskInstance]:
        """The task's unstarted instances, found by the raw status of each record."""
        instances = self.instances
        records = self._read.single_records
        loaded = instances.loaded
        waiting = []
        for name in instances.names_of_task(task_name):
            record = records.get(name)
            if name in loaded or not isinstance(record, dict) or _unstarted(record):
                waiting.append(name)
        return [i for i in (instances[name] for name in waiting) if i.can_schedule]

    def _single_value(self) -> dict[str, Any]:
        """The session as one plain value: what was loaded, serialized; the rest as read.

        Pickled once, by the cache client, as 2.x did; a value that cannot
        be is reported by the write (UnserializableValue) with nothing written.
        """
        instances = self.instances
        read = self._read
        if read.layout is None or not read.layout.whole_value:
            instances.load_all()  # read in another form: every record is built
        loaded = instances.loaded
        records = read.single_records
        return {
            "tasks": self._serialize(self.tasks),
            "instances": {
                name: loaded[name].serialize() if name in loaded else records[name]
                for name in instances
            },
            "metas": self.metadata,
        }

    def _single_writes(self) -> Writes:
        """The writes of a save: the value and the witness (an even generation).

        The value is exactly what 2.x stores, so it carries no lifetime: a
        session in this layout lives as TRIGGERS_SESSION_TIMEOUT (or the
        object's timeout) says.

        Over a split session (an odd witness) the witness goes first, so no
        crash can leave this value beside the odd witness, which would read
        as a split session a 2.x process wrote over; otherwise the value goes
        first (a value without a witness reads fine, as 2.x's does).
        """
        read = self._read
        version = read.saved_witness = new_version(self._next_generation(split=False))
        head, witness = self.keys.head, self.keys.witness
        value = self._single_value()
        lifetime = self._lifetime
        keys = {"commit_key": head, "witness_key": witness}
        if read.witness_generation % 2 == 1:
            return Writes(({witness: version}, {head: value}), lifetime, **keys)
        return Writes(({head: value, witness: version},), lifetime, **keys)


def _unstarted(record: dict[str, Any]) -> bool:
    status = record.get("status")
    return status is None or status == TaskInstance.STATUS_UNSTARTED


def _index(records: dict[str, Any]) -> tuple[dict[str, int], dict[str, list[str]]]:
    """The name index of the records: ``task#0..n-1`` counted, other names listed."""
    by_task: dict[str, list[str]] = {}
    for name, record in records.items():
        task = record.get("task") if isinstance(record, dict) else None
        if not isinstance(task, str):
            task = name.rpartition("#")[0]  # a broken record: fails when it is built
        by_task.setdefault(task, []).append(name)
    counts: dict[str, int] = {}
    irregular: dict[str, list[str]] = {}
    for task, names in by_task.items():
        if set(names) == {instance_name(task, n) for n in range(len(names))}:
            counts[task] = len(names)  # the usual case: numbered from 0 without gaps
        else:
            task_counts, task_irregular = _index_slowly(task, names)
            counts.update(task_counts)
            irregular.update(task_irregular)
    return counts, irregular


def _index_slowly(task: str, names: list[str]) -> tuple[dict[str, int], dict[str, list[str]]]:
    """The index of one task's names when they are not simply ``task#0..n-1``."""
    numbers: set[int] = set()
    others: list[str] = []
    for name in names:
        numbered = name_number(name)
        if numbered is not None and numbered[0] == task and instance_name(*numbered) == name:
            numbers.add(numbered[1])
        else:
            others.append(name)
    count = 0
    while count in numbers:
        count += 1
    others.extend(instance_name(task, n) for n in sorted(numbers) if n >= count)
    return ({task: count} if count else {}), ({task: others} if others else {})
