"""What a large session costs to read whole, and how much server memory it takes.

    python benchmarks/session_size.py [--cache redis] [--layout split] [--sizes 400,10200] [scenario ...]

Scenarios:

``read``
    A session of N instances built by N fires of an ``andEvery`` task (each
    with a 200-byte payload), then read whole (every instance) from a new
    storage object after the process-wide state is dropped, as a newly
    started process reads it. Median and minimum wall ms and the median CPU
    ms of ``--runs`` reads; each read is followed by one of the same
    session stored as one 2.x-shaped value (a GET and an unpickle, the least
    a 2.x read does; left out where the cache refuses a value that large,
    as Memcached does past its item size), and the ratio of the two medians
    is printed.
``instructions``
    The instructions one whole read of a session of N instances executes,
    and one GET and unpickle of the same session as a 2.x-shaped value,
    counted by ``valgrind --tool=callgrind`` (which a busy machine does
    not move, as it moves milliseconds): this script runs itself under
    valgrind to read an existing session twice and not at all, and prints
    half the difference.
``memory``
    The server memory of a fanout session (20 tasks, one fire readying 10)
    and of sessions of N instances: on Redis the sum of ``MEMORY USAGE``
    over the session's keys, on Memcached the sum of the item sizes the
    server reports for them (``lru_crawler metadump``: key, value and the
    item's header, as the server stores it). Bytes per session and per
    instance.

Caches: redis (django-redis), dredis (Django's RedisCache), memcached
(pymemcache). Layouts: split (the default), single (2.x's one value) and paged
(records in pages; Redis only).
Prints one JSON line per scenario and size.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
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


def whole_value_of(uid: str) -> str | None:
    """Store the session ``uid`` as one value shaped as 2.x stores a session
    (tasks, instances and metadata in one pickled dict); its key (None where
    the cache refuses a value that large: Memcached's item limit)."""
    from django.core.cache import caches

    from triggers import CacheStorageBackend

    storage = CacheStorageBackend(uid, cache="default", timeout=3600)
    value = {
        "tasks": {name: config.serialize() for name, config in storage.tasks.items()},
        "instances": {i.name: i.serialize() for i in storage.iter_instances()},
        "metas": dict(storage.metadata),
    }
    key = f"bench-whole-value:{uid}"
    try:
        caches["default"].set(key, value, timeout=3600)
    except Exception:  # too large for the cache (Memcached says so by raising)
        return None
    return key if caches["default"].has_key(key) else None


def read_whole(uid: str, expected: int, runs: int) -> dict:
    """Read the session whole ``runs`` times, each followed by a read of the
    same session as one 2.x-shaped value (one GET and one unpickle: the
    least a 2.x read does), so the two are measured alternately."""
    from django.core.cache import caches

    from triggers import CacheStorageBackend
    from triggers.process_state import reset_process_state

    baseline_key = whole_value_of(uid)
    walls, cpus, baseline, baseline_cpus = [], [], [], []
    for _ in range(runs):
        reset_process_state()
        gc.collect()  # each read starts from the same heap: nothing of the last one
        wall, cpu = time.perf_counter(), time.process_time()
        storage = CacheStorageBackend(uid, cache="default", timeout=3600)
        count = sum(1 for _ in storage.iter_instances())
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        assert count == expected, (count, expected)
        del storage
        if baseline_key is None:
            continue
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        count = len(caches["default"].get(baseline_key)["instances"])
        baseline.append(time.perf_counter() - wall)
        baseline_cpus.append(time.process_time() - cpu)
        assert count == expected, (count, expected)
    figures = {
        "ms_median": statistics.median(walls) * 1000,
        "ms_min": min(walls) * 1000,
        "cpu_ms_median": statistics.median(cpus) * 1000,
    }
    if baseline:
        figures.update(
            one_value_ms_median=statistics.median(baseline) * 1000,
            one_value_cpu_ms_median=statistics.median(baseline_cpus) * 1000,
            ratio_to_one_value=statistics.median(walls) / statistics.median(baseline),
            cpu_ratio_to_one_value=statistics.median(cpus) / statistics.median(baseline_cpus),
        )
    return figures


def read_repeatedly(uid: str, reads: int, one_value: str | None) -> None:
    """Read the session whole ``reads`` times (or its 2.x-shaped value, if
    ``one_value`` names its key), each from a new storage and process state."""
    from django.core.cache import caches

    from triggers import CacheStorageBackend
    from triggers.process_state import reset_process_state

    for _ in range(reads):
        reset_process_state()
        gc.collect()
        if one_value is not None:
            caches["default"].get(one_value)
        else:
            sum(1 for _ in CacheStorageBackend(uid, cache="default", timeout=3600).iter_instances())


def instructions_per_read(args: argparse.Namespace, uid: str, one_value: str | None) -> int:
    """Instructions of one read (see ``instructions``), counted by callgrind."""
    counts = []
    for reads in (0, 2):
        command = [
            *("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"),
            *(sys.executable, __file__, "--cache", args.cache, "--layout", args.layout),
            *("--memcached", args.memcached, "--read-uid", uid, "--reads", str(reads)),
            *(("--one-value", one_value) if one_value else ()),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        counts.append(int(re.findall(r"Collected : (\d+)", done.stderr)[-1]))
    return (counts[1] - counts[0]) // 2


class ServerMemory:
    """Bytes a session holds on the cache's server."""

    def __init__(self, cache: str, memcached: str) -> None:
        self.cache = cache
        self.memcached = memcached

    def redis_client(self):
        import redis

        return redis.Redis.from_url(REDIS_URL)

    def memcached_item_sizes(self, uid: str) -> int:
        """The sizes of the items whose key holds ``uid``, as the server lists them."""
        host, port = self.memcached.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as conn:
            conn.sendall(b"lru_crawler metadump all\r\n")
            dump = b""
            while not dump.endswith(b"END\r\n"):
                chunk = conn.recv(1 << 20)
                if not chunk:
                    break
                dump += chunk
        total = 0
        for line in dump.decode().splitlines():
            fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
            if "key" in fields and uid in urllib.parse.unquote(fields["key"]):
                total += int(fields["size"])
        return total

    def of_new_session(self, build) -> int:  # noqa: ANN001
        """Bytes of the session ``build()`` makes (it returns the uid)."""
        uid = build()
        if self.cache == "memcached":
            return self.memcached_item_sizes(uid)
        client = self.redis_client()
        keys = list(client.scan_iter(match=f"*{uid}*", count=1000))
        return sum(client.memory_usage(key, samples=0) or 0 for key in keys)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "scenarios", nargs="*", default=["read", "memory"], help="read, memory, instructions"
    )
    parser.add_argument("--cache", choices=["redis", "dredis", "memcached"], default="redis")
    parser.add_argument("--layout", choices=["split", "single", "paged"], default="split")
    parser.add_argument(
        "--sizes", default="400,10200", help="instances per session, comma-separated"
    )
    parser.add_argument("--runs", type=int, default=7, help="reads per size (read)")
    parser.add_argument("--memcached", default="127.0.0.1:11211")
    # What the instructions scenario runs under valgrind (not for use by hand).
    parser.add_argument("--read-uid", help=argparse.SUPPRESS)
    parser.add_argument("--reads", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--one-value", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.scenarios) - {"read", "memory", "instructions"}
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    configure(args.cache, args.layout, args.memcached)
    if args.read_uid:
        read_repeatedly(args.read_uid, args.reads, args.one_value)
        return
    sizes = [int(size) for size in args.sizes.split(",")]
    base = {"cache": args.cache, "layout": args.layout}
    if "read" in args.scenarios:
        for size in sizes:
            figures = read_whole(session_of(size), size, args.runs)
            rounded = {key: round(value, 1) for key, value in figures.items()}
            print(
                json.dumps({"scenario": "read", "instances": size, **rounded, **base}), flush=True
            )
    if "instructions" in args.scenarios:
        for size in sizes:
            uid = session_of(size)
            line = {"scenario": "instructions", "instances": size}
            line["read"] = instructions_per_read(args, uid, None)
            one_value = whole_value_of(uid)
            if one_value is not None:
                line["one_value"] = instructions_per_read(args, uid, one_value)
                line["ratio_to_one_value"] = round(line["read"] / line["one_value"], 2)
            print(json.dumps({**line, **base}), flush=True)
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
