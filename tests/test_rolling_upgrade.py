"""A rolling upgrade from Triggers 2.x on Redis: nothing lost, nothing wiped.

2.x processes are played by ``tests/legacy_2x.py`` (the 2.x value, its
python-redis-lock lock, its fire). In the single layout this package takes
2.x's lock as well as its own, so both versions take turns on a session;
a split head makes 2.x fail as it loads it, before it can save; and a split
session something wrote over anyway is refused, not read as a smaller one.
"""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest
import redis
import redis_lock
from django.core.cache import caches
from django.db import connections

from tests.runner_support import RecordingRunner
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import SessionIncomplete, SessionOverwritten
from triggers.storages.cache.committed import committed_heads

from .legacy_2x import fire_like_2x, key_of, load_like_2x, raw_client_of

FORK = multiprocessing.get_context("fork")
FIRES = 100
CONFIG = {"t_page": {"after": ["page"], "andEvery": "page", "run": "tests.add", "using": RecordingRunner.name}}


@pytest.fixture(params=["redis", "dredis"])
def redis_alias(request, test_runners):
    from .conftest import prepare_cache

    return prepare_cache(request, request.param)


def _manager(alias, uid, layout):
    return TriggerManager(CacheStorageBackend(uid, cache=alias, layout=layout))


def _fire_as_2x(alias, uid, writer):
    cache = caches[alias]
    raw = raw_client_of(cache)
    for k in range(FIRES):
        fire_like_2x(cache, raw, uid, "page", {"writer": writer, "k": k})


def _fire_as_3x(alias, uid, writer, layout):
    manager = _manager(alias, uid, layout)
    for k in range(FIRES):
        manager.fire("page", {"writer": writer, "k": k})


def _run_all(targets):
    connections.close_all()
    for alias in ("redis", "dredis"):
        caches[alias].close()
    children = [FORK.Process(target=target, args=args) for target, args in targets]
    for child in children:
        child.start()
    for child in children:
        child.join(180)
    assert [child.exitcode for child in children] == [0] * len(children)


def _raw_keys(alias, uid):
    """Every key of the session on the server, with its raw bytes (not 2.x's
    lock signal list, which its lock's release leaves by design)."""
    raw = raw_client_of(caches[alias])
    keys = [key for key in sorted(raw.keys(f"*{uid}*")) if not key.startswith(b"lock-signal:")]
    return {key: raw.dump(key) for key in keys}


def test_2x_and_single_layout_processes_take_turns_and_lose_no_fire(redis_alias, uid):
    _manager(redis_alias, uid, "single").update_configuration(CONFIG)
    _run_all(
        [(_fire_as_2x, (redis_alias, uid, "2x-a")), (_fire_as_2x, (redis_alias, uid, "2x-b"))]
        + [(_fire_as_3x, (redis_alias, uid, w, "single")) for w in ("3x-a", "3x-b")]
    )
    store = CacheStorageBackend(uid, cache=redis_alias)
    fired = [i.kwargs["page"] for i in store.iter_instances()]
    assert len(fired) == 4 * FIRES
    expected = {(w, k) for w in ("2x-a", "2x-b", "3x-a", "3x-b") for k in range(FIRES)}
    assert sorted((f["writer"], f["k"]) for f in fired) == sorted(expected)  # each once
    # Still a 2.x value, which 2.x reads whole; neither lock is left behind.
    configs, instances, _ = load_like_2x(caches[redis_alias].get(key_of(uid)))
    assert len(instances) == 4 * FIRES
    raw = raw_client_of(caches[redis_alias])
    assert raw.get(f"lock:triggers:{uid}:lock") is None
    assert not caches[redis_alias].get(store.keys.lock)


def test_the_single_layout_wakes_2x_waiters(redis_alias, uid):
    """Letting go pushes 2.x's signal list, which python-redis-lock waiters block on."""
    manager = _manager(redis_alias, uid, "single")
    manager.update_configuration(CONFIG)
    raw = raw_client_of(caches[redis_alias])
    raw.delete(f"lock-signal:triggers:{uid}:lock")
    manager.fire("page", {"k": 1})
    assert raw.lrange(f"lock-signal:triggers:{uid}:lock", 0, -1) == [b"1"]


def test_a_2x_process_meeting_a_split_session_fails_and_writes_nothing(redis_alias, uid):
    manager = _manager(redis_alias, uid, "split")
    manager.update_configuration(CONFIG)
    for k in range(3):
        manager.fire("page", {"k": k})
    before = _raw_keys(redis_alias, uid)
    cache = caches[redis_alias]
    with pytest.raises(TypeError):
        fire_like_2x(cache, raw_client_of(cache), uid, "page", {"k": 99})
    assert _raw_keys(redis_alias, uid) == before  # byte for byte; its lock let go
    assert len(list(CacheStorageBackend(uid, cache=redis_alias).iter_instances())) == 3


