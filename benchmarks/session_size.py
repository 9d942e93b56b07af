"""What a large session costs to read whole, and how much server memory it takes.

    python benchmarks/session_size.py [--cache redis] [--layout split] [--sizes 400,10200] [scenario ...]

Scenarios:

``read``
    A session of N instances built by N fires of an ``andEvery`` task (each
    with a 200-byte payload), then read whole (every instance) from a new
    storage object after the process-wide state is dropped, as a newly
    started process reads it. Median and minimum wall ms and the median CPU
    ms of ``--runs`` reads.
``memory``
    The server memory of a fanout session (20 tasks, one fire readying 10)
    and of sessions of N instances: on Redis the sum of ``MEMORY USAGE``
    over the session's keys, on Memcached the growth of the server's
    ``bytes`` statistic (so point ``--memcached`` at a server nobody else
    writes to while it runs). Bytes per session and per instance.

Caches: redis (django-redis), dredis (Django's RedisCache), memcached
(pymemcache). Layouts: split (the default) and single (2.x's one value).
Prints one JSON line per scenario and size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid

import django
from django.conf import settings
from fire_cost import install_noop_runner  # the runner that takes a ready instance and does nothing

REDIS_URL = "redis://127.0.0.1:6379/6"


def configure(cache: str, layout: str, memcached: str) -> None:
    backends = {
        "redis": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": REDIS_URL},
        "dredis": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL},
        "memcached": {
            "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
            "LOCATION": memcached,
        },
    }
    settings.configure(
        CACHES={"default": dict(backends[cache], TIMEOUT=3600)},
        INSTALLED_APPS=["triggers"],
        TRIGGERS_CACHE_LAYOUT=layout,
        USE_TZ=False,
    )
    django.setup()
    install_noop_runner()


def new_manager(uid: str):
    from triggers import CacheStorageBackend, TriggerManager

    return TriggerManager(CacheStorageBackend(uid, cache="default", timeout=3600))


def session_of(instances: int) -> str:
    """A new session of ``instances`` instances, built by fires; its uid."""
    uid = uuid.uuid4().hex
    manager = new_manager(uid)
    manager.update_configuration(
        {"t_page": {"after": ["page"], "andEvery": "page", "run": "noop", "using": "idle"}}
    )
    for k in range(instances):
        manager.fire("page", {"k": k, "payload": "x" * 200})
    return uid


def fanout_session() -> str:
    uid = uuid.uuid4().hex
    manager = new_manager(uid)
    config = {
        f"t_ready{i}": {"after": ["start"], "run": "noop", "using": "idle"} for i in range(10)
    }
    config.update(
        {
            f"t_wait{i}": {"after": ["start", "later"], "run": "noop", "using": "idle"}
            for i in range(10)
        }
    )
    manager.update_configuration(config)
    manager.fire("start", {"n": 1})
    return uid


def read_whole(uid: str, expected: int, runs: int) -> dict:
    from triggers import CacheStorageBackend
    from triggers.process_state import reset_process_state

    walls, cpus = [], []
    for _ in range(runs):
        reset_process_state()
        wall, cpu = time.perf_counter(), time.process_time()
        storage = CacheStorageBackend(uid, cache="default", timeout=3600)
        count = sum(1 for _ in storage.iter_instances())
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        assert count == expected, (count, expected)
    return {
        "ms_median": statistics.median(walls) * 1000,
        "ms_min": min(walls) * 1000,
        "cpu_ms_median": statistics.median(cpus) * 1000,
    }


class ServerMemory:
    """Bytes a session holds on the cache's server."""

    def __init__(self, cache: str, memcached: str) -> None:
        self.cache = cache
        self.memcached = memcached

    def redis_client(self):
        import redis

        return redis.Redis.from_url(REDIS_URL)

    def memcached_bytes(self) -> int:
        from pymemcache.client.base import Client

        host, port = self.memcached.rsplit(":", 1)
        client = Client((host, int(port)))
        try:
            return int(client.stats()[b"bytes"])
        finally:
            client.close()

    def of_new_session(self, build) -> int:  # noqa: ANN001
        """Bytes of the session ``build()`` makes (it returns the uid)."""
        if self.cache == "memcached":
            before = self.memcached_bytes()
            build()
            return self.memcached_bytes() - before
        uid = build()
        client = self.redis_client()
        keys = list(client.scan_iter(match=f"*{uid}*", count=1000))
        return sum(client.memory_usage(key, samples=0) or 0 for key in keys)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", default=["read", "memory"])
    parser.add_argument("--cache", choices=["redis", "dredis", "memcached"], default="redis")
    parser.add_argument("--layout", choices=["split", "single"], default="split")
    parser.add_argument(
        "--sizes", default="400,10200", help="instances per session, comma-separated"
    )
    parser.add_argument("--runs", type=int, default=7, help="reads per size (read)")
    parser.add_argument("--memcached", default="127.0.0.1:11211")
    args = parser.parse_args(argv)
    unknown = set(args.scenarios) - {"read", "memory"}
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    configure(args.cache, args.layout, args.memcached)
    sizes = [int(size) for size in args.sizes.split(",")]
    base = {"cache": args.cache, "layout": args.layout}
    if "read" in args.scenarios:
        for size in sizes:
            figures = read_whole(session_of(size), size, args.runs)
            rounded = {key: round(value, 1) for key, value in figures.items()}
            print(
                json.dumps({"scenario": "read", "instances": size, **rounded, **base}), flush=True
            )
    if "memory" in args.scenarios:
        memory = ServerMemory(args.cache, args.memcached)
        fanout = memory.of_new_session(fanout_session)
        print(json.dumps({"scenario": "memory", "session": "fanout", "bytes": fanout, **base}))
        for size in sizes:
            total = memory.of_new_session(lambda size=size: session_of(size))
            line = {"scenario": "memory", "instances": size, "bytes": total}
            print(json.dumps({**line, "bytes_per_instance": round(total / size, 1), **base}))


if __name__ == "__main__":
    sys.exit(main())
