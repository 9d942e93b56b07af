"""Each instance runs once, on a real Celery worker (prefork pool, two children).

- A child paused (SIGSTOP) in its body, after its ``running`` commit; the
  instance recovered meanwhile (marked failed, replayed: the other child runs
  the clone and its cascade); the child resumed (SIGCONT): its finish is
  refused, the cascade happened once, the ``andEvery`` task ran once.
- A child killed (SIGKILL) between its ``finished`` commit and the sends of
  its cascade; then the ``triggers.redispatch`` Celery task (what celery beat
  would run) sends the instances left scheduled: each body runs once.
- A task acknowledged late, its child killed mid-body: Celery redelivers the
  message, and the redelivery is refused at start (counted in the worker's log).

Body executions are counted from a log each body appends to; the only waits
are bounded polls.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from typing import Any

import pytest

from tests.celery.conftest import (
    DEADLINE,
    celery_manager,
    running_workers,
    statuses,
    wait_until,
)
from tests.celery_app.config import QUEUE_DEFAULT, REDIS_BROKER
from tests.conftest import require_service
from tests.run_log_tasks import executions, pid_of, runlog_config
from triggers import CacheStorageBackend, TriggerManager
from triggers.operations.redispatch import redispatch
from triggers.operations.resend import CELERY_TASK_NAME


@pytest.fixture(scope="module")
def workers(redis_app: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One worker with two child processes, on the default queue."""
    with running_workers(
        redis_app,
        REDIS_BROKER,
        tmp_path_factory.mktemp("run-workers"),
        pool="prefork:2",
        runs=(QUEUE_DEFAULT,),
    ) as started:
        yield started


@pytest.fixture
def session(redis_app: Any, settings: Any) -> TriggerManager:
    require_service("redis")
    storage = CacheStorageBackend(f"celery-runs-{uuid.uuid4().hex}", cache="redis")
    return celery_manager(settings, redis_app, storage)


def _until(condition: Any, what: str, workers: dict[str, Any]) -> Any:
    deadline = time.monotonic() + DEADLINE
    while True:
        found = condition()
        if found:
            return found
        for worker in workers.values():
            worker.check_alive()
        if time.monotonic() > deadline:
            logs = "\n".join(w.log()[-6000:] for w in workers.values())
            pytest.fail(f"{what}: not within {DEADLINE}s\n{logs}")
        time.sleep(0.05)


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rpartition(")")[2].split()[0] == "T"


def _since(worker: Any, start: int) -> str:
    return worker.log()[start:]


def test_a_child_paused_past_its_recovery_cannot_finish_the_run(workers, session, tmp_path):
    worker = workers["runs"]
    mark = len(worker.log())
    log = tmp_path / "bodies.log"
    session.update_configuration(runlog_config(log, pause="t_first#0"))
    session.fire("go")
    pid = _until(lambda: pid_of(log, "t_first#0"), "the first run starting", workers)
    try:
        _until(lambda: _stopped(pid), "the child pausing in its body", workers)
        assert statuses(session)()["t_first#0"] == "running"

        # The operator's recovery: failed, then replayed (sent to the worker, its other child runs it).
        assert (
            redispatch(
                TriggerManager(CacheStorageBackend(session.storage.uid, cache="redis")), "t_first#0"
            ).clone
            == "t_first#1"
        )
        recovered = wait_until(
            statuses(session),
            {
                "t_first#0": "replayed",
                "t_first#1": "finished",
                "t_next#0": "finished",
                "t_every#0": "finished",
            },
            workers,
        )
    finally:
        os.kill(pid, signal.SIGCONT)
    said = _until(
        lambda: "was superseded" in _since(worker, mark) and _since(worker, mark),
        "the refusal",
        workers,
    )

    assert f"'t_first#0' of session '{session.storage.uid}'" in said and "'by': 't_first#0'" in said
    assert statuses(session)() == recovered  # the resumed run wrote nothing
    assert (
        "result"
        not in CacheStorageBackend(session.storage.uid, cache="redis")["t_first#0"].metadata
    )
    assert executions(log) == {"t_first#0": 1, "t_first#1": 1, "t_next#0": 1, "t_every#0": 1}


def test_a_child_killed_before_its_sends_then_the_beat_task_sends_them(
    workers, session, redis_app, tmp_path
):
    log = tmp_path / "bodies.log"
    session.update_configuration(runlog_config(log, die_before_sends="t_first#0"))
    session.fire("go")
    left = wait_until(
        statuses(session),
        {"t_first#0": "finished", "t_next#0": "scheduled", "t_every#0": "scheduled"},
        workers,
    )
    assert left == {"t_first#0": "finished", "t_next#0": "scheduled", "t_every#0": "scheduled"}

    # What celery beat would send on its schedule.
    sent = redis_app.send_task(
        CELERY_TASK_NAME, kwargs={"older_than": 0, "uids": [session.storage.uid], "cache": "redis"}
    )
    wait_until(statuses(session), {"t_next#0": "finished", "t_every#0": "finished"}, workers)
    assert executions(log) == {"t_first#0": 1, "t_next#0": 1, "t_every#0": 1}
    assert sent.id  # sent through the broker, run by the worker


def test_acks_late_redeliveries_are_refused_and_counted(workers, session, tmp_path):
    worker = workers["runs"]
    mark = len(worker.log())
    log = tmp_path / "bodies.log"
    session.update_configuration(runlog_config(log, run="tests.runlog_acks_late", die="t_first#0"))
    session.fire("go")
    refusal = "not running t_first#0: it is running, not scheduled"
    _until(lambda: refusal in _since(worker, mark), "the redelivery refused", workers)

    assert _since(worker, mark).count(refusal) == 1  # redelivered once, refused once
    assert executions(log) == {"t_first#0": 1}  # the body never ran again
    # The worker died mid-body: the instance stays running (an operator's requeue is for it).
    assert statuses(session)() == {"t_first#0": "running", "t_every#0": "unstarted"}
