"""Lock driver for Redis, through django-redis or Django's own RedisCache.

The lock is a key taken with SET NX PX. Each operation is one round trip
running a script of :mod:`.redis_scripts`: taking the lock reads the keys a
storage wants in the same step, and the writes of a save are made together
with the release, only while the lock is still the holder's.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any, ClassVar

from django.core.cache import BaseCache
from django.core.cache.backends.base import DEFAULT_TIMEOUT, MEMCACHE_MAX_KEY_LENGTH

from ...cache_internals import RedisCodec, redis_codec
from ...errors import NotSupported
from ..pages import (
    PagedRead,
    damaged_page_refusal,
    entry_address,
    entry_stored,
    paged_writes,
)
from ..raw_values import decoded_found, passing_raw
from ..writes import CommitGuard, CommitResult, Outcome, Writes
from . import redis_scripts as scripts
from .base import LockDriver, storable
from .redis_async import AsyncRedisDriver, ScriptCall
from .redis_cluster import (
    CLUSTER_FAILURES,
    CLUSTER_TRANSIENT,
    read_from_master,
    replicas_to_wait_for,
    run_script,
)
from .redis_pools import shared_redis_clients

__all__ = ["RedisLockDriver", "ScriptCall"]


try:
    from redis.exceptions import BusyLoadingError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError:  # redis-py is not installed: no Redis cache can be in use
    _CLIENT_ERRORS: tuple[type[BaseException], ...] = ()
else:
    _CLIENT_ERRORS = (RedisConnectionError, RedisTimeoutError, BusyLoadingError)

try:
    from redis.exceptions import ClusterDownError, InvalidResponse, OutOfMemoryError, ReadOnlyError
except ImportError:
    _FAILURES: tuple[type[BaseException], ...] = ()
else:
    # A replica refusing writes, a server out of memory, a garbled reply.
    _FAILURES = (ReadOnlyError, OutOfMemoryError, ClusterDownError, InvalidResponse)

try:
    from django_redis.exceptions import ConnectionInterrupted
except ImportError:  # django-redis is not installed
    pass
else:
    _CLIENT_ERRORS = (*_CLIENT_ERRORS, ConnectionInterrupted)


def _key_maker(codec: RedisCodec) -> Callable[[str], str]:
    """How the driver names a key as the cache does.

    By concatenation where the cache puts a fixed prefix before every key (a
    whole session's record keys are made per read, too many to keep); the
    cache's own way, remembered, for the others and for any key the cache
    would warn about (Django's RedisCache warns, as it warns of keys Memcached
    would refuse, and this keeps its warnings as they were).
    """
    exact = functools.lru_cache(maxsize=4096)(codec.make_key)
    prefix = codec.key_prefix
    if prefix is None:
        return exact

    def make_key(key: str) -> str:
        if type(key) is str and key.isprintable() and " " not in key:
            made = prefix + key
            if len(made) <= MEMCACHE_MAX_KEY_LENGTH:
                return made
        return exact(key)

    return make_key


def _encoded(client: Any, keys: list[Any]) -> list[Any]:
    """``keys`` as the client sends them: in its encoding, as bytes (which its
    encoder passes on), encoded here in one go (its encoder, called per key
    of a whole session's read, costs more than the encoding itself)."""
    get_encoder = getattr(client, "get_encoder", None)
    if get_encoder is None:
        return keys
    encoder = get_encoder()
    encoding, errors = encoder.encoding, encoder.encoding_errors
    return [key.encode(encoding, errors) if type(key) is str else key for key in keys]


#: how an entry's name is sent to a script: as its page stores it
_NAMES = ("utf-8", "surrogatepass")


def _committed(result: Any) -> bool:
    """Whether COMMIT_IF_UNCHANGED wrote (it answers ``{2}`` then)."""
    return bool(result) and result[0] == 2


def _as_bytes(encoded: Any) -> bytes:
    """What Redis stores for a value the client sends (as redis-py encodes it)."""
    if isinstance(encoded, (bytes, bytearray, memoryview)):
        return bytes(encoded)
    if isinstance(encoded, (int, float)) and not isinstance(encoded, bool):
        return repr(encoded).encode()
    return str(encoded).encode("utf-8")


class RedisLockDriver(LockDriver):
    """SET NX and server-side scripts: every write under the lock is fenced."""

    atomic_writes: ClassVar[bool] = True
    can_commit_if_unchanged: ClassVar[bool] = True
    keeps_pages: ClassVar[bool] = True
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (
        *LockDriver.transient_errors,
        *_CLIENT_ERRORS,
        *CLUSTER_TRANSIENT,
    )
    failure_errors: ClassVar[tuple[type[BaseException], ...]] = (*_FAILURES, *CLUSTER_FAILURES)

    def __init__(self, cache: BaseCache) -> None:
        super().__init__(cache)
        codec = passing_raw(redis_codec(cache))
        # Django's RedisCache: one pool per process and settings, not per thread.
        self._raw = shared_redis_clients.getter(cache, codec.client)
        self._key = _key_maker(codec)
        self._encode = storable(codec.encode)
        self._decode = codec.decode
        self._decode_object = codec.decode_object

    def session_identity(self, key: str) -> Hashable | None:
        pool = getattr(self._raw(), "connection_pool", None)
        options = getattr(pool, "connection_kwargs", None) or {}
        server = tuple(options.get(name) for name in ("host", "port", "db", "path"))
        return (server, self._key(key))

    def expires_in(self, key: str) -> float | None:
        left = int(self._raw().pttl(self._key(key)))
        if left == -2:  # no such key
            return None
        return math.inf if left == -1 else left / 1000

    def _px(self, timeout: Any) -> int:
        """A cache timeout in milliseconds for SET PX; 0 for no expiry."""
        seconds = self.cache.default_timeout if timeout is DEFAULT_TIMEOUT else timeout
        return 0 if seconds is None else max(1, int(seconds * 1000))

    def _ttl_ms(self, ttl: float | None) -> int | None:
        return None if ttl is None else max(1, int(ttl * 1000))

    def read_many(self, keys: Sequence[str]) -> dict[str, Any]:
        # From the master, as every script runs there: a client that reads
        # from replicas (django-redis's SentinelClient, a LOCATION listing
        # replicas) would otherwise see a session older than its lock does.
        key, client = self._key, self._raw()
        if PagedRead.needed(keys):
            plan = PagedRead(keys)
            made = [key(name) for name in plan.server_keys]
            return plan.found(read_from_master(client, _encoded(client, made)), self._decode)
        raw = read_from_master(client, _encoded(client, [key(name) for name in keys]))
        return decoded_found(keys, raw, self._decode)

    def write(self, writes: Writes) -> None:
        """Make ``writes`` holding no lock; in one script where entries of pages
        are among them (merged into their pages on the server)."""
        items = writes.items()
        if not PagedRead.needed(name for name, _ in items):
            super().write(writes)
            return
        keys: list[Any] = []
        args: list[Any] = [self._px(writes.timeout)]
        for name, value in paged_writes(items):
            keys.append(self._key(name))
            args.append(self._encode(value))
        self._run_script(scripts.WRITE, keys, args, wrote=bool)

    def owns(self, key: str, token: str) -> bool:
        return self.read_many([key]).get(key) == token

    def try_acquire(self, key: str, token: str, ttl: float | None) -> bool:
        return bool(
            self._raw().set(self._key(key), self._encode(token), nx=True, px=self._ttl_ms(ttl))
        )

    def release(self, key: str, token: str) -> bool:
        return bool(self._run_script(*self.release_call(key, token)))

    # Each script call in two halves, what it sends and how its answer reads,
    # shared by this driver and its asyncio twin (:mod:`.redis_async`).
    def release_call(self, key: str, token: str) -> ScriptCall:
        """The RELEASE script's call."""
        return scripts.RELEASE, [self._key(key)], [self._encode(token)]

    def acquire_call(
        self, key: str, token: str, ttl: float | None, read: Sequence[str]
    ) -> ScriptCall:
        """The ACQUIRE_AND_READ script's call (its answer reads with :meth:`taken_and_read`)."""
        asked = PagedRead(read).server_keys if PagedRead.needed(read) else read
        keys = [self._key(key), *(self._key(name) for name in asked)]
        return scripts.ACQUIRE_AND_READ, keys, [self._encode(token), self._ttl_ms(ttl) or 0]

    def write_call(self, key: str, token: str, writes: Writes, release: bool = True) -> ScriptCall:
        """The WRITE_AND_RELEASE script's call: the writes and the release
        happen together, and only if this holder still owns the lock (a holder
        whose lock expired and was taken by another cannot overwrite newer state)."""
        px = self._px(writes.timeout)
        keys = [self._key(key)]
        args: list[Any] = [self._encode(token), px, "1" if release else "0"]
        for name, value in paged_writes(writes.items()):
            keys.append(self._key(name))
            args.append(self._encode(value))
        return scripts.WRITE_AND_RELEASE, keys, args

    def commit_call(self, guard: CommitGuard, writes: Writes) -> ScriptCall:
        """The COMMIT_IF_UNCHANGED script's call (its answer reads with :meth:`commit_result`)."""
        px = self._px(writes.timeout)
        key, encode = self._key, self._encode
        keys = [key(guard.lock_key), key(guard.version_key), key(guard.state_key)]
        expected = "" if guard.expected is None else encode(guard.expected)
        # The version and state keys are named once; their new values (if
        # written) go in fixed places, the other writes after them.
        back, checked = PagedRead(guard.read_back).server_keys, guard.unchanged
        args: list[Any] = [expected, px, "", "", guard.state_digest or "", len(back), len(checked)]
        for name, value in paged_writes(writes.items()):
            if name == guard.version_key:
                args[2] = encode(value)
            elif name == guard.state_key:
                args[3] = encode(value)
            else:
                keys.append(key(name))
                args.append(encode(value))
        # Each must still hold the value, as this driver stores it (an entry
        # of a page: its page, and the entry's name after the SHA-1).
        for name, value in checked:
            address = entry_address(name)
            if address is None:
                keys.append(key(name))
                args.append(hashlib.sha1(_as_bytes(encode(value))).hexdigest())
            else:
                sha1 = hashlib.sha1(entry_stored(name, value)).hexdigest()
                keys.append(key(address[0]))
                args.append((sha1 + address[1]).encode(*_NAMES))
        # Read only when the commit is refused: the retry's block reads them.
        keys.extend(key(name) for name in back)
        return scripts.COMMIT_IF_UNCHANGED, keys, args

    def made_key(self, key: str) -> str:
        """``key`` as the cache stores it (prefix and version)."""
        return self._key(key)

    def asynchronous(self) -> AsyncRedisDriver:
        """This driver's asyncio twin (made once): the same scripts through
        ``redis.asyncio``, on a client built from this cache's own connection settings.

        NotSupported while ``TRIGGERS_REDIS_WAIT_REPLICAS`` is set: the twin
        does not wait for replicas, so async callers take the sync path then."""
        if replicas_to_wait_for():
            raise NotSupported("saves that wait for replicas are made on the sync path")
        twin: AsyncRedisDriver | None = self.__dict__.get("_async_twin")
        if twin is None:
            twin = self.__dict__.setdefault("_async_twin", AsyncRedisDriver(self, self._raw))
        return twin

    def _run_script(
        self, source: str, keys: Sequence[Any], args: Sequence[Any], wrote: Any = None
    ) -> Any:
        """Run a Lua script by its digest, loading it first where the server lacks it
        (``wrote``: see :func:`.redis_cluster.run_script`)."""
        try:
            return run_script(self._raw(), source, keys, args, wrote)
        except Exception as exc:
            refusal = damaged_page_refusal(exc)
            if refusal is None:
                raise
            raise refusal from exc

    def try_acquire_and_read(
        self, key: str, token: str, ttl: float | None, read: Sequence[str]
    ) -> tuple[bool, dict[str, Any]]:
        # One round trip: take the lock and, if taken, read the keys.
        return self.taken_and_read(
            self._run_script(*self.acquire_call(key, token, ttl, read)), read
        )

    def taken_and_read(self, result: Any, read: Sequence[str]) -> tuple[bool, dict[str, Any]]:
        """What an acquiring script answered: whether it took the lock, and the keys it read."""
        if not result:
            return False, {}
        if PagedRead.needed(read):
            return True, PagedRead(read).found(result[1:], self.decode)
        values = {}
        for name, raw in zip(read, result[1:]):
            if raw is not None and raw is not False:
                values[name] = self.decode(raw)  # a head is no int: skip the int() attempt
        return True, values

    def write_and_release(self, key: str, token: str, writes: Writes, release: bool = True) -> bool:
        return bool(self._run_script(*self.write_call(key, token, writes, release), wrote=bool))

    def commit_if_unchanged(self, guard: CommitGuard, writes: Writes) -> CommitResult:
        # One script, atomic on the server: check, then write everything.
        call = self.commit_call(guard, writes)
        return self.commit_result(guard, call, self._run_script(*call, wrote=_committed))

    @staticmethod
    def commit_result(guard: CommitGuard, call: ScriptCall, result: Any) -> CommitResult:
        """What a COMMIT_IF_UNCHANGED call (``call``) answered, as a CommitResult."""
        outcome = result[0]
        if outcome == 2:
            return CommitResult(Outcome.COMMITTED, {guard.state_key: call[2][3] or None})
        if outcome == 0:
            return CommitResult(Outcome.LOCKED)
        # Handed back as stored: the storage decodes them, and can say which is damaged.
        values = {}
        version, state = result[1], result[2] if len(result) > 2 else None
        if version is not None and version is not False:
            values[guard.version_key] = version
        if state is not None and state is not False:
            values[guard.state_key] = state
        values.update(PagedRead(guard.read_back).found(result[3:], lambda raw: raw))
        return CommitResult(Outcome.CHANGED, values)

    def decode(self, raw: Any) -> Any:
        """A value as :meth:`commit_if_unchanged` handed it back encoded (not an int)."""
        try:
            return self._decode_object(raw)
        except Exception:
            return self._decode(raw)  # the client's own way, whatever it was
