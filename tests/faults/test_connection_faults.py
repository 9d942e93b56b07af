"""Connections to Memcached and Redis dropped and stalled through a proxy.

For each cache (PyMemcacheCache, django-redis, Django's RedisCache): a
fault raises BackendUnavailable, never an empty or smaller session, nor a
lock that looks held by another; every fire that was acknowledged is in the
session once the server is back; and the session then reads whole.

The longest operation during a fault and the time to recover are measured
(not asserted) and written to ``/tmp/triggers-connection-faults.json``.
"""

from __future__ import annotations

import functools
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.faults.conftest import Proxied
from tests.faults.proxy import FaultProxy
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import BackendUnavailable, LockAcquisitionFailed

CONFIG = {"t_tick": {"after": ["never"], "andEvery": "tick", "run": "noop"}}
#: how long a test may wait for one call before it counts as hung (seconds)
HUNG = 20.0
FIGURES_FILE = "/tmp/triggers-connection-faults.json"
FIGURES: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module", autouse=True)
def _write_figures() -> Iterator[None]:
    yield
    with open(FIGURES_FILE, "w") as out:
        json.dump(FIGURES, out, indent=2, sort_keys=True)


def note(test: str, kind: str, **figures: Any) -> None:
    FIGURES.setdefault(f"{test}[{kind}]", {}).update(figures)
    print(test, kind, figures)


