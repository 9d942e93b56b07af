"""The async entry points, on a real event loop against real caches.

On Redis (django-redis and Django's RedisCache) the commits are awaited on
the loop; elsewhere the sync path runs in a worker thread. The lock that
fires wait on is held by another process.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import pytest
from django.core.cache import caches

from tests.conftest import prepare_cache
from tests.storage_support import fresh
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import InvalidArgument, UnknownInstance
from triggers.signals import trigger_fired
from triggers.storages.database import DatabaseStorageBackend

TRIGGERS = 10


def tasks(count: int) -> dict:
    return {f"t{i}": {"after": [f"go{i}"], "run": "tests.add"} for i in range(count)}


@pytest.fixture(params=["redis", "dredis"])
def redis_cache(request, settings, test_runners):
    """A Redis cache (each client library), tasks handed to a runner that runs nothing."""
    alias = prepare_cache(request, request.param)
    settings.TRIGGERS_DEFAULT_RUNNER = "tests-recording"
    return alias


def made_lock_key(storage: CacheStorageBackend) -> str:
    return str(caches[storage.cache_alias].make_key(storage.keys.lock))


HOLDER = """
import sys, time, redis
client = redis.Redis.from_url(sys.argv[1])
assert client.set(sys.argv[2], b"another process", nx=True, px=30000)
print("held", flush=True)
time.sleep(float(sys.argv[3]))
client.delete(sys.argv[2])
"""


def hold_lock_elsewhere(settings, key: str, seconds: float) -> subprocess.Popen:
    """Another process takes the lock ``key`` and holds it for ``seconds``."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, settings.REDIS_URL, key, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    held = holder.stdout.readline().strip()
    holder.stdout.close()  # it says nothing more
    assert held == "held"
    return holder


def configure(uid: str, alias: str, count: int) -> None:
    TriggerManager(CacheStorageBackend(uid, cache=alias)).update_configuration(tasks(count))


def test_redis_commits_on_the_loop_others_in_threads(redis_cache, uid):
    assert CacheStorageBackend(uid, cache=redis_cache).commits_on_loop()
    assert not CacheStorageBackend(uid, cache="locmem").commits_on_loop()
    assert not CacheStorageBackend(uid, cache=redis_cache, layout="single").commits_on_loop()


def test_200_concurrent_fires_into_20_sessions_lose_nothing(redis_cache):
    uids = [f"async-{uuid.uuid4().hex}" for _ in range(20)]
    for uid in uids:
        configure(uid, redis_cache, TRIGGERS)

    async def main():
        fires = [
            TriggerManager(CacheStorageBackend(uid, cache=redis_cache)).afire(f"go{i}", {"n": i})
            for uid in uids
            for i in range(TRIGGERS)
        ]
        return await asyncio.gather(*fires)

    readied = asyncio.run(main())
    assert [[i.name for i in ready] for ready in readied] == [
        [f"t{i}#0"] for _ in uids for i in range(TRIGGERS)
    ]
    for uid in uids:
        storage = CacheStorageBackend(uid, cache=redis_cache)
        assert storage.latest_kwargs == {f"go{i}": {"n": i} for i in range(TRIGGERS)}
        assert {i.name: i.status for i in storage} == {
            f"t{i}#0": "scheduled" for i in range(TRIGGERS)
        }


def test_concurrent_async_fires_into_a_paged_session_lose_nothing(redis_cache, uid):
    """The async commits merge records into their pages as the sync ones do."""
    config = {"t_every": {"after": ["go"], "andEvery": "go", "run": "tests.add"}}
    paged = {"cache": redis_cache, "layout": "paged"}
    TriggerManager(CacheStorageBackend(uid, **paged)).update_configuration(config)

    async def main():
        managers = [TriggerManager(CacheStorageBackend(uid, **paged)) for _ in range(60)]
        return await asyncio.gather(*(m.afire("go", {"n": n}) for n, m in enumerate(managers)))

    readied = asyncio.run(main())
    assert sorted(len(ready) for ready in readied) == [1] * 60
    storage = CacheStorageBackend(uid, **paged)
    assert sorted(i.kwargs["go"]["n"] for i in storage) == list(range(60))
    assert {i.status for i in storage} == {"scheduled"}


