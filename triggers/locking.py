"""Mutual exclusion over a Django cache.

A lock is a cache key written with an atomic "add" and holding an owner
token, so only its holder can release it and a crashed holder's lock goes
away with its time to live. Each kind of cache gets the driver that makes
that safe on it: Redis uses ``SET NX`` and a compare-and-delete script, the
database cache conditional SQL, Memcached and LocMem their atomic ``add``.
Caches with no atomic add (file, dummy) are refused with ``NotSupported``.

Writes made under a lock (a storage's save) can travel with its release.
Where the cache allows it (Redis, the database cache) they are made only
if the lock is still this holder's; a holder that finds its lock lost
raises ``LockLost`` rather than return as if its writes had landed.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import os
import pickle
import random
import threading
import time
import uuid
import weakref
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, NamedTuple, TypeAlias

from django.conf import settings
from django.core.cache import BaseCache, caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT

from .errors import TriggersError

__all__ = [
    "acquire_lock",
    "CacheLock",
    "Lockable",
    "LockAcquisitionFailed",
    "LockBackendError",
    "LockLost",
    "NotSupported",
    "resolve_cache",
]

CacheLike: TypeAlias = "str | BaseCache"
Ttl: TypeAlias = "bool | float | int | None"
Block: TypeAlias = "bool | float | int"

#: first pause of a blocked waiter, and the longest one (seconds)
BACKOFF_START = 0.0005
BACKOFF_CAP = 0.02
#: how long transient backend errors (a lost connection, a busy database)
#: are retried, from the first of them, before LockBackendError is raised;
#: and the first and longest pause between those retries (seconds)
TRANSIENT_RETRY_SECONDS = 2.0
TRANSIENT_BACKOFF_START = 0.01
TRANSIENT_BACKOFF_CAP = 0.25


class LockAcquisitionFailed(TriggersError):
    """The lock is held elsewhere and could not be had (now, or in time)."""

    def __init__(self, key: str, waited: float | None = None) -> None:
        self.key = key
        self.waited = waited
        if waited is None:
            message = f"lock {key!r} is held by another owner"
        else:
            message = f"lock {key!r} could not be acquired within {waited:g}s"
        super().__init__(message)


class LockBackendError(TriggersError):
    """The cache holding a lock kept failing; the cause is chained."""


class LockLost(TriggersError):
    """A lock expired, or passed to another owner, before its holder let go of it.

    Raised when writes were to travel with the release (or be made while
    holding it): on Redis and the database cache they were refused; on
    other caches they were made, but without the lock.
    """

    def __init__(self, key: str, ttl: float | None) -> None:
        self.key = key
        self.ttl = ttl
        lived = "" if ttl is None else f" (its ttl was {ttl:g}s)"
        super().__init__(
            f"lock {key!r} was lost before its holder let go of it{lived}: it expired or"
            " another owner took it, so what was saved under it may not have been written;"
            " give the lock a ttl longer than the work it protects"
        )


class NotSupported(TriggersError, TypeError):
    """The cache cannot hold a lock safely."""


def resolve_cache(cache: CacheLike) -> BaseCache:
    """The cache object for an alias, or ``cache`` itself if it is one."""
    if isinstance(cache, str):
        return caches[cache]
    if isinstance(cache, BaseCache):
        return cache
    raise TypeError(f"expected a cache alias or a Django cache object, not {cache!r}")


def _cache_name(cache: BaseCache) -> str:
    cls = type(cache)
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_transient(exc: BaseException) -> bool:
    """Whether an error of the backend is worth retrying (lost connection, busy DB)."""
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return True
    name = type(exc).__name__
    module = type(exc).__module__
    if module.startswith("django.db") or module.startswith("sqlite3"):
        # A missing cache table is an OperationalError on SQLite, and lasting.
        return name in ("OperationalError", "InterfaceError") and "no such table" not in str(exc)
    if module.startswith("redis") or module.startswith("django_redis"):
        return name in (
            "ConnectionError",
            "TimeoutError",
            "ConnectionInterrupted",
            "BusyLoadingError",
        )
    if module.startswith("pymemcache"):
        return "Unexpected" in name or "Server" in name
    return False


def _check_block(block: Block) -> None:
    if block is not True and block is not False:
        if isinstance(block, bool) or not isinstance(block, (int, float)) or block < 0:
            raise ValueError(f"block must be True, False or a number of seconds, not {block!r}")


def _relative_ttl(cache: BaseCache, ttl: Ttl) -> float | None:
    """Seconds a lock lives, or None for no expiry."""
    if ttl is True:
        value = cache.default_timeout
        if value is not None and value <= 0:
            raise ValueError(
                f"ttl=True takes the cache's default timeout, and {_cache_name(cache)} has"
                f" {value!r}; give the lock a ttl in seconds, or None for no expiry"
            )
    elif ttl is None:
        return None
    else:
        value = ttl
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(
            f"lock ttl must be a positive number of seconds, True or None, not {ttl!r}"
        )
    return float(value)


# --------------------------------------------------------------------------- drivers


class LockDriver:
    """How one kind of cache takes, releases and writes around a lock.

    This base class writes with the cache's own ``set_many`` and cannot
    lock; subclasses add ``try_acquire`` and ``release``.
    """

    #: whether the writes of one save land together (no crash can split them)
    atomic_writes = False
    #: whether :meth:`commit_if_unchanged` is available
    can_commit_if_unchanged = False

    def __init__(self, cache: BaseCache) -> None:
        self.cache = cache

    def commit_if_unchanged(
        self,
        guard: CommitGuard,
        batches: Sequence[Mapping[str, Any]],
        timeout: Any,
    ) -> tuple[str, dict[str, Any]]:
        """Write ``batches`` at once if no lock is held and ``guard`` still holds.

        Returns ``(COMMITTED, {guard.state_key: encoded value written})``,
        ``(LOCKED, {})``, or ``(CHANGED, {guard.version_key: ...,
        guard.state_key: ...})`` with the current values, decoded.
        """
        raise NotSupported(f"{_cache_name(self.cache)} cannot write conditionally")

    def decode(self, raw: Any) -> Any:
        """A value as :meth:`commit_if_unchanged` handed it back encoded."""
        raise NotSupported(f"{_cache_name(self.cache)} cannot write conditionally")

    def try_acquire(self, key: str, token: str, ttl: float | None) -> bool:
        raise NotImplementedError

    def release(self, key: str, token: str) -> bool:
        raise NotImplementedError

    def owns(self, key: str, token: str) -> bool:
        """Whether ``token`` holds ``key`` now (after an attempt whose outcome is unknown)."""
        return bool(self.cache.get(key) == token)

    # Storages use these to save round trips where the cache can batch.
    def try_acquire_and_read(
        self, key: str, token: str, ttl: float | None, read: Sequence[str]
    ) -> tuple[bool, dict[str, Any]]:
        if not self.try_acquire(key, token, ttl):
            return False, {}
        return True, (self.cache.get_many(list(read)) if read else {})

    def write(self, batches: Sequence[Mapping[str, Any]], timeout: Any) -> None:
        """Write ``batches`` in order, holding no lock."""
        for batch in batches:
            if batch:
                failed = self.cache.set_many(dict(batch), timeout=timeout)
                if failed:
                    raise LockBackendError(f"the cache did not store {sorted(failed)}")

    def write_and_release(
        self,
        key: str,
        token: str,
        batches: Sequence[Mapping[str, Any]],
        timeout: Any,
        release: bool = True,
    ) -> bool:
        """Write ``batches`` under the lock, then let go (unless ``release`` is false).

        False if the lock is no longer ``token``'s. Here the writes are made
        whatever happened to the lock; drivers that can check first do.
        """
        self.write(batches, timeout)
        return self.release(key, token) if release else True


class AddLockDriver(LockDriver):
    """Caches whose ``add`` is atomic: LocMem (one process) and Memcached.

    Release reads the key and deletes it if it still holds this holder's
    token: two steps, so a lock that expires between them and is taken by
    another owner at that instant is deleted too. A ttl well above the
    time a lock is held keeps that from happening.
    """

    def try_acquire(self, key: str, token: str, ttl: float | None) -> bool:
        timeout = None if ttl is None else max(1, int(ttl + 0.999))
        return bool(self.cache.add(key, token, timeout=timeout))

    def release(self, key: str, token: str) -> bool:
        if self.cache.get(key) != token:
            return False
        self.cache.delete(key)
        return True


_RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


_ACQUIRE_READ_SCRIPT = """
local px = tonumber(ARGV[2])
local taken
if px > 0 then
    taken = redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', px)
