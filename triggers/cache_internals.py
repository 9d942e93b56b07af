"""Every private part of a Django cache, or of its client, that this package uses.

The lock drivers talk to Redis and to the database cache below Django's
cache API (one round trip per operation, writes made only under a live
lock), so they must encode, key and store values exactly as the cache
itself does. Each such reliance is named here, once, and
``tests/test_cache_internals.py`` fails on any supported Django (and
django-redis) where one of them has moved.

Checked against Django 4.2, 5.2 and 6.0, and django-redis 5.4 to 7.0.
"""

from __future__ import annotations

import base64
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from django.conf import settings
from django.core.cache import BaseCache
from django.core.cache.backends.base import default_key_func

__all__ = [
    "CHECKED_DJANGO_VERSIONS",
    "INTERNALS",
    "LocMemInternals",
    "RedisCodec",
    "database_cache_table",
    "database_row_expiry",
    "database_row_value",
    "default_key_prefix",
    "forget_memcached_client",
    "locmem_internals",
    "max_entries",
    "memcached_servers",
    "redis_codec",
]

#: the Django versions every internal below was checked against
CHECKED_DJANGO_VERSIONS = ("4.2", "5.2", "6.0")

#: (owner, attribute, what this package uses it for)
INTERNALS: tuple[tuple[str, str, str], ...] = (
    ("django_redis.client.DefaultClient", "_serializer", "decode a value without int() first"),
    ("django_redis.client.DefaultClient", "_compressor", "decode a value without int() first"),
    ("django.core.cache.backends.redis.RedisCache", "_cache", "its RedisCacheClient"),
    ("django.core.cache.backends.redis.RedisCacheClient", "_serializer", "encode and decode"),
    ("django.core.cache.backends.redis.RedisCacheClient", "get_client", "the redis-py client"),
    ("django.core.cache.backends.db.DatabaseCache", "_table", "the cache table's name"),
    ("django.core.cache.backends.db.DatabaseCache", "cache_model_class", "routing to a database"),
    ("django.core.cache.backends.db.DatabaseCache", "pickle_protocol", "the row format"),
    ("django.core.cache.backends.db.DatabaseCache", "row format", "base64 pickle; expiry"),
    ("django.core.cache.backends.locmem.LocMemCache", "_max_entries", "the culling warning"),
    (
        "django.core.cache.backends.memcached.BaseMemcachedCache",
        "_cache",
        "its pymemcache HashClient, made once (its servers' clients do gets, cas, append)",
    ),
    ("django.core.cache.backends.locmem.LocMemCache", "_lock", "the mutex of its dict"),
    ("django.core.cache.backends.locmem.LocMemCache", "_cache", "its dict of pickled values"),
    ("django.core.cache.backends.locmem.LocMemCache", "_has_expired", "a key's expiry"),
    ("django.core.cache.backends.locmem.LocMemCache", "_set", "a write, mutex held"),
    ("django.core.cache.backends.locmem.LocMemCache", "_delete", "a delete, mutex held"),
    ("django.core.cache.backends.locmem.LocMemCache", "pickle_protocol", "the value format"),
    ("django.core.cache.backends.db.DatabaseCache", "_max_entries", "the culling warning"),
    ("pymemcache.client.hash.HashClient", "clients", "each server's own client, by name"),
    ("pymemcache.client.hash.HashClient", "hasher", "which server a key belongs to"),
    ("pymemcache.client.base.Client", "serde", "encode a value once, to size it"),
    ("pymemcache.client.base.Client", "key_prefix", "the key as the server sees it"),
    ("pymemcache.client.base.Client", "server", "which server an item size limit is of"),
    ("pymemcache.client.base.Client", "encoding", "encode a value as the client would"),
)


@dataclass(frozen=True)
class RedisCodec:
    """How a Redis cache keys and encodes values, and its raw redis-py client."""

    #: the redis-py client for writes (one pool, shared with the cache)
    client: Callable[[], Any]
    #: the full Redis key of a cache key (prefix and version included)
    make_key: Callable[[str], str]
    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]
    #: ``decode`` for a value known not to be an int (skips the client's int()
    #: attempt, which for a pickled dict formats a message quoting every byte)
    decode_object: Callable[[Any], Any]
    #: where ``make_key(key)`` is this string followed by ``key`` for every key
    #: the cache takes without a warning (see :func:`default_key_prefix`), that
    #: string: a session's many record keys are then made by one concatenation
    key_prefix: str | None = None


