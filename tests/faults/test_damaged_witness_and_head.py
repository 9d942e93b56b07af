"""A session whose head or witness no longer decodes is refused, on reads and fires alike.

The damage is written past the cache object, with a raw client of the
server, under the key the cache made for the session's head or witness:
bytes no serializer of the cache decodes (Redis), or a witness stored as an
integer whose bytes are no number (Memcached). Reading the session (a new
storage object) and firing into it must raise StorageCorrupted naming the
uid and the key, and so must a fire made by the storage object that fired
into the session before the damage: it remembers the state it committed,
and on Redis commits without the lock when the session looks unchanged.
Afterwards the damaged bytes are still there, nothing else of the session
changed, and no lock is held: once the bytes are put back, a new storage
object takes the session's lock without waiting, and the session is as it
was before the damage.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import caches

from tests.conftest import prepare_cache
from tests.runner_support import RecordingRunner
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import StorageCorrupted
from triggers.operations.show import show

CONFIG = {
    "t_a": {"after": ["go"], "andEvery": "go", "run": "tests.add", "using": RecordingRunner.name}
}
#: what a Redis head or witness holds instead: neither an integer nor a pickle
GARBAGE = b"\x80\x05garbage, not a pickle\xff"
#: what a Memcached witness holds instead, flagged as an integer
NOT_A_NUMBER = b"abc"
#: fires into the session before the damage
FIRES = 2


class RedisBytes:
    """The bytes Redis stores under a session's key, read and written past the cache object."""

    def __init__(self, alias: str) -> None:
        import redis

        self.alias = alias
        self.cache = caches[alias]
        self.client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=10)

    def get(self, key: str) -> Any:
        return self.client.get(self.cache.make_key(key))

    def put(self, key: str, value: Any) -> bool:
        """Store ``value`` in place of what ``key`` holds (False: it holds nothing)."""
        return bool(self.client.set(self.cache.make_key(key), value, xx=True, keepttl=True))

    def close(self) -> None:
        self.client.close()


class _AsStored:
    """A pymemcache serde that leaves values as they are: bytes and flags."""

    def serialize(self, key: str, value: tuple[bytes, int]) -> tuple[bytes, int]:
        return value

    def deserialize(self, key: str, value: bytes, flags: int) -> tuple[bytes, int]:
        return value, flags


class MemcachedBytes:
    """The bytes and flags Memcached stores under a session's key, past the cache object."""

    def __init__(self) -> None:
        from pymemcache.client.base import Client

        host, _, port = settings.MEMCACHED.rpartition(":")
        self.alias = "memcached"
        self.cache = caches[self.alias]
        self.client = Client((host, int(port)), serde=_AsStored(), connect_timeout=5, timeout=10)

    def get(self, key: str) -> Any:
        return self.client.get(self.cache.make_key(key))

    def put(self, key: str, value: tuple[bytes, int]) -> bool:
        """Store ``value`` in place of what ``key`` holds (False: it holds nothing)."""
        return bool(self.client.replace(self.cache.make_key(key), value, expire=600, noreply=False))

    def close(self) -> None:
        self.client.close()


@pytest.fixture(params=["redis", "dredis"])
def redis_bytes(request: pytest.FixtureRequest) -> Iterator[RedisBytes]:
    """django-redis and Django's RedisCache, each with a raw client of its server."""
    raw = RedisBytes(prepare_cache(request, request.param))
    yield raw
    raw.close()


@pytest.fixture
def memcached_bytes(request: pytest.FixtureRequest) -> Iterator[MemcachedBytes]:
    prepare_cache(request, "memcached")
    raw = MemcachedBytes()
    yield raw
    raw.close()


def storage(uid: str, alias: str, layout: str) -> CacheStorageBackend:
    return CacheStorageBackend(uid, cache=alias, layout=layout)


def fired_session(uid: str, alias: str, layout: str) -> TriggerManager:
    """A manager that configured a new session and fired into it ``FIRES`` times
    (its storage object remembers what it committed)."""
    manager = TriggerManager(storage(uid, alias, layout))
    manager.update_configuration(CONFIG)
    for n in range(FIRES):
        manager.fire("go", {"n": n})
    return manager


