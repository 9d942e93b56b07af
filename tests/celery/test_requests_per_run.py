"""Cache requests per task run on a real Celery worker with two child processes (counted, not timed).

The children of a prefork worker take turns on the tasks of one session:
each commits when its sibling is done with the session, and starts from
the state the sibling committed (kept in memory the children share). A
refused commit brings back the head, the witness and the records its block read,
and a child that knows nothing of the session reads the head with the run's
own record in one request: no run reads a record alone after a refusal.
Each task is sent with the state the firing process committed (a signed
header), so a worker that starts from it reads nothing before its first
commit: a chain on one worker reads nothing at all.
The requests are counted by MONITOR on the cache's Redis database, less
those this test process sent itself; the broker is RabbitMQ.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.celery.conftest import DEADLINE, celery_manager, require_broker, running_workers
from tests.celery_app.config import AMQP_BROKER, QUEUE_DEFAULT, make_app
from tests.conftest import require_service
from tests.run_log_tasks import executions
from tests.test_task_run_requests import counted_requests
from triggers import CacheStorageBackend

SESSIONS, CHAIN, FAN = 12, 5, 5
#: what the worker may send per task run: two commits, and a refusal or a read at times
#: (3.9 before refusals brought the records back; 3.2 with them; about 2.5 with the
#: state handed in the message; about 2.0 since the children take turns and start
#: from each other's commits); the bound is the goal the project set itself
MOST_PER_RUN = 2.3
#: connection set-up and script loading are not costs of a run
NOT_COUNTED = {"CLIENT", "HELLO", "SELECT", "PING", "AUTH", "SCRIPT", "INFO"}


def _workflow(log: Path, fan: int = FAN) -> dict[str, Any]:
    params = {"runlog": {"path": str(log)}}
    step = {"run": "tests.runlog", "using": "celery", "withParams": params}
    config = {"t_c0": {"after": ["start"], **step}}
    for i in range(1, CHAIN):
        config[f"t_c{i}"] = {"after": [f"t_c{i - 1}"], **step}
    for i in range(fan):
        config[f"t_f{i}"] = {"after": ["t_c0"], **step}
    return config


class _Monitor(threading.Thread):
    """MONITOR on the cache's Redis: the commands of its database, by name and keys."""

    def __init__(self, client: Any, db: int) -> None:
        super().__init__(daemon=True)
        self.client, self.db = client, db
        self.commands: list[list[str]] = []
        self.ready, self.ended = threading.Event(), threading.Event()
        self.marker = f"triggers-tests:end:{uuid.uuid4().hex}"

    def run(self) -> None:
        with self.client.monitor() as monitor:
            self.ready.set()
            for command in monitor.listen():
                if self.marker in command["command"]:
                    self.ended.set()
                    return
                if command.get("client_type") != "lua" and int(command.get("db", -1)) == self.db:
                    self.commands.append(command["command"].split(" "))

    def until_now(self) -> list[list[str]]:
        """Every command logged up to now (MONITOR's stream lags: read up to a marker)."""
        self.client.get(self.marker)
        assert self.ended.wait(DEADLINE), "MONITOR did not catch up"
        return self.commands


@pytest.fixture
def amqp_app() -> Any:
    require_broker(AMQP_BROKER)
    require_service("redis")
    from tests.celery_app import tasks  # noqa: F401

    return make_app(AMQP_BROKER, main="tests.celery_app.requests")


def _run_sessions(
    amqp_app: Any,
    settings: Any,
    tmp_path: Path,
    pool: str,
    fan: int,
    sessions: int = SESSIONS,
    layout: str = "split",
) -> tuple[list[Any], list[list[str]], Counter[str], int]:
    """Fire ``sessions`` sessions on a worker of ``pool``; the managers, the worker's
    commands (MONITOR), what it sent by command name, and the number of runs."""
    from django_redis import get_redis_connection

    client = get_redis_connection("redis")
    db = int(client.connection_pool.connection_kwargs.get("db", 0))
    log = tmp_path / "runs.log"
    managers = [
        celery_manager(
            settings,
            amqp_app,
            CacheStorageBackend(
                f"celery-requests-{uuid.uuid4().hex}", cache="redis", layout=layout
            ),
            _workflow(log, fan),
        )
        for _ in range(sessions)
    ]
    runs = sessions * (CHAIN + fan)
    with running_workers(
        amqp_app, AMQP_BROKER, tmp_path, pool=pool, requests=(QUEUE_DEFAULT,)
    ) as workers:
        monitor = _Monitor(_patient(client), db)
        monitor.start()
        assert monitor.ready.wait(DEADLINE)
        with counted_requests() as own:
            for manager in managers:
                manager.fire("start", {"n": 1})
        # Waited for by the worker's log, so this process reads no cache meanwhile.
        worker = workers["requests"]
        deadline = time.monotonic() + DEADLINE
        while worker.log().count(" succeeded in ") < runs:
            worker.check_alive()
            assert time.monotonic() < deadline, worker.log()[-6000:]
            time.sleep(0.1)
        commands = monitor.until_now()
    assert _all_finished(managers, CHAIN + fan)
    assert sum(executions(log).values()) == runs  # each body ran once
    sent = Counter(command[0].strip('"').upper() for command in commands)
    sent.subtract(Counter(name.upper() for name in own))
    return managers, commands, sent, runs


