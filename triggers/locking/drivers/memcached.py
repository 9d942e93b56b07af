"""Lock driver for Memcached through Django's PyMemcacheCache: fenced writes.

Memcached runs no scripts and changes one key at a time (``add``, ``cas``
with the unique a ``gets`` gave, ``append``), so a save cannot be checked
against the lock and written in one step as on Redis. Instead:

Fence. Taking the lock bumps the commit point (the session's head): an
empty ``append`` gives it a new cas unique and keeps its value and expiry.
The unique read just after is the holder's fencing token, and the head is
written with ``cas`` on it (``add`` for a new session). A holder whose lock
expired and passed to another finds its token out of date: its commit is
refused and it gets LockLost, whatever it did while it was paused.

The other writes of a save (records settled from the previous head's
delta, task tables) land before the head, where the fence cannot stop them.
Each is stored tagged with the token of its writer and replaces only a value
with an older token, so a stale holder never writes an older record over a
newer one; :meth:`read_many` strips the tag. The witness only ever goes up.

Expiry. Memcached counts whole seconds on a clock that ticks once a second,
so an item set to live N seconds may go after N-1. A lock lives ceil(ttl)+1
seconds, so at least its ttl. A session's records and task tables get a
second more than its head, so that none goes before the head.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import BaseCache

from ..versions import generation_of, is_version
from ..writes import Writes
from .add import AddLockDriver
from .memcached_client import MemcachedServers, decoding

__all__ = ["FENCED_MARK", "MemcachedLockDriver", "untagged"]

#: first item of a value stored tagged with its writer's fencing token
FENCED_MARK = "triggers/fenced-1"
#: seconds added to a save's timeout for its records and task tables: an item
#: set to live N seconds may go after N-1, so without it a record written at
#: one save could go a tick before the head written at a later one (whose N
#: was rounded down from the same instant)
RECORD_EXTRA_SECONDS = 1
#: how often a conditional write is tried again after losing a race on its key
WRITE_RETRIES = 8


def untagged(value: Any) -> Any:
    """A value as stored by this driver, without its writer's token."""
    if type(value) is tuple and len(value) == 3 and value[0] == FENCED_MARK:
        return value[2]
    return value


def _token_of(value: Any) -> int:
    """The fencing token a stored value was written with (-1: an untagged value)."""
    if type(value) is tuple and len(value) == 3 and value[0] == FENCED_MARK:
        token = value[1]
        return token if type(token) is int else -1
    return -1


def _longer(exptime: int, seconds: int) -> int:
    """A Memcached exptime ``seconds`` later (0, never, stays so)."""
    return exptime + seconds if exptime > 0 else exptime


@dataclass(frozen=True)
class _Fence:
    #: the key whose cas unique fences the holder (the session's head)
    key: str
    #: that unique as the holder last saw it (0: the key did not exist)
    unique: int


class _Stale(Exception):
    """The fence moved: this holder's writes must stop."""


