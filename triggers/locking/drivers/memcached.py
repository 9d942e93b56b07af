"""Lock driver for Memcached through Django's PyMemcacheCache: fenced writes.

Memcached runs no scripts and changes one key at a time (``add``, ``cas``
with the unique a ``gets`` gave, ``append``), so a save cannot be checked
against the lock and written in one step as on Redis. Instead:

Fence. Taking the lock bumps the commit point (the session's head): an
empty ``append`` gives it a new cas unique and keeps its value and expiry.
The unique read just after (in the same request) is the holder's fencing
token, and the head is written with ``cas`` on it (``add`` for a new
session). A holder whose lock expired and passed to another finds its
token out of date: its commit is refused and it gets LockLost, whatever it
did while it was paused.

The other writes of a save (records settled from the previous head's
delta, task tables) land before the head, where the fence cannot stop them.
Each is stored tagged with the token of its writer and replaces only a value
with an older token, so a stale holder never writes an older record over a
newer one; :meth:`read_many` strips the tag. The witness only ever goes up
(:mod:`.memcached_settle`).

Round trips. Requests that do not depend on each other's answers go in one
request (:mod:`.memcached_pipe`): a save under the lock costs the
``add`` of the lock; the bump with the read of the head, the witness and
the lock; the settle writes, with a look at the lock (a holder whose lock
expired commits nothing); and the head's ``cas`` with the lock's release
(a ``cas`` on the lock's unique as read, so only this holder's lock is let
go). A settled record is written with ``cas`` on the unique this process
last read it with; one it did not read, and that is stored, takes one
request more.

Expiry. Memcached counts whole seconds on a clock that ticks once a second,
so an item set to live N seconds may go after N-1. A lock lives ceil(ttl)+1
seconds, so at least its ttl. A session's records and task tables get a
second more than its head, so that none goes before the head.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import BaseCache

from ..writes import Writes
from .add import AddLockDriver
from .memcached_client import MemcachedServers, decoding
from .memcached_pipe import Pipeline
from .memcached_settle import FENCED_MARK, LastRead, Seen, Stale, settle, untagged

__all__ = ["FENCED_MARK", "MemcachedLockDriver", "untagged"]

#: seconds added to a save's timeout for its records and task tables: an item
#: set to live N seconds may go after N-1, so without it a record written at
#: one save could go a tick before the head written at a later one (whose N
#: was rounded down from the same instant)
RECORD_EXTRA_SECONDS = 1


def _longer(exptime: int, seconds: int) -> int:
    """A Memcached exptime ``seconds`` later (0, never, stays so)."""
    return exptime + seconds if exptime > 0 else exptime


@dataclass(frozen=True)
class _Fence:
    #: the key whose cas unique fences the holder (the session's head)
    key: str
    #: that unique as the holder last saw it (0: the key did not exist)
    unique: int
    #: the other keys read with it: value and unique, or None (absent)
    seen: Mapping[str, Seen] = field(default_factory=dict)
    #: the lock's unique as read holding this holder's token (0: not known)
    lock_unique: int = 0


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
        #: what this process last read of each key, for the next save's cas
        self._last_read = LastRead()

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

    def _fence_of(self, token: str) -> _Fence | None:
        with self._fences_lock:
            return self._fences.get(token)

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
        """Bump the first ``read`` key (the commit point), then read them all and the lock."""
        if not read:
            return {}
        head = read[0]
        pipe = Pipeline(self._servers)
        # An empty append changes the unique only: every earlier holder's token is void.
        pipe.append(head, b"")
        reading = pipe.gets([*read, key])
        pipe.run()
        found: dict[str, tuple[Any, int]] = reading.answer
        lock = found.pop(key, None) if key not in read else found.get(key)
        self._set_fence(
            token,
            _Fence(
                head,
                found[head][1] if head in found else 0,
                {name: found.get(name) for name in read[1:]},
                lock[1] if lock is not None and lock[0] == token else 0,
            ),
        )
        return {name: untagged(value) for name, (value, _) in found.items()}

    def release(self, key: str, token: str) -> bool:
        fence = self._fence_of(token)
        self._set_fence(token, None)
        if fence is not None and fence.lock_unique:
            # Its unique as read holding this token: a cas fails if the lock moved on.
            return self._cas(key, b"", fence.lock_unique, -1)
        value, unique = self._gets_many([key]).get(key, (None, 0))
        if value != token:
            return False
        # A cas to an item that expires at once: deleted only if still this holder's.
        return self._cas(key, b"", unique, -1)

    def read_many(self, keys: Sequence[str]) -> dict[str, Any]:
        found = self._gets_many(keys)  # as a get, with the uniques a later save may cas on
        self._last_read.note(found)
        return {key: untagged(value) for key, (value, _) in found.items()}

    # ------------------------------------------------------------- writes
    def write_and_release(self, key: str, token: str, writes: Writes, release: bool = True) -> bool:
        fence = self._fence_of(token)
        if fence is None or writes.commit_key is None or writes.commit_key != fence.key:
            return self._write_checked(key, token, writes, release)
        items = writes.items()
        # Bad input, or a value over the server's item size, writes nothing at all.
        self._servers.check_sizes(dict(items))
        at = [name for name, _ in items].index(fence.key)
        exptime = self._exptime(writes.timeout)
        try:
            # The settle writes, acknowledged before the head (the commit point),
            # with a look at the lock: a holder whose lock expired commits nothing.
            lock = (key, token)
            if not self._settle(lock, items[:at], fence, writes.witness_key, exptime):
                if not self.owns(key, token):
                    return self._lost(key, token, release)
            after = items[at + 1 :]
            # The lock is let go in the head's request when nothing follows the head.
            with_head = release and not after and bool(fence.lock_unique)
            if not self._commit(key, token, fence, items[at][1], exptime, with_head, not release):
                return self._lost(key, token, release)
            # Committed: what follows the head is written whatever the lock.
            self._settle(None, after, fence, writes.witness_key, exptime)
        except Stale:
            return self._lost(key, token, release)
        if release and not with_head:
            self.release(key, token)
        return True

    def _settle(
        self,
        lock: tuple[str, str] | None,
        items: list[tuple[str, Any]],
        fence: _Fence,
        witness: str | None,
        exptime: int,
    ) -> bool:
        """Write ``items``, each only over an older value (records tagged with
        the fence), checking the ``lock`` (key, holder) is still held if given;
        False if nothing was sent (the lock was not looked at)."""
        if not items:
            return False
        record_exptime = _longer(exptime, RECORD_EXTRA_SECONDS)
        writes = [
            (name, value, exptime if name == witness else record_exptime, name == witness)
            for name, value in items
        ]
        names = [name for name, _ in items]
        seen = {**self._last_read.of(names), **fence.seen}
        try:
            return settle(
                self._servers, writes, fence.unique, seen, lambda: self._fence_moved(fence), lock
            )
        finally:
            self._last_read.forget(names)  # written (or tried): their uniques moved

    def _commit(
        self, key: str, token: str, fence: _Fence, value: Any, exptime: int, release: bool, keep: bool
    ) -> bool:
        """Write the head on the fence, in one request with the lock's release
        (``release``), or with a read of the head as written (``keep``: the lock is kept)."""
        pipe = Pipeline(self._servers)
        if fence.unique:
            commit = pipe.cas(fence.key, value, fence.unique, exptime)
        else:
            commit = pipe.add(fence.key, value, exptime)  # a new session: refused if made meanwhile
        if release:
            self._set_fence(token, None)
            # A cas to an item that expires at once, on the unique read holding this token.
            pipe.cas(key, b"", fence.lock_unique, -1)
        if keep:
            now = pipe.gets([fence.key, *fence.seen])
        pipe.run()
        if not commit.answer:
            return False
        if keep:
            # Still held: the next save is fenced by the head as just written.
            found = now.answer
            seen = {name: found.get(name) for name in fence.seen}
            unique = found[fence.key][1] if fence.key in found else 0
            self._set_fence(token, _Fence(fence.key, unique, seen, fence.lock_unique))
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

    def _fence_moved(self, fence: _Fence) -> bool:
        """Stale if the head changed since the holder read it; else False."""
        now = self._gets_many([fence.key]).get(fence.key)
        if (now[1] if now else 0) != fence.unique:
            raise Stale()
        return False
