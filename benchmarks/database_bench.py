"""What a fire and a task run cost on a database, in SQL statements and milliseconds.

    python benchmarks/database_bench.py [--storage database] [--db sqlite] [scenario ...]

``--storage`` (or ``BENCH_STORAGE``): ``database``, the database storage
backend, or ``cache``, the cache backend on Django's ``DatabaseCache`` in the
same database, for comparison. ``--db`` (or ``BENCH_DB``): ``sqlite`` (a file
in the temporary directory, WAL mode), ``postgresql`` or ``mariadb`` on their
usual local ports (``--host`` to change), in the database ``--name``
(default ``triggers_bench``), which must exist::

    createdb -h 127.0.0.1 -U postgres triggers_bench
    mariadb -h 127.0.0.1 -u root -e "CREATE DATABASE triggers_bench CHARACTER SET utf8mb4"

The tables are created (``migrate``, ``createcachetable``) and emptied at
start. Scenarios, as in the drop-in benchmark: ``fanout``, ``growth``,
``contention``, ``workflow``, ``workflow_sync`` (default: all), and
``trace``, which prints the statements of one fire or task run of each kind.
``growth`` takes a session with an andEvery task to 10, 1,000 and 10,000
instances (``--sizes``) and measures there a fire that readies one task, a
fire that no task listens to, and a fire absorbed by a waiting instance
without readying it.

SQL statements are counted with ``execute_wrapper`` on every connection of
every thread (and in each process of ``contention``). Django sends BEGIN and
COMMIT through the driver (on SQLite, BEGIN as a statement, left out too),
so they are not among them: ``tx_*`` counts the transactions (commits and
rollbacks of ``atomic`` blocks); ``sp_*`` counts the SAVEPOINT, RELEASE and ROLLBACK TO statements,
which are not in ``sql_*`` either; ``conn_*`` the connections opened. A
statement run outside ``atomic`` is a transaction of its own (autocommit)
and not in ``tx_*``. Times are medians with the 10th and 90th percentiles.
Prints one JSON line per scenario.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

import django
from django.conf import settings

STORAGES = ("database", "cache")
DATABASE_KINDS = ("sqlite", "postgresql", "mariadb")
CACHE_TABLE = "triggers_bench_cache"
SIZES = (10, 1_000, 10_000)
WINDOW = 40
#: statements that open, release or roll back to a savepoint
SAVEPOINT_WORDS = ("SAVEPOINT", "RELEASE", "ROLLBACK")
#: transaction control some backends send as a statement (Django's SQLite
#: backend sends BEGIN itself): counted as the transaction, in ``tx_*``
TRANSACTION_WORDS = ("BEGIN", "COMMIT", "START")

STORAGE = "database"


def database_settings(kind: str, name: str, host: str, pool: bool = False) -> dict[str, Any]:
    if kind == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(tempfile.gettempdir(), f"{name}.sqlite3"),
            "OPTIONS": {"timeout": 30},
        }
    if kind == "postgresql":
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": "postgres",
            "HOST": host,
            "PORT": 5432,
            # Django 5.1+ with psycopg_pool: a thread's connection comes from the pool
            **({"OPTIONS": {"pool": True}} if pool else {}),
        }
    return {
        "ENGINE": "django.db.backends.mysql",
        "NAME": name,
        "USER": "root",
        "HOST": host,
        "PORT": 3306,
        "OPTIONS": {"charset": "utf8mb4"},
    }


def configure(kind: str, name: str, host: str, pool: bool = False) -> None:
    settings.configure(
        DATABASES={"default": database_settings(kind, name, host, pool)},
        # no culling: the larger scenarios store more than MAX_ENTRIES' default
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.db.DatabaseCache",
                "LOCATION": CACHE_TABLE,
                "TIMEOUT": 3600,
                "OPTIONS": {"MAX_ENTRIES": 10**7},
            }
        },
        INSTALLED_APPS=["triggers"],
        USE_TZ=True,
    )
    django.setup()
    from django.core.cache import caches
    from django.core.management import call_command
    from django.db import connection

    if kind == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")
    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    caches["default"].clear()
    connection.close()


# ------------------------------------------------------------------ counting
class Counts:
    """SQL statements, savepoint statements, transactions and connections,
    counted over every thread of this process."""

    lock = threading.Lock()
    sql = 0
    savepoints = 0
    transactions = 0
    connections = 0
    #: when a list, every statement (and commit, rollback, marker) is kept in it
    log: list[str] | None = None

    @classmethod
    def snapshot(cls) -> tuple[int, int, int, int]:
        with cls.lock:
            return cls.sql, cls.savepoints, cls.transactions, cls.connections

    @classmethod
    def note(cls, what: str) -> None:
        with cls.lock:
            if cls.log is not None:
                cls.log.append(what)

    @classmethod
    def wrapper(cls, execute, sql, params, many, context):  # noqa: ANN001, ANN206
        word = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        with cls.lock:
            if word in SAVEPOINT_WORDS:
                cls.savepoints += 1
            elif word not in TRANSACTION_WORDS:
                cls.sql += 1
            if cls.log is not None:
                cls.log.append(shorten(sql))
        return execute(sql, params, many, context)


def shorten(sql: str) -> str:
    """A statement for reading: column lists and the upsert's SET list elided."""
    sql = " ".join(sql.replace('"', "").replace("`", "").split())
    head, sep, rest = sql.partition(" FROM ")
    if head.startswith("SELECT ") and sep and "," in head:
        sql = f"SELECT <{head.count(',') + 1} columns> FROM {rest}"
    for marker in (" DO UPDATE SET ", " ON DUPLICATE KEY UPDATE "):
        head, sep, rest = sql.partition(marker)
        if sep:
            sql = f"{head}{sep}<{rest.count(',') + 1} columns>" + (
                " RETURNING" + rest.rpartition(" RETURNING")[2] if " RETURNING" in rest else ""
            )
    head, sep, rest = sql.partition(") VALUES (")
    if sep and sql.startswith("INSERT"):
        rows = rest.count("), (") + 1
        tail = rest[rest.find(")", rest.rfind("%s")) + 1 :]
        sql = f"{head}) VALUES <{rows} row{'s' if rows > 1 else ''}>{tail}"
    return sql