else
    taken = redis.call('set', KEYS[1], ARGV[1], 'NX')
end
if not taken then
    return false
end
local result = {1}
for i = 2, #KEYS do
    result[i] = redis.call('get', KEYS[i])
end
return result
"""

_WRITE_RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then
    return 0
end
local px = tonumber(ARGV[2])
for i = 2, #KEYS do
    if px > 0 then
        redis.call('set', KEYS[i], ARGV[i + 2], 'PX', px)
    else
        redis.call('set', KEYS[i], ARGV[i + 2])
    end
end
if ARGV[3] == '1' then
    redis.call('del', KEYS[1])
end
return 1
"""


_COMMIT_IF_UNCHANGED_SCRIPT = """
if redis.call('exists', KEYS[1]) == 1 then
    return {0}
end
local version = redis.call('get', KEYS[2])
local same
if ARGV[1] == '' then
    same = (not version) and redis.call('exists', KEYS[3]) == 0
else
    same = version == ARGV[1]
end
if not same then
    return {1, version, redis.call('get', KEYS[3])}
end
local px = tonumber(ARGV[2])
local function put(key, value)
    if px > 0 then
        redis.call('set', key, value, 'PX', px)
    else
        redis.call('set', key, value)
    end
end
if ARGV[3] ~= '' then
    put(KEYS[2], ARGV[3])
end
if ARGV[4] ~= '' then
    put(KEYS[3], ARGV[4])
end
for i = 4, #KEYS do
    put(KEYS[i], ARGV[i + 1])
end
return {2}
"""

