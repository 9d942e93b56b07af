"""The cache storage backend: one session's state in a Django cache.

This class says where state goes (keys, cache, timeout, layout) and
composes the parts that say how: :mod:`.split` and :mod:`.single` read and
write the two layouts, :mod:`.tables` keeps task tables per process and
:mod:`.commit` runs operations without the lock where the cache allows.
Saves record a :class:`~triggers.locking.writes.Writes` that the guard the
storage works under (the lock, or an optimistic try) makes.

Eviction. Once a session has a head, every save also refreshes a witness
key; a witness without a head, or an index naming an instance whose record
is gone, raises SessionIncomplete rather than reading a smaller session.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from django.core.cache import BaseCache
from django.core.cache.backends.base import DEFAULT_TIMEOUT

from ...conf import get_setting
from ...errors import SessionIncomplete, StorageCorrupted
from ...locking import CacheLike, LockDriver, lock_driver, resolve_cache
from ...locking.writes import NO_WRITES, Writes
from ...types import TaskConfig, TaskInstance
from ..base import BaseTriggerStorage
from . import commit
from .formats import HEAD_FORMAT, LAYOUT_SINGLE, LAYOUT_SPLIT, LAYOUTS
from .keys import KEY_PREFIX, SessionKeys
from .single import SingleLayout
from .split import SplitLayout
from .tables import StoredConfigs, first_configurations, make_task_table, task_tables

__all__ = ["CacheStorageBackend"]

_SPLIT = SplitLayout()
_SINGLE = SingleLayout()


class CacheStorageBackend(BaseTriggerStorage):
    """Keeps session state in a Django cache (an alias or a cache object)."""

    name = "cache"
    triggers__registry_key = "cache"

    KEY_PREFIX = KEY_PREFIX

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
        #: what the last save recorded, to be written by the guard it ran under
        self._pending: Writes | None = None

    # ------------------------------------------------------------- keys
    @functools.cached_property
    def keys(self) -> SessionKeys:
        """The cache keys of this session."""
        return SessionKeys(self.KEY_PREFIX + self.uid)

    @property
    def cache_key(self) -> str:
        return self.keys.head

    @property
    def witness_key(self) -> str:
        return self.keys.witness

    def record_key(self, instance_name: str) -> str:
        return self.keys.record(instance_name)

    def tasks_key(self, version: str) -> str:
        """Key of the task table of that version (configs and their triggers)."""
        return self.keys.tasks(version)

    # ------------------------------------------------------------- locking
    def get_lock_backend(self) -> CacheLike:
        return self.cache

    def _lock_read_keys(self) -> Sequence[str]:
        return (self.keys.head, self.keys.witness)

    def _on_lock_acquired(self, prefetched: dict[str, Any]) -> None:
        super()._on_lock_acquired(prefetched)
        self._prefetched = prefetched

    def _on_lock_released(self) -> None:
        self._prefetched = None

    def _pop_pending(self) -> Writes:
        """What the last save recorded (forgotten here)."""
        pending, self._pending = self._pending, None
        return NO_WRITES if pending is None else pending

    def _take_writes(self) -> Writes:
        writes = self._pop_pending()
        if writes:
            self._known = None  # what this object knew is now behind what it writes
        return writes

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
        yield from commit.attempts(self)

    def _start_over(self, known: dict[str, Any]) -> None:
        """Forget everything loaded; the next read starts from ``known`` (head, witness)."""
        self._configs = self._instances = self._metas = None
        self._reset()
        self._prefetched = known

    def invalidate_cache(self) -> None:
        pending = self._pop_pending()
        if pending:
            # A save made under this guard must reach the cache before a re-read.
            guard = self._guard()
            assert guard is not None
            guard.write(pending)
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
            values = self.cache.get_many([self.keys.head, self.keys.witness])
            self._known = None
        return values.get(self.keys.head), values.get(self.keys.witness)

    def _load_state(self) -> None:
        head, witness = self._read_head()
        self._witness_read = witness if type(witness) is int else 0
        if head is None:
            if witness is not None:
                raise SessionIncomplete(self.uid, [self.keys.head])
            self._stored = None
            self._install(self._load_default_configuration() or {}, {}, {})
            self._changed_tasks = set(self._configs or ())
            return
        if not isinstance(head, dict):
            raise StorageCorrupted(
                self.uid, f"{self.keys.head!r} holds a {type(head).__name__}, not a session"
            )
        if head.get("format") == HEAD_FORMAT:
            _SPLIT.install(self, head)
        elif {"tasks", "instances", "metas"} <= head.keys():
            _SINGLE.install(self, head)
        else:
            raise StorageCorrupted(
                self.uid,
                f"{self.keys.head!r} lacks {sorted({'tasks', 'instances', 'metas'} - head.keys())}",
            )

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
        return _SPLIT.schedulable_instances(self, task_name)

    def _tasks_using_trigger(self, trigger_name: str) -> list[TaskConfig]:
        self._load()
        if self._head is None:
            return super()._tasks_using_trigger(trigger_name)
        return _SPLIT.tasks_using_trigger(self, trigger_name)

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
        known = first_configurations.find(config_dict)
        if known is not None:
            # Checked and built when first seen: configs are built on use.
            version, table = known
            self._configs = StoredConfigs(  # type: ignore[assignment]
                table["tasks"], self._build_config, task_tables.configs(version)
            )
            self._changed_tasks = set(table["tasks"])
            self._first_table = known
            return
        super().update_configuration(config_dict)
        version, table = self._new_task_table()
        first_configurations.put(config_dict, version, table)
        self._first_table = (version, table)

    # ------------------------------------------------------------- saving
    def _save(self) -> None:
        self._pending = (_SINGLE if self.layout == LAYOUT_SINGLE else _SPLIT).writes(self)

    def _new_task_table(self) -> tuple[str, dict[str, Any]]:
        """The task table with this save's configuration changes, and its version."""
        return make_task_table(self._table["tasks"], self.tasks, self._changed_tasks)

    def _writes_land_together(self) -> bool:
        """Whether this save's writes will land at once (the witness may then
        go with a session's first head: no crash can leave it alone)."""
        guard = self._guard()
        return guard is not None and guard.writes_land_together

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