def test_fires_waiting_on_another_process_lock_leave_the_loop_running(redis_cache, uid, settings):
    """While 50 fires wait for a lock another process holds, the loop goes on
    running other coroutines: a probe's steps land while the lock is still
    held and no fire has ended (a fire that blocked the loop would let them
    run only after the lock was let go)."""
    configure(uid, redis_cache, 50)
    key = made_lock_key(CacheStorageBackend(uid, cache=redis_cache))
    managers = [TriggerManager(CacheStorageBackend(uid, cache=redis_cache)) for _ in range(50)]

    async def main(holder):
        fires = asyncio.gather(*(m.afire(f"go{i}") for i, m in enumerate(managers)))
        # Once every fire made its first try (their blocks run on the loop,
        # one after another) and waits, the probe steps.
        await asyncio.sleep(0.3)
        steps = []
        for _ in range(20):
            await asyncio.sleep(0.01)
            steps.append((holder.poll() is None, fires.done()))
        return steps, await fires

    holder = hold_lock_elsewhere(settings, key, 2.0)
    try:
        steps, results = asyncio.run(main(holder))
    finally:
        holder.wait(timeout=30)
    held = [step for step in steps if step == (True, False)]
    assert len(held) >= 10, f"probe steps (lock held, fires done): {steps}"
    assert sorted(ready[0].name for ready in results) == sorted(f"t{i}#0" for i in range(50))
    assert set(fresh(CacheStorageBackend(uid, cache=redis_cache)).latest_kwargs) == {
        f"go{i}" for i in range(50)
    }


def test_cancelling_a_waiting_fire_holds_no_lock_and_writes_nothing(redis_cache, uid, settings):
    storage = CacheStorageBackend(uid, cache=redis_cache)
    key = made_lock_key(storage)
    cache = caches[redis_cache]
    holder = hold_lock_elsewhere(settings, key, 1.0)

    async def main():
        manager = TriggerManager(CacheStorageBackend(uid, cache=redis_cache))
        fire = asyncio.create_task(manager.afire("go0", {"n": 1}))
        await asyncio.sleep(0.3)
        assert not fire.done()
        fire.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fire
        return manager

    manager = asyncio.run(main())
    holder.wait(timeout=30)
    assert cache.get(storage.keys.lock) is None
    assert cache.get_many([storage.keys.head, storage.keys.witness]) == {}
    # The manager and its storage are usable again: nothing was left held.
    asyncio.run(manager.aupdate_configuration(tasks(1)))
    assert [i.name for i in asyncio.run(manager.afire("go0"))] == ["t0#0"]


def test_cancelled_while_the_lock_frees_lets_go_of_it(redis_cache, settings):
    """Cancelled at any point of its wait, even as the lock comes free, a fire
    leaves no lock behind, and its commit landed whole or not at all."""
    cache = caches[redis_cache]
    for delay in (0.2, 0.25, 0.28, 0.3, 0.32, 0.35):
        uid = f"async-{uuid.uuid4().hex}"
        configure(uid, redis_cache, 1)
        storage = CacheStorageBackend(uid, cache=redis_cache)
        holder = hold_lock_elsewhere(settings, made_lock_key(storage), 0.3)

        async def main(delay=delay, uid=uid):
            manager = TriggerManager(CacheStorageBackend(uid, cache=redis_cache))
            fire = asyncio.create_task(manager.afire("go0", {"n": 1}))
            await asyncio.sleep(delay)
            fire.cancel()
            try:
                await fire
            except asyncio.CancelledError:
                return False
            return True

        fired = asyncio.run(main())
        holder.wait(timeout=30)
        assert cache.get(storage.keys.lock) is None
        stored = fresh(storage)
        statuses = {i.name: i.status for i in stored}
        if fired:
            assert statuses == {"t0#0": "scheduled"}
        else:
            assert statuses in ({}, {"t0#0": "scheduled"})
        assert stored.latest_kwargs == ({"go0": {"n": 1}} if statuses else {})


def test_async_errors_and_signals_are_the_sync_ones(redis_cache, uid):
    manager = TriggerManager(CacheStorageBackend(uid, cache=redis_cache))
    fired = []

    def receiver(sender, **kwargs):
        fired.append((kwargs["trigger_name"], [i.name for i in kwargs["ready"]]))

    trigger_fired.connect(receiver)
    try:
        asyncio.run(manager.aupdate_configuration(tasks(2)))
        asyncio.run(manager.afire("go1", {"x": 1}))
        with pytest.raises(InvalidArgument, match="trigger name"):
            asyncio.run(manager.afire(""))
        with pytest.raises(UnknownInstance):
            asyncio.run(manager.aupdate_instance_metadata("t0#9", {"a": 1}))
    finally:
        trigger_fired.disconnect(receiver)
    assert fired == [("go1", ["t1#0"])]
    assert fresh(manager).latest_kwargs == {"go1": {"x": 1}}