#: outcomes of :meth:`LockDriver.commit_if_unchanged`
COMMITTED = "committed"
LOCKED = "locked"
CHANGED = "changed"


class CommitGuard(NamedTuple):
    """What a conditional commit checks, and what it hands back.

    The commit is made only while ``lock_key`` is free and ``version_key``
    holds ``expected`` (None: neither it nor ``state_key`` exists). On a
    change the current values of ``version_key`` and ``state_key`` come
    back; on success, the encoded value written under ``state_key``.
    """

    lock_key: str
    version_key: str
    state_key: str
    expected: Any


@functools.cache
def _script_digest(source: str) -> str:
    return hashlib.sha1(source.encode("utf-8")).hexdigest()


try:
    from redis.exceptions import NoScriptError as _NoScriptError
except ImportError:  # redis-py is not installed: no Redis cache can be in use

    class _NoScriptError(Exception):  # type: ignore[no-redef]
        pass


class RedisLockDriver(LockDriver):
    """Redis through django-redis or Django's own RedisCache: SET NX and scripts."""

    atomic_writes = True
    can_commit_if_unchanged = True

    def __init__(self, cache: BaseCache) -> None:
        super().__init__(cache)
        self._decode_object: Any = None
        if hasattr(cache, "client") and hasattr(cache.client, "encode"):  # django-redis
            client = cache.client
            self._raw = lambda: client.get_client(write=True)
            make_key = client.make_key
            self._key = functools.lru_cache(maxsize=4096)(lambda key: str(make_key(key)))
            self._encode = client.encode
            self._decode = client.decode
            serializer = getattr(client, "_serializer", None)
            compressor = getattr(client, "_compressor", None)
            if serializer is not None and compressor is not None:
                # What the client's decode does past its first step, an attempt
                # at int() that, for a pickled dict, formats an error message
                # quoting every byte of it.
                self._decode_object = lambda raw: serializer.loads(compressor.decompress(raw))
        else:  # django.core.cache.backends.redis.RedisCache
            backend = cache._cache  # type: ignore[attr-defined]
            serializer = backend._serializer
            raw_client = backend.get_client(None, write=True)  # one pool; made once
            self._raw = lambda: raw_client
            self._key = functools.lru_cache(maxsize=4096)(cache.make_and_validate_key)
            self._encode = serializer.dumps
            self._decode = serializer.loads
            self._decode_object = pickle.loads  # what loads() does with anything but an int

    def _px(self, timeout: Any) -> int:
        """A cache timeout in milliseconds for SET PX; 0 for no expiry."""
        seconds = self.cache.default_timeout if timeout is DEFAULT_TIMEOUT else timeout
        return 0 if seconds is None else max(1, int(seconds * 1000))

    def _ttl_ms(self, ttl: float | None) -> int | None:
        return None if ttl is None else max(1, int(ttl * 1000))

    def try_acquire(self, key: str, token: str, ttl: float | None) -> bool:
        return bool(
            self._raw().set(self._key(key), self._encode(token), nx=True, px=self._ttl_ms(ttl))
        )

    def release(self, key: str, token: str) -> bool:
        return bool(self._run_script(_RELEASE_SCRIPT, [self._key(key)], [self._encode(token)]))

    def _run_script(self, source: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run a Lua script by its digest, loading it first where the server lacks it."""
        client = self._raw()
        digest = _script_digest(source)
        try:
            return client.evalsha(digest, len(keys), *keys, *args)
        except _NoScriptError:
            client.script_load(source)
            return client.evalsha(digest, len(keys), *keys, *args)

    def try_acquire_and_read(
        self, key: str, token: str, ttl: float | None, read: Sequence[str]
    ) -> tuple[bool, dict[str, Any]]:
        # One round trip: take the lock and, if taken, read the keys.
        keys = [self._key(key), *(self._key(name) for name in read)]
        result = self._run_script(
            _ACQUIRE_READ_SCRIPT, keys, [self._encode(token), self._ttl_ms(ttl) or 0]
        )
        if not result:
            return False, {}
        values = {}
        for name, raw in zip(read, result[1:]):
            if raw is not None and raw is not False:
                values[name] = self._decode(raw)
        return True, values

    def write_and_release(
        self,
        key: str,
        token: str,
        batches: Sequence[Mapping[str, Any]],
        timeout: Any,
        release: bool = True,
    ) -> bool:
        # One script: the writes and the release happen together, and only
        # if this holder still owns the lock (a holder whose lock expired
        # and was taken by another cannot overwrite newer state).
        px = self._px(timeout)
        keys = [self._key(key)]
        args: list[Any] = [self._encode(token), px, "1" if release else "0"]
        for batch in batches:
            for name, value in batch.items():
                keys.append(self._key(name))
                args.append(self._encode(value))
        return bool(self._run_script(_WRITE_RELEASE_SCRIPT, keys, args))

    def commit_if_unchanged(
        self,
        guard: CommitGuard,
        batches: Sequence[Mapping[str, Any]],
        timeout: Any,
    ) -> tuple[str, dict[str, Any]]:
        # One script, atomic on the server: check, then write everything.
        px = self._px(timeout)
        key, encode = self._key, self._encode
        keys = [key(guard.lock_key), key(guard.version_key), key(guard.state_key)]
        expected = "" if guard.expected is None else encode(guard.expected)
        # The version and state keys are named once; their new values (if
        # written) go in fixed places, the other writes after them.
        args: list[Any] = [expected, px, "", ""]
        for batch in batches:
            for name, value in batch.items():
                if name == guard.version_key:
                    args[2] = encode(value)
                elif name == guard.state_key:
                    args[3] = encode(value)
                else:
                    keys.append(key(name))
                    args.append(encode(value))
        result = self._run_script(_COMMIT_IF_UNCHANGED_SCRIPT, keys, args)
        outcome = result[0]
        if outcome == 2:
            return COMMITTED, {guard.state_key: args[3] or None}
        if outcome == 0:
            return LOCKED, {}
        values = {}
        version, state = result[1], result[2] if len(result) > 2 else None
        if version is not None and version is not False:
            values[guard.version_key] = self._decode(version)
        if state is not None and state is not False:
            values[guard.state_key] = self.decode(state)
        return CHANGED, values

    def decode(self, raw: Any) -> Any:
        """A value as :meth:`commit_if_unchanged` handed it back encoded (not an int)."""
        try:
            return (self._decode_object or self._decode)(raw)
        except Exception:
            return self._decode(raw)  # the client's own way, whatever it was


class DatabaseLockDriver(LockDriver):
    """Django's database cache: conditional SQL on the cache table.

    Django's own ``add`` checks and writes in two statements, so two
    processes may both take an expired key; a conditional UPDATE (or an
    INSERT against the primary key) cannot be won twice. Waiters poll with
    a plain SELECT: on SQLite a write takes the whole file, and a waiter
    that wrote while polling would make the holder's own writes fail.

    Writes under the lock go in one transaction that first checks, with a
    write, that the lock is still this holder's. Rows are read and written
    exactly as Django's ``DatabaseCache`` does (key, base64 pickle, expiry),
    so ``cache.get`` reads them; unlike Django's ``set``, which swallows
    database errors, a failed write here raises.
    """

    def _connection(self) -> tuple[str, Any, str]:
        from django.db import connections, router

        db = router.db_for_write(self.cache.cache_model_class)  # type: ignore[attr-defined]
        connection = connections[db]
        return db, connection, connection.ops.quote_name(self.cache._table)  # type: ignore[attr-defined]

    def _encode(self, value: Any) -> str:
        protocol = getattr(self.cache, "pickle_protocol", pickle.HIGHEST_PROTOCOL)
        return base64.b64encode(pickle.dumps(value, protocol)).decode("latin1")

    def _stamp(self, connection: Any, moment: datetime) -> Any:
        return connection.ops.adapt_datetimefield_value(moment.replace(microsecond=0))

    def _moment(self, timestamp: float | None) -> datetime:
        """The expiry column's value for a Unix time (None: never)."""
        if timestamp is None:
            return datetime.max
        return datetime.fromtimestamp(timestamp, tz=timezone.utc if settings.USE_TZ else None)

    @contextlib.contextmanager
    def _statement(self, db: str, connection: Any) -> Iterator[Any]:
        """A cursor for one statement that may fail (inside a transaction: a savepoint)."""
        from django.db import transaction

        atomic = (
            transaction.atomic(using=db) if connection.in_atomic_block else contextlib.nullcontext()
        )
        with atomic, connection.cursor() as cursor:
            yield cursor

    @contextlib.contextmanager
    def _closing_if_broken(self, connection: Any) -> Iterator[None]:
        """On a database error, close a connection the server dropped (so the
        next attempt opens a new one), and let the error go on."""
        from django.db import DatabaseError

        try:
            yield
        except DatabaseError:
            if not connection.in_atomic_block and connection.connection is not None:
                with contextlib.suppress(Exception):
                    if not connection.is_usable():
                        connection.close()
            raise

    def try_acquire(self, key: str, token: str, ttl: float | None) -> bool:
        from django.db import IntegrityError

        db, connection, table = self._connection()
        q = connection.ops.quote_name
        db_key = self.cache.make_and_validate_key(key)
        value = self._encode(token)
        now = self._stamp(connection, self._moment(time.time()))
        expires = self._stamp(
            connection, self._moment(None if ttl is None else time.time() + max(1.0, ttl))
        )
        with self._closing_if_broken(connection):
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT {q('value')}, CASE WHEN {q('expires')} < %s THEN 1 ELSE 0 END"
                    f" FROM {table} WHERE {q('cache_key')} = %s",
                    [now, db_key],
                )
                row = cursor.fetchone()
            if row is not None:
                current, expired = row
                if not expired:
                    # Held; by this token only if an earlier attempt took it and then failed.
                    return bool(current == value)
                with self._statement(db, connection) as cursor:
                    cursor.execute(
                        f"UPDATE {table} SET {q('value')} = %s, {q('expires')} = %s"
                        f" WHERE {q('cache_key')} = %s AND {q('expires')} < %s",
                        [value, expires, db_key, now],
                    )
                    return cursor.rowcount == 1
            try:
                with self._statement(db, connection) as cursor:
                    cursor.execute(
                        f"INSERT INTO {table} ({q('cache_key')}, {q('value')}, {q('expires')})"
                        " VALUES (%s, %s, %s)",
                        [db_key, value, expires],
                    )
            except IntegrityError:
                return False  # taken since the SELECT
            return True

    def release(self, key: str, token: str) -> bool:
        db, connection, table = self._connection()
        q = connection.ops.quote_name
        with self._closing_if_broken(connection), connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE {q('cache_key')} = %s AND {q('value')} = %s",
                [self.cache.make_and_validate_key(key), self._encode(token)],
            )
            return cursor.rowcount == 1

    def owns(self, key: str, token: str) -> bool:
        # Not cache.get(): Django's database cache deletes a row it reads as
        # expired, unconditionally, and could delete a lock just taken over.
        db, connection, table = self._connection()
        q = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT 1 FROM {table}"
                f" WHERE {q('cache_key')} = %s AND {q('value')} = %s AND {q('expires')} >= %s",
                [
                    self.cache.make_and_validate_key(key),
                    self._encode(token),
                    self._stamp(connection, self._moment(time.time())),
                ],
            )
            return cursor.fetchone() is not None

    def _upsert(
        self,
        cursor: Any,
        connection: Any,
        table: str,
        batches: Sequence[Mapping[str, Any]],
        timeout: Any,
    ) -> None:
        q = connection.ops.quote_name
        expires = self._stamp(connection, self._moment(self.cache.get_backend_timeout(timeout)))
        for batch in batches:
            for name, value in batch.items():
                db_key = self.cache.make_and_validate_key(name)
                encoded = self._encode(value)
                cursor.execute(
                    f"UPDATE {table} SET {q('value')} = %s, {q('expires')} = %s"
                    f" WHERE {q('cache_key')} = %s",
                    [encoded, expires, db_key],
                )
                if cursor.rowcount == 0:
                    cursor.execute(
                        f"INSERT INTO {table} ({q('cache_key')}, {q('value')}, {q('expires')})"
                        " VALUES (%s, %s, %s)",
                        [db_key, encoded, expires],
                    )

    def write(self, batches: Sequence[Mapping[str, Any]], timeout: Any) -> None:
        from django.db import transaction

        if not any(batches):
            return
        db, connection, table = self._connection()
        with transaction.atomic(using=db), connection.cursor() as cursor:
            self._upsert(cursor, connection, table, batches, timeout)

    def write_and_release(
        self,
        key: str,
        token: str,
        batches: Sequence[Mapping[str, Any]],
        timeout: Any,
        release: bool = True,
    ) -> bool:
        from django.db import transaction

        db, connection, table = self._connection()
        q = connection.ops.quote_name
        lock_key = self.cache.make_and_validate_key(key)
        now = self._stamp(connection, self._moment(time.time()))
        with transaction.atomic(using=db), connection.cursor() as cursor:
            # The owner check is a write, so on SQLite it takes the write lock
            # before anything is read: nothing can fail for want of it later.
            cursor.execute(
                f"UPDATE {table} SET {q('expires')} = {q('expires')}"
                f" WHERE {q('cache_key')} = %s AND {q('value')} = %s AND {q('expires')} >= %s",
                [lock_key, self._encode(token), now],
            )
            if cursor.rowcount != 1:
                return False
            self._upsert(cursor, connection, table, batches, timeout)
            if release:
                cursor.execute(f"DELETE FROM {table} WHERE {q('cache_key')} = %s", [lock_key])
        return True


