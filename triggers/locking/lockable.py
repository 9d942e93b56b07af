"""Giving an object a lock of its own: the mixin behind ``storage.acquire_lock()``."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import LockAcquisitionFailed
from .failures import DECODE_ERRORS
from .lock import Block, CacheLike, CacheLock, NoLock, Ttl, check_block
from .writes import NO_WRITES, LockGuard, WriteGuard, Writes

__all__ = ["Lockable"]


class Lockable:
    """Gives an object a re-entrant, per-thread lock named after it.

    Subclasses say which key (``get_lock_name``) and which cache
    (``get_lock_backend``) hold it; one that locks some other way says so
    with ``get_lock_guard``, the only hook that needs. The private hooks
    below (``_lock_read_keys``, ``_on_lock_acquired``, ...) are optional
    refinements an object makes on itself.
    """

    def get_lock_name(self) -> str:
        raise NotImplementedError

    def get_lock_backend(self) -> CacheLike:
        """The cache the default guard locks in (an alias or a cache object)."""
        return "default"

    def get_lock_guard(self, ttl: Ttl) -> LockGuard:
        """A new guard for one acquisition of this object's lock, not taken yet.

        ``acquire_lock()`` calls it once per outermost acquisition (never on
        re-entry), then takes, holds and releases what it returns (see
        :class:`~triggers.locking.writes.LockGuard`). ``ttl`` is
        ``acquire_lock()``'s: True (the backend's default lifetime), None (no
        expiry), seconds, or False: take no lock, but still write what the
        block saves. The default locks in ``get_lock_backend()`` under
        ``_lock_key()`` (``get_lock_name()``): a
        :class:`~triggers.locking.CacheLock`, or a
        :class:`~triggers.locking.NoLock` for ``ttl=False``. Override it to
        lock elsewhere: a database backend can lock its own rows.
        """
        if ttl is False:
            return NoLock(self._lock_key(), self.get_lock_backend())
        return CacheLock(self._lock_key(), self.get_lock_backend(), ttl)

    def _lock_key(self) -> str:
        """The key the lock is held in (``get_lock_name()`` unless a subclass keeps it elsewhere)."""
        return self.get_lock_name()

    def _lock_local(self) -> threading.local:
        local: threading.local | None = self.__dict__.get("_triggers_lock_local")
        if local is None:
            local = self.__dict__.setdefault("_triggers_lock_local", threading.local())
        return local

    def object_mutex(self) -> threading.RLock:
        """Serializes, within a process, the threads that share this object:
        they share its loaded state, which one thread's work replaces.

        ``acquire_lock()`` and every try of ``attempts()`` hold it; hold it
        to change what the object has loaded outside them (to drop it, say).
        """
        mutex: threading.RLock | None = self.__dict__.get("_triggers_object_mutex")
        if mutex is None:
            mutex = self.__dict__.setdefault("_triggers_object_mutex", threading.RLock())
        return mutex

    def _mark_held(self, guard: WriteGuard | None) -> None:
        """Record in this thread's state the guard now in force; None: none."""
        local = self._lock_local()
        local.depth = 0 if guard is None else 1
        local.guard = guard

    @property
    def has_lock(self) -> bool:
        """Whether this thread is inside ``acquire_lock()`` (``ttl=False`` included)."""
        return getattr(self._lock_local(), "depth", 0) > 0

    def _guard(self) -> WriteGuard | None:
        """What this thread works on this object under (a lock, or a try), if anything."""
        return getattr(self._lock_local(), "guard", None)

    def _lock_read_keys(self) -> Sequence[str]:
        """Keys worth reading in the same round trip that takes the lock."""
        return ()

    def _read_damaged(self, keys: list[str], exc: BaseException) -> BaseException:
        """The error to raise when a value read with the lock does not decode."""
        return exc

    def _on_lock_acquired(self, prefetched: dict[str, Any]) -> None:
        """Called once the lock is taken (not on re-entry)."""

    def _on_lock_released(self) -> None:
        """Called once the lock is let go (not on re-entry)."""

    @contextlib.contextmanager
    def acquire_lock(self, ttl: Ttl = True, block: Block = True) -> Iterator[Any]:
        """Hold this object's lock; re-entrant within a thread; yields ``self``.

        ``ttl=False`` takes no lock, but the block is otherwise the same:
        state is re-read on entry and what is saved is written on exit.
        """
        local = self._lock_local()
        depth = getattr(local, "depth", 0)
        if depth:
            local.depth = depth + 1
            try:
                yield self
            finally:
                local.depth -= 1
            return
        check_block(block)
        mutex = self.object_mutex()
        if not (mutex.acquire() if block is True else mutex.acquire(timeout=float(block))):
            # Another thread of this process works on this very object.
            raise LockAcquisitionFailed(
                self._lock_key(), None if block is False else float(block)
            )
        try:
            lock = self.get_lock_guard(ttl)
            read = list(self._lock_read_keys())
            try:
                prefetched = lock.acquire(block, read=read)
            except DECODE_ERRORS as exc:
                # The lock let go already; say which value is damaged.
                error = self._read_damaged(read, exc)
                if error is exc:
                    raise
                raise error from exc
            self._mark_held(lock)
            try:
                self._on_lock_acquired(prefetched)
                yield self
            finally:
                self._mark_held(None)
                try:
                    try:
                        writes = self._take_writes()
                    except BaseException:
                        lock.release()
                        raise
                    with self._writing():
                        lock.release(writes)
                finally:
                    self._on_lock_released()
        finally:
            mutex.release()

    def _writing(self) -> contextlib.AbstractContextManager[None]:
        """What writes of this object's state are made under: storages that can
        say which stored value refused them turn the cache's error into their own."""
        return contextlib.nullcontext()

    def _take_writes(self) -> Writes:
        """What saves made under the lock left to be written with its release.

        Storages that defer their writes hand them over here (and forget
        them); the default has none.
        """
        return NO_WRITES

    def attempts(self) -> Iterator[contextlib.AbstractContextManager[Any]]:
        """Tries at running a block atomically, to be used as::

            for attempt in obj.attempts():
                with attempt:
                    ...  # read, change, save

        The block may run more than once, so it must do nothing but change
        this object's state. Here there is one try, under the lock;
        subclasses may first try cheaper ways that fall back to it.
        """
        yield self.acquire_lock()