def test_two_children_read_no_record_alone_and_stay_under_the_bound(amqp_app, settings, tmp_path):
    _, commands, sent, runs = _run_sessions(amqp_app, settings, tmp_path, "prefork:2", FAN)
    counted = {name: n for name, n in sent.items() if name not in NOT_COUNTED and n > 0}
    records_alone = [
        c
        for c in commands
        if c[0].strip('"').upper() == "MGET" and all(":i:" in key for key in c[1:])
    ]
    # A run starts from the state handed with its task (or a newer one its
    # child committed, with the handed record): reads are the task table's only.
    state_reads = [c for c in _reads(commands) if not all(":t:" in key for key in c[1:])]
    per_run = sum(counted.values()) / runs
    assert per_run <= MOST_PER_RUN, counted
    assert len(records_alone) <= runs // 20, records_alone[:5]
    assert len(state_reads) <= runs // 20, state_reads[:5]


def test_two_children_on_paged_sessions(amqp_app, settings, tmp_path):
    """The paged layout on the same worker: a handed record is checked inside its
    page by the commit, and runs cost what they cost in the split layout."""
    managers, commands, sent, runs = _run_sessions(
        amqp_app, settings, tmp_path, "prefork:2", FAN, layout="paged"
    )
    counted = {name: n for name, n in sent.items() if name not in NOT_COUNTED and n > 0}
    assert sum(counted.values()) / runs <= MOST_PER_RUN, counted
    state_reads = [c for c in _reads(commands) if not all(":t:" in key for key in c[1:])]
    assert len(state_reads) <= runs // 20, state_reads[:5]
    # Pages only, on this test's sessions (a child of an earlier test's worker
    # may still be finishing a split session's run while this one is watched).
    uids = {manager.storage.uid for manager in managers}
    ours = [c for c in commands if any(uid in key for key in c[1:] for uid in uids)]
    assert ours and not [c for c in ours if any(":i:" in key for key in c[1:])]
    from django.core.cache import caches

    for manager in managers:  # the workers wrote the layout their tasks were sent with
        assert caches["redis"].get(manager.storage.cache_key)["format"] == "triggers/paged-2"


def _patient(client: Any) -> Any:
    """A client of the same server that waits as long as it takes: MONITOR may
    see nothing for a while (a solo worker waiting on the broker), which the
    cache's own socket timeout would end."""
    import redis

    kwargs = client.connection_pool.connection_kwargs
    wanted = ("host", "port", "db", "username", "password")
    return redis.Redis(**{k: kwargs[k] for k in wanted if k in kwargs}, socket_timeout=None)


def _reads(commands: list[list[str]]) -> list[list[str]]:
    return [c for c in commands if c[0].strip('"').upper() in ("MGET", "GET")]


def test_a_chain_on_one_worker_reads_nothing(amqp_app, settings, tmp_path):
    """The first run starts from the state the fire handed it, each next one
    from what the worker itself committed: two commits a run, and no read but
    the task table's, once (a process keeps the tables it read)."""
    _, commands, sent, runs = _run_sessions(amqp_app, settings, tmp_path, "solo", 0, sessions=4)
    reads = _reads(commands)
    of_state = [c for c in reads if not all(":t:" in key for key in c[1:])]
    assert of_state == [], of_state[:5]
    assert len(reads) <= 1, reads
    assert sent["EVALSHA"] == 2 * runs, sent


def _all_finished(managers: list[Any], instances: int) -> bool:
    for manager in managers:
        storage = CacheStorageBackend(manager.storage.uid, cache="redis")
        if {i.status for i in storage.iter_instances()} != {"finished"} or len(
            storage.instances
        ) < instances:
            return False
    return True