def bounded(call: Callable[[], Any], seconds: float = HUNG) -> tuple[Any, BaseException | None, float]:
    """Run ``call`` in a thread; its result or error and its duration. Fails the
    test if it has not returned within ``seconds``."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        try:
            outcome["result"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc
        outcome["took"] = time.monotonic() - started

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"the call did not return within {seconds}s: it hangs")
    return outcome.get("result"), outcome.get("error"), outcome["took"]


def store(p: Proxied, uid: str) -> CacheStorageBackend:
    # The session outlives the test; the lock lives for the cache's default
    # timeout (3 s), so a lock whose release a fault cut off does not linger.
    return CacheStorageBackend(uid, cache=p.cache, timeout=600)


def stored_count(p: Proxied, uid: str) -> int:
    """The instances of the session, each record read, by a new storage object."""
    storage = CacheStorageBackend(uid, cache=p.cache, timeout=600)
    return len([storage[name] for name in list(storage.instances)])


def started_session(p: Proxied, uid: str, fires: int) -> TriggerManager:
    manager = TriggerManager(store(p, uid))
    manager.update_configuration(CONFIG)
    for i in range(fires):
        manager.fire("tick", {"i": i})
    return manager


def take_lock(storage: CacheStorageBackend) -> None:
    with storage.acquire_lock(block=5):
        pass


def recover(p: Proxied, uid: str) -> tuple[int, float]:
    """Resume the proxy; the session's instance count once a read succeeds, and
    how long after resuming that was."""
    p.proxy.resume()
    resumed = time.monotonic()
    while True:
        count, error, _ = bounded(lambda: stored_count(p, uid))
        if error is None:
            return count, time.monotonic() - resumed
        assert isinstance(error, BackendUnavailable), repr(error)
        assert time.monotonic() - resumed < HUNG, f"still failing {HUNG}s after resuming: {error!r}"
        time.sleep(0.05)


def test_reads_during_a_drop_raise_and_never_read_an_empty_session(proxied: Proxied, uid: str) -> None:
    started_session(proxied, uid, 12)
    proxied.proxy.drop()
    longest = 0.0
    for _ in range(6):  # pymemcache answers misses for a second after one failure
        count, error, took = bounded(lambda: stored_count(proxied, uid))
        longest = max(longest, took)
        assert error is not None, f"a read during the drop returned a session of {count} instances"
        assert isinstance(error, BackendUnavailable), repr(error)
        assert error.__cause__ is not None
        assert not error.outcome_unknown
    count, recovery = recover(proxied, uid)
    assert count == 12
    note("reads", proxied.kind, longest_during_fault=longest, recovery=recovery)


def test_a_lock_during_a_drop_is_unavailable_not_held(proxied: Proxied, uid: str) -> None:
    started_session(proxied, uid, 2)
    proxied.proxy.drop()
    longest = 0.0
    for _ in range(3):
        _, error, took = bounded(lambda: take_lock(store(proxied, uid)))
        longest = max(longest, took)
        assert not isinstance(error, LockAcquisitionFailed), "a dead server read as a held lock"
        assert isinstance(error, BackendUnavailable), repr(error)
    count, recovery = recover(proxied, uid)
    assert count == 2
    # The lock is free again once the server is back: nothing was left held.
    _, error, _ = bounded(lambda: TriggerManager(store(proxied, uid)).fire("tick"))
    assert error is None, repr(error)
    assert stored_count(proxied, uid) == 3
    note("lock", proxied.kind, longest_during_fault=longest, recovery=recovery)


def test_fires_through_repeated_drops_lose_nothing_acknowledged(proxied: Proxied, uid: str) -> None:
    manager = started_session(proxied, uid, 1)
    acknowledged, unknown, refused, longest = 1, 0, 0, 0.0
    stop = threading.Event()
    faults = 0

    def flap() -> None:
        nonlocal faults
        rng = random.Random(7)
        while not stop.is_set():
            time.sleep(rng.uniform(0.05, 0.2))
            proxied.proxy.drop()
            faults += 1
            time.sleep(rng.uniform(0.02, 0.1))
            proxied.proxy.resume()

    flapper = threading.Thread(target=flap, daemon=True)
    flapper.start()
    deadline = time.monotonic() + 4
    try:
        while time.monotonic() < deadline:
            _, error, took = bounded(functools.partial(manager.fire, "tick"))
            longest = max(longest, took)
            if error is None:
                acknowledged += 1
                continue
            assert isinstance(error, BackendUnavailable), repr(error)
            if error.outcome_unknown:
                unknown += 1
            else:
                refused += 1
            manager = TriggerManager(store(proxied, uid))  # start over from what is stored
    finally:
        stop.set()
        flapper.join(5)
    count, recovery = recover(proxied, uid)
    # Every acknowledged fire is there; a fire whose commit failed midway may be too.
    assert acknowledged <= count <= acknowledged + unknown
    note(
        "fires",
        proxied.kind,
        faults=faults,
        acknowledged=acknowledged,
        outcome_unknown=unknown,
        refused=refused,
        stored=count,
        lost=max(0, acknowledged - count),
        longest_during_fault=longest,
        recovery=recovery,
    )


def test_a_drop_during_a_held_locks_commit(proxied: Proxied, uid: str) -> None:
    manager = started_session(proxied, uid, 3)

    def commit_into_a_drop() -> None:
        with manager.storage.acquire_lock(ttl=2):
            manager.fire("tick")
            manager.fire("tick")
            proxied.proxy.drop()  # the commit goes with the release, now

    _, error, took = bounded(commit_into_a_drop)
    assert isinstance(error, BackendUnavailable), repr(error)
    assert error.outcome_unknown
    count, recovery = recover(proxied, uid)
    assert count in (3, 5), f"the session holds {count} instances: half a commit"
    # Once the lock's ttl is past, the next holder takes it and sees it all.
    _, error, _ = bounded(lambda: TriggerManager(store(proxied, uid)).fire("tick"))
    assert error is None, repr(error)
    assert stored_count(proxied, uid) == count + 1
    note("held_commit", proxied.kind, longest_during_fault=took, recovery=recovery, landed=count == 5)


def test_a_stalled_server_fails_the_call_within_the_client_timeout(proxied: Proxied, uid: str) -> None:
    manager = started_session(proxied, uid, 4)
    manager = TriggerManager(store(proxied, uid))
    proxied.proxy.stall()
    longest = 0.0
    _, error, took = bounded(lambda: stored_count(proxied, uid))
    longest = max(longest, took)
    assert isinstance(error, BackendUnavailable), repr(error)
    _, error, took = bounded(lambda: manager.fire("tick"))
    longest = max(longest, took)
    assert isinstance(error, BackendUnavailable), repr(error)
    count, recovery = recover(proxied, uid)
    # A stalled fire whose commit was sent may land once the server moves again.
    assert count in ((4, 5) if error.outcome_unknown else (4,))
    # Whatever the stalled calls left (a lock that landed late) expires: the next fire lands.
    _, error, _ = bounded(lambda: TriggerManager(store(proxied, uid)).fire("tick"))
    assert error is None, repr(error)
    assert stored_count(proxied, uid) == count + 1
    note("stall", proxied.kind, longest_during_fault=longest, recovery=recovery)


def test_memcached_with_ignore_exc_still_raises_on_a_drop(uid: str) -> None:
    """``ignore_exc`` makes pymemcache answer every error with a miss; the storage still raises."""
    from tests.faults.conftest import make_cache, memcached_target

    with FaultProxy(memcached_target()) as proxy:
        cache = make_cache("memcached", proxy.address, ignore_exc=True)
        p = Proxied("memcached", cache, proxy, cache)
        started_session(p, uid, 3)
        proxy.drop()
        for _ in range(3):
            count, error, _ = bounded(lambda: stored_count(p, uid))
            assert isinstance(error, BackendUnavailable), f"read {count} instances during the drop"
        assert recover(p, uid)[0] == 3
        cache.close()


def test_memcached_keys_of_a_dead_server_are_not_read_from_another(uid: str) -> None:
    """With two servers, the HashClient sends a dead server's keys to the other one,
    where they are missing; the storage asks their own server, and raises."""
    from tests.faults.conftest import SMALL_ITEMS, make_cache, memcached_server

    with memcached_server(*SMALL_ITEMS) as first, memcached_server(*SMALL_ITEMS) as second:
        host, port = second.split(":")
        with FaultProxy((host, int(port))) as proxy:
            cache = make_cache("memcached", f"{first},{proxy.address}", retry_attempts=0)
            p = Proxied("memcached", cache, proxy, cache)
            started_session(p, uid, 20)  # 20 records: some on each server
            proxy.drop()
            for _ in range(4):
                count, error, _ = bounded(lambda: stored_count(p, uid))
                assert isinstance(error, BackendUnavailable), f"read {count} instances during the drop"
            assert recover(p, uid)[0] == 20
            cache.close()