def install_counting() -> None:
    from django.db import connections
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.signals import connection_created

    def watch(connection) -> None:  # noqa: ANN001
        if Counts.wrapper not in connection.execute_wrappers:
            connection.execute_wrappers.append(Counts.wrapper)

    def created(sender, connection, **kwargs) -> None:  # noqa: ANN001
        with Counts.lock:
            Counts.connections += 1
        watch(connection)

    connection_created.connect(created, weak=False)
    for connection in connections.all():
        watch(connection)

    def counted(method, label):  # noqa: ANN001, ANN202
        def wrapped(self, *args, **kwargs):  # noqa: ANN001, ANN202
            with Counts.lock:
                Counts.transactions += 1
                if Counts.log is not None:
                    Counts.log.append(label)
            return method(self, *args, **kwargs)

        return wrapped

    BaseDatabaseWrapper.commit = counted(BaseDatabaseWrapper.commit, "-- COMMIT")
    BaseDatabaseWrapper.rollback = counted(BaseDatabaseWrapper.rollback, "-- ROLLBACK")


def per(before: tuple[int, ...], after: tuple[int, ...], n: int, prefix: str) -> dict[str, float]:
    names = ("sql", "sp", "tx", "conn")
    return {f"{name}_{prefix}": round((b - a) / n, 2) for name, a, b in zip(names, before, after)}


def spread(samples: list[float], prefix: str) -> dict[str, float]:
    """Median and the 10th and 90th percentiles of ``samples`` (seconds), in ms."""
    ordered = sorted(samples)
    at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        f"ms_{prefix}": round(statistics.median(ordered) * 1000, 3),
        f"ms_{prefix}_p10": round(at(0.1) * 1000, 3),
        f"ms_{prefix}_p90": round(at(0.9) * 1000, 3),
    }


# ------------------------------------------------------------------ storages
def new_manager(uid: str):  # noqa: ANN201
    from triggers import TriggerManager

    if STORAGE == "database":
        from triggers.storages.database import DatabaseStorageBackend

        return TriggerManager(DatabaseStorageBackend(uid))
    from triggers import CacheStorageBackend

    return TriggerManager(CacheStorageBackend(uid, cache="default", timeout=3600))


