"""Async fires from one event loop beside sync fires from threads, on Redis.

    python benchmarks/async_bench.py [--cache redis|dredis] [--sessions 50] [--fires 40] [--threads 8]

Same machine, same run, same work: each of ``--sessions`` sessions (its own
manager) gets ``--fires`` fires, first as sync ``fire()`` calls from
``--threads`` threads, then as ``afire()`` coroutines, all on one loop
(one coroutine per session). Two kinds of fire: ``plain`` (a trigger no
task waits for: the commit alone) and ``ready`` (each fire readies an
instance, handed to a runner that does nothing; the async path hands it
over in a worker thread).

Requests are counted in redis-py, sync and asyncio connections alike (one
per command or script call), after a warm-up fire per session; a fire that
commits at its first try is one request. Prints one JSON line per phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import django
from django.conf import settings

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")
CACHES = {
    "redis": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": REDIS_URL},
    "dredis": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL},
}


class Requests:
    """Requests sent to Redis by this process, sync and asyncio connections alike."""

    count = 0
    lock = threading.Lock()

    @classmethod
    def install(cls) -> None:
        from redis.asyncio.connection import AbstractConnection
        from redis.connection import AbstractConnection as SyncConnection

        for connection_class, is_async in ((SyncConnection, False), (AbstractConnection, True)):
            original = connection_class.send_packed_command
            connection_class.send_packed_command = cls._counted(original, is_async)

    @classmethod
    def _counted(cls, original: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
        if is_async:

            async def counted_async(self: Any, *args: Any, **kwargs: Any) -> Any:
                with cls.lock:
                    cls.count += 1
                return await original(self, *args, **kwargs)

            return counted_async

        def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            with cls.lock:
                cls.count += 1
            return original(self, *args, **kwargs)

        return counted


def configure(cache: str) -> None:
    settings.configure(
        CACHES={"default": dict(CACHES[cache], TIMEOUT=3600)},
        INSTALLED_APPS=["triggers"],
        USE_TZ=False,
        TRIGGERS_DEFAULT_RUNNER="idle",
    )
    django.setup()
    from triggers.tasks.runners import BaseTaskRunner, task_runners

    class IdleRunner(BaseTaskRunner):
        """Takes a ready instance and does nothing with it."""

        name = "idle"

        def run(self, manager: Any, task_instance: Any) -> None:
            pass

    task_runners.register("idle", IdleRunner)


def new_managers(count: int) -> list[Any]:
    from triggers import CacheStorageBackend, TriggerManager

    managers = []
    for _ in range(count):
        manager = TriggerManager(CacheStorageBackend(f"abench-{uuid.uuid4().hex}", timeout=3600))
        manager.update_configuration(
            {"t_every": {"after": ["start"], "andEvery": "tick", "run": "x"}}
        )
        manager.fire("start")
        managers.append(manager)
    return managers


def trigger(kind: str) -> str:
    return "tick" if kind == "ready" else "nobody_waits"


def sync_phase(managers: list[Any], fires: int, threads: int, kind: str) -> dict[str, Any]:
    name = trigger(kind)
    for manager in managers:
        manager.fire(name, {"n": -1})  # warm-up: each storage knows its session
    shares = [managers[i::threads] for i in range(threads)]

    def work(mine: list[Any]) -> None:
        for n in range(fires):
            for manager in mine:
                manager.fire(name, {"n": n})

    before = Requests.count
    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(share,)) for share in shares]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    total = fires * len(managers)
    return {
        "phase": f"sync fires from {threads} threads",
        "kind": kind,
        "fires": total,
        "fires_per_s": round(total / elapsed),
        "requests_per_fire": round((Requests.count - before) / total, 3),
    }


def async_phase(managers: list[Any], fires: int, kind: str) -> dict[str, Any]:
    name = trigger(kind)

    async def one(manager: Any) -> None:
        for n in range(fires):
            await manager.afire(name, {"n": n})

    async def main() -> dict[str, Any]:
        await asyncio.gather(*(m.afire(name, {"n": -1}) for m in managers))  # warm-up
        before = Requests.count
        started = time.perf_counter()
        await asyncio.gather(*(one(manager) for manager in managers))
        elapsed = time.perf_counter() - started
        total = fires * len(managers)
        return {
            "phase": "async fires from one loop",
            "kind": kind,
            "fires": total,
            "fires_per_s": round(total / elapsed),
            "requests_per_fire": round((Requests.count - before) / total, 3),
        }

    return asyncio.run(main())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", choices=sorted(CACHES), default="redis")
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--fires", type=int, default=40)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    configure(args.cache)
    Requests.install()
    for kind in ("plain", "ready"):
        managers = new_managers(args.sessions)
        for result in (
            sync_phase(managers, args.fires, args.threads, kind),
            async_phase(managers, args.fires, kind),
        ):
            print(json.dumps({"cache": args.cache, **result}), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