_UNSAFE_CACHES = {
    "django.core.cache.backends.filebased.FileBasedCache": (
        "its add() checks and writes a file in two steps, so two processes can both win"
    ),
    "django.core.cache.backends.dummy.DummyCache": "it stores nothing, so a lock never holds",
}

_ADVICE = (
    "use Redis (django-redis or django.core.cache.backends.redis.RedisCache), Memcached,"
    " the database cache, or LocMemCache within one process"
)


def cache_lock_problem(cache: BaseCache) -> str | None:
    """Why ``cache`` cannot hold a lock, or None if it can."""
    for cls in type(cache).__mro__:
        reason = _UNSAFE_CACHES.get(f"{cls.__module__}.{cls.__qualname__}")
        if reason:
            return f"{_cache_name(cache)} cannot hold a lock: {reason}; {_ADVICE}"
    return None


_drivers: weakref.WeakKeyDictionary[BaseCache, LockDriver] = weakref.WeakKeyDictionary()


def lock_driver(cache: BaseCache) -> LockDriver:
    """The driver that locks safely on ``cache`` (made once per cache object)."""
    try:
        return _drivers[cache]
    except (KeyError, TypeError):
        pass
    problem = cache_lock_problem(cache)
    if problem:
        raise NotSupported(problem)
    driver = _make_driver(cache)
    with contextlib.suppress(TypeError):
        _drivers[cache] = driver
    return driver