def fresh_storage(uid: str):  # noqa: ANN201
    storage = new_manager(uid).storage
    storage.invalidate_cache()
    return storage


def timed(manager, trigger: str, kwargs: dict | None = None) -> tuple[float, tuple[int, ...]]:  # noqa: ANN001
    """One fire: its time, and the counts after it."""
    started = time.perf_counter()
    manager.fire(trigger, kwargs)
    return time.perf_counter() - started, Counts.snapshot()


# ----------------------------------------------------------------- scenarios
def fanout(sessions: int = 100, ready: int = 10, waiting: int = 10) -> dict:
    """New session: configure 20 tasks, fire one trigger that readies 10 of them."""
    config = {
        f"t_ready{i}": {"after": ["start"], "run": "x", "using": "noop"} for i in range(ready)
    }
    config.update(
        {
            f"t_wait{i}": {"after": ["start", "never"], "run": "x", "using": "noop"}
            for i in range(waiting)
        }
    )
    per_session, per_fire = [], []
    before = Counts.snapshot()
    fire_counts = [0, 0, 0, 0]
    for _ in range(sessions):
        started = time.perf_counter()
        manager = new_manager(uuid.uuid4().hex)
        manager.update_configuration(config)
        configured, mid = time.perf_counter(), Counts.snapshot()
        manager.fire("start", {"n": 1})
        ended, after = time.perf_counter(), Counts.snapshot()
        per_session.append(ended - started)
        per_fire.append(ended - configured)
        fire_counts = [c + b - a for c, a, b in zip(fire_counts, mid, after)]
    totals = Counts.snapshot()
    scheduled = sum(
        1 for i in fresh_storage(manager.storage.uid).iter_instances() if i.status == "scheduled"
    )
    assert scheduled == ready, scheduled
    return {
        "scenario": "fanout",
        "sessions": sessions,
        **spread(per_session, "per_session"),
        **per(before, totals, sessions, "per_session"),
        **spread(per_fire, "per_fire"),
        **per((0, 0, 0, 0), fire_counts, sessions, "per_fire"),
    }


def _window(manager, trigger: str, kwargs_of) -> dict:  # noqa: ANN001
    lat = []
    before = Counts.snapshot()
    for k in range(WINDOW):
        lat.append(timed(manager, trigger, kwargs_of(k))[0])
    return {**spread(lat, "per_fire"), **per(before, Counts.snapshot(), WINDOW, "per_fire")}


def growth(sizes: tuple[int, ...] = SIZES) -> dict:
    """A session grown by an andEvery task to each size: what a fire costs there.

    At each size, 40 fires of each kind: ``readies_one`` (the andEvery
    trigger: one new instance, scheduled), ``no_listener`` (a trigger no task
    listens to) and ``absorbed`` (a trigger a waiting instance takes without
    becoming ready)."""
    manager = new_manager(uuid.uuid4().hex)
    manager.update_configuration(
        {
            "t_page": {"after": ["page"], "andEvery": "page", "run": "x", "using": "noop"},
            "t_wait": {"after": ["start", "never"], "run": "x", "using": "noop"},
        }
    )
    manager.fire("start", {"k": -1})
    fired = 0
    result: dict[str, Any] = {"scenario": "growth"}
    page = lambda k: {"k": k, "payload": "x" * 200}  # noqa: E731
    for size in sizes:
        started, fired_before = time.perf_counter(), fired
        while fired < size:
            manager.fire("page", page(fired))
            fired += 1
        filling = time.perf_counter() - started
        result[f"at_{size}"] = {
            "readies_one": _window(manager, "page", page),
            "no_listener": _window(manager, "idle", lambda k: {"k": k}),
            "absorbed": _window(manager, "start", lambda k: {"k": k}),
            "ms_per_fire_filling": round(filling * 1000 / max(1, fired - fired_before), 3),
        }
        fired += WINDOW
    storage = fresh_storage(manager.storage.uid)
    assert len(storage.instances_of_task("t_page")) == fired, fired
    waiting = [i.status for i in storage.instances_of_task("t_wait").values()]
    assert waiting == ["unstarted"], waiting
    first, last = result[f"at_{sizes[0]}"], result[f"at_{sizes[-1]}"]
    for kind in ("readies_one", "no_listener", "absorbed"):
        result[f"ratio_{kind}"] = round(last[kind]["ms_per_fire"] / first[kind]["ms_per_fire"], 2)
    return result


