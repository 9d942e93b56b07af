"""The split layout: a small head, a shared task table, one key per instance.

The head (metadata, an index of instance names, the version of the task
table) is kept under the 2.x key, the task table under a key named by its
version, and each instance under a key of its own, so a fire reads and
writes only what it touches. The paged layout is this one with each
record kept as an entry of a page (its :class:`~.layouts.Layout` names the
record keys and the head's format); the Redis driver reads those entries
and its scripts merge them into their pages.

Commit point. A save is committed when the head is written; the head is
one value, so it is written whole or not at all. A save writes, in order:
(1) the records the previous save committed in its head ("delta") to their
own keys, which changes nothing a reader sees, and (2) the new head
carrying this save's changed records as its delta. A process killed between
those writes leaves the old state. On Redis both steps and the lock release
run as one server-side script, only while the lock is still held.

The methods here are mixed into the storage class: they work on its own
:class:`~.read_state.ReadState`.
"""

from __future__ import annotations

import time
from typing import Any

from ...errors import SessionIncomplete, StorageCorrupted
from ...locking.versions import new_version
from ...locking.writes import Writes
from ...types import TaskConfig, TaskInstance
from ..instances import TaskInstanceCollection
from .formats import LEGACY_REFUSAL, READ_FORMATS, pickled
from .records import encode_record
from .sealing import is_sealed, seal, unseal
from .split_fetch import SplitFetch
from .state import horizon
from .tables import StoredConfigs, task_tables

__all__ = ["SplitLayout"]

#: what a split head must hold, and of which type
_HEAD_PARTS = {
    "tasks_version": str,
    "metas": dict,
    "counts": dict,
    "irregular": dict,
    "open": dict,
    "delta": dict,
    "generation": int,
}


