"""What a fire costs, in cache round trips (G), on any supported cache.

    python benchmarks/fire_cost.py [--cache redis] [--runs 1] [scenario ...]
        [--redis-url redis://127.0.0.1:6379/6] [--pg-name test] [--location ADDRESS]

Scenarios: fanout, growth, contention, scale, workflow, workflow_sync
(default: all). The workflow scenarios run real task bodies end to end: a
chain of 5 tasks and 5 more after the first, per session.
Caches: locmem, redis (django-redis), dredis (Django's RedisCache),
memcached (pymemcache), db_sqlite, db_pg (the database cache).
``--location`` points the chosen cache at another server (a Redis URL, a
Memcached host:port) instead of its default location above.

G is the time of one ``cache.get`` of a small value through the same Django
cache, measured in the same run, so the figures compare across machines.
In the fire scenarios ready tasks go to a runner that does nothing, so only
the manager and the storage are measured. Prints one JSON line per scenario.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import uuid

import django
from django.conf import settings

CACHES = {
    "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "redis": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:6379/6"},
    "dredis": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/6",
    },
    "memcached": {
        "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
        "LOCATION": "127.0.0.1:11211",
    },
    "db_sqlite": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "bench_cache"},
    "db_pg": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "bench_cache"},
}


def configure(
    cache: str,
    redis_url: str = "redis://127.0.0.1:6379/6",
    pg_name: str = "test",
    location: str | None = None,
) -> None:
    databases = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(tempfile.gettempdir(), "triggers-bench.sqlite3"),
            "OPTIONS": {"timeout": 30},
        }
    }
    if cache == "db_pg":
        databases["default"] = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": pg_name,
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": 5432,
        }
    # LocMem and the database cache cull past MAX_ENTRIES (300 by default),
    # which the larger scenarios exceed; the sessions must stay whole.
    options = {"OPTIONS": {"MAX_ENTRIES": 10**7}} if cache in ("locmem", "db_sqlite", "db_pg") else {}
    chosen = dict(CACHES[cache], TIMEOUT=3600, **options)
    if cache in ("redis", "dredis"):
        chosen["LOCATION"] = redis_url
    if location is not None:
        chosen["LOCATION"] = location
    settings.configure(
        CACHES={"default": chosen},
        DATABASES=databases,
        INSTALLED_APPS=["triggers"],
        USE_TZ=False,
    )
    django.setup()
    if cache.startswith("db_"):
        from django.core.management import call_command

        call_command("createcachetable", verbosity=0)
        if cache == "db_sqlite":
            from django.db import connection

            with connection.cursor() as cursor:
                cursor.execute("PRAGMA journal_mode=WAL")


def install_noop_runner() -> None:
    from triggers.tasks.runners import BaseTaskRunner, task_runners

    class IdleRunner(BaseTaskRunner):
        """Takes a ready instance and does nothing with it."""

        name = "idle"

        def run(self, manager, task_instance):  # noqa: ANN001
            pass

    task_runners.register("idle", IdleRunner)


def new_manager(uid: str):
    from triggers import CacheStorageBackend, TriggerManager

    return TriggerManager(CacheStorageBackend(uid, cache="default", timeout=3600))


def round_trip_ms(samples: int = 1000, rounds: int = 5) -> float:
    from django.core.cache import caches

    cache = caches["default"]
    cache.set("bench:g", "g" * 100)
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(samples):
            cache.get("bench:g")
        best = min(best, (time.perf_counter() - started) / samples)
    return best * 1000


def fanout(sessions: int = 100) -> dict:
    """A new session: 20 tasks configured, one fire readies 10 of them."""
    config = {f"t_ready{i}": {"after": ["start"], "run": "noop", "using": "idle"} for i in range(10)}
    config.update(
        {f"t_wait{i}": {"after": ["start", "later"], "run": "noop", "using": "idle"} for i in range(10)}
    )
    started = time.perf_counter()
    for _ in range(sessions):
        manager = new_manager(uuid.uuid4().hex)
        manager.update_configuration(config)
        manager.fire("start", {"n": 1})
    elapsed = time.perf_counter() - started
    manager.storage.invalidate_cache()
    scheduled = sum(1 for i in manager.storage.iter_instances() if i.status == "scheduled")
    assert scheduled == 10, scheduled
    return {"scenario": "fanout", "ms_per_session": elapsed * 1000 / sessions}


def _andevery_session(fires: int) -> tuple[object, list[float]]:
    manager = new_manager(uuid.uuid4().hex)
    manager.update_configuration(
        {
            "t_page": {"after": ["page"], "andEvery": "page", "run": "noop", "using": "idle"},
            "t_other": {"after": ["other"], "andEvery": "other", "run": "noop", "using": "idle"},
        }
    )
    costs = []
    for k in range(fires):
        started = time.perf_counter()
        manager.fire("page", {"k": k, "payload": "x" * 200})
        costs.append(time.perf_counter() - started)
    return manager, costs


def growth(fires: int = 400) -> dict:
    """An andEvery task fired 400 times: does a fire cost more as history grows?"""
    manager, costs = _andevery_session(fires)
    manager.storage.invalidate_cache()
    assert len(manager.storage.instances_of_task("t_page")) == fires
    first, last = sum(costs[:40]) / 40, sum(costs[-40:]) / 40
    return {
        "scenario": "growth",
        "ms_first40": first * 1000,
        "ms_last40": last * 1000,
        "growth_ratio": last / first,
    }


def _fire_many(uid: str, worker: int, fires: int) -> None:
    from django.core.cache import caches
    from django.db import connections

    # A forked process must not share its parent's connections.
    connections.close_all()
    caches.close_all()
    manager = new_manager(uid)
    for k in range(fires):
        manager.fire(f"w{worker}_{k}")


def contention(workers: int = 4, fires: int = 50) -> dict:
    """Four processes fire distinct triggers into one session at once."""
    from django.db import connections

    uid = uuid.uuid4().hex
    new_manager(uid).update_configuration(
        {
            f"t_w{w}_{k}": {"after": [f"w{w}_{k}"], "run": "noop", "using": "idle"}
            for w in range(workers)
            for k in range(fires)
        }
    )
    connections.close_all()
    if CACHE == "locmem":  # one process's memory: race threads instead
        racers = [threading.Thread(target=_fire_many, args=(uid, w, fires)) for w in range(workers)]
    else:
        context = multiprocessing.get_context("fork")
        racers = [context.Process(target=_fire_many, args=(uid, w, fires)) for w in range(workers)]
    started = time.perf_counter()
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    elapsed = time.perf_counter() - started
    storage = new_manager(uid).storage
    scheduled = sum(1 for i in storage.iter_instances() if i.status == "scheduled")
    total = workers * fires
    return {
        "scenario": "contention",
        "ms_per_fire": elapsed * 1000 / total,
        "fires": total,
        "lost": total - scheduled,
    }


def scale(small: int = 40, large: int = 10_000, samples: int = 200) -> dict:
    """A fire touching one task, in a session of 40 and of 10,000 instances."""
    figures = {}
    for size in (small, large):
        manager, _ = _andevery_session(size)
        started = time.perf_counter()
        for k in range(samples):
            manager.fire("other", {"k": k})
        figures[size] = (time.perf_counter() - started) / samples
        storage = new_manager(manager.storage.uid).storage
        started = time.perf_counter()
        count = sum(1 for _ in storage.iter_instances())
        read_all = time.perf_counter() - started
        assert count == size + samples, count
    return {
        "scenario": "scale",
        f"ms_fire_at_{small}": figures[small] * 1000,
        f"ms_fire_at_{large}": figures[large] * 1000,
        "scale_ratio": figures[large] / figures[small],
        f"ms_iter_instances_{large + samples}": read_all * 1000,
    }


def _workflow(runner: str, sessions: int = 20, chain: int = 5, fan: int = 5) -> dict:
    """Real task runs: a chain of ``chain`` tasks and ``fan`` more after the first."""
    from triggers.task import registered_tasks, task
    from triggers.tasks.runners import ThreadingTaskRunner

    if "bench.step" not in registered_tasks:
        task("bench.step")(lambda context: {})
    config = {"t_c0": {"after": ["start"], "run": "bench.step", "using": runner}}
    for i in range(1, chain):
        config[f"t_c{i}"] = {"after": [f"t_c{i - 1}"], "run": "bench.step", "using": runner}
    for i in range(fan):
        config[f"t_f{i}"] = {"after": ["t_c0"], "run": "bench.step", "using": runner}
    uids = [uuid.uuid4().hex for _ in range(sessions)]
    for uid in uids:
        new_manager(uid).update_configuration(config)
    started = time.perf_counter()
    for uid in uids:
        new_manager(uid).fire("start", {"n": 1})
        ThreadingTaskRunner.join_all()
    elapsed = time.perf_counter() - started
    storage = new_manager(uids[-1]).storage
    finished = sum(1 for i in storage.iter_instances() if i.status == "finished")
    runs = sessions * (chain + fan)
    return {"ms_per_task_run": elapsed * 1000 / runs, "task_runs": runs, "lost": chain + fan - finished}


def workflow() -> dict:
    """Task runs on the threading runner (see _workflow)."""
    return {"scenario": "workflow", **_workflow("threading")}


def workflow_sync() -> dict:
    """Task runs in the calling thread (the sync runner)."""
    return {"scenario": "workflow_sync", **_workflow("sync")}


SCENARIOS = {
    "fanout": fanout,
    "growth": growth,
    "contention": contention,
    "scale": scale,
    "workflow": workflow,
    "workflow_sync": workflow_sync,
}


def main(argv: list[str] | None = None) -> None:
    global CACHE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", help=f"any of {', '.join(SCENARIOS)}")
    parser.add_argument("--cache", default="redis", choices=sorted(CACHES))
    parser.add_argument("--location", help="the cache's server instead of its default location")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/6", help="the Redis caches' LOCATION")
    parser.add_argument("--pg-name", default="test", help="db_pg: the PostgreSQL database (must exist)")
    args = parser.parse_args(argv)
    CACHE = args.cache
    configure(args.cache, args.redis_url, args.pg_name, args.location)
    install_noop_runner()
    g = round_trip_ms()
    print(json.dumps({"scenario": "calibrate", "cache": CACHE, "ms_per_get": round(g, 4)}), flush=True)
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    for _ in range(args.runs):
        for name in args.scenarios or list(SCENARIOS):
            result = SCENARIOS[name]()
            for key, value in list(result.items()):
                if key.startswith("ms_"):
                    result["G_" + key[3:]] = round(value / g, 2)
                    result[key] = round(value, 3)
                elif isinstance(value, float):
                    result[key] = round(value, 2)
            result["cache"] = CACHE
            print(json.dumps(result), flush=True)


CACHE = "redis"

if __name__ == "__main__":
    sys.exit(main())