def _make_driver(cache: BaseCache) -> LockDriver:
    names = {f"{c.__module__}.{c.__qualname__}" for c in type(cache).__mro__}
    if (
        "django_redis.cache.RedisCache" in names
        or "django.core.cache.backends.redis.RedisCache" in names
    ):
        return RedisLockDriver(cache)
    if "django.core.cache.backends.db.DatabaseCache" in names:
        return DatabaseLockDriver(cache)
    if cache_lock_problem(cache):
        return LockDriver(cache)  # writes only: see NoLock
    return AddLockDriver(cache)


# --------------------------------------------------------------------------- the lock


class CacheLock:
    """One lock key in one cache, held with a token unique to this holder."""

    def __init__(self, key: str, cache: CacheLike = "default", ttl: Ttl = True) -> None:
        self.key = key
        self.cache = resolve_cache(cache)
        self.driver = lock_driver(self.cache)
        self.ttl = _relative_ttl(self.cache, ttl)
        self.token = f"{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex}"
        self.held = False
        self._uncertain = False  # whether the last attempt failed midway

    def _call(self, operation: Any, *args: Any) -> Any:
        """Run a driver call, retrying transient backend errors for a while."""
        deadline = None
        pause = TRANSIENT_BACKOFF_START
        while True:
            try:
                return operation(*args)
            except Exception as exc:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + TRANSIENT_RETRY_SECONDS
                if not _is_transient(exc) or now >= deadline:
                    raise LockBackendError(
                        f"cache {_cache_name(self.cache)} failed while handling lock"
                        f" {self.key!r}: {exc}"
                    ) from exc
                time.sleep(min(pause * random.uniform(0.5, 1.0), deadline - now))
                pause = min(pause * 2, TRANSIENT_BACKOFF_CAP)

    def _attempt(self, read: Sequence[str]) -> tuple[bool, dict[str, Any]]:
        if self._uncertain:
            # The last attempt failed midway: it may have taken the lock.
            if self.driver.owns(self.key, self.token):
                self._uncertain = False
                return True, (self.cache.get_many(list(read)) if read else {})
        self._uncertain = True
        result = self.driver.try_acquire_and_read(self.key, self.token, self.ttl, read)
        self._uncertain = False
        return result

    def acquire(self, block: Block = True, read: Sequence[str] = ()) -> dict[str, Any]:
        """Take the lock, waiting as ``block`` says; returns the ``read`` keys' values."""
        if self.held:
            raise RuntimeError(f"lock {self.key!r} is already held by this CacheLock")
        _check_block(block)
        started = time.monotonic()
        attempt = 0
        self._uncertain = False
        while True:
            acquired, values = self._call(self._attempt, read)
            if acquired:
                self.held = True
                return values
            if block is False:
                raise LockAcquisitionFailed(self.key)
            waited = time.monotonic() - started
            if block is not True and waited >= block:
                raise LockAcquisitionFailed(self.key, waited=float(block))
            pause = min(BACKOFF_CAP, BACKOFF_START * 2 ** min(attempt, 16))
            pause *= random.uniform(0.5, 1.0)
            if block is not True:
                pause = min(pause, max(0.0, block - waited))
            time.sleep(pause)
            attempt += 1

    def release(
        self, batches: Sequence[Mapping[str, Any]] = (), timeout: Any = DEFAULT_TIMEOUT
    ) -> bool:
        """Write ``batches`` in order, then let go.

        Without writes, returns False if the lock had been lost meanwhile
        (nothing else to do about it then). With writes, a lost lock raises
        :class:`LockLost`: the writes were refused, or made without the lock.
        """
        if not self.held:
            raise RuntimeError(f"lock {self.key!r} is not held")
        self.held = False
        if any(batches):
            # Writes are not retried blindly: a failure surfaces to the caller,
            # after a plain release so the lock is not left to its ttl.
            try:
                released = self.driver.write_and_release(self.key, self.token, batches, timeout)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.driver.release(self.key, self.token)
                raise
            if not released:
                raise LockLost(self.key, self.ttl)
            return True
        return bool(self._call(self.driver.release, self.key, self.token))

    def write(self, batches: Sequence[Mapping[str, Any]], timeout: Any = DEFAULT_TIMEOUT) -> bool:
        """Write ``batches`` in order while keeping the lock; LockLost if it was lost."""
        if not self.held:
            raise RuntimeError(f"lock {self.key!r} is not held")
        if not self.driver.write_and_release(self.key, self.token, batches, timeout, release=False):
            raise LockLost(self.key, self.ttl)
        return True