def _fire_many(uid: str, worker: int, fires: int, queue) -> None:  # noqa: ANN001
    from django.core.cache import caches
    from django.db import connections

    # A forked process must not share its parent's connections.
    connections.close_all()
    caches.close_all()
    manager = new_manager(uid)
    lat = []
    before = Counts.snapshot()
    for k in range(fires):
        lat.append(timed(manager, f"w{worker}_{k}")[0])
    after = Counts.snapshot()
    connections.close_all()
    queue.put((lat, [b - a for a, b in zip(before, after)]))


def contention(workers: int = 4, fires: int = 50) -> dict:
    """Four processes fire distinct triggers into one session at once."""
    from django.db import connections

    uid = uuid.uuid4().hex
    new_manager(uid).update_configuration(
        {
            f"t_w{w}_{k}": {"after": [f"w{w}_{k}"], "run": "x", "using": "noop"}
            for w in range(workers)
            for k in range(fires)
        }
    )
    connections.close_all()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    racers = [
        context.Process(target=_fire_many, args=(uid, w, fires, queue)) for w in range(workers)
    ]
    started = time.perf_counter()
    for racer in racers:
        racer.start()
    reports = [queue.get() for _ in racers]
    for racer in racers:
        racer.join()
    elapsed = time.perf_counter() - started
    total = workers * fires
    lat = [x for report in reports for x in report[0]]
    counts = [sum(report[1][i] for report in reports) for i in range(4)]
    scheduled = sum(1 for i in fresh_storage(uid).iter_instances() if i.status == "scheduled")
    return {
        "scenario": "contention",
        "procs": workers,
        "fires": total,
        "fires_per_s": round(total / elapsed, 1),
        "ms_wall_per_fire": round(elapsed * 1000 / total, 3),
        **spread(lat, "per_fire"),
        **per((0, 0, 0, 0), counts, total, "per_fire"),
        "lost": total - scheduled,
    }


def _bench_task() -> str:
    from triggers.task import registered_tasks, task

    if "bench.step" not in registered_tasks:
        task("bench.step")(lambda context: {})
    return "bench.step"


def _workflow(runner: str, sessions: int = 20, chain: int = 5, fan: int = 5) -> dict:
    """Per session a chain of ``chain`` tasks and ``fan`` more after the first,
    all from one fire of ``start``; waits for every thread."""
    from triggers.tasks.runners import ThreadingTaskRunner

    name = _bench_task()
    config = {"t_c0": {"after": ["start"], "run": name, "using": runner}}
    for i in range(1, chain):
        config[f"t_c{i}"] = {"after": [f"t_c{i - 1}"], "run": name, "using": runner}
    for i in range(fan):
        config[f"t_f{i}"] = {"after": ["t_c0"], "run": name, "using": runner}
    uids = [uuid.uuid4().hex for _ in range(sessions)]
    for uid in uids:
        new_manager(uid).update_configuration(config)
    per_run = []
    before = Counts.snapshot()
    for uid in uids:
        started = time.perf_counter()
        new_manager(uid).fire("start", {"n": 1})
        ThreadingTaskRunner.join_all()
        per_run.append((time.perf_counter() - started) / (chain + fan))
    after = Counts.snapshot()
    runs = sessions * (chain + fan)
    lost = 0
    for uid in uids:
        lost += (
            chain
            + fan
            - sum(1 for i in fresh_storage(uid).iter_instances() if i.status == "finished")
        )
    return {
        "task_runs": runs,
        **spread(per_run, "per_task_run"),
        **per(before, after, runs, "per_task_run"),
        "lost": lost,
    }


def workflow() -> dict:
    """Task runs on the threading runner (a new thread, and connection, per run)."""
    return {"scenario": "workflow", **_workflow("threading")}


def workflow_sync() -> dict:
    """Task runs in the calling thread (the sync runner)."""
    return {"scenario": "workflow_sync", **_workflow("sync")}


