"""What a lock driver is: how one kind of cache takes, releases and writes
around a lock. Each kind of cache has a module of its own beside this one;
:mod:`triggers.locking.driver_table` chooses among them."""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any, ClassVar, TypeGuard

from django.core.cache import BaseCache

from ...errors import LockBackendError, NotSupported, UnserializableValue
from ..writes import CommitGuard, CommitResult, Writes

__all__ = ["LockDriver", "cache_name", "is_cache", "storable"]

#: what a cache object that is no BaseCache must offer to be taken for one
#: (django-valkey's caches, for one, do not subclass Django's BaseCache)
CACHE_METHODS = ("get", "set", "add", "delete", "get_many", "set_many", "make_key")

#: what pickling raises for a value it cannot pickle (a lambda, a lock, a
#: structure nested too deep)
PICKLING_ERRORS = (pickle.PicklingError, TypeError, AttributeError, RecursionError)


def storable(encode: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``encode`` raising UnserializableValue for a value it cannot pickle.

    Encoding does no I/O, so whatever it raises is the value's doing (a
    ``__reduce__`` that fails with an error of its own included).
    """

    def encode_storable(value: Any) -> Any:
        try:
            return encode(value)
        except Exception as exc:
            raise UnserializableValue("a value to write to the cache", value, exc) from exc

    return encode_storable


def is_cache(value: object) -> TypeGuard[BaseCache]:
    """Whether ``value`` is a Django cache object, or behaves as one."""
    if isinstance(value, BaseCache):
        return True
    if isinstance(value, type):
        return False
    return all(callable(getattr(value, name, None)) for name in CACHE_METHODS) and hasattr(
        value, "default_timeout"
    )


def cache_name(cache: BaseCache) -> str:
    """The dotted class path of a cache object, for messages."""
    cls = type(cache)
    return f"{cls.__module__}.{cls.__qualname__}"


class UndecodableValue(Exception):
    """A stored value that the cache client could not decode (a client that
    says so with a broader error, such as pymemcache's ValueError for an
    integer item whose bytes are not a number, raises this instead)."""


class LockDriver:
    """How one kind of cache takes, releases and writes around a lock.

    This base class writes with the cache's own ``set_many`` and cannot
    lock; subclasses add :meth:`try_acquire` and :meth:`release`, and say
    which of their client's errors are worth retrying.
    """

    #: whether the writes of one save land together (no crash can split them)
    atomic_writes: ClassVar[bool] = False
    #: whether :meth:`commit_if_unchanged` is available
    can_commit_if_unchanged: ClassVar[bool] = False
    #: whether keys naming entries of pages (see :mod:`..pages`) are kept in their pages
    keeps_pages: ClassVar[bool] = False
    #: errors of the cache's client that a retry may get past (a lost
    #: connection, a busy server); subclasses add their client's own
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (
        ConnectionError,
        TimeoutError,
        OSError,
    )

    #: errors of the cache's client that mean the cache failed (as opposed to
    #: a bug or bad input): raised as BackendUnavailable; the transient ones
    #: by default, subclasses add their client's base errors
    failure_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    def __init__(self, cache: BaseCache) -> None:
        self.cache = cache

    def is_transient(self, exc: BaseException) -> bool:
        """Whether an error of the backend is worth retrying."""
        return isinstance(exc, self.transient_errors)

    def is_failure(self, exc: BaseException) -> bool:
        """Whether an error means the cache failed (unreachable, down, timing out)."""
        return self.is_transient(exc) or isinstance(exc, self.failure_errors)

    def commit_if_unchanged(self, guard: CommitGuard, writes: Writes) -> CommitResult:
        """Make ``writes`` at once if no lock is held and ``guard`` still holds.

        Outcome COMMITTED (values: ``{guard.state_key: encoded value written}``),
        LOCKED (no values), or CHANGED (values: the current values of
        ``guard.version_key`` and ``guard.state_key``, decoded).
        """
        raise NotSupported(f"{cache_name(self.cache)} cannot write conditionally")

    def session_identity(self, key: str) -> Hashable | None:
        """What names ``key`` uniquely across every cache this process talks to
        (server and full key), where the driver can tell; None otherwise."""
        return None

    def expires_in(self, key: str) -> float | None:
        """Seconds ``key`` has left to live (``math.inf``: no expiry), as the
        server counts them; None when this driver cannot ask, or no such key."""
        return None

    def decode(self, raw: Any) -> Any:
        """A value as :meth:`commit_if_unchanged` handed it back encoded."""
        raise NotSupported(f"{cache_name(self.cache)} cannot write conditionally")

    def read_many(self, keys: Sequence[str]) -> dict[str, Any]:
        """The values of ``keys`` that are stored (a missing key is left out)."""
        found: dict[str, Any] = self.cache.get_many(list(keys))
        return found

    def try_acquire(self, key: str, token: str, ttl: float | None) -> bool:
        raise NotImplementedError

    def release(self, key: str, token: str) -> bool:
        raise NotImplementedError

    def owns(self, key: str, token: str) -> bool:
        """Whether ``token`` holds ``key`` now (after an attempt whose outcome is unknown)."""
        return bool(self.cache.get(key) == token)

    def wait_for_release(self, key: str, pause: float, longest: float | None) -> None:
        """Wait before the next attempt at ``key``: ``pause`` seconds here. A driver that
        a release can wake may wait for that instead, at most ``longest`` seconds (what
        the waiter has left, or the lock's ttl; None: the lock never expires)."""
        time.sleep(pause)

    def try_acquire_and_read(
        self, key: str, token: str, ttl: float | None, read: Sequence[str]
    ) -> tuple[bool, dict[str, Any]]:
        """Take the lock and, if taken, read the ``read`` keys (one round trip where possible).

        If the read fails after the lock was taken, the error goes on: the
        lock lets itself go (token-checked) before raising it."""
        if not self.try_acquire(key, token, ttl):
            return False, {}
        return True, self.read_held(key, token, read)

    def read_held(self, key: str, token: str, read: Sequence[str]) -> dict[str, Any]:
        """The ``read`` keys, read by the holder ``token`` of ``key`` just after taking it."""
        return self.read_many(list(read)) if read else {}

    def write(self, writes: Writes) -> None:
        """Make ``writes`` in order, holding no lock."""
        for batch in writes.batches:
            if batch:
                try:
                    failed = self.cache.set_many(dict(batch), timeout=writes.timeout)
                except PICKLING_ERRORS as exc:
                    raise UnserializableValue(
                        f"a value of {sorted(batch)} to write to the cache", dict(batch), exc
                    ) from exc
                if failed:
                    raise LockBackendError(f"the cache did not store {sorted(failed)}")

    def write_and_release(self, key: str, token: str, writes: Writes, release: bool = True) -> bool:
        """Make ``writes`` under the lock, then let go (unless ``release`` is false).

        False if the lock is no longer ``token``'s. Here the writes are made
        whatever happened to the lock; drivers that can check first do.
        """
        self.write(writes)
        return self.release(key, token) if release else True
