"""What a fire and a task run cost on a Redis Cluster, beside one Redis in the same run.

    python benchmarks/cluster_bench.py

``BENCH_CACHE=cluster`` (the default here) measures django-redis on a
Redis Cluster (redis-py's ``RedisCluster``, through
``triggers.redis_cluster.ClusterConnectionFactory``) and, in the same run,
django-redis on one Redis, so the figures sit side by side;
``BENCH_CACHE=redis`` measures one Redis only.

``BENCH_CLUSTER_URL`` names a node of a running cluster; without it, the
script starts a throwaway cluster of 3 masters and 3 replicas on
``BENCH_CLUSTER_PORT`` (default 7050) to 5 more ports, and stops it at the
end. ``BENCH_REDIS_URL`` is the one Redis (default 127.0.0.1:6379/8).

Requests are counted in redis-py (one per command, pipeline or script call,
on any connection), which no machine's noise moves; milliseconds are the
mean over the run. Prints one JSON line per scenario and cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import django
from django.conf import settings

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
FACTORY = "triggers.redis_cluster.ClusterConnectionFactory"


class Requests:
    """Requests sent through redis-py, counted where every connection sends them."""

    count = 0

    @classmethod
    def install(cls) -> None:
        from redis.connection import Connection

        original = Connection.send_packed_command

        def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            cls.count += 1
            return original(self, *args, **kwargs)

        Connection.send_packed_command = counted  # type: ignore[method-assign]


def start_cluster(first: int) -> tuple[list[subprocess.Popen[bytes]], str]:
    """Six cluster nodes made into 3 masters with a replica each; the processes and a URL."""
    folder = tempfile.mkdtemp(prefix="triggers-bench-cluster-")
    ports = [first + i for i in range(6)]
    processes = [
        subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", folder]
            + ["--save", "", "--appendonly", "no", "--cluster-enabled", "yes"]
            + ["--cluster-config-file", f"nodes-{port}.conf"],
            stdout=subprocess.DEVNULL,
        )
        for port in ports
    ]
    time.sleep(1)
    nodes = [f"127.0.0.1:{port}" for port in ports]
    subprocess.run(
        ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "1", "--cluster-yes"],
        check=True,
        capture_output=True,
    )
    for _ in range(200):
        info = subprocess.run(
            ["redis-cli", "-p", str(first), "cluster", "info"], capture_output=True, text=True
        ).stdout
        if "cluster_state:ok" in info:
            break
        time.sleep(0.1)
    return processes, f"redis://127.0.0.1:{first}/0"


def configure(cluster_url: str | None) -> None:
    caches = {"redis": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": REDIS_URL}}
    if cluster_url:
        caches["cluster"] = {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": cluster_url,
            "OPTIONS": {"CONNECTION_FACTORY": FACTORY},
        }
    caches["default"] = caches["redis"]
    settings.configure(
        CACHES={alias: dict(config, TIMEOUT=3600) for alias, config in caches.items()},
        INSTALLED_APPS=["triggers"],
        USE_TZ=False,
    )
    django.setup()


def manager(uid: str, alias: str) -> Any:
    from triggers import CacheStorageBackend, TriggerManager

    return TriggerManager(CacheStorageBackend(uid, cache=alias, timeout=3600))


def fires(alias: str, count: int = 300) -> dict[str, Any]:
    """One session; an ``andEvery`` task makes an instance per fire."""
    m = manager(uuid.uuid4().hex, alias)
    m.update_configuration({"t_page": {"after": ["page", "never"], "andEvery": "page", "run": "x"}})
    m.fire("page", {"k": -1})  # the process knows the session from here on
    before, started = Requests.count, time.perf_counter()
    for k in range(count):
        m.fire("page", {"k": k, "payload": "x" * 200})
    took = time.perf_counter() - started
    return {
        "scenario": "fire",
        "fires": count,
        "requests_per_fire": round((Requests.count - before) / count, 2),
        "ms_per_fire": round(1000 * took / count, 3),
    }


def task_runs(alias: str, sessions: int = 20, chain: int = 5, fan: int = 5) -> dict[str, Any]:
    """Tasks run in the calling thread (``sync``): a chain of 5 and 5 after the first."""
    from triggers.task import registered_tasks, task

    if "bench.step" not in registered_tasks:
        task("bench.step")(lambda context: {})
    config = {"t_c0": {"after": ["start"], "run": "bench.step", "using": "sync"}}
    for i in range(1, chain):
        config[f"t_c{i}"] = {"after": [f"t_c{i - 1}"], "run": "bench.step", "using": "sync"}
    for i in range(fan):
        config[f"t_f{i}"] = {"after": ["t_c0"], "run": "bench.step", "using": "sync"}
    uids = [uuid.uuid4().hex for _ in range(sessions)]
    for uid in uids:
        manager(uid, alias).update_configuration(config)
    runs = sessions * (chain + fan)
    before, started = Requests.count, time.perf_counter()
    for uid in uids:
        manager(uid, alias).fire("start", {"n": 1})
    took = time.perf_counter() - started
    finished = sum(1 for i in manager(uids[-1], alias).storage if i.status == "finished")
    assert finished == chain + fan, finished
    return {
        "scenario": "task_run",
        "task_runs": runs,
        "requests_per_task_run": round((Requests.count - before) / runs, 2),
        "ms_per_task_run": round(1000 * took / runs, 3),
    }


def main() -> None:
    wanted = os.environ.get("BENCH_CACHE", "cluster")
    if wanted not in ("cluster", "redis"):
        sys.exit(f"BENCH_CACHE must be 'cluster' or 'redis', not {wanted!r}")
    processes: list[subprocess.Popen[bytes]] = []
    url = os.environ.get("BENCH_CLUSTER_URL")
    if wanted == "cluster" and not url:
        if not shutil.which("redis-server"):
            sys.exit("redis-server is not installed; set BENCH_CLUSTER_URL to a running cluster")
        processes, url = start_cluster(int(os.environ.get("BENCH_CLUSTER_PORT", "7050")))
    try:
        configure(url if wanted == "cluster" else None)
        Requests.install()
        for alias in ["redis", "cluster"] if wanted == "cluster" else ["redis"]:
            for scenario in (fires, task_runs):
                print(json.dumps({**scenario(alias), "cache": alias}), flush=True)
    finally:
        for process in processes:
            process.kill()
            process.wait()


if __name__ == "__main__":
    main()
