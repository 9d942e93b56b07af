"""Task tables: a session's task configurations as stored, shared per process.

In the split layout a session's configs live in a task table, stored under
a key named by the table's version, a digest of its content. A table is
never rewritten in place, so a process keeps the tables it has seen
(:data:`task_tables`) and a fire reads no configuration at all.
"""

from __future__ import annotations

import copy
import hashlib
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

from ...errors import UnserializableValue
from ...process_state import register_state
from ...types import TaskConfig

__all__ = [
    "FirstConfigurations",
    "StoredConfigs",
    "TaskTables",
    "first_configurations",
    "make_task_table",
    "task_tables",
]


class TaskTables:
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

    def clear(self) -> None:
        """Forget every table (the next read of each goes to the cache)."""
        with self._lock:
            self._tables.clear()
            self._configs.clear()

    def put(self, version: str, table: dict[str, Any]) -> None:
        with self._lock:
            self._tables[version] = table
            while len(self._tables) > self._size:
                dropped, _ = self._tables.popitem(last=False)
                self._configs.pop(dropped, None)


#: the task tables of this process
task_tables = register_state(
    "task tables",
    TaskTables(),
    settings=("CACHES", "TRIGGERS_CACHE_LAYOUT"),
    about="the task tables read or written, by version",
)


class FirstConfigurations:
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
            try:
                same = given == config
            except Exception:  # a value that cannot be compared: not one seen before
                same = False
            if same:
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

    def clear(self) -> None:
        """Forget every configuration seen (the next one is checked and built again)."""
        with self._lock:
            self._entries.clear()


#: the first configurations of this process
first_configurations = register_state(
    "first configurations",
    FirstConfigurations(),
    settings=("CACHES", "TRIGGERS_CACHE_LAYOUT"),
    about="the task tables that configurations given to new sessions produced",
)


class StoredConfigs(MutableMapping[str, TaskConfig]):
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


def make_task_table(
    base: Mapping[str, Any], configs: Mapping[str, TaskConfig], changed: set[str]
) -> tuple[str, dict[str, Any]]:
    """The task table ``base`` with the ``changed`` tasks of ``configs``, and its version."""
    tasks = dict(base)
    for task_name in changed:
        tasks[task_name] = configs[task_name].serialize()
    tasks = dict(sorted(tasks.items()))
    by_trigger: dict[str, list[str]] = {}
    for task_name, stored in tasks.items():
        unless = stored["unless"]
        for trigger in {*stored["after"], *unless} if unless else stored["after"]:
            by_trigger.setdefault(trigger, []).append(task_name)
    try:
        data = pickle.dumps({"tasks": tasks, "triggers": by_trigger}, 4)
    except Exception as exc:  # pickle raises several types for the same problem
        raise UnserializableValue("the task configuration", tasks, exc) from exc
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    table = task_tables.get(digest)
    if table is None:
        # A copy: the configs it was made from may share values with the
        # definitions an application passed in, and may still change them.
        table = pickle.loads(data)
        task_tables.put(digest, table)
    return digest, table
