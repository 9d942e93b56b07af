"""What a task run costs on a real Celery worker: cache requests and milliseconds per run.

    python benchmarks/celery_bench.py [--pool prefork:2] [--pool solo] [--sessions 40] [--runs 1]

Starts ``celery worker`` (each ``--pool`` given: ``solo``, or ``prefork:N``
for N child processes) on this module's app, on the local RabbitMQ broker
(so no broker traffic reaches Redis), with the sessions' cache on Redis
(django-redis, the split layout, or the layout ``CELERY_BENCH_LAYOUT``
names; the environment variable
``CELERY_BENCH_REDIS`` names the database, db 6 by default as for the
other benchmarks; nothing is deleted there, sessions expire in an hour).
``CELERY_BENCH_CACHE`` chooses another cache: ``dredis`` (Django's
``RedisCache``), ``memcached`` or ``db_pg`` (the database cache on the
PostgreSQL database ``CELERY_BENCH_PG``, ``triggers_bench`` by default);
requests are counted on Redis only.
Then it fires ``--sessions`` sessions of the workflow of ``fire_cost.py``
(a chain of 5 tasks and 5 more after the first: 10 task runs each) and
waits for every run to end.

The worker's connections to the cache name themselves (CLIENT SETNAME), and
MONITOR counts what they send, by command; what the benchmark itself sends
(the fires, the setup) is not counted, nor connection setup. Each body
appends a line to a file, so waiting for the runs reads no cache. Prints one
JSON line per pool and run: requests per task run (by command) and ms per
task run (from the first fire to the last run's end; MONITOR slows Redis a
little, ``--no-count`` times without it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REDIS_URL = os.environ.get("CELERY_BENCH_REDIS", "redis://127.0.0.1:6379/6")
BROKER = os.environ.get("CELERY_BENCH_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
QUEUE = os.environ.get("CELERY_BENCH_QUEUE", "triggers-celery-bench")
#: the client name the worker's cache connections carry
WORKER_CLIENT = "triggers-bench-worker"
#: where each task body appends a line (set by the benchmark for its worker)
RUN_LOG = os.environ.get("CELERY_BENCH_RUN_LOG", "")
#: the sessions' cache: redis (django-redis), dredis (Django's RedisCache),
#: memcached, or db_pg (the database cache on PostgreSQL, database
#: CELERY_BENCH_PG, "triggers_bench" by default); requests are counted on Redis only
CACHE = os.environ.get("CELERY_BENCH_CACHE", "redis")
PG_NAME = os.environ.get("CELERY_BENCH_PG", "triggers_bench")
CHAIN, FAN = 5, 5


def cache_settings(client_name: str | None) -> dict:
    """The sessions' cache (see ``CACHE``), its connections named ``client_name`` on Redis."""
    if CACHE == "redis":
        pool = {"client_name": client_name} if client_name else {}
        return {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": REDIS_URL,
                "OPTIONS": {"CONNECTION_POOL_KWARGS": pool}}
    if CACHE == "dredis":
        named = {"client_name": client_name} if client_name else {}
        return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                "OPTIONS": named}
    if CACHE == "memcached":
        return {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
                "LOCATION": "127.0.0.1:11211"}
    if CACHE == "db_pg":
        return {"BACKEND": "django.core.cache.backends.db.DatabaseCache",
                "LOCATION": "celery_bench_cache", "OPTIONS": {"MAX_ENTRIES": 10**7}}
    raise SystemExit(f"CELERY_BENCH_CACHE={CACHE!r}: redis, dredis, memcached or db_pg")


def configure(client_name: str | None) -> None:
    """Django settings for the benchmark and its worker: the sessions' cache and layout."""
    import django
    from django.conf import settings

    databases = {}
    if CACHE == "db_pg":
        databases["default"] = {"ENGINE": "django.db.backends.postgresql", "NAME": PG_NAME,
                                "USER": "postgres", "HOST": "127.0.0.1", "PORT": 5432}
    settings.configure(
        CACHES={"default": {**cache_settings(client_name), "TIMEOUT": 3600}},
        DATABASES=databases,
        INSTALLED_APPS=["triggers"],
        # Signs the state a dispatch hands its worker, as any project's key does.
        SECRET_KEY="celery-bench-signing-key",
        TRIGGERS_CACHE_LAYOUT=os.environ.get("CELERY_BENCH_LAYOUT", "split"),
        USE_TZ=False,
    )
    django.setup()


def make_app():  # noqa: ANN201
    from celery import Celery

    celery_app = Celery("celery_bench")
    celery_app.conf.update(
        broker_url=BROKER,
        broker_connection_retry_on_startup=True,
        task_default_queue=QUEUE,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_enable_remote_control=False,
    )
    return celery_app


def register_tasks(celery_app) -> None:  # noqa: ANN001
    from triggers.task import registered_tasks, task
    from triggers.tasks.runners import autodiscover_celery_tasks

    if "bench.step" not in registered_tasks:

        @task("bench.step")
        def step(context) -> dict:  # noqa: ANN001
            if RUN_LOG:
                with open(RUN_LOG, "a") as log:
                    log.write(f"{os.getpid()}\n")
            return {}

    autodiscover_celery_tasks(celery_app)


def workflow() -> dict:
    config = {"t_c0": {"after": ["start"], "run": "bench.step", "using": "celery"}}
    for i in range(1, CHAIN):
        config[f"t_c{i}"] = {"after": [f"t_c{i - 1}"], "run": "bench.step", "using": "celery"}
    for i in range(FAN):
        config[f"t_f{i}"] = {"after": ["t_c0"], "run": "bench.step", "using": "celery"}
    return config


