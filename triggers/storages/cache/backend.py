"""The cache storage backend: one session's state in a Django cache.

This class composes the parts: :mod:`.state` holds where the session lives
and what was read of it, :mod:`.split` and :mod:`.single` read and write
the two layouts, :mod:`.tables` keeps task tables per process and
:mod:`.commit` runs operations without the lock where the cache allows
(:mod:`.async_commits`: from an event loop, on Redis).
Saves record a :class:`~triggers.locking.writes.Writes` that the guard the
storage works under (the lock, or an optimistic try) makes.

Eviction. Once a session has a head, every save also refreshes a witness
key; a witness without a head, or an index naming an instance whose record
is gone, raises SessionIncomplete rather than reading a smaller session.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT

from ...errors import SessionIncomplete, SessionOverwritten, StorageCorrupted, StoredByNewerVersion
from ...locking import CacheLike, CacheLock, LockDriver
from ...locking.drivers.redis import RedisLockDriver
from ...locking.drivers.redis_legacy import LegacyRedisLockDriver, legacy_driver
from ...locking.failures import reaching
from ...locking.lock import Ttl
from ...locking.versions import generation_of, is_version
from ...locking.writes import LockGuard, Writes
from ...types import TaskConfig, TaskInstance
from .async_commits import AsyncCommits
from .commit import forget
from .formats import (
    HEAD_FORMAT,
    HEAD_FORMATS,
    LAYOUT_PAGED,
    LAYOUT_SINGLE,
    LAYOUT_SPLIT,
    PAGED_FORMAT,
    is_unknown_format,
)
from .layouts import Layout, Layouts
from .read_state import Known
from .single import SingleLayout
from .split import SplitLayout
from .tables import StoredConfigs, first_configurations, task_tables

__all__ = ["CacheStorageBackend"]


class CacheStorageBackend(AsyncCommits, SplitLayout, SingleLayout):
    """Keeps session state in a Django cache (an alias or a cache object)."""

    name = "cache"
    triggers__registry_key = "cache"

    def _make_layouts(self) -> Layouts:
        keys = self.keys
        split = Layout(
            name=LAYOUT_SPLIT,
            record_key=keys.record,
            stored_key=keys.record,
            head_format=HEAD_FORMAT,
            install=self._split_install,
            writes=self._split_writes,
            schedulable_instances=self._split_schedulable,
            tasks_using_trigger=self._split_tasks_using_trigger,
            whole_value=False,
        )
        return Layouts(
            split=split,
            single=Layout(
                name=LAYOUT_SINGLE,
                record_key=keys.record,
                stored_key=keys.record,
                head_format=None,
                install=self._single_install,
                writes=self._single_writes,
                schedulable_instances=self._single_schedulable,
                tasks_using_trigger=None,
                whole_value=True,
            ),
            # The split layout, its records kept as entries of pages.
            paged=dataclasses.replace(
                split,
                name=LAYOUT_PAGED,
                record_key=keys.page_entry,
                stored_key=keys.page,
                head_format=PAGED_FORMAT,
                pages=True,
            ),
        )

    # ------------------------------------------------------------- locking
    def get_lock_backend(self) -> CacheLike:
        return self.cache

    def get_lock_guard(self, ttl: Ttl) -> LockGuard:
        # Held under keys.lock (see _lock_key), through the session's driver.
        if ttl is False:
            return super().get_lock_guard(ttl)
        return CacheLock(self._lock_key(), self.cache, ttl, self._session_lock_driver())

    def _session_lock_driver(self) -> LockDriver | None:
        """The driver to lock with, if not the cache's own. The single layout
        is for rolling upgrades: on Redis, exclude 2.x writers too, by taking
        the lock they take as well."""
        if self._writer.whole_value and isinstance(self._lock_driver(), RedisLockDriver):
            return legacy_driver(self.cache).named(self.get_lock_name())
        return None

    def _lock_read_keys(self) -> Sequence[str]:
        return (self.keys.head, self.keys.witness)

    def _read_damaged(self, keys: list[str], exc: BaseException) -> BaseException:
        return self._damaged(keys, exc)

    def _on_lock_acquired(self, prefetched: dict[str, Any]) -> None:
        super()._on_lock_acquired(prefetched)
        self._read.prefetched = prefetched

    def _on_lock_released(self) -> None:
        self._read.prefetched = None

    def _take_writes(self) -> Writes:
        writes = self._pop_pending()
        if writes:
            self._known = None  # what this object knew is now behind what it writes
        return writes

    def attempts(self) -> Iterator[Any]:
        driver = self._lock_driver()
        if (
            self.has_lock
            or self._writer.whole_value
            or driver is None
            or not driver.can_commit_if_unchanged
        ):
            yield self.acquire_lock()
            return
        yield from self._unlocked_attempts()

    def invalidate_cache(self) -> None:
        pending = self._pop_pending()
        if pending:
            # A save made under this guard must reach the cache before a re-read.
            guard = self._guard()
            assert guard is not None
            with self._writing():
                guard.write(pending)
        super().invalidate_cache()
        self._reset()

    def delete(self) -> bool:
        """Remove every key of the session, under its lock; True if anything was stored.

        The head, the witness, every instance record the head names and every
        task table the session wrote go; a head that cannot be read takes its
        records with it only as they expire. No process's memory of the old
        session can commit into the one the uid starts next: its witness is gone.
        """
        with self.acquire_lock():
            stored = self._read_many([self.keys.head, self.keys.witness])
            doomed = [self.keys.head, self.keys.witness]
            try:
                self._load()
            except StorageCorrupted:
                pass  # deleted all the same: what it names cannot be known
            else:
                doomed.extend(self._part_keys())
            with reaching(self._failure_driver, f"deleting session {self.uid!r}", writing=True):
                self.cache.delete_many(doomed)
            self._reset()
            super().invalidate_cache()
        legacy = self._session_lock_driver()
        if isinstance(legacy, LegacyRedisLockDriver):
            # Its release just pushed 2.x's signal list: that goes too.
            with reaching(legacy, f"deleting session {self.uid!r}", writing=True):
                legacy.drop_signal(self._lock_key())
        identity = self._session_identity()
        if identity is not None:
            forget(identity)
        self._known = Known()
        return bool(stored)

    def _part_keys(self) -> list[str]:
        """The keys of the loaded session besides its head and witness."""
        head = self._read.head
        if head is None:
            return []
        versions = {*self._read.table_versions, head["tasks_version"]}
        stored_key = (self._read.layout or self._writer).stored_key
        return [
            *dict.fromkeys(stored_key(name) for name in self.instances),
            *(self.keys.tasks(version) for version in sorted(versions)),
        ]

    def close(self, *args: Any, **kwargs: Any) -> None:
        self.cache.close(**kwargs)

    def rebuild_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"layout": self.layout}
        if self.cache_alias is not None:
            kwargs["cache"] = self.cache_alias
        if self.timeout is not DEFAULT_TIMEOUT:
            kwargs["timeout"] = self.timeout
        return kwargs

    # ------------------------------------------------------------- loading
    def _read_head(self) -> tuple[Any, Any]:
        values = self._read.prefetched
        self._read.prefetched = None
        if values is None:
            values = self._read_many([self.keys.head, self.keys.witness])
            self._known = None
        return values.get(self.keys.head), values.get(self.keys.witness)

    def _load_state(self) -> None:
        head, witness = self._read_head()
        if witness is not None and not is_version(witness):
            # Only this package writes the witness, always an int: anything else is damage.
            raise StorageCorrupted(
                self.uid,
                f"{self.keys.witness!r} is damaged: it holds {type(witness).__name__}"
                f" {witness!r:.40}, not a generation",
            )
        self._read.witness = witness
        generation = generation_of(witness)
        if head is None:
            if witness is not None:
                raise SessionIncomplete(self.uid, [self.keys.head])
            self._install(self._load_default_configuration() or {}, {}, {})
            self._read.changed_tasks = set(self._configs or ())
            return
        if not isinstance(head, dict):
            raise StorageCorrupted(
                self.uid, f"{self.keys.head!r} holds a {type(head).__name__}, not a session"
            )
        if head.get("format") in HEAD_FORMATS:
            self._layouts.marked(head["format"]).install(head)
        elif is_unknown_format(head.get("format")):
            raise StoredByNewerVersion(self.uid, self.keys.head, head["format"])
        elif {"tasks", "instances", "metas"} <= head.keys():
            if generation % 2 == 1:
                # Saved split (odd witness), now a single value: not by this package.
                raise SessionOverwritten(self.uid, self.keys.head, generation)
            self._layouts.single.install(head)
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

    def stored_nothing(self) -> bool:
        self._load()
        return self._read.layout is None

    # ------------------------------------------------------------- queries
    def schedulable_instances_of_task(self, task_name: str) -> list[TaskInstance]:
        # Only the records of the task's open instances are read.
        layout = self._read.layout
        if layout is None:
            return super().schedulable_instances_of_task(task_name)
        return layout.schedulable_instances(task_name)

    def tasks_using_trigger(self, trigger_name: str) -> list[TaskConfig]:
        # From the task table's index of triggers, without building every config.
        self._load()
        layout = self._read.layout
        if layout is None or layout.tasks_using_trigger is None:
            return super().tasks_using_trigger(trigger_name)
        return layout.tasks_using_trigger(trigger_name)

    def _configuration_changed(self, configs: Mapping[str, TaskConfig]) -> None:
        self._read.changed_tasks.update(configs)
        self._read.first_table = None

    def update_configuration(self, config_dict: Mapping[str, Any]) -> None:
        first = (
            not self._writer.whole_value
            and type(config_dict) is dict
            and not self.tasks
            and self._read.layout is None
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
            self._read.changed_tasks = set(table["tasks"])
            self._read.first_table = known
            return
        super().update_configuration(config_dict)
        version, table = self._new_task_table()
        first_configurations.put(config_dict, version, table)
        self._read.first_table = (version, table)

    # ------------------------------------------------------------- saving
    def _save(self) -> None:
        self._read.pending = self._writer.writes()