def _traced(action) -> list[str]:  # noqa: ANN001
    Counts.log = []
    try:
        action()
    finally:
        log, Counts.log = Counts.log, None
    return log


def trace() -> dict:
    """The statements of one operation of each kind, in order (commits and
    rollbacks as ``-- COMMIT``/``-- ROLLBACK``; ``-- run_task`` where a task run starts)."""
    from triggers.tasks import execution, runners

    name = _bench_task()
    manager = new_manager(uuid.uuid4().hex)
    config = {
        "t_page": {"after": ["page"], "andEvery": "page", "run": "x", "using": "noop"},
        "t_wait": {"after": ["start", "never"], "run": "x", "using": "noop"},
    }
    out: dict[str, Any] = {"scenario": "trace"}
    out["configure_new_session"] = _traced(lambda: manager.update_configuration(config))
    out["first_fire_creates_waiting"] = _traced(lambda: manager.fire("start", {"k": 0}))
    for k in range(3):
        manager.fire("page", {"k": k})
    out["fire_no_listener"] = _traced(lambda: manager.fire("idle", {"k": 1}))
    out["fire_absorbed"] = _traced(lambda: manager.fire("start", {"k": 1}))
    out["fire_readies_one"] = _traced(lambda: manager.fire("page", {"k": 9}))
    other = new_manager(manager.storage.uid)
    out["fire_no_listener_new_storage_object"] = _traced(lambda: other.fire("idle", {"k": 2}))

    original = runners.run_task

    def marked(payload):  # noqa: ANN001, ANN202
        Counts.note("-- run_task")
        return original(payload)

    runners.run_task = marked
    try:
        run = new_manager(uuid.uuid4().hex)
        run.update_configuration(
            {
                "t_one": {"after": ["start"], "run": name, "using": "sync"},
                "t_two": {"after": ["t_one"], "run": name, "using": "sync"},
            }
        )
        out["fire_then_two_task_runs_sync"] = _traced(lambda: run.fire("start", {"n": 1}))
    finally:
        runners.run_task = original
    assert execution.run_task is original
    return out


SCENARIOS = {
    "fanout": fanout,
    "growth": growth,
    "contention": contention,
    "workflow": workflow,
    "workflow_sync": workflow_sync,
    "trace": trace,
}
DEFAULT = ["fanout", "growth", "contention", "workflow", "workflow_sync"]


def main(argv: list[str] | None = None) -> None:
    global STORAGE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", help=f"any of {', '.join(SCENARIOS)}")
    parser.add_argument(
        "--storage", default=os.environ.get("BENCH_STORAGE", "database"), choices=STORAGES
    )
    parser.add_argument(
        "--db", default=os.environ.get("BENCH_DB", "sqlite"), choices=DATABASE_KINDS
    )
    parser.add_argument(
        "--name", default="triggers_bench", help="database name (SQLite: file stem)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--pool",
        action="store_true",
        help="postgresql: Django's connection pool (Django 5.1+, psycopg_pool installed)",
    )
    parser.add_argument(
        "--sizes", default=",".join(map(str, SIZES)), help="growth: session sizes, comma separated"
    )
    args = parser.parse_args(argv)
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    STORAGE = args.storage
    if args.pool and args.db != "postgresql":
        parser.error("--pool is for --db postgresql")
    configure(args.db, args.name, args.host, args.pool)
    install_counting()
    from django.db import connection

    with connection.cursor() as cursor:
        started = time.perf_counter()
        for _ in range(200):
            cursor.execute("SELECT 1")
            cursor.fetchone()
        select_ms = (time.perf_counter() - started) * 1000 / 200
    print(
        json.dumps(
            {
                "scenario": "calibrate",
                "storage": STORAGE,
                "db": args.db,
                "vendor": connection.vendor,
                "ms_select_1": round(select_ms, 4),
                "pool": args.pool,
            }
        ),
        flush=True,
    )
    sizes = tuple(int(s) for s in args.sizes.split(","))
    for name in args.scenarios or DEFAULT:
        result = growth(sizes) if name == "growth" else SCENARIOS[name]()
        result.update(storage=STORAGE, db=args.db)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