class Monitor(threading.Thread):
    """MONITOR on the cache's Redis: commands of one database, by client address."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        import redis

        self.client = redis.Redis.from_url(url)
        self.db = self.client.connection_pool.connection_kwargs.get("db", 0)
        self.by_client: dict[str, Counter] = {}
        self.ready = threading.Event()
        #: the key whose GET ends the listening (sent once every run ended)
        self.end_marker = f"celery-bench:end:{uuid.uuid4().hex}"
        self.ended = threading.Event()

    def run(self) -> None:
        with self.client.monitor() as monitor:
            self.ready.set()
            for command in monitor.listen():
                if self.end_marker in command["command"]:
                    self.ended.set()
                    return
                if int(command.get("db", -1)) != self.db:
                    continue
                name = command["command"].split(" ", 1)[0].upper()
                self.by_client.setdefault(command.get("client_address", "") + ":" + str(
                    command.get("client_port", "")), Counter())[name] += 1

    def worker_counts(self) -> Counter:
        """What the worker's connections sent (those named WORKER_CLIENT)."""
        named = {
            entry["addr"] for entry in self.client.client_list() if entry.get("name") == WORKER_CLIENT
        }
        total: Counter = Counter()
        for address, counts in self.by_client.items():
            if address in named:
                total.update(counts)
        for setup in ("CLIENT", "HELLO", "SELECT", "PING"):
            total.pop(setup, None)
        return total


def start_worker(pool: str, run_log: Path) -> subprocess.Popen:
    kind, _, children = pool.partition(":")
    env = {
        **os.environ,
        "CELERY_BENCH_WORKER": "1",
        "CELERY_BENCH_RUN_LOG": str(run_log),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent), str(HERE), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable, "-m", "celery", "-A", "celery_bench", "worker", f"--pool={kind}",
        *([f"--concurrency={children}"] if children else []), "--loglevel=WARNING",
        "-n", f"bench-{uuid.uuid4().hex[:6]}@localhost", "-Q", QUEUE,
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]
    log = open(run_log.with_suffix(".worker.log"), "wb")
    return subprocess.Popen(command, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_lines(path: Path, count: int, worker: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().count("\n") if path.exists() else 0
        if lines >= count:
            return
        if worker.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker stopped or too slow: {lines}/{count} runs; see {path}.worker.log")
        time.sleep(0.02)


def bench(pool: str, sessions: int, count: bool) -> dict:
    from triggers import CacheStorageBackend, TriggerManager

    uids = [uuid.uuid4().hex for _ in range(sessions)]
    for uid in uids:
        TriggerManager(CacheStorageBackend(uid, cache="default", timeout=3600)).update_configuration(workflow())
    run_log = Path(tempfile.mkdtemp(prefix="celery-bench-")) / "runs"
    run_log.write_text("")
    # Warm up the worker's children (imports, connections): one session, not counted.
    worker = start_worker(pool, run_log)
    try:
        warm = uuid.uuid4().hex
        manager = TriggerManager(CacheStorageBackend(warm, cache="default", timeout=3600))
        manager.update_configuration(workflow())
        manager.fire("start", {"n": 0})
        wait_lines(run_log, CHAIN + FAN, worker)
        monitor = Monitor(REDIS_URL) if count else None
        if monitor is not None:
            monitor.start()
            monitor.ready.wait(10)
            time.sleep(0.2)
        started = time.perf_counter()
        for uid in uids:
            TriggerManager(CacheStorageBackend(uid, cache="default", timeout=3600)).fire("start", {"n": 1})
        runs = sessions * (CHAIN + FAN)
        wait_lines(run_log, runs + CHAIN + FAN, worker)
        elapsed = time.perf_counter() - started
        result = {"pool": pool, "sessions": sessions, "task_runs": runs,
                  "ms_per_task_run": round(elapsed * 1000 / runs, 3)}
        if monitor is not None:
            # MONITOR's stream lags: read it up to a marker sent now.
            monitor.client.get(monitor.end_marker)
            if not monitor.ended.wait(120):
                raise SystemExit("MONITOR did not catch up")
            counts = monitor.worker_counts()
            result["requests_per_task_run"] = round(sum(counts.values()) / runs, 3)
            result["by_command"] = {name: round(n / runs, 3) for name, n in sorted(counts.items())}
    finally:
        worker.terminate()
        worker.wait(30)
    finished = 0
    for uid in uids:
        storage = CacheStorageBackend(uid, cache="default")
        finished += sum(1 for i in storage.iter_instances() if i.status == "finished")
    result["lost"] = runs - finished
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", action="append", help="solo or prefork:N (repeatable)")
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-count", action="store_true", help="time without MONITOR")
    args = parser.parse_args(argv)
    configure(None)
    from django.conf import settings

    if CACHE == "db_pg":
        from django.core.management import call_command

        call_command("createcachetable", verbosity=0)

    settings.TRIGGERS_CELERY_APP = app
    register_tasks(app)
    with app.connection_for_write() as connection:
        queue = app.amqp.queues[QUEUE](connection.default_channel)
        queue.declare()
        queue.purge()
    for _ in range(args.runs):
        for pool in args.pool or ["prefork:2", "solo"]:
            counted = not args.no_count and CACHE in ("redis", "dredis")
            print(json.dumps({"cache": CACHE, **bench(pool, args.sessions, counted)}), flush=True)


if os.environ.get("CELERY_BENCH_WORKER") == "1":
    configure(WORKER_CLIENT)
    app = make_app()
    register_tasks(app)
else:
    app = make_app()

if __name__ == "__main__":
    sys.exit(main())