class SplitLayout(SplitFetch):
    """Reading and writing sessions in the split layout (mixed into the storage)."""

    # ------------------------------------------------------------- reading
    def _split_install(self, stored: dict[str, Any]) -> None:
        """Install a split head (its records are read on demand)."""
        head = self._split_head_content(stored)
        for part, kind in _HEAD_PARTS.items():
            if part not in head:
                raise StorageCorrupted(self.uid, f"the session head lacks {part!r}")
            if not isinstance(head[part], kind) or isinstance(head[part], bool):
                raise StorageCorrupted(
                    self.uid, f"the session head has {part} {type(head[part]).__name__}"
                )
        version = head["tasks_version"]
        versions = head.get("tables", [version])
        if type(versions) is not list or not all(isinstance(v, str) for v in versions):
            raise StorageCorrupted(self.uid, f"the session head lists tables {versions!r}")
        read = self._read
        read.table = table = self._split_task_table(version)
        self._note_stored_lifetime(head)
        read.layout = self._layouts.marked(stored["format"])
        read.head = head
        read.table_versions = versions
        read.open = {task: set(names) for task, names in head["open"].items()}
        read.stored_open = head["open"]
        self._configs = StoredConfigs(  # type: ignore[assignment]
            table["tasks"], self._build_config, task_tables.configs(version)
        )
        self._metas = self._build_metas(head["metas"])
        self._instances = TaskInstanceCollection(
            counts=head["counts"], irregular=head["irregular"], fetch=self._split_fetch
        )

    def _split_head_content(self, stored: dict[str, Any]) -> dict[str, Any]:
        """What a stored head holds, sealed inside it."""
        key = self.keys.head
        if stored.get("format") not in READ_FORMATS:
            raise StorageCorrupted(
                self.uid,
                f"{key!r} was saved by a development version of triggers 3 (format"
                f" {stored.get('format')!r}, whose other keys are named differently): dump it"
                " with that version and load it with this one, or delete it",
            )
        sealed = stored.get("sealed")
        if not is_sealed(sealed):
            raise StorageCorrupted(self.uid, f"{key!r} is damaged: its content is not sealed")
        head = unseal(sealed, self.uid, key)
        if type(head) is not dict:
            raise StorageCorrupted(self.uid, f"{key!r} seals a {type(head).__name__}")
        return head

    def _split_task_table(self, version: str) -> dict[str, Any]:
        key = self.keys.tasks(version)
        table = task_tables.get(version)
        if table is None:
            table = unseal(self._read_one(key), self.uid, key)
            if table is None:
                raise SessionIncomplete(self.uid, [key])
            if not (
                isinstance(table, dict)
                and isinstance(table.get("tasks"), dict)
                and isinstance(table.get("triggers"), dict)
            ):
                raise StorageCorrupted(self.uid, f"{key!r} does not hold a task table")
            task_tables.put(version, table)
        return table

    def _split_schedulable(self, task_name: str) -> list[TaskInstance]:
        """The task's unstarted instances: those the open index names, and those loaded."""
        instances = self.instances
        open_names = self._read.open.get(task_name)
        loaded_names = instances.loaded_names_of_task(task_name)
        if not open_names and not loaded_names:
            return []
        wanted = set(open_names or ())
        wanted.update(loaded_names)
        return [i for i in (instances[name] for name in sorted(wanted)) if i.can_schedule]

    def _split_tasks_using_trigger(self, trigger_name: str) -> list[TaskConfig]:
        """Tasks listening to the trigger, from the table's index where it is exact."""
        names = self._read.table["triggers"].get(trigger_name, ())
        tasks = self.tasks
        changed = self._read.changed_tasks
        if not changed:
            # The table's index is exact for tasks this object has not changed.
            return [tasks[name] for name in names]
        found = []
        for name in sorted({*names, *changed}):
            config = tasks.get(name)
            if config is not None and config.uses_trigger(trigger_name):
                found.append(config)
        return found

    # ------------------------------------------------------------- writing
    def _split_writes(self) -> Writes:
        """The writes of a save: settled records first, then the head (the commit point).

        Expiry: every key of a session expires at one instant, twice
        ``lifetime`` after the head's ``touched`` time (the last refresh).
        Once ``lifetime`` (less a second) has passed since, or when the
        lifetime changes, a save refreshes: it rewrites every record and
        table, and ``touched`` becomes now. So after any save the session
        has at least ``lifetime`` to live (at most twice that), a save that
        does not refresh writes only what changed, and a refresh comes at
        most once a lifetime.
        """
        read = self._read
        previous = read.head or {}
        lifetime, now = self._lifetime, time.time()
        touched = previous.get("touched")
        # Refresh a second early: caches that keep whole seconds round expiry down.
        refresh = self._lifetime_changed() or (
            lifetime is not None and (touched is None or now - touched > lifetime - 1)
        )
        if refresh:
            touched = now
        writer = self._writer
        # Stored in another layout: every record is written in this one.
        converting = read.layout is not None and read.layout is not writer
        if read.layout is not None and (converting or refresh):
            self.instances.load_all()  # every record gets (re)written
        changed, unchanged = self._split_changed_records(refresh or converting)
        version, table_writes = self._split_table_writes(previous.get("tasks_version"), refresh)
        generation = self._next_generation(split=True)
        timeout = None if lifetime is None or touched is None else horizon(touched, lifetime, now)
        expires = None if timeout is None else now + timeout
        head = self._split_new_head(generation, version, changed, touched, lifetime, expires)
        # Re-apply what the last head committed (a no-op for readers), then
        # commit this save: its changed records travel inside the new head.
        record_key = writer.record_key
        settle: dict[str, Any] = {
            record_key(n): encode_record(n, r) for n, r in previous.get("delta", {}).items()
        }
        settle.update(table_writes)
        settle.update((record_key(n), encode_record(n, r)) for n, r in unchanged.items())
        commit = self._split_commit(head, settle)
        keys = {"commit_key": self.keys.head, "witness_key": self.keys.witness}
        return Writes((settle, commit), timeout, **keys)

    def _split_changed_records(self, refresh: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """The loaded records this save writes in its head (changed or new), and
        those it rewrites only because of a refresh; keeps the open index up."""
        read = self._read
        changed: dict[str, Any] = {}
        unchanged: dict[str, Any] = {}
        open_changed: set[str] = set()
        saved = read.saved_records = {}
        for name, instance in self.instances.loaded.items():
            record = instance.serialize()
            snapshot = read.snapshots.get(name)
            saved[name] = current = pickled(name, record)
            # A new instance is written anyway; an old one only if it changed.
            if snapshot is None or snapshot != current:
                changed[name] = record
            elif refresh:
                unchanged[name] = record
            if self._split_note_open(instance):
                open_changed.add(instance.config.name)
        # Based on the open index of the last save made by this object, or loaded.
        stored_open = dict(read.stored_open)
        for task in open_changed:
            names = read.open[task]
            if names:
                stored_open[task] = sorted(names)
            else:
                stored_open.pop(task, None)
        read.stored_open = stored_open
        return changed, unchanged

    def _split_note_open(self, instance: TaskInstance) -> bool:
        """Keep ``instance`` in (or out of) the open index; whether that changed it."""
        task, name = instance.config.name, instance.name
        task_open = self._read.open.get(task)
        if instance.status == TaskInstance.STATUS_UNSTARTED:
            if task_open is None:
                self._read.open[task] = {name}
                return True
            if name not in task_open:
                task_open.add(name)
                return True
        elif task_open is not None and name in task_open:
            task_open.discard(name)
            return True
        return False

    def _split_table_writes(self, version: str | None, refresh: bool) -> tuple[str, dict[str, Any]]:
        """The task table's version for this save, and its write (a new version
        only when the configuration changed; the same again on a refresh)."""
        read = self._read
        if read.changed_tasks or version is None:
            if read.first_table is not None:
                version, table = read.first_table
            else:
                version, table = self._new_task_table()
            if version not in read.table_versions:
                read.table_versions = [*read.table_versions, version]
            return version, {self.keys.tasks(version): seal(table, compress=True)}
        if refresh:
            return version, {self.keys.tasks(version): seal(read.table, compress=True)}
        return version, {}

    def _split_new_head(
        self,
        generation: int,
        version: str,
        changed: dict[str, Any],
        touched: float | None,
        lifetime: float | None,
        expires: float | None = None,
    ) -> dict[str, Any]:
        counts, irregular = self.instances.index()
        return {
            "generation": generation,
            "tasks_version": version,
            "metas": self.metadata,
            "counts": counts,
            "irregular": irregular,
            "open": self._read.stored_open,
            "delta": changed,
            "touched": touched,
            # Kept with the session, so whoever opens it next keeps its lifetime.
            "lifetime": lifetime,
            # When every key of this save expires (a Unix time), for ``show``.
            "expires": expires,
            # Every task table this session wrote, for a delete to find them all.
            "tables": self._read.table_versions,
        }

    def _split_commit(self, head: dict[str, Any], settle: dict[str, Any]) -> dict[str, Any]:
        """The head's write (the commit point), and where the witness goes."""
        read = self._read
        witness = read.saved_witness = new_version(head["generation"])
        sealed = seal(head, compress=True)
        stored = {**LEGACY_REFUSAL, "format": self._writer.head_format, "sealed": sealed}
        commit: dict[str, Any] = {self.keys.head: stored}
        if read.layout is not None and read.layout.whole_value:
            # Converting a single value: its (odd) witness after the head, so
            # no crash leaves the old value beside a witness saying "split".
            commit[self.keys.witness] = witness
        elif read.layout is not None or self._writes_land_together():
            settle[self.keys.witness] = witness
        return commit