def test_a_split_session_written_over_anyway_is_refused(redis_alias, uid):
    manager = _manager(redis_alias, uid, "split")
    manager.update_configuration(CONFIG)
    for k in range(3):
        manager.fire("page", {"k": k})
    # What a 2.x process that had read the session before it was split would write.
    cache = caches[redis_alias]
    cache.set(key_of(uid), {"tasks": {}, "instances": {}, "metas": {"latest_kwargs": {}}}, 3600)
    before = _raw_keys(redis_alias, uid)
    with pytest.raises(SessionOverwritten) as raised:
        CacheStorageBackend(uid, cache=redis_alias).tasks
    assert isinstance(raised.value, SessionIncomplete)
    assert uid in str(raised.value) and "split layout" in str(raised.value)
    # Any process that reads it refuses it (here: one that has not committed it itself).
    committed_heads.clear()
    with pytest.raises(SessionOverwritten):
        _manager(redis_alias, uid, "split").fire("page", {"k": 9})
    with pytest.raises(SessionOverwritten):
        _manager(redis_alias, uid, "single").fire("page", {"k": 9})
    assert _raw_keys(redis_alias, uid) == before


def test_the_runbook(redis_alias, uid):
    """Deploy 3.0 in the single layout beside 2.x, drain 2.x, switch to split."""
    cache = caches[redis_alias]
    raw = raw_client_of(cache)
    # Before: a 2.x session.
    cache.set(key_of(uid), {"tasks": {n: {**c, "unless": [], "withParams": {}} for n, c in CONFIG.items()},
                            "instances": {}, "metas": {"latest_kwargs": {}}}, 3600)
    fire_like_2x(cache, raw, uid, "page", {"step": 0})
    # 1. 3.0 deployed with the single layout, 2.x still running: both fire.
    _manager(redis_alias, uid, "single").fire("page", {"step": 1})
    fire_like_2x(cache, raw, uid, "page", {"step": 1})
    assert len(load_like_2x(cache.get(key_of(uid)))[1]) == 3
    # 2. 2.x drained. 3. Switched to split: the next save converts the session.
    _manager(redis_alias, uid, "split").fire("page", {"step": 3})
    head = cache.get(key_of(uid))
    assert head["format"] == "triggers/split-4"
    # A 2.x process that is somehow still running fails, writing nothing.
    before = _raw_keys(redis_alias, uid)
    with pytest.raises(TypeError):
        fire_like_2x(cache, raw, uid, "page", {"step": "late"})
    assert _raw_keys(redis_alias, uid) == before
    steps = sorted(str(i.kwargs["page"]["step"]) for i in CacheStorageBackend(uid, cache=redis_alias))
    assert steps == ["0", "1", "1", "3"]


def test_the_layout_can_come_from_the_environment(monkeypatch, settings, uid):
    """A deployment switches layouts without a code change; a Django setting wins."""
    del settings.TRIGGERS_CACHE_LAYOUT
    monkeypatch.setenv("TRIGGERS_CACHE_LAYOUT", "single")
    assert CacheStorageBackend(uid, cache="locmem").layout == "single"
    settings.TRIGGERS_CACHE_LAYOUT = "split"
    assert CacheStorageBackend(uid, cache="locmem").layout == "split"
    monkeypatch.setenv("TRIGGERS_CACHE_LAYOUT", "sideways")
    del settings.TRIGGERS_CACHE_LAYOUT
    with pytest.raises(ValueError, match="sideways"):
        CacheStorageBackend(uid, cache="locmem")


def _blocked_on_signals(raw):
    """Clients of the test database blocked in BLPOP (waiting on a lock's signal list)."""
    db = raw.connection_pool.connection_kwargs.get("db", 0)
    return [c for c in raw.client_list() if c.get("cmd") == "blpop" and int(c.get("db", -1)) == db]


def _wait_for(predicate, what):
    deadline = time.monotonic() + 30
    while not predicate():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.01)


def test_a_waiter_of_ours_queues_with_2x_waiters_and_gets_its_turn(redis_alias, uid):
    """While 2.x holds the lock, our waiter blocks on 2.x's signal list as 2.x's own
    waiters do: queued before a 2.x waiter, it is woken first by the 2.x release."""
    _manager(redis_alias, uid, "single").update_configuration(CONFIG)
    cache = caches[redis_alias]
    raw = raw_client_of(cache)
    # Another client of the same server watches, so that its own calls block nothing.
    watcher = redis.Redis(connection_pool=redis.ConnectionPool(**raw.connection_pool.connection_kwargs))
    held = redis_lock.Lock(raw, name=f"triggers:{uid}:lock", expire=30)
    assert held.acquire(blocking=False)
    assert not _blocked_on_signals(watcher)
    ours = threading.Thread(target=_manager(redis_alias, uid, "single").fire, args=("page", {"writer": "3x"}))
    ours.start()
    _wait_for(lambda: len(_blocked_on_signals(watcher)) == 1, "our waiter to block on the signal list")
    theirs = threading.Thread(
        target=fire_like_2x, args=(cache, raw_client_of(cache), uid, "page", {"writer": "2x"})
    )
    theirs.start()
    _wait_for(lambda: len(_blocked_on_signals(watcher)) == 2, "the 2.x waiter to queue behind ours")
    held.release()
    ours.join(30)
    theirs.join(30)
    assert not ours.is_alive() and not theirs.is_alive()
    store = CacheStorageBackend(uid, cache=redis_alias)
    writers = {i.name: i.kwargs["page"]["writer"] for i in store.iter_instances()}
    assert writers == {"t_page#0": "3x", "t_page#1": "2x"}  # ours first: its turn came
    watcher.close()