class NoLock:
    """What a :class:`Lockable` holds under ``acquire_lock(ttl=False)``: no lock at all.

    It takes nothing and keeps no one out, but what is saved in the block
    is written all the same, plainly. Any cache will do, even one that
    cannot lock.
    """

    held = True
    ttl = None

    def __init__(self, key: str, cache: CacheLike = "default") -> None:
        self.key = key
        self.cache = resolve_cache(cache)
        self.driver = _make_driver(self.cache)

    def acquire(self, block: Block = True, read: Sequence[str] = ()) -> dict[str, Any]:
        return self.cache.get_many(list(read)) if read else {}

    def release(
        self, batches: Sequence[Mapping[str, Any]] = (), timeout: Any = DEFAULT_TIMEOUT
    ) -> bool:
        self.driver.write(batches, timeout)
        return True

    def write(self, batches: Sequence[Mapping[str, Any]], timeout: Any = DEFAULT_TIMEOUT) -> bool:
        self.driver.write(batches, timeout)
        return True


@contextlib.contextmanager
def acquire_lock(
    key: str, ttl: Ttl = True, cache: CacheLike = "default", block: Block = True
) -> Iterator[CacheLock | None]:
    """Hold the lock ``key`` in ``cache`` for the duration of the ``with`` block.

    ``ttl``: True for the cache's default timeout, None for no expiry, a
    number of seconds, or False to take no lock at all. ``block``: True to
    wait as long as it takes, False to fail at once, or the most seconds to
    wait; failing raises :class:`LockAcquisitionFailed`.
    """
    if ttl is False:
        yield None
        return
    lock = CacheLock(key, cache, ttl)
    lock.acquire(block)
    try:
        yield lock
    finally:
        lock.release()