def state(uid: str, alias: str, layout: str) -> tuple[Any, ...]:
    """The session as a new storage object reads it: instances, kwargs, configuration."""
    read = storage(uid, alias, layout)
    instances = sorted((i.name, i.status, i.kwargs) for i in read.iter_instances())
    return instances, read.latest_kwargs, {name: c.serialize() for name, c in read.tasks.items()}


def outcome(uid: str, key: str, action: Callable[[], Any]) -> str | None:
    """None if ``action`` raises StorageCorrupted naming the session and ``key``;
    else what it did."""
    try:
        action()
    except StorageCorrupted as exc:
        if exc.uid == uid and key in str(exc):
            return None
        return f"StorageCorrupted not naming {key!r} of {uid!r}: {exc}"
    except Exception as exc:
        return f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
    return "nothing raised"


def refusals(manager: TriggerManager, alias: str, key: str) -> list[str]:
    """Reads and fires on the damaged session: what each of them did other than
    raise StorageCorrupted naming ``key``."""
    uid, layout = manager.storage.uid, manager.storage.layout
    new = TriggerManager(storage(uid, alias, layout))
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("iter_instances", lambda: list(storage(uid, alias, layout).iter_instances())),
        ("show", lambda: show(storage(uid, alias, layout), io.StringIO())),
        # The object that committed to the session before, twice; then a new one.
        ("a fire that remembers", lambda: manager.fire("go", {"n": FIRES})),
        ("its next fire", lambda: manager.fire("go", {"n": FIRES})),
        ("a new object's fire", lambda: new.fire("go", {"n": FIRES})),
    ]
    problems = []
    for what, action in steps:
        result = outcome(uid, key, action)
        if result is not None:
            problems.append(f"{what}: {result}")
    return problems


def check_damage(manager: TriggerManager, raw: Any, key: str, damaged: Any) -> None:
    """Store ``damaged`` under ``key``: reads and fires are refused and write nothing;
    once the bytes are put back, the lock is free and the session as it was.
    Fails listing every step that went otherwise."""
    store = manager.storage
    uid, alias, layout = store.uid, raw.alias, store.layout
    before = state(uid, alias, layout)
    keys = [store.cache_key, store.witness_key]
    stored = {k: raw.get(k) for k in keys}
    assert stored[key] is not None and raw.put(key, damaged), key
    problems = refusals(manager, alias, key)
    expected = {**stored, key: damaged}
    changed = [k for k in keys if raw.get(k) != expected[k]]
    if changed:
        problems.append(f"the stored bytes of {changed} changed")
    raw.put(key, stored[key])
    try:
        # No lock left held: a new storage object takes it at once.
        with storage(uid, alias, layout).acquire_lock(block=False):
            pass
        if state(uid, alias, layout) != before:
            problems.append("with its bytes put back, the session is not as it was")
        # The object that was refused works on once the session is whole again.
        manager.fire("go", {"n": FIRES})
        if len(state(uid, alias, layout)[0]) != FIRES + 1:
            problems.append("the fire after the bytes were put back did not land once")
    except Exception as exc:
        problems.append(f"with its bytes put back: {type(exc).__name__}: {exc}")
    assert not problems, f"{key!r} damaged:\n" + "\n".join(problems)


@pytest.mark.parametrize("part", ["head", "witness"])
def test_a_redis_head_or_witness_that_does_not_decode_is_refused(
    redis_bytes, layout, uid, part, test_runners
):
    manager = fired_session(uid, redis_bytes.alias, layout)
    store = manager.storage
    key = store.cache_key if part == "head" else store.witness_key
    check_damage(manager, redis_bytes, key, GARBAGE)


def test_a_memcached_witness_that_is_not_a_number_is_refused(
    memcached_bytes, layout, uid, test_runners
):
    from pymemcache.serde import FLAG_INTEGER

    manager = fired_session(uid, memcached_bytes.alias, layout)
    witness = manager.storage.witness_key
    check_damage(manager, memcached_bytes, witness, (NOT_A_NUMBER, FLAG_INTEGER))