def redis_codec(cache: BaseCache) -> RedisCodec:
    """The codec of a django-redis cache or of Django's own RedisCache."""
    if hasattr(cache, "client") and hasattr(cache.client, "encode"):  # django-redis
        client = cache.client
        serializer = getattr(client, "_serializer", None)
        compressor = getattr(client, "_compressor", None)
        decode_object: Callable[[Any], Any] = client.decode
        if serializer is not None and compressor is not None:
            loads, decompress = serializer.loads, compressor.decompress

            def decode_object(raw: Any) -> Any:
                return loads(decompress(raw))

        make_key = client.make_key

        def make_redis_key(key: str) -> str:
            return str(make_key(key))

        prefix = None
        if _django_redis_default_make_key(client):
            prefix = default_key_prefix(cache, make_redis_key)
        return RedisCodec(
            client=lambda: client.get_client(write=True),
            make_key=make_redis_key,
            encode=client.encode,
            decode=client.decode,
            decode_object=decode_object,
            key_prefix=prefix,
        )
    backend = cache._cache  # django.core.cache.backends.redis.RedisCacheClient
    serializer = backend._serializer
    raw_client = backend.get_client(None, write=True)  # one pool; made once
    kind = type(cache)
    base_keys = kind.make_key is BaseCache.make_key and kind.validate_key is BaseCache.validate_key
    return RedisCodec(
        client=lambda: raw_client,
        make_key=cache.make_and_validate_key,
        encode=serializer.dumps,
        decode=serializer.loads,
        decode_object=pickle.loads,  # what loads() does with anything but an int
        key_prefix=default_key_prefix(cache, cache.make_and_validate_key) if base_keys else None,
    )


def _django_redis_default_make_key(client: Any) -> bool:
    """Whether a django-redis client makes keys with DefaultClient's make_key
    (the cache's ``key_func`` over its ``key_prefix`` and ``version``)."""
    try:
        from django_redis.client import DefaultClient
    except ImportError:
        return False
    return getattr(type(client), "make_key", None) is DefaultClient.make_key


def default_key_prefix(cache: BaseCache, make_key: Callable[[str], str]) -> str | None:
    """What ``make_key`` puts before every key, where ``cache`` makes keys with
    Django's default key function (``"<KEY_PREFIX>:<VERSION>:<key>"``); else None.

    The caller has checked that ``make_key`` goes through the cache's
    ``key_func`` as Django's base cache does. None too for a prefix that a
    validating cache would warn about (a space or a control character), so
    that a key made by concatenation is never one that would have warned.
    """
    if cache.key_func is not default_key_func:
        return None
    prefix: str = default_key_func("", cache.key_prefix, cache.version)
    if not (prefix.isprintable() and " " not in prefix and make_key("k") == prefix + "k"):
        return None
    return prefix


@dataclass(frozen=True)
class LocMemInternals:
    """The parts of a LocMemCache that let a driver check and write in one step.

    ``set``, ``delete`` and ``has_expired`` take made keys and expect the
    caller to hold ``mutex``; values are pickled with ``pickle_protocol``.
    """

    mutex: Any
    data: Any
    has_expired: Callable[[str], bool]
    set: Callable[[str, bytes, Any], None]
    delete: Callable[[str], bool]
    pickle_protocol: int


def locmem_internals(cache: BaseCache) -> LocMemInternals:
    """The mutex, dict and unlocked helpers of a LocMemCache."""
    return LocMemInternals(
        mutex=cache._lock,
        data=cache._cache,
        has_expired=cache._has_expired,
        set=cache._set,
        delete=cache._delete,
        pickle_protocol=cache.pickle_protocol,
    )


def database_cache_table(cache: BaseCache) -> tuple[type, str]:
    """The model class Django routes the cache table by, and the table's name."""
    return cache.cache_model_class, cache._table


def database_row_value(cache: BaseCache, value: Any) -> str:
    """A value as the database cache stores it in its ``value`` column."""
    protocol = getattr(cache, "pickle_protocol", pickle.HIGHEST_PROTOCOL)
    return base64.b64encode(pickle.dumps(value, protocol)).decode("latin1")


def database_row_expiry(connection: Any, timestamp: float | None) -> Any:
    """The ``expires`` column's value for a Unix time (None: never), as the
    database cache writes it: whole seconds, aware only under USE_TZ."""
    if timestamp is None:
        moment = datetime.max
    else:
        moment = datetime.fromtimestamp(timestamp, tz=timezone.utc if settings.USE_TZ else None)
    return connection.ops.adapt_datetimefield_value(moment.replace(microsecond=0))


def max_entries(cache: BaseCache) -> int | None:
    """MAX_ENTRIES as Django's base cache keeps it for every cache (though only
    LocMem, the database and the file caches cull by it)."""
    value = getattr(cache, "_max_entries", None)
    return value if isinstance(value, int) else None


def memcached_servers(cache: BaseCache) -> tuple[Any, dict[str, Any]]:
    """The hasher of a PyMemcacheCache's HashClient and its servers' own
    clients, by name: every server, whether the HashClient thinks it up or
    dead (it keeps them all in ``clients``; its hasher loses the dead ones)."""
    hash_client = cache._cache  # made on first use, per cache object
    return hash_client.hasher, hash_client.clients


def forget_memcached_client(cache: BaseCache) -> bool:
    """Drop the client a Memcached cache object made (the next use makes
    another, with sockets of its own); whether there was one."""
    return cache.__dict__.pop("_cache", None) is not None
