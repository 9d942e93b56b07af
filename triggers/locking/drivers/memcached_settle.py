"""The writes a fenced Memcached save makes before its head, in rounds of one round trip.

Each value is written only over an older one: a record over one tagged
with an older fencing token (a stale holder never puts an older record
over a newer one), the witness over one of a lower generation. A key this
process read (:class:`LastRead`) is written with ``cas`` on the unique that
read gave. What is stored under another is not known, so the first round
tries an ``add`` and reads the key in the same request: a key that did not
exist is written at once (the record of an instance the last save made),
one that did is written with ``cas`` on the unique that read gave, in the
next round. Every write of a round goes in one request per server
(:class:`~.memcached_pipe.Pipeline`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..versions import generation_of, is_version
from .memcached_client import MemcachedServers
from .memcached_pipe import Pipeline

__all__ = ["FENCED_MARK", "UNKNOWN", "LastRead", "Stale", "settle", "token_of", "untagged"]

#: first item of a value stored tagged with its writer's fencing token
FENCED_MARK = "triggers/fenced-1"
#: rounds of writes before a key still raced on counts as lost (a round is
#: an add and a read, or a cas)
WRITE_ROUNDS = 16
#: what a holder knows of a key it did not read
UNKNOWN: Any = object()
#: keys whose last read :class:`LastRead` keeps
LAST_READ_KEYS = 4096

#: value and cas unique as read, or None (absent), or UNKNOWN
Seen = Any


class Stale(Exception):
    """The fence moved: this holder's writes must stop."""


def untagged(value: Any) -> Any:
    """A value as stored by the fenced driver, without its writer's token."""
    if type(value) is tuple and len(value) == 3 and value[0] == FENCED_MARK:
        return value[2]
    return value


def token_of(value: Any) -> int:
    """The fencing token a stored value was written with (-1: an untagged value)."""
    if type(value) is tuple and len(value) == 3 and value[0] == FENCED_MARK:
        token = value[1]
        return token if type(token) is int else -1
    return -1


class LastRead:
    """What each key held when this process last read it: its token or
    generation and its cas unique, so that a save can ``cas`` a record it
    read earlier (a status change settles the record the one before it
    read) without reading it again. Only a guess: a ``cas`` on a unique that
    moved is refused, and the key is read then."""

    def __init__(self) -> None:
        self._keys: dict[str, tuple[Any, int]] = {}
        self._lock = threading.Lock()

    def note(self, found: Mapping[str, tuple[Any, int]]) -> None:
        with self._lock:
            for name, (value, unique) in found.items():
                self._keys.pop(name, None)
                self._keys[name] = (_summary(value), unique)
            while len(self._keys) > LAST_READ_KEYS:
                del self._keys[next(iter(self._keys))]

    def of(self, names: Iterable[str]) -> dict[str, tuple[Any, int]]:
        with self._lock:
            return {name: self._keys[name] for name in names if name in self._keys}

    def forget(self, names: Iterable[str]) -> None:
        with self._lock:
            for name in names:
                self._keys.pop(name, None)


def _summary(value: Any) -> Any:
    """What a write decides by (a record's token, the witness's version), not the value."""
    if is_version(value):
        return value
    token = token_of(value)
    return None if token == -1 else (FENCED_MARK, token, None)


@dataclass
class _Write:
    name: str
    value: Any  # as stored (a record tagged)
    exptime: int
    seen: Seen
    witness: bool


def settle(
    servers: MemcachedServers,
    writes: list[tuple[str, Any, int, bool]],
    token: int,
    seen: Mapping[str, Seen],
    fence_moved: Callable[[], bool],
    lock: tuple[str, str] | None,
) -> bool:
    """Make ``writes`` (name, value, exptime, is the witness), each only over
    an older value; records are stored tagged with ``token``.

    ``seen`` holds what the holder read of some keys; ``fence_moved`` raises
    Stale if the head changed since. The lock (key, holder), if given, is
    read in the first request: Stale if the holder no longer has it. Stale
    also if a key is still raced on after every round. False if nothing
    needed writing (the lock was not read).
    """
    pending = [
        _Write(name, value if witness else (FENCED_MARK, token, value), exptime, seen.get(name, UNKNOWN), witness)
        for name, value, exptime, witness in writes
    ]
    check = None
    for _ in range(WRITE_ROUNDS):
        pending = [w for w in pending if not _done(w, token, fence_moved)]
        if not pending:
            return check is not None
        pipe = Pipeline(servers)
        if check is None and lock is not None:
            check = pipe.gets([lock[0]])
        sent = [(w, *_queue(pipe, w)) for w in pending]
        pipe.run()
        if lock is not None and check is not None and check.answer.get(lock[0], (None, 0))[0] != lock[1]:
            raise Stale()  # its lock expired: the head is not written
        still = []
        for write, stored, read in sent:
            if stored.answer:
                continue
            write.seen = read.answer.get(write.name) if read is not None else UNKNOWN
            still.append(write)
        pending = still
    raise Stale()


def _queue(pipe: Pipeline, write: _Write) -> tuple[Any, Any]:
    """The write's request (and, for a key not known, its read) in this round."""
    if write.seen is UNKNOWN or write.seen is None:
        # Read in the same request: if the add finds the key, the next round has its unique.
        return pipe.add(write.name, write.value, write.exptime), pipe.gets([write.name])
    return pipe.cas(write.name, write.value, write.seen[1], write.exptime), None


def _done(write: _Write, token: int, fence_moved: Callable[[], bool]) -> bool:
    """Whether what is stored already makes ``write`` needless."""
    if write.seen is UNKNOWN or write.seen is None:
        return False
    stored = write.seen[0]
    if write.witness:
        # The witness never goes back.
        value = write.value
        return is_version(stored) and is_version(value) and generation_of(stored) >= generation_of(value)
    found = token_of(stored)
    if token and found >= token:
        # This holder's own value, or a newer holder's (then the fence moved:
        # Stale). A token above the head's own that did not move is left from
        # before the head's server restarted (its uniques started again): replaced.
        return found == token or fence_moved()
    return False
