"""Session state in a Django cache.

Layouts. Triggers 2.x kept a whole session in one value, so every fire
read and rewrote every instance. The default "split" layout keeps a small
head (metadata, an index of instance names, the version of the task table)
under the 2.x key, the task table (configs and the triggers they listen to)
under a key named by its version, and each instance under a key of its own,
so a fire reads and writes only what it touches. A task table is written
under a new version whenever the configuration changes and is never
rewritten in place, so a process may keep the tables it has seen. The "single" layout writes the 2.x value, for rolling upgrades;
both layouts read both.

Commit point. A save is committed when the head is written; the head is
one value, so it is written whole or not at all. A save writes, in order:
(1) the records the previous save committed in its head ("delta") to their
own keys, which changes nothing a reader sees, and (2) the new head
carrying this save's changed records as its delta. A process killed between
those writes leaves the old state. On Redis both steps and the lock release
run as one server-side script, only while the lock is still held.

Unlocked commits. Where the cache can check and write in one atomic step
(Redis), the manager's operations first run without the lock, on the
state this object last committed (or, for an object that has read
nothing, on a new session), and commit only if no lock is held and the
session's version (its witness key) is the one they started from. A
commit that finds the session changed brings back its current state for
the next try; one that finds the lock held waits a moment and reads the
session again. After a few tries, or when the block raised, the operation
runs again under the lock. A fire then costs one round trip where the lock
costs two.

Eviction. Once a session has a head, every save also refreshes a witness
key; a witness without a head, or an index naming an instance whose record
is gone, raises SessionIncomplete rather than reading a smaller session.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import math
import pickle
import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any

from django.core.cache import BaseCache
from django.core.cache.backends.base import DEFAULT_TIMEOUT

from ..conf import get_setting
from ..errors import SessionIncomplete, StorageCorrupted, UnserializableValue
from ..locking import (
    CHANGED,
    COMMITTED,
    LOCKED,
    CacheLike,
    CacheLock,
    CommitGuard,
    LockDriver,
    lock_driver,
    resolve_cache,
)
from ..types import TaskConfig, TaskInstance
from .base import BaseTriggerStorage, TaskInstanceCollection

__all__ = ["CacheStorageBackend", "LAYOUT_SINGLE", "LAYOUT_SPLIT"]

LAYOUT_SPLIT = "split"
LAYOUT_SINGLE = "single"
LAYOUTS = (LAYOUT_SPLIT, LAYOUT_SINGLE)

#: marks a split head; 2.x reading it fails loudly (no "instances" key)
HEAD_FORMAT = "triggers/split-1"

#: tries without the lock before an operation takes it: the first on what
#: this object knows, each next one on what the failed commit brought back
UNLOCKED_TRIES = 6
#: how long a try that found the lock held waits before reading again (s)
LOCKED_PAUSE = 0.0003

_SAFE_NAME = re.compile(r"[A-Za-z0-9_.#:@+=-]{1,64}")


@functools.lru_cache(maxsize=65536)
def _record_suffix(instance_name: str) -> str:
    """A key-safe part for an instance name (hashed if it has unsafe characters)."""
    if _SAFE_NAME.fullmatch(instance_name):
        return instance_name
    return "~" + hashlib.sha1(instance_name.encode("utf-8")).hexdigest()


class _TaskTables:
    """Task tables already read or written by this process, by version.

    A table's version is a digest of its content (a random one, for tables
    written by earlier releases), so a table found here is exactly what any
    session's key of that version holds: a fire then reads and writes no
    task configuration at all, and sessions configured alike share one
    table in memory.
    """

    def __init__(self, size: int = 512) -> None:
        self._tables: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._configs: dict[str, dict[str, TaskConfig]] = {}
        self._size = size
        self._lock = threading.Lock()

    def configs(self, version: str) -> dict[str, TaskConfig]:
        """The TaskConfigs built so far from the table of that version (shared:
        every session whose table has that version reads the same ones)."""
        with self._lock:
            if version not in self._tables:
                return {}
            return self._configs.setdefault(version, {})

    def get(self, version: str) -> dict[str, Any] | None:
        with self._lock:
            table = self._tables.get(version)
            if table is not None:
                self._tables.move_to_end(version)
            return table

    def put(self, version: str, table: dict[str, Any]) -> None:
        with self._lock:
            self._tables[version] = table
            while len(self._tables) > self._size:
                dropped, _ = self._tables.popitem(last=False)
                self._configs.pop(dropped, None)


_task_tables = _TaskTables()


class _FirstConfigurations:
    """Task tables that configurations given to new sessions produced, by content.

    Applications usually give every new session the same configuration; when
    one equals a configuration seen before, its table (checked and built
    then) is reused instead of checking and serializing every task again.
    """

    def __init__(self, size: int = 16) -> None:
        self._entries: list[tuple[dict[str, Any], str, dict[str, Any]]] = []
        self._size = size
        self._lock = threading.Lock()

    def find(self, config: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
        with self._lock:
            entries = list(self._entries)
        for given, version, table in entries:
            if given == config:
                return version, table
        return None

    def put(self, config: Mapping[str, Any], version: str, table: dict[str, Any]) -> None:
        try:
            given = copy.deepcopy(dict(config))
        except Exception:  # an odd definition (an uncopyable value): not remembered
            return
        with self._lock:
            self._entries.insert(0, (given, version, table))
            del self._entries[self._size :]


_first_configurations = _FirstConfigurations()


def _pickled(name: str, record: Any) -> bytes:
    try:
        return pickle.dumps(record, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise UnserializableValue(f"task instance {name!r}", record, exc) from exc


class _StoredConfigs(MutableMapping[str, TaskConfig]):
    """Task configs as stored, each built into a TaskConfig on first access."""

    def __init__(
        self,
        stored: Mapping[str, Any],
        build: Callable[[str, Any], TaskConfig],
        shared: dict[str, TaskConfig] | None = None,
    ) -> None:
        self._stored = stored
        #: configs given to this session since the table was read
        self._built: dict[str, TaskConfig] = {}
        #: configs built from the table (shared by sessions with the same table)
        self._shared: dict[str, TaskConfig] = {} if shared is None else shared
        self._build = build

    def __getitem__(self, name: str) -> TaskConfig:
        config = self._built.get(name) or self._shared.get(name)
        if config is None:
            config = self._shared[name] = self._build(name, self._stored[name])
        return config

    def get(self, name: str, default: Any = None) -> Any:
        config = self._built.get(name) or self._shared.get(name)
        if config is None:
            stored = self._stored.get(name)
            if stored is None:
                return default
            config = self._shared[name] = self._build(name, stored)
        return config

    def __setitem__(self, name: str, config: TaskConfig) -> None:
        self._built[name] = config

    def __delitem__(self, name: str) -> None:
        raise TypeError("tasks cannot be removed from a session")

    def __iter__(self) -> Iterator[str]:
        yield from self._stored
        yield from (name for name in self._built if name not in self._stored)

    def __len__(self) -> int:
        return len(self._stored) + sum(1 for name in self._built if name not in self._stored)

    def __contains__(self, name: object) -> bool:
        return name in self._stored or name in self._built


class _Encoded(bytes):
    """A value as the cache client encoded it (decoded afresh for each use)."""


class _Abandon(Exception):
    """An unlocked try cannot go on; the block runs again under the lock."""


class _UnlockedTry:
    """One run of a block without the lock, committed only if nothing changed.

    ``outcome`` says how it ended: COMMITTED, CHANGED (``known`` then holds
    the session's current values), LOCKED, or None when the block raised.
    """

    held = True

    def __init__(self, storage: CacheStorageBackend, known: dict[str, Any]) -> None:
        self.storage = storage
        self.known = known
        self.outcome: str | None = None

    def write(self, batches: Sequence[Mapping[str, Any]], timeout: Any = None) -> bool:
        # Writing before the commit would make the block's effects visible early.
        raise _Abandon()

    def __enter__(self) -> CacheStorageBackend:
        self.storage._begin_try(self)
        return self.storage

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        return self.storage._end_try(self, exc)


class CacheStorageBackend(BaseTriggerStorage):
    """Keeps session state in a Django cache (an alias or a cache object)."""

    name = "cache"
    triggers__registry_key = "cache"

    KEY_PREFIX = "triggers.storages.cache:"

    def __init__(
        self,
        uid: str,
        cache: CacheLike | None = None,
        timeout: Any = DEFAULT_TIMEOUT,
        layout: str | None = None,
    ) -> None:
        super().__init__(uid)
        if cache is None:
            cache = get_setting("TRIGGERS_CACHE_ALIAS")
        #: the alias the cache was named by (tasks rebuild the storage with it);
        #: None when a cache object was given, and tasks then use the default alias
        self.cache_alias: str | None = cache if isinstance(cache, str) else None
        self.cache: BaseCache = resolve_cache(cache)
        if timeout is not DEFAULT_TIMEOUT and timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
                raise ValueError(
                    f"timeout must be a positive number of seconds or None, not {timeout!r}"
                )
        self.timeout = timeout
        layout = get_setting("TRIGGERS_CACHE_LAYOUT") if layout is None else layout
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
        self.layout = layout
        self._driver: LockDriver | None = None
        #: the head and witness the next unlocked try starts from: {} for a
        #: new session (all an object that has read nothing can assume),
        #: None when unknown
        self._known: dict[str, Any] | None = {}
        self._reset()

    def _reset(self) -> None:
        self._stored: str | None = None  # None (nothing stored), "single" or "split"
        self._head: dict[str, Any] | None = None
        self._open: dict[str, set[str]] = {}
        self._stored_open: dict[str, list[str]] = {}
        self._witness_read = 0  # the witness as loaded (0: none)
        self._snapshots: dict[str, bytes] = {}
        self._changed_tasks: set[str] = set()
        #: the version and table of this session's first configuration, when known
        self._first_table: tuple[str, dict[str, Any]] | None = None
        self._prefetched: dict[str, Any] | None = None
        self._table: dict[str, Any] = {"tasks": {}, "triggers": {}}

    # ------------------------------------------------------------- keys
    @functools.cached_property
    def cache_key(self) -> str:
        return self.KEY_PREFIX + self.uid

    @functools.cached_property
    def witness_key(self) -> str:
        return self.cache_key + ":w"

    def record_key(self, instance_name: str) -> str:
        return f"{self.cache_key}:i:{_record_suffix(instance_name)}"

    def tasks_key(self, version: str) -> str:
        """Key of the task table of that version (configs and their triggers)."""
        return f"{self.cache_key}:t:{version}"

    # ------------------------------------------------------------- locking
    def get_lock_backend(self) -> CacheLike:
        return self.cache

    def _lock_read_keys(self) -> Sequence[str]:
        return (self.cache_key, self.witness_key)

    def _on_lock_acquired(self, prefetched: dict[str, Any]) -> None:
        super()._on_lock_acquired(prefetched)
        self._prefetched = prefetched

    def _on_lock_released(self) -> None:
        self._prefetched = None

    def _pending_writes(self) -> tuple[Sequence[Mapping[str, Any]], Any]:
        pending = self.__dict__.pop("_pending", None)
        if pending is None:
            return (), self.timeout
        self._known = None  # what this object knew is now behind what it writes
        return pending

    # ------------------------------------------------------------- unlocked tries
    def _lock_driver(self) -> LockDriver | None:
        if self._driver is None:
            try:
                self._driver = lock_driver(self.cache)
            except TypeError:  # NotSupported: the lock itself says why
                return None
        return self._driver

    def attempts(self) -> Iterator[Any]:
        driver = self._lock_driver()
        if (
            self.has_lock
            or self.layout != LAYOUT_SPLIT
            or driver is None
            or not driver.can_commit_if_unchanged
        ):
            yield self.acquire_lock()
            return
        known = self._known
        if known is None:
            known = self.cache.get_many([self.cache_key, self.witness_key])
        for _ in range(UNLOCKED_TRIES):
            head = known.get(self.cache_key)
            if head is not None and known.get(self.witness_key) is None:
                break  # stored without a witness (by 2.x, or the single layout)
            attempt = _UnlockedTry(self, known)
            yield attempt
            if attempt.outcome == COMMITTED:
                return
            if attempt.outcome == CHANGED:
                known = attempt.known
            elif attempt.outcome == LOCKED:
                # Someone holds the lock briefly: let them finish, then read again.
                time.sleep(LOCKED_PAUSE * random.uniform(0.5, 1.0))
                known = self.cache.get_many([self.cache_key, self.witness_key])
            else:
                break  # the block raised: only the lock gives a definite answer
        yield self.acquire_lock()

    def _begin_try(self, attempt: _UnlockedTry) -> None:
        mutex = self._object_mutex()
        mutex.acquire()
        try:
            self._start_try(attempt)
        except BaseException:
            self._mark_held(None)
            mutex.release()
            raise

    def _start_try(self, attempt: _UnlockedTry) -> None:
        self._mark_held(attempt)
        self.__dict__.pop("_pending", None)
        self._configs = self._instances = self._metas = None
        self._reset()
        known = attempt.known
        head = known.get(self.cache_key)
        if type(head) is _Encoded:
            assert self._driver is not None
            known = {
                self.cache_key: self._driver.decode(head),
                self.witness_key: known[self.witness_key],
            }
        self._prefetched = known

    def _end_try(self, attempt: _UnlockedTry, exc: BaseException | None) -> bool:
        try:
            return self._finish_try(attempt, exc)
        finally:
            self._object_mutex().release()

    def _finish_try(self, attempt: _UnlockedTry, exc: BaseException | None) -> bool:
        self._mark_held(None)
        self._prefetched = None
        pending = self.__dict__.pop("_pending", None)
        if exc is not None or pending is None:
            self.invalidate_cache()
            if exc is None:
                attempt.outcome = COMMITTED  # nothing to write
                return False
            # The block ran on state that may be stale: run it again under the lock.
            return isinstance(exc, Exception)
        batches, timeout = pending
        head = batches[-1][self.cache_key]
        guard = CommitGuard(
            lock_key=self.get_lock_name(),
            version_key=self.witness_key,
            state_key=self.cache_key,
            expected=attempt.known.get(self.witness_key),
        )
        assert self._driver is not None
        attempt.outcome, values = self._driver.commit_if_unchanged(guard, batches, timeout)
        if attempt.outcome == COMMITTED:
            self._known = {
                self.witness_key: head["generation"],
                self.cache_key: _Encoded(values[self.cache_key]),
            }
        else:
            self._known = None
            attempt.known = values
            self.invalidate_cache()
        return False

    def invalidate_cache(self) -> None:
        pending = self.__dict__.pop("_pending", None)
        if pending:
            # A save made under this lock must reach the cache before a re-read.
            lock = self._held_lock()
            assert lock is not None
            lock.write(*pending)
        super().invalidate_cache()
        self._reset()

    def close(self) -> None:
        self.cache.close()

    def rebuild_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"layout": self.layout}
        if self.cache_alias is not None:
            kwargs["cache"] = self.cache_alias
        if self.timeout is not DEFAULT_TIMEOUT:
            kwargs["timeout"] = self.timeout
        return kwargs

    # ------------------------------------------------------------- loading
    def _read_head(self) -> tuple[Any, Any]:
        values = self._prefetched
        self._prefetched = None
        if values is None:
            values = self.cache.get_many([self.cache_key, self.witness_key])
            self._known = None
        return values.get(self.cache_key), values.get(self.witness_key)

    def _load_state(self) -> None:
        head, witness = self._read_head()
        self._witness_read = witness if type(witness) is int else 0
        if head is None:
            if witness is not None:
                raise SessionIncomplete(self.uid, [self.cache_key])
            self._stored = None
            self._install(self._load_default_configuration() or {}, {}, {})
            self._changed_tasks = set(self._configs or ())
            return
        if not isinstance(head, dict):
            raise StorageCorrupted(
                self.uid, f"{self.cache_key!r} holds a {type(head).__name__}, not a session"
            )
        if head.get("format") == HEAD_FORMAT:
            self._install_split(head)
        elif {"tasks", "instances", "metas"} <= head.keys():
            self._stored = LAYOUT_SINGLE
            self._install(head["tasks"], head["instances"], head["metas"])
            self._changed_tasks = set(self._configs or ())
        else:
            raise StorageCorrupted(
                self.uid,
                f"{self.cache_key!r} lacks {sorted({'tasks', 'instances', 'metas'} - head.keys())}",
            )

    def _install_split(self, head: dict[str, Any]) -> None:
        try:
            version, metas, counts = head["tasks_version"], head["metas"], head["counts"]
            irregular, open_names, delta = head["irregular"], head["open"], head["delta"]
            generation = head["generation"]
        except KeyError as exc:
            raise StorageCorrupted(self.uid, f"the session head lacks {exc.args[0]!r}") from None
        if not (
            type(metas) is dict
            and type(counts) is dict
            and type(irregular) is dict
            and type(open_names) is dict
            and type(delta) is dict
        ):
            raise StorageCorrupted(self.uid, "the session head has parts of the wrong type")
        if not isinstance(generation, int) or not isinstance(version, str):
            raise StorageCorrupted(self.uid, f"the session head has generation {generation!r}")
        table = self._read_task_table(version)
        self._stored = LAYOUT_SPLIT
        self._head = head
        self._table = table
        self._configs = _StoredConfigs(  # type: ignore[assignment]
            table["tasks"], self._build_config, _task_tables.configs(version)
        )
        self._metas = self._build_metas(metas)
        self._open = {task: set(names) for task, names in open_names.items()}
        self._stored_open = open_names
        self._instances = TaskInstanceCollection(
            counts=counts, irregular=irregular, fetch=self._fetch_instances
        )

    def _read_task_table(self, version: str) -> dict[str, Any]:
        key = self.tasks_key(version)
        table = _task_tables.get(version)
        if table is None:
            table = self.cache.get(key)
            if table is None:
                raise SessionIncomplete(self.uid, [key])
            if not (
                isinstance(table, dict)
                and isinstance(table.get("tasks"), dict)
                and isinstance(table.get("triggers"), dict)
            ):
                raise StorageCorrupted(self.uid, f"{key!r} does not hold a task table")
            _task_tables.put(version, table)
        return table

    def _fetch_instances(self, names: list[str]) -> dict[str, TaskInstance]:
        """Read instance records: from the head's delta, else from their own keys."""
        assert self._head is not None
        delta = self._head["delta"]
        records: dict[str, Any] = {}
        wanted: dict[str, str] = {}
        for name in names:
            if name in delta:
                records[name] = delta[name]
            else:
                wanted[self.record_key(name)] = name
        if wanted:
            found = self.cache.get_many(list(wanted))
            missing = [key for key in wanted if key not in found]
            if missing:
                raise SessionIncomplete(self.uid, missing)
            for key, record in found.items():
                records[wanted[key]] = record
        snapshot = self.has_lock
        built = {}
        for name, record in records.items():
            built[name] = instance = self._build_instance(name, record)
            if instance.config.name != self._task_name_of(name):
                raise StorageCorrupted(
                    self.uid, f"record of {name!r} names task {instance.config.name!r}"
                )
            if snapshot:
                self._snapshots[name] = _pickled(name, record)
        return built

    def _task_name_of(self, name: str) -> str | None:
        assert self._instances is not None
        return self._instances._task_of(name)

    def _load_from_backend(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """The whole session as plain dicts, whichever layout stored it."""
        self._load()
        return (
            self._serialize(self.tasks),
            self._serialized_instances(),
            dict(self.metadata),
        )

    # ------------------------------------------------------------- queries
    def _schedulable_instances_of_task(self, task_name: str) -> list[TaskInstance]:
        if self._stored != LAYOUT_SPLIT:
            return super()._schedulable_instances_of_task(task_name)
        instances = self.instances
        open_names = self._open.get(task_name)
        loaded_names = instances.loaded_names_of_task(task_name)
        if not open_names and not loaded_names:
            return []
        wanted = set(open_names or ())
        wanted.update(loaded_names)
        return [i for i in (instances[name] for name in sorted(wanted)) if i.can_schedule]

    def _tasks_using_trigger(self, trigger_name: str) -> list[TaskConfig]:
        self._load()
        if self._head is None:
            return super()._tasks_using_trigger(trigger_name)
        names = self._table["triggers"].get(trigger_name, ())
        tasks = self.tasks
        changed = self._changed_tasks
        if not changed:
            # The table's index is exact for tasks this object has not changed.
            return [tasks[name] for name in names]
        found = []
        for name in sorted({*names, *changed}):
            config = tasks.get(name)
            if config is not None and config.uses_trigger(trigger_name):
                found.append(config)
        return found

    def _configuration_changed(self, configs: Mapping[str, TaskConfig]) -> None:
        self._changed_tasks.update(configs)
        self._first_table = None

    def update_configuration(self, config_dict: Mapping[str, Any]) -> None:
        first = (
            self.layout == LAYOUT_SPLIT
            and type(config_dict) is dict
            and not self.tasks
            and self._stored is None
            and not self.instances
        )
        if not first:
            super().update_configuration(config_dict)
            return
        known = _first_configurations.find(config_dict)
        if known is not None:
            # Checked and built when first seen: configs are built on use.
            version, table = known
            self._configs = _StoredConfigs(  # type: ignore[assignment]
                table["tasks"], self._build_config, _task_tables.configs(version)
            )
            self._changed_tasks = set(table["tasks"])
            self._first_table = known
            return
        super().update_configuration(config_dict)
        version, table = self._new_task_table()
        _first_configurations.put(config_dict, version, table)
        self._first_table = (version, table)

    # ------------------------------------------------------------- saving
    def _save(self) -> None:
        if self.layout == LAYOUT_SINGLE:
            # The witness goes after the head: a head without it reads fine.
            generation = self._next_generation()
            batches = [{self.cache_key: self._single_value(), self.witness_key: generation}]
            self.__dict__["_pending"] = (batches, self.timeout)
        else:
            self.__dict__["_pending"] = self._split_batches()

    def _single_value(self) -> dict[str, Any]:
        session = {
            "tasks": self._serialize(self.tasks),
            "instances": self._serialized_instances(),
            "metas": self.metadata,
        }
        for name, record in session["instances"].items():
            _pickled(name, record)
        return session

    def _new_task_table(self) -> tuple[str, dict[str, Any]]:
        """The task table with this save's configuration changes, and its version."""
        tasks = dict(self._table["tasks"])
        configs = self.tasks
        for task_name in self._changed_tasks:
            tasks[task_name] = configs[task_name].serialize()
        tasks = dict(sorted(tasks.items()))
        by_trigger: dict[str, list[str]] = {}
        for task_name, stored in tasks.items():
            unless = stored["unless"]
            for trigger in {*stored["after"], *unless} if unless else stored["after"]:
                by_trigger.setdefault(trigger, []).append(task_name)
        data = pickle.dumps({"tasks": tasks, "triggers": by_trigger}, 4)
        digest = hashlib.blake2b(data, digest_size=16).hexdigest()
        table = _task_tables.get(digest)
        if table is None:
            # A copy: the configs it was made from may share values with the
            # definitions an application passed in, and may still change them.
            table = pickle.loads(data)
            _task_tables.put(digest, table)
        return digest, table

    def _writes_land_together(self) -> bool:
        """Whether this save's writes will land at once (the witness may then
        go with a session's first head: no crash can leave it alone)."""
        hold = self._held_lock()
        if isinstance(hold, _UnlockedTry):
            return True
        driver = self._lock_driver()
        return isinstance(hold, CacheLock) and driver is not None and driver.atomic_writes

    def _next_generation(self) -> int:
        """The generation this save writes to the witness: above any written
        before, whichever layout wrote it, so a commit that compares the
        witness never mistakes a later state for the one it started from."""
        return max(self._witness_read, (self._head or {}).get("generation", 0)) + 1

    @functools.cached_property
    def _lifetime(self) -> float | None:
        """Seconds the session lives after a save, or None for no expiry."""
        seconds = self.cache.default_timeout if self.timeout is DEFAULT_TIMEOUT else self.timeout
        return None if seconds is None else float(seconds)

    def _split_batches(self) -> tuple[list[dict[str, Any]], Any]:
        """The writes of a save, in order, and the timeout they are made with.

        Expiry: every key of a session expires at one instant, ``lifetime``
        after the head's ``touched`` time. Once half of that (less a second)
        has passed, a save rewrites every record, so records left unchanged by recent
        saves never expire before the head does.
        """
        instances = self.instances
        previous = self._head or {}
        lifetime = self._lifetime
        now = time.time()
        touched = previous.get("touched")
        # Refresh a second early: caches that keep whole seconds round expiry down.
        refresh = lifetime is not None and (touched is None or now - touched > lifetime / 2 - 1)
        if refresh:
            touched = now
        if self._stored == LAYOUT_SINGLE or (refresh and self._stored == LAYOUT_SPLIT):
            instances.load_all()  # every record gets (re)written
        unchanged: dict[str, Any] = {}
        changed: dict[str, Any] = {}
        open_names = self._open
        open_changed: set[str] = set()
        snapshots = self._snapshots
        for name, instance in instances.loaded.items():
            record = instance.serialize()
            snapshot = snapshots.get(name)
            # A new instance is written anyway; an old one only if it changed.
            if snapshot is None or snapshot != _pickled(name, record):
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
        stored_open = dict(self._stored_open)
        for task in open_changed:
            names = open_names[task]
            if names:
                stored_open[task] = sorted(names)
            else:
                stored_open.pop(task, None)
        # The task table is written under a new version only when it changed.
        table_writes: dict[str, Any] = {}
        version = previous.get("tasks_version")
        if self._changed_tasks or version is None:
            if self._first_table is not None:
                version, table = self._first_table
            else:
                version, table = self._new_task_table()
            table_writes[self.tasks_key(version)] = table
        elif refresh:
            table_writes[self.tasks_key(version)] = self._table
        self._stored_open = stored_open
        counts, irregular = instances.index()
        head = {
            "format": HEAD_FORMAT,
            "generation": self._next_generation(),
            "tasks_version": version,
            "metas": self.metadata,
            "counts": counts,
            "irregular": irregular,
            "open": stored_open,
            "delta": changed,
            "touched": touched,
        }
        # Re-apply what the last head committed (a no-op for readers), then
        # commit this save: its changed records travel inside the new head.
        settle = {self.record_key(n): r for n, r in previous.get("delta", {}).items()}
        settle.update(table_writes)
        if refresh:
            settle.update((self.record_key(n), r) for n, r in unchanged.items())
        if self._stored is not None or self._writes_land_together():
            settle[self.witness_key] = head["generation"]
        if lifetime is None or touched is None:
            return [settle, {self.cache_key: head}], None
        # Whole seconds rounded down, so that no key outlives those written
        # at the last refresh; at least one, as Memcached reads 0 as "never".
        timeout = max(1, math.floor(touched + lifetime - now))
        return [settle, {self.cache_key: head}], timeout
