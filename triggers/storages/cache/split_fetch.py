"""Reading the instance records of a split or paged session (mixed into the storage).

The head names every instance; their records are read on demand, a batch at
a time: from the head's delta, from what this process committed, else from
the cache. Records of the plain form this package writes become instances
straight away (:mod:`.plain_build`, :mod:`.page_build`); any other goes the
general way, which checks it in full. A whole read of a paged session asks
for each page by its own key and reads its records in place.
"""

from __future__ import annotations

import pickle
from typing import Any

from ...errors import BackendUnavailable, SessionIncomplete, StorageCorrupted
from ...locking.versions import generation_of, is_version
from ...types import TaskInstance
from .collector import collector_paused
from .formats import pickled
from .page_build import build_from_pages
from .plain_build import PlainInstances, build_plain
from .records import decode_record
from .state import CacheSessionState

__all__ = ["SplitFetch"]


class SplitFetch(CacheSessionState):
    """Instance records of a split or paged session, read in batches."""

    def _split_fetch(self, names: list[str]) -> dict[str, TaskInstance]:
        """Read instance records: from the head's delta, else from their own keys
        (or their pages). ``names`` are names the index holds: the collection
        asks for no other."""
        with collector_paused(len(names)):
            return self._split_fetch_records(names)

    def _split_fetch_records(self, names: list[str]) -> dict[str, TaskInstance]:
        read = self._read
        assert read.head is not None and read.layout is not None
        delta, known = read.head["delta"], read.known_records
        records: dict[str, Any] = {}
        snapshots: dict[str, bytes] = {}
        # The few records at hand (of the last save), then the many to read.
        at_hand = (delta.keys() | known.keys()).intersection(names) if delta or known else ()
        for name in sorted(at_hand):
            if name in delta:
                records[name] = delta[name]
            else:
                snapshots[name] = known[name]
                records[name] = pickle.loads(known[name])
        unread = [name for name in names if name not in at_hand] if at_hand else names
        built: dict[str, TaskInstance] = {}
        if unread and read.layout.pages and not (self.has_lock or read.stored):
            built = self._paged_read(unread, records)
        elif unread:
            built = self._split_read(unread, records)
        built.update(self._split_build(records, snapshots))
        return built

    def _split_read(self, names: list[str], records: dict[str, Any]) -> dict[str, TaskInstance]:
        """The instances of ``names`` whose records are read a key each; every
        other record decoded into ``records``."""
        assert self._read.layout is not None
        record_key = self._read.layout.record_key
        wanted = {record_key(name): name for name in names}
        found = self._read_many(list(wanted))
        missing = [key for key in wanted if key not in found]
        if missing:
            raise self._missing_records(missing)
        return self._split_build_plain(found, wanted, records)

    def _paged_read(self, names: list[str], records: dict[str, Any]) -> dict[str, TaskInstance]:
        """The instances of ``names`` read from their pages (each asked for once,
        by its own key: no lock held, nothing read with the head); every other
        record decoded into ``records``."""
        assert self._read.layout is not None and self._configs is not None
        names_by_page = self.keys.pages_of(names)
        try:
            pages = self._read_many(list(names_by_page))
        except StorageCorrupted:  # a value the cache's codec cannot decode: no page
            return self._split_read(names, records)  # which names the entry refused
        instances = PlainInstances(self._configs, self.instances.indexed_task)
        missing = build_from_pages(pages, names_by_page, instances, self.uid)
        if missing:
            raise self._missing_records(missing)
        records.update(instances.others)
        return instances.built

    def _split_build_plain(
        self, found: dict[str, Any], wanted: dict[str, str], records: dict[str, Any]
    ) -> dict[str, TaskInstance]:
        """Instances built straight from records of the plain form this package
        writes; every other record decoded into ``records``, for :meth:`_split_build`
        to check in full. Under the lock every record goes there: a save
        compares each one's dict."""
        assert self._configs is not None
        if self.has_lock:
            for key, stored in found.items():
                records[wanted[key]] = decode_record(stored, wanted[key], self.uid, key)
            return {}
        indexed_task = self.instances.indexed_task
        built, others = build_plain(found, wanted, self._configs, indexed_task, self.uid)
        records.update(others)
        return built

    def _split_build(
        self, records: dict[str, Any], snapshots: dict[str, bytes]
    ) -> dict[str, TaskInstance]:
        """Live instances from records read, each checked to be where the index says."""
        read, snapshot = self._read, self.has_lock
        # Looked up once: this loop runs once per record of a session read whole.
        build, task_of = self._build_instance, self.instances.task_of
        built = {}
        for name, record in records.items():
            built[name] = instance = build(name, record)
            if instance.config.name != task_of(name):
                raise StorageCorrupted(
                    self.uid, f"record of {name!r} names task {instance.config.name!r}"
                )
            if snapshot:
                read.snapshots[name] = snapshots.get(name) or pickled(name, record)
        return built

    def _missing_records(self, missing: list[str]) -> Exception:
        """What to raise for records the head names and the cache lacks.

        SessionIncomplete when the session stored is still the one this
        object read (its records were evicted, expired or deleted). When the
        stored witness says another state is there now (the session changed
        under this read: a failover to a replica that lacked the head read, a
        delete), BackendUnavailable: reading it again is what to do.
        """
        witness = self._read_many([self.keys.witness], fresh=True).get(self.keys.witness)
        read = self._read
        ours = {read.witness, read.saved_witness or None} - {None}
        if ours and is_version(witness) and witness not in ours:
            return BackendUnavailable(
                f"session {self.uid!r} changed while it was read (the cache now holds"
                f" generation {generation_of(witness)}, the read was of generation"
                f" {read.witness_generation}); read it again"
            )
        return SessionIncomplete(self.uid, missing)