class Lockable:
    """Gives an object a re-entrant, per-thread lock named after it.

    Subclasses say which key (``get_lock_name``) and which cache
    (``get_lock_backend``) hold it, and may react to taking and dropping it.
    """

    def get_lock_name(self) -> str:
        raise NotImplementedError

    def get_lock_backend(self) -> CacheLike:
        return "default"

    def _lock_local(self) -> threading.local:
        local = self.__dict__.get("_triggers_lock_local")
        if local is None:
            local = self.__dict__.setdefault("_triggers_lock_local", threading.local())
        return local

    def _object_mutex(self) -> threading.RLock:
        """Serializes, within a process, the threads that share this object:
        they share its loaded state, which one thread's work replaces."""
        mutex = self.__dict__.get("_triggers_object_mutex")
        if mutex is None:
            mutex = self.__dict__.setdefault("_triggers_object_mutex", threading.RLock())
        return mutex

    def _mark_held(self, lock: Any) -> None:
        """Record in this thread's state the lock (or try) now held; None: none."""
        local = self._lock_local()
        local.depth = 0 if lock is None else 1
        local.lock = lock

    @property
    def has_lock(self) -> bool:
        """Whether this thread is inside ``acquire_lock()`` (``ttl=False`` included)."""
        return getattr(self._lock_local(), "depth", 0) > 0

    def _held_lock(self) -> CacheLock | NoLock | None:
        """The lock this thread holds for this object, if any."""
        return getattr(self._lock_local(), "lock", None)

    def _lock_read_keys(self) -> Sequence[str]:
        """Keys worth reading in the same round trip that takes the lock."""
        return ()

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
        _check_block(block)
        mutex = self._object_mutex()
        if not (mutex.acquire() if block is True else mutex.acquire(timeout=float(block))):
            # Another thread of this process works on this very object.
            raise LockAcquisitionFailed(
                self.get_lock_name(), None if block is False else float(block)
            )
        try:
            lock: CacheLock | NoLock
            if ttl is False:
                lock = NoLock(self.get_lock_name(), self.get_lock_backend())
            else:
                lock = CacheLock(self.get_lock_name(), self.get_lock_backend(), ttl)
            prefetched = lock.acquire(block, read=self._lock_read_keys())
            self._mark_held(lock)
            try:
                self._on_lock_acquired(prefetched)
                yield self
            finally:
                self._mark_held(None)
                try:
                    try:
                        batches, timeout = self._pending_writes()
                    except BaseException:
                        lock.release()
                        raise
                    lock.release(batches, timeout)
                finally:
                    self._on_lock_released()
        finally:
            mutex.release()

    def _pending_writes(self) -> tuple[Sequence[Mapping[str, Any]], Any]:
        """Writes to send with the release, and their timeout."""
        return (), DEFAULT_TIMEOUT

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
