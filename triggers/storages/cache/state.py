"""What a cache session object keeps, and the parts of it every layout shares.

:class:`CacheSessionState` holds where the session lives (cache, keys,
timeout, layout) and what was read of it (the head, the open index, record
snapshots, the task table), so that the layouts (:mod:`.split`,
:mod:`.single`) and the optimistic commit (:mod:`.commit`) work on it
without knowing :class:`~triggers.storages.cache.CacheStorageBackend`.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Hashable, Iterator
from typing import Any

from django.core.cache import BaseCache
from django.core.cache.backends.base import DEFAULT_TIMEOUT

from ...conf import get_setting, session_timeout_setting
from ...errors import InvalidArgument, StorageCorrupted
from ...locking import CacheLike, LockDriver, lock_driver, resolve_cache
from ...locking.driver_table import write_driver
from ...locking.failures import DECODE_ERRORS, reaching
from ...locking.writes import NO_WRITES, Writes
from ..base import BaseTriggerStorage
from ..validation import check_cache, check_layout, check_timeout
from .formats import LAYOUT_PAGED, LAYOUTS
from .keys import KEY_PREFIX, SessionKeys
from .layouts import Layouts
from .read_state import LIFETIME_UNKNOWN, Known, ReadState
from .tables import make_task_table

__all__ = ["LIFETIME_UNKNOWN", "CacheSessionState", "horizon"]


class CacheSessionState(BaseTriggerStorage):
    """One session's place in a cache, and what was read of it."""

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
        check_cache(cache)
        self.cache_alias: str | None = cache if isinstance(cache, str) else None
        self.cache: BaseCache = resolve_cache(cache)
        #: the lifetime given to this object (DEFAULT_TIMEOUT: none given, the
        #: session keeps the one stored with it)
        self.timeout = timeout if timeout is DEFAULT_TIMEOUT else check_timeout(timeout)
        layout = get_setting("TRIGGERS_CACHE_LAYOUT") if layout is None else layout
        self.layout = check_layout(layout, LAYOUTS)
        self._driver: LockDriver | None = None
        #: where the next unlocked try starts: nothing stored yet (all an
        #: object that has read nothing can assume), or None when unknown
        self._known: Known | None = Known()
        #: what the last read found, and what saves since made of it
        self._read = ReadState()
        #: every layout, bound to this object; the one it writes, chosen once
        self._layouts = self._make_layouts()
        self._writer = self._layouts.named(self.layout)
        if self.layout == LAYOUT_PAGED:
            self._check_pages_kept()

    def _check_pages_kept(self) -> None:
        """InvalidArgument unless this cache's driver keeps pages (Redis): the
        paged layout merges records into their pages on the server."""
        driver = self._lock_driver()
        if driver is None or not driver.keeps_pages:
            backend = f"{type(self.cache).__module__}.{type(self.cache).__qualname__}"
            raise InvalidArgument(
                "layout",
                self.layout,
                f"needs a Redis cache (django-redis, Django's RedisCache or a Redis"
                f" Cluster cache); this cache is {backend}: use 'split' there",
            )

    # ------------------------------------------------------------- keys
    @functools.cached_property
    def keys(self) -> SessionKeys:
        """The cache keys of this session."""
        head = self.KEY_PREFIX + self.uid
        return SessionKeys(self.uid, head, str(self.cache.make_key(head)))

    @property
    def cache_key(self) -> str:
        return self.keys.head

    @property
    def witness_key(self) -> str:
        return self.keys.witness

    def _lock_key(self) -> str:
        # Beside the session's other keys (one Redis Cluster slot); the name
        # get_lock_name() gives is the one Triggers 2.x locks by.
        return self.keys.lock

    def record_key(self, instance_name: str) -> str:
        """The key of an instance record in the layout read (else written): in
        the paged layout, the key naming its entry of a page (see
        :mod:`triggers.locking.pages`), which the cache's driver reads."""
        return (self._read.layout or self._writer).record_key(instance_name)

    def tasks_key(self, version: str) -> str:
        """Key of the task table of that version (configs and their triggers)."""
        return self.keys.tasks(version)

    # ------------------------------------------------------------- reading
    def _read_many(self, keys: list[str], fresh: bool = False) -> dict[str, Any]:
        """The values stored under ``keys`` (those present); with ``fresh``, asked
        of the cache even when read with the head this try started from.

        BackendUnavailable if the cache fails, StorageCorrupted naming the
        key if a value cannot be decoded.
        """
        stored = {} if fresh else self._read.stored
        found = {key: stored[key] for key in keys if key in stored}
        keys = [key for key in keys if key not in found]
        if not keys:
            return found  # read with the head this try started from
        driver = self._failure_driver
        with reaching(driver, f"reading session {self.uid!r}"):
            try:
                return {**found, **driver.read_many(keys)}
            except DECODE_ERRORS as exc:
                raise self._damaged(keys, exc) from exc

    def _read_one(self, key: str) -> Any:
        return self._read_many([key]).get(key)

    def _damaged(self, keys: list[str], exc: BaseException) -> StorageCorrupted:
        """StorageCorrupted naming which of ``keys`` holds a value that does not decode."""
        bad = keys[0] if len(keys) == 1 else None
        for key in keys if bad is None else ():
            try:
                self._failure_driver.read_many([key])
            except DECODE_ERRORS:
                bad = key
                break
            except Exception:  # noqa: S112 - the cache failing now tells nothing more
                continue
        where = "one of " + ", ".join(map(repr, keys)) if bad is None else repr(bad)
        return StorageCorrupted(
            self.uid, f"{where} holds a value that cannot be decoded ({type(exc).__name__}: {exc})"
        )

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Writes of this session: a stored value that refuses them (a page
        damaged by hand, which the server merges records into) is StorageCorrupted."""
        try:
            yield
        except DECODE_ERRORS as exc:
            raise StorageCorrupted(self.uid, str(exc)) from exc

    @functools.cached_property
    def _failure_driver(self) -> LockDriver:
        """The driver that knows this cache's errors (one exists even where no lock can)."""
        return self._lock_driver() or write_driver(self.cache)

    # ------------------------------------------------------------- shared by the parts
    def _make_layouts(self) -> Layouts:
        """Every layout, bound to this object (the storage class has them all)."""
        raise NotImplementedError

    def _reset(self) -> None:
        """Forget what was read (the next read starts afresh)."""
        self._read = ReadState()

    def _pop_pending(self) -> Writes:
        """What the last save recorded (forgotten here)."""
        pending, self._read.pending = self._read.pending, None
        return NO_WRITES if pending is None else pending

    @functools.cached_property
    def _identity(self) -> tuple[Hashable | None]:
        driver = self._lock_driver()
        return (None if driver is None else driver.session_identity(self.keys.head),)

    def _session_identity(self) -> Hashable | None:
        """What names this session across every cache of the process, if the driver can tell."""
        return self._identity[0]

    def _lock_driver(self) -> LockDriver | None:
        if self._driver is None:
            try:
                self._driver = lock_driver(self.cache)
            except TypeError:  # NotSupported: the lock itself says why
                return None
        return self._driver

    def _start_over(self, known: Known) -> None:
        """Forget everything loaded; the next read starts from ``known`` (head, witness)."""
        self._configs = self._instances = self._metas = None
        self._read = ReadState(
            prefetched=known.values, known_records=known.records, stored=known.stored
        )

    def _new_task_table(self) -> tuple[str, dict[str, Any]]:
        """The task table with this save's configuration changes, and its version."""
        read = self._read
        return make_task_table(read.table["tasks"], self.tasks, read.changed_tasks)

    def _writes_land_together(self) -> bool:
        """Whether this save's writes will land at once (the witness may then
        go with a session's first head: no crash can leave it alone)."""
        guard = self._guard()
        return guard is not None and guard.writes_land_together

    def _next_generation(self, split: bool) -> int:
        """The generation this save writes to the witness: above any written
        before, whichever layout wrote it, so a commit that compares the
        witness never mistakes a later state for the one it started from.

        Split saves write odd generations and single saves even ones, so a
        single value found beside an odd witness was written over a split
        session by someone else (a Triggers 2.x process).
        """
        read = self._read
        last: int = max(read.witness_generation, (read.head or {}).get("generation", 0))
        following = last + 1
        return following if (following % 2 == 1) == split else following + 1

    @property
    def _lifetime(self) -> float | None:
        """Seconds the session lives after a save, or None for no expiry.

        The lifetime given to this object, else the one stored with the
        session, else TRIGGERS_SESSION_TIMEOUT, else the cache's default.
        """
        seconds = self.timeout
        if seconds is DEFAULT_TIMEOUT:
            seconds = self._read.stored_lifetime
        if seconds is LIFETIME_UNKNOWN:
            seconds = session_timeout_setting()
        if seconds is DEFAULT_TIMEOUT:
            seconds = self.cache.default_timeout
        return None if seconds is None else float(seconds)

    @property
    def lifetime(self) -> float | None:
        """Seconds the session lives after a save, or None for no expiry (see ``_lifetime``)."""
        self._load()
        return self._lifetime

    def expires_in(self) -> float | None:
        """Seconds until the session expires as stored (``math.inf``: never),
        or None when that cannot be told.

        The cache's own count where its driver reads one (Redis's PTTL of
        the head), else the expiry the last save of the split layout wrote
        in the head. A session in the single layout (2.x's value) carries
        no save time, so on other caches it is None unless it never expires.
        """
        self._load()
        driver = self._lock_driver()
        left = None if driver is None else driver.expires_in(self.keys.head)
        if left is not None:
            return left
        expires = (self._read.head or {}).get("expires")
        if isinstance(expires, (int, float)) and not isinstance(expires, bool):
            return max(0.0, expires - time.time())
        return math.inf if self._lifetime is None else None

    def _lifetime_changed(self) -> bool:
        """Whether this save stores another lifetime than the session had
        (every key is then rewritten, to expire with the head)."""
        read = self._read
        split = read.layout is not None and not read.layout.whole_value
        return split and read.stored_lifetime != self._lifetime

    def _note_stored_lifetime(self, value: dict[str, Any]) -> None:
        """Remember the lifetime a loaded head or value carries, if valid."""
        lifetime = value.get("lifetime", LIFETIME_UNKNOWN)
        if lifetime is None or (
            type(lifetime) in (int, float) and lifetime > 0 and lifetime != float("inf")
        ):
            self._read.stored_lifetime = lifetime


def horizon(touched: float, lifetime: float, now: float) -> int:
    """The cache timeout of a save at ``now``: whole seconds until twice
    ``lifetime`` after the last refresh (``touched``), rounded down so that no
    key outlives those written at that refresh; at least one, as Memcached
    reads 0 as "never"."""
    return max(1, math.floor(touched + 2 * lifetime - now))