def test_replay_skip_and_metadata_async(redis_cache, uid):
    manager = TriggerManager(CacheStorageBackend(uid, cache=redis_cache))

    async def main():
        await manager.aupdate_configuration(tasks(2))
        await manager.afire("go0")
        await manager.afire("go1")
        manager.update_instance_status("t0#0", "failed")
        manager.update_instance_status("t1#0", "failed")
        clone = await manager.areplay_failed_instance("t0#0", metadata={"retry": 1})
        skipped = await manager.askip_failed_instance("t1#0")
        noted = await manager.aupdate_instance_metadata(clone.name, {"note": "x"})
        return clone, skipped, noted, await manager.storage.aget_unresolved_instances()

    clone, skipped, noted, unresolved = asyncio.run(main())
    assert clone.name == "t0#1" and noted.metadata["note"] == "x"
    assert skipped.status == "skipped"
    stored = {i.name: i.status for i in fresh(manager)}
    assert stored == {"t0#0": "replayed", "t0#1": "scheduled", "t1#0": "skipped"}
    assert [i.name for i in unresolved] == ["t0#1"]


@pytest.mark.urls("tests.async_urls")
def test_asgi_view_fires_and_reads(redis_cache, uid, settings):
    """The docs' async view example, under Django's AsyncClient."""
    from django.test import AsyncClient

    settings.TRIGGERS_CACHE_ALIAS = redis_cache

    async def main():
        client = AsyncClient()
        return await client.post(f"/sign-up/{uid}/", {"email": "ada@example.com"})

    response = asyncio.run(main())
    assert response.status_code == 200
    assert response.json() == {
        "ready": ["t_sendWelcome#0"],
        "unresolved": ["t_checkEmail#0", "t_sendWelcome#0"],
    }
    stored = CacheStorageBackend(uid, cache=redis_cache)
    assert stored.latest_kwargs == {"signedUp": {"email": "ada@example.com"}}


@pytest.mark.parametrize("alias", ["locmem", "memcached", "db_sqlite"])
def test_other_caches_fire_and_read_in_a_thread(request, alias, uid, settings, test_runners):
    prepare_cache(request, alias)
    settings.TRIGGERS_DEFAULT_RUNNER = "tests-recording"
    storage = CacheStorageBackend(uid, cache=alias)
    assert not storage.commits_on_loop()
    manager = TriggerManager(storage)

    async def main():
        await manager.aupdate_configuration(tasks(2))
        ready = await manager.afire("go0", {"n": 1})
        return (
            ready,
            await storage.aget_unresolved_instances(),
            await storage.aget_unresolved_tasks(),
        )

    ready, unresolved, unresolved_tasks = asyncio.run(main())
    assert [i.name for i in ready] == ["t0#0"]
    assert [i.name for i in unresolved] == ["t0#0"]
    assert sorted(t.name for t in unresolved_tasks) == ["t0", "t1"]
    assert fresh(storage).latest_kwargs == {"go0": {"n": 1}}


@pytest.mark.django_db(transaction=True)
def test_database_backend_fires_and_reads_in_a_thread(uid, settings, test_runners):
    settings.TRIGGERS_DEFAULT_RUNNER = "tests-recording"
    manager = TriggerManager(DatabaseStorageBackend(uid))

    async def main():
        await manager.aupdate_configuration(tasks(2))
        ready = await manager.afire("go1", {"n": 2})
        return ready, await manager.storage.aget_instance("t1#0")

    ready, instance = asyncio.run(main())
    assert [i.name for i in ready] == ["t1#0"] and instance.status == "scheduled"
    assert DatabaseStorageBackend(uid).latest_kwargs == {"go1": {"n": 2}}


def test_a_storage_that_does_not_commit_on_the_loop_says_so(uid):
    storage = CacheStorageBackend(uid, cache="locmem")
    assert not storage.commits_on_loop()
    with pytest.raises(
        NotImplementedError, match="CacheStorageBackend does not commit on the event loop"
    ):
        asyncio.run(storage.acommit(lambda: None, lambda: None))


def test_the_manager_page_shows_the_view_the_tests_run():
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "manager.rst").read_text(
        encoding="utf-8"
    )
    assert ".. literalinclude:: examples/async_view.py" in page


def test_the_single_layout_fires_and_reads_in_a_thread(redis_cache, uid):
    storage = CacheStorageBackend(uid, cache=redis_cache, layout="single")
    manager = TriggerManager(storage)

    async def main():
        await manager.aupdate_configuration(tasks(2))
        ready = await manager.afire("go1", {"n": 3})
        return ready, await storage.aget_unresolved_instances()

    ready, unresolved = asyncio.run(main())
    assert [i.name for i in ready] == [i.name for i in unresolved] == ["t1#0"]
    stored = CacheStorageBackend(uid, cache=redis_cache, layout="single")
    assert stored.latest_kwargs == {"go1": {"n": 3}}
    assert set(caches[redis_cache].get(stored.keys.head)) >= {"tasks", "instances", "metas"}
