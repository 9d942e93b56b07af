"""The database storage backend: sessions as rows, through the Django ORM.

Reads are lazy where an operation allows: a fire reads the session row and
only the unstarted instances of the tasks that listen to its trigger; a
status change reads one instance. Saves write only what changed. A manager
operation runs as one transaction (:mod:`.tries`); ``acquire_lock()``
holds the lock kept in the session's row (:mod:`.locks`).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from django.conf import settings
from django.db import connections, router, transaction
from django.utils import timezone

from ...errors import InvalidArgument, StorageCorrupted
from ...forking import watch_forks
from ...locking.lock import Ttl
from ...locking.writes import LockGuard
from ...types import TaskConfig, TaskInstance
from ..base import BaseTriggerStorage
from ..instances import TaskInstanceCollection, name_number
from . import tables
from .configurations import configuration_sets
from .locks import NoRowLock, RowLock, reaching
from .reading import SessionRow, instance_rows, read_session, read_session_with
from .rows import check_task_row_name, dumps, instance_row, loads, stored_record
from .tries import Expected, TransactionTry, transaction_tries
from .writing import SessionWrite, session_lifetime

__all__ = ["DatabaseStorageBackend", "database_alias"]


def database_alias(using: object) -> str:
    """The alias sessions are read from and written to (InvalidArgument for an unknown one)."""
    if using is None:
        alias: str = router.db_for_write(tables.Session)
        return alias
    if not isinstance(using, str) or using not in settings.DATABASES:
        known = ", ".join(sorted(settings.DATABASES))
        raise InvalidArgument("using", using, f"must name a database of DATABASES ({known})")
    return using


class DatabaseStorageBackend(BaseTriggerStorage):
    """Stores each session in the database: a row per session and per instance.

    ``using`` names the database alias (default: what the routers say for
    :class:`triggers.models.Session`).
    """

    name = "database"

    def __init__(self, uid: str, using: str | None = None) -> None:
        super().__init__(uid)
        self.using = database_alias(using)
        watch_forks()  # a forked worker opens a connection of its own
        self._using_given = using
        self._row: SessionRow | None = None
        self._prints: dict[str, tuple[Any, ...]] = {}
        self._lazy = False
        self._fetched_tasks: set[str] = set()
        #: whether update_configuration changed the loaded configuration since the last save
        self._configs_changed = False
        #: rows a try read with the session, and the tasks whose unstarted rows they hold
        self._prefetched: tuple[list[dict[str, Any]], list[str]] = ([], [])
        self._expected = threading.local()
        #: the configuration set this object last read (kept across reads: a guess for the next)
        self._last_digest: str | None = None

    @property
    def lifetime(self) -> float | None:
        """Seconds a session lives after a save (TRIGGERS_SESSION_TIMEOUT; None: for ever)."""
        return session_lifetime()

    def expires_in(self) -> float | None:
        """Seconds until the session row expires (``math.inf``: never); None
        when there is no row (or it expired)."""
        self._load()
        row = self._row
        if row is None or not row.exists or row.stale:
            return None
        if row.expires is None:
            return math.inf
        left: float = (row.expires - timezone.now()).total_seconds()
        return max(0.0, left)

    def rebuild_kwargs(self) -> dict[str, Any]:
        return {} if self._using_given is None else {"using": self._using_given}

    # ------------------------------------------------------------- locking
    def get_lock_guard(self, ttl: Ttl) -> LockGuard:
        if ttl is False:
            return NoRowLock(self.get_lock_name())
        return RowLock(self.get_lock_name(), self.uid, self.using, ttl)

    def expect(self, *, instances: Iterable[str] = (), triggers: Iterable[str] = ()) -> None:
        """Read what these need with the session row, in the next operation of this thread."""
        self._expected.value = Expected(
            tuple(n for n in instances if isinstance(n, str)),
            tuple(t for t in triggers if isinstance(t, str)),
        )

    def attempts(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        expected: Expected | None = getattr(self._expected, "value", None)
        self._expected.value = None
        if self.has_lock:  # inside the caller's lock: its state is ours
            yield self.acquire_lock()
            return
        yield from transaction_tries(self, self.acquire_lock, expected)

    def start_try(self, attempt: TransactionTry) -> bool:
        """Begin a try's block (its transaction is open, the object's mutex
        held): read the row, locked for the transaction, and with it what the
        operation expects to read (see :meth:`expect`)."""
        known = self._last_digest or configuration_sets.digest_of_session(self.using, self.uid)
        expected = attempt.expected
        listeners = self._listeners_in(known, expected)
        self.invalidate_cache()
        with reaching(self.using, f"reading session {self.uid!r}"):
            row, rows = read_session_with(
                self.using, self.uid, list(expected.instances), listeners
            )
        self._row = row
        self._remember_digest(row.digest)
        self._prefetched = (rows, listeners if row.digest == known else [])
        self._mark_held(attempt)
        return not row.locked(timezone.now())

    def _remember_digest(self, digest: str | None) -> None:
        self._last_digest = digest
        if digest is not None:
            configuration_sets.session_digest(self.using, self.uid, digest)

    def _listeners_in(self, digest: str | None, expected: Expected) -> list[str]:
        """Tasks of configuration set ``digest`` (as far as this process knows
        it) that listen to the triggers ``expected`` fires, or to the tasks of
        its instances (what their cascade fires)."""
        fired = set(expected.triggers) | {n.rpartition("#")[0] for n in expected.instances}
        if digest is None or not fired:
            return []
        return [
            task
            for task, definition in configuration_sets.known(self.using, digest).items()
            if fired & {*(definition.get("after") or ()), *(definition.get("unless") or ())}
        ]

    def end_try(self, attempt: TransactionTry, committed: bool) -> None:
        """End a try's block (its transaction has ended): let go of the mutex."""
        try:
            self._mark_held(None)
            if not committed:
                self.invalidate_cache()
        finally:
            self.object_mutex().release()

    # ------------------------------------------------------------- loading
    def invalidate_cache(self) -> None:
        super().invalidate_cache()
        self._row = None
        self._prints = {}
        self._lazy = False
        self._fetched_tasks = set()
        self._prefetched = ([], [])
        self._configs_changed = False

    def _load_state(self) -> None:
        if self._guard() is None:
            self._load_whole()
            return
        row = self._row
        if row is None:
            with reaching(self.using, f"reading session {self.uid!r}"):
                row = self._row = read_session(self.using, self.uid)
        self._install_row(row, lazy=True)
        rows, complete = self._prefetched
        self._prefetched = ([], [])
        if self._lazy and rows:
            self._add_rows(rows)
        if self._lazy:
            self._fetched_tasks.update(complete)

    def _load_whole(self) -> None:
        """Read every row of the session at once, as one consistent state.

        In a transaction of its own the rows are read from one snapshot
        (SQLite's transactions have one anyway). Inside the caller's
        transaction, whose isolation is the caller's to set, they are read
        as it allows.
        """
        connection = connections[self.using]
        own = not connection.in_atomic_block
        with reaching(self.using, f"reading session {self.uid!r}"), transaction.atomic(
            using=self.using
        ):
            if own and connection.vendor in ("postgresql", "mysql"):
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            row = read_session(self.using, self.uid)
            self._row = row
            self._remember_digest(row.digest)
            self._install_row(row, lazy=False)

    def _install_row(self, row: SessionRow, lazy: bool) -> None:
        self._prints = {}
        self._fetched_tasks = set()
        if row.exists and row.expired(timezone.now()):
            self._row = replace(row, stale=True)
        if not row.exists or self._row is not None and self._row.stale:
            self._lazy = False
            configs = self._load_default_configuration() or {}
            self._install(configs, {}, {})
            return
        definitions = configuration_sets.load(self.uid, self.using, row.digest) if row.digest else {}
        self._configs = self._build_configs(definitions)
        metas = loads(self.uid, row.metadata, "its metadata")
        # Pickled again as a save pickles it (the bytes can differ, by the pickle's
        # memo, for equal values), so that a save tells a change by its bytes.
        self._row = replace(row, metadata=dumps(metas))
        self._metas = self._build_metas(metas)
        counts, irregular = row.counts(self.uid)
        self._lazy = lazy
        self._instances = TaskInstanceCollection(
            counts=counts, irregular=irregular, fetch=self._fetch_instances if lazy else None
        )
        if not lazy:
            assert row.pk is not None
            rows = instance_rows(self.using, row.pk)
            _check_found(self.uid, list(self._instances), {r["name"] for r in rows})
            self._add_rows(rows)

    def _fetch_instances(self, names: list[str]) -> dict[str, TaskInstance]:
        """The named instances; with them, in the same query, the unstarted
        instances of the tasks their completion would fire (a cascade's next read)."""
        row = self._row
        if row is None or row.pk is None:
            return {}
        listeners = self._listeners_of(names)
        with reaching(self.using, f"reading session {self.uid!r}"):
            rows = instance_rows(self.using, row.pk, names=names, unstarted_of=listeners)
        self._fetched_tasks.update(listeners)
        loaded = self.instances.loaded
        fresh = [r for r in rows if r["name"] not in loaded]
        _check_found(self.uid, names, {r["name"] for r in rows})
        return {instance.name: instance for instance in self._built(fresh)}

    def _listeners_of(self, names: list[str]) -> list[str]:
        """Tasks with instances, not read yet, that listen to the tasks of ``names``."""
        if not self._lazy or len(names) > 1:
            return []
        instances = self.instances
        fired = {instances.task_of(name) for name in names} - {None}
        return [
            config.name
            for config in self.tasks.values()
            if config.name not in self._fetched_tasks
            and any(config.uses_trigger(task) for task in fired if task)
            and instances.count_of_task(config.name)
        ]

    def _built(self, rows: list[dict[str, Any]]) -> list[TaskInstance]:
        """Live instances from rows, each remembered as read (to tell what a save changes)."""
        built = []
        for row in rows:
            instance = self._build_instance(row["name"], stored_record(self.uid, row))
            self._prints[instance.name] = instance_row(instance).fingerprint
            built.append(instance)
        return built

    def _add_rows(self, rows: list[dict[str, Any]]) -> None:
        instances = self.instances
        loaded = instances.loaded
        for instance in self._built([r for r in rows if r["name"] not in loaded]):
            instances.add(instance)

    def _load_from_backend(self) -> tuple[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]:
        """The whole session as plain dicts (the contract's reader; loads use rows directly)."""
        self._load_whole()
        return (
            self._serialize(self.tasks),
            self._serialized_instances(),
            dict(self.metadata),
        )

    # ------------------------------------------------- what a firing asks
    def tasks_using_trigger(self, trigger_name: str) -> list[TaskConfig]:
        configs = super().tasks_using_trigger(trigger_name)
        if self._lazy:
            instances = self.instances
            wanted = [
                c.name
                for c in configs
                if c.name not in self._fetched_tasks and instances.count_of_task(c.name)
            ]
            self._fetch_unstarted(wanted)
        return configs

    def _fetch_unstarted(self, task_names: list[str]) -> None:
        row = self._row
        if not task_names or row is None or row.pk is None:
            return
        with reaching(self.using, f"reading session {self.uid!r}"):
            rows = instance_rows(self.using, row.pk, unstarted_of=task_names)
        self._fetched_tasks.update(task_names)
        self._add_rows(rows)

    def schedulable_instances_of_task(self, task_name: str) -> list[TaskInstance]:
        if not self._lazy:
            return super().schedulable_instances_of_task(task_name)
        if task_name not in self._fetched_tasks:
            self._fetch_unstarted([task_name])
        instances = self.instances
        loaded = instances.loaded
        found = [loaded[n] for n in instances.loaded_names_of_task(task_name)]
        return sorted((i for i in found if i.can_schedule), key=_number)

    # ------------------------------------------------------------- saving
    def _configuration_changed(self, configs: Mapping[str, TaskConfig]) -> None:
        for name in configs:
            check_task_row_name(name)
        self._configs_changed = True

    def _save(self) -> None:
        guard = self._guard()
        row = self._row
        if row is None:
            row = self._row = read_session(self.using, self.uid)
        write = SessionWrite(
            self.using,
            self.uid,
            row,
            self.tasks,
            self.metadata,
            self.instances,
            self._prints,
            configs_changed=self._configs_changed,
        )
        if isinstance(guard, RowLock):
            write.fence, write.lost = guard.fence(timezone.now()), guard.lost()
        if isinstance(guard, TransactionTry):
            self._row = write.run()
        else:
            with reaching(self.using, f"writing session {self.uid!r}"), transaction.atomic(
                using=self.using
            ):
                self._row = write.run()
        self._configs_changed = False

    def delete(self) -> bool:
        """Remove the session's rows, under its lock; True if anything was stored."""
        with self.acquire_lock():
            had = not self.stored_nothing()
            guard = self._guard()
            rows = tables.Session.objects.using(self.using).filter(uid=self.uid)
            if isinstance(guard, RowLock):
                rows = rows.filter(guard.fence(timezone.now()))
            with reaching(self.using, f"deleting session {self.uid!r}"), transaction.atomic(
                using=self.using
            ):
                if not rows.delete()[0] and isinstance(guard, RowLock):
                    raise guard.lost()
            self.invalidate_cache()
        return had


def _check_found(uid: str, names: list[str], found: set[str]) -> None:
    """StorageCorrupted naming instances the session's index lists and its rows lack."""
    missing = [name for name in names if name not in found]
    if missing:
        shown = ", ".join(repr(n) for n in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise StorageCorrupted(
            uid, f"its index lists instances whose rows are missing (deleted by hand?): {shown}"
        )


def _number(instance: TaskInstance) -> tuple[int, str]:
    numbered = name_number(instance.name)
    return (numbered[1], numbered[0]) if numbered is not None else (-1, instance.name)

