"""The split layout: a small head, a shared task table, one key per instance.

The head (metadata, an index of instance names, the version of the task
table) is kept under the 2.x key, the task table under a key named by its
version, and each instance under a key of its own, so a fire reads and
writes only what it touches.

Commit point. A save is committed when the head is written; the head is
one value, so it is written whole or not at all. A save writes, in order:
(1) the records the previous save committed in its head ("delta") to their
own keys, which changes nothing a reader sees, and (2) the new head
carrying this save's changed records as its delta. A process killed between
those writes leaves the old state. On Redis both steps and the lock release
run as one server-side script, only while the lock is still held.
"""

from __future__ import annotations

import functools
import math
import pickle
import time
from typing import Any

from ...errors import SessionIncomplete, StorageCorrupted
from ...locking.versions import new_version
from ...locking.writes import Writes
from ...types import TaskConfig, TaskInstance
from ..instances import TaskInstanceCollection
from .formats import HEAD_FORMAT, LAYOUT_SINGLE, LAYOUT_SPLIT, LEGACY_REFUSAL, pickled
from .sealing import is_sealed, seal, seal_body, unseal
from .state import CacheSessionState
from .tables import StoredConfigs, task_tables

__all__ = ["SplitLayout"]


class SplitLayout:
    """Reads and writes sessions in the split layout (stateless: the state is the storage's)."""

    name = "split"

    def install(self, storage: CacheSessionState, stored: dict[str, Any]) -> None:
        """Install a split head (its records are read on demand)."""
        head = self.head_content(storage, stored)
        try:
            version, metas, counts = head["tasks_version"], head["metas"], head["counts"]
            irregular, open_names, delta = head["irregular"], head["open"], head["delta"]
            generation = head["generation"]
        except KeyError as exc:
            raise StorageCorrupted(storage.uid, f"the session head lacks {exc.args[0]!r}") from None
        if not (
            type(metas) is dict
            and type(counts) is dict
            and type(irregular) is dict
            and type(open_names) is dict
            and type(delta) is dict
        ):
            raise StorageCorrupted(storage.uid, "the session head has parts of the wrong type")
        if not isinstance(generation, int) or not isinstance(version, str):
            raise StorageCorrupted(storage.uid, f"the session head has generation {generation!r}")
        versions = head.get("tables", [version])
        if type(versions) is not list or not all(isinstance(v, str) for v in versions):
            raise StorageCorrupted(storage.uid, f"the session head lists tables {versions!r}")
        table = self.read_task_table(storage, version)
        storage._note_stored_lifetime(head)
        storage._stored = LAYOUT_SPLIT
        storage._head = head
        storage._table = table
        storage._table_versions = versions
        storage._configs = StoredConfigs(  # type: ignore[assignment]
            table["tasks"], storage._build_config, task_tables.configs(version)
        )
        storage._metas = storage._build_metas(metas)
        storage._open = {task: set(names) for task, names in open_names.items()}
        storage._stored_open = open_names
        storage._instances = TaskInstanceCollection(
            counts=counts,
            irregular=irregular,
            fetch=functools.partial(self.fetch_instances, storage),
        )

    def head_content(self, storage: CacheSessionState, stored: dict[str, Any]) -> dict[str, Any]:
        """What a stored head holds: sealed inside it, or (saved before sealing) itself."""
        key = storage.keys.head
        if stored.get("format") != HEAD_FORMAT:
            raise StorageCorrupted(
                storage.uid,
                f"{key!r} was saved by a development version of triggers 3 (format"
                f" {stored.get('format')!r}, whose other keys are named differently): dump it"
                " with that version and load it with this one, or delete it",
            )
        sealed = stored.get("sealed")
        if not is_sealed(sealed):
            raise StorageCorrupted(storage.uid, f"{key!r} is damaged: its content is not sealed")
        head = unseal(sealed, storage.uid, key)
        if type(head) is not dict:
            raise StorageCorrupted(storage.uid, f"{key!r} seals a {type(head).__name__}")
        return head

    def read_task_table(self, storage: CacheSessionState, version: str) -> dict[str, Any]:
        key = storage.keys.tasks(version)
        table = task_tables.get(version)
        if table is None:
            table = unseal(storage._read_one(key), storage.uid, key)
            if table is None:
                raise SessionIncomplete(storage.uid, [key])
            if not (
                isinstance(table, dict)
                and isinstance(table.get("tasks"), dict)
                and isinstance(table.get("triggers"), dict)
            ):
                raise StorageCorrupted(storage.uid, f"{key!r} does not hold a task table")
            task_tables.put(version, table)
        return table

    def fetch_instances(
        self, storage: CacheSessionState, names: list[str]
    ) -> dict[str, TaskInstance]:
        """Read instance records: from the head's delta, else from their own keys."""
        assert storage._head is not None
        delta = storage._head["delta"]
        records: dict[str, Any] = {}
        wanted: dict[str, str] = {}
        known = storage._known_records
        snapshots: dict[str, bytes] = {}
        for name in names:
            if name in delta:
                records[name] = delta[name]
            elif name in known:
                snapshots[name] = known[name]
                records[name] = pickle.loads(known[name])
            else:
                wanted[storage.keys.record(name)] = name
        if wanted:
            found = storage._read_many(list(wanted))
            missing = [key for key in wanted if key not in found]
            if missing:
                raise SessionIncomplete(storage.uid, missing)
            for key, record in found.items():
                records[wanted[key]] = unseal(record, storage.uid, key)
        snapshot = storage.has_lock
        built = {}
        for name, record in records.items():
            built[name] = instance = storage._build_instance(name, record)
            if instance.config.name != storage.instances._task_of(name):
                raise StorageCorrupted(
                    storage.uid, f"record of {name!r} names task {instance.config.name!r}"
                )
            if snapshot:
                storage._snapshots[name] = snapshots.get(name) or pickled(name, record)
        return built

    def schedulable_instances(
        self, storage: CacheSessionState, task_name: str
    ) -> list[TaskInstance]:
        """The task's unstarted instances: those the open index names, and those loaded."""
        instances = storage.instances
        open_names = storage._open.get(task_name)
        loaded_names = instances.loaded_names_of_task(task_name)
        if not open_names and not loaded_names:
            return []
        wanted = set(open_names or ())
        wanted.update(loaded_names)
        return [i for i in (instances[name] for name in sorted(wanted)) if i.can_schedule]

    def tasks_using_trigger(
        self, storage: CacheSessionState, trigger_name: str
    ) -> list[TaskConfig]:
        """Tasks listening to the trigger, from the table's index where it is exact."""
        names = storage._table["triggers"].get(trigger_name, ())
        tasks = storage.tasks
        changed = storage._changed_tasks
        if not changed:
            # The table's index is exact for tasks this object has not changed.
            return [tasks[name] for name in names]
        found = []
        for name in sorted({*names, *changed}):
            config = tasks.get(name)
            if config is not None and config.uses_trigger(trigger_name):
                found.append(config)
        return found

    def writes(self, storage: CacheSessionState) -> Writes:
        """The writes of a save: settled records first, then the head (the commit point).

        Expiry: every key of a session expires at one instant, ``lifetime``
        after the head's ``touched`` time. Once half of that (less a second)
        has passed, or when the lifetime changes, a save rewrites every
        record, so records left unchanged by recent saves never expire
        before the head does.
        """
        instances = storage.instances
        previous = storage._head or {}
        lifetime = storage._lifetime
        now = time.time()
        touched = previous.get("touched")
        # Refresh a second early: caches that keep whole seconds round expiry down.
        refresh = storage._lifetime_changed() or (
            lifetime is not None and (touched is None or now - touched > lifetime / 2 - 1)
        )
        if refresh:
            touched = now
        if storage._stored == LAYOUT_SINGLE or (refresh and storage._stored == LAYOUT_SPLIT):
            instances.load_all()  # every record gets (re)written
        unchanged: dict[str, Any] = {}
        changed: dict[str, Any] = {}
        open_names = storage._open
        open_changed: set[str] = set()
        snapshots = storage._snapshots
        saved = storage._saved_records = {}
        for name, instance in instances.loaded.items():
            record = instance.serialize()
            snapshot = snapshots.get(name)
            saved[name] = current = pickled(name, record)
            # A new instance is written anyway; an old one only if it changed.
            if snapshot is None or snapshot != current:
                changed[name] = record
            elif refresh:
                unchanged[name] = record
            task = instance.config.name
            task_open = open_names.get(task)
            if instance.status == TaskInstance.STATUS_UNSTARTED:
                if task_open is None:
                    open_names[task] = {name}
                    open_changed.add(task)
                elif name not in task_open:
                    task_open.add(name)
                    open_changed.add(task)
            elif task_open is not None and name in task_open:
                task_open.discard(name)
                open_changed.add(task)
        # Based on the open index of the last save made by this object, or loaded.
        stored_open = dict(storage._stored_open)
        for task in open_changed:
            names = open_names[task]
            if names:
                stored_open[task] = sorted(names)
            else:
                stored_open.pop(task, None)
        # The task table is written under a new version only when it changed.
        table_writes: dict[str, Any] = {}
        version = previous.get("tasks_version")
        versions = storage._table_versions
        if storage._changed_tasks or version is None:
            if storage._first_table is not None:
                version, table = storage._first_table
            else:
                version, table = storage._new_task_table()
            table_writes[storage.keys.tasks(version)] = seal(table)
            if version not in versions:
                versions = [*versions, version]
        elif refresh:
            table_writes[storage.keys.tasks(version)] = seal(storage._table)
        storage._stored_open = stored_open
        counts, irregular = instances.index()
        generation = storage._next_generation(split=True)
        head = {
            "generation": generation,
            "tasks_version": version,
            "metas": storage.metadata,
            "counts": counts,
            "irregular": irregular,
            "open": stored_open,
            "delta": changed,
            "touched": touched,
            # Kept with the session, so whoever opens it next keeps its lifetime.
            "lifetime": lifetime,
            # Every task table this session wrote, for a delete to find them all.
            "tables": versions,
        }
        # Re-apply what the last head committed (a no-op for readers), then
        # commit this save: its changed records travel inside the new head.
        # Each record is sealed around its pickle made above (or when it was read).
        settle: dict[str, Any] = {
            storage.keys.record(n): seal_body(snapshots.get(n) or pickled(n, r))
            for n, r in previous.get("delta", {}).items()
        }
        settle.update(table_writes)
        if refresh:
            settle.update((storage.keys.record(n), seal_body(saved[n])) for n in unchanged)
        witness = storage._saved_witness = new_version(generation)
        stored = {**LEGACY_REFUSAL, "format": HEAD_FORMAT, "sealed": seal(head)}
        commit: dict[str, Any] = {storage.keys.head: stored}
        if storage._stored == LAYOUT_SINGLE:
            # Converting a single value: its (odd) witness after the head, so
            # no crash leaves the old value beside a witness saying "split".
            commit[storage.keys.witness] = witness
        elif storage._stored is not None or storage._writes_land_together():
            settle[storage.keys.witness] = witness
        keys = {"commit_key": storage.keys.head, "witness_key": storage.keys.witness}
        if lifetime is None or touched is None:
            return Writes((settle, commit), None, **keys)
        # Whole seconds rounded down, so that no key outlives those written
        # at the last refresh; at least one, as Memcached reads 0 as "never".
        timeout = max(1, math.floor(touched + lifetime - now))
        return Writes((settle, commit), timeout, **keys)