class MemcachedLockDriver(AddLockDriver):
    """Locks with ``add``, fences saves with the head's cas unique (see the module)."""

    def __init__(self, cache: BaseCache) -> None:
        super().__init__(cache)
        # Each key's own server, never the HashClient's silent misses.
        assert self.memcached is not None, "MemcachedLockDriver serves PyMemcacheCache only"
        self._servers: MemcachedServers = self.memcached
        #: a cache timeout as Memcached's exptime (0: never; absolute past 30 days)
        self._exptime = cache.get_backend_timeout
        #: the fence of each holder, by its token
        self._fences: dict[str, _Fence] = {}
        self._fences_lock = threading.Lock()

    # ------------------------------------------------------------- raw steps
    def _gets_many(self, names: Sequence[str]) -> dict[str, tuple[Any, int]]:
        """Value and cas unique of each stored key of ``names`` (one round trip per server)."""
        found: dict[str, tuple[Any, int]] = {}
        for client, made in self._servers.groups(names).values():
            with decoding(made.values()):
                stored = client.gets_many(list(made))
            for key, (value, unique) in stored.items():
                found[made[key]] = (value, int(unique))
        return found

    def _cas(self, name: str, value: Any, unique: int, exptime: int) -> bool:
        client, key = self._servers.one(name)
        return client.cas(key, value, unique, expire=exptime, noreply=False) is True

    def _add(self, name: str, value: Any, exptime: int) -> bool:
        client, key = self._servers.one(name)
        return bool(client.add(key, value, expire=exptime, noreply=False))

    def _append(self, name: str, value: bytes) -> None:
        client, key = self._servers.one(name)
        client.append(key, value, noreply=False)

    def _set_fence(self, token: str, fence: _Fence | None) -> None:
        with self._fences_lock:
            if fence is None:
                self._fences.pop(token, None)
            else:
                self._fences[token] = fence

    # ------------------------------------------------------------- the lock
    def try_acquire(self, key: str, token: str, ttl: float | None) -> bool:
        # Memcached may drop an item up to a second early: a whole second more.
        timeout = None if ttl is None else math.ceil(ttl) + 1
        return self._servers.add(key, token, timeout)

    def read_held(self, key: str, token: str, read: Sequence[str]) -> dict[str, Any]:
        """Bump the first ``read`` key (the commit point), then read them all."""
        if not read:
            return {}
        head = read[0]
        # An empty append changes the unique only: every earlier holder's token is void.
        self._append(head, b"")
        found = self._gets_many(read)
        self._set_fence(token, _Fence(head, found[head][1] if head in found else 0))
        return {name: untagged(value) for name, (value, _) in found.items()}

    def release(self, key: str, token: str) -> bool:
        self._set_fence(token, None)
        value, unique = self._gets_many([key]).get(key, (None, 0))
        if value != token:
            return False
        # A cas to an item that expires at once: deleted only if still this holder's.
        return self._cas(key, b"", unique, -1)

    def read_many(self, keys: Sequence[str]) -> dict[str, Any]:
        return {key: untagged(value) for key, value in super().read_many(keys).items()}

    # ------------------------------------------------------------- writes
    def write_and_release(self, key: str, token: str, writes: Writes, release: bool = True) -> bool:
        with self._fences_lock:
            fence = self._fences.get(token)
        if fence is None or writes.commit_key is None or writes.commit_key != fence.key:
            return self._write_checked(key, token, writes, release)
        commit = fence.key
        items = writes.items()
        # Bad input, or a value over the server's item size, writes nothing at all.
        self._servers.check_sizes(dict(items))
        found = self._gets_many([key, commit, *(name for name, _ in items if name != commit)])
        lock_value, lock_unique = found.get(key, (None, 0))
        if lock_value != token or found.get(commit, (None, 0))[1] != fence.unique:
            return self._lost(key, token, release)
        exptime = self._exptime(writes.timeout)
        record_exptime = _longer(exptime, RECORD_EXTRA_SECONDS)
        try:
            for name, value in items:
                if name == commit:
                    if not self._write_commit(fence, value, exptime):
                        return self._lost(key, token, release)
                elif name == writes.witness_key:
                    self._raise_witness(name, value, found.get(name), exptime)
                else:
                    self._write_tagged(name, value, fence, found.get(name), record_exptime)
        except _Stale:
            return self._lost(key, token, release)
        if release:
            self._set_fence(token, None)
            self._cas(key, b"", lock_unique, -1)
        else:
            # Still held: the next save is fenced by the head as just written.
            now = self._gets_many([commit]).get(commit)
            self._set_fence(token, _Fence(commit, now[1] if now else 0))
        return True

    def _write_checked(self, key: str, token: str, writes: Writes, release: bool) -> bool:
        """Writes with no commit point to fence: made only if the lock is still held."""
        if not self.owns(key, token):
            return self._lost(key, token, release)
        self.write(writes)
        return self.release(key, token) if release else True

    def _lost(self, key: str, token: str, release: bool) -> bool:
        if release:
            self.release(key, token)
        return False

    def _write_commit(self, fence: _Fence, value: Any, exptime: int) -> bool:
        if fence.unique:
            return self._cas(fence.key, value, fence.unique, exptime)
        return self._add(fence.key, value, exptime)  # a new session: refused if made meanwhile

    def _write_tagged(
        self, name: str, value: Any, fence: _Fence, seen: tuple[Any, int] | None, exptime: int
    ) -> None:
        """Store ``value`` tagged with the fence, unless a newer holder's value is there."""
        tagged = (FENCED_MARK, fence.unique, value)
        for _ in range(WRITE_RETRIES):
            if seen is None:
                if self._add(name, tagged, exptime):
                    return
            else:
                stored = _token_of(seen[0])
                if fence.unique and stored >= fence.unique:
                    if stored == fence.unique or self._fence_moved(fence):
                        return  # this holder's own value, or a newer holder's
                    # A token above the head's own: left from before the head's
                    # server restarted (its uniques started again); replaced.
                if self._cas(name, tagged, seen[1], exptime):
                    return
            seen = self._gets_many([name]).get(name)  # raced on this key: look again
        raise _Stale()

    def _fence_moved(self, fence: _Fence) -> bool:
        now = self._gets_many([fence.key]).get(fence.key)
        if (now[1] if now else 0) != fence.unique:
            raise _Stale()
        return False

    def _raise_witness(
        self, name: str, value: Any, seen: tuple[Any, int] | None, exptime: int
    ) -> None:
        """Store the witness unless one of a higher or equal generation is stored: it never goes back."""
        for _ in range(WRITE_RETRIES):
            if seen is None:
                if self._add(name, value, exptime):
                    return
            else:
                stored = seen[0]
                if is_version(stored) and is_version(value):
                    if generation_of(stored) >= generation_of(value):
                        return
                if self._cas(name, value, seen[1], exptime):
                    return
            seen = self._gets_many([name]).get(name)
        raise _Stale()
