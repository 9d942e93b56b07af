"""Each instance runs once, with real processes on the threading runner.

A worker process paused (SIGSTOP) after its ``running`` commit, its instance
recovered meanwhile (marked failed and replayed), then resumed (SIGCONT):
its finish is refused, the cascade happens once, an ``andEvery`` task runs
once. A worker killed (SIGKILL) between its ``finished`` commit and the
sends of its cascade: ``redispatch`` sends them, each body runs once.
Executions are counted from a log each body appends to; every wait is
bounded, and nothing asserts on durations.
"""

from __future__ import annotations

import os
import signal
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import prepare_cache, require_service
from tests.faults.children import end_all, fork
from tests.ops_support import command
from tests.run_log_tasks import executions, runlog_config
from triggers import CacheStorageBackend, TriggerManager
from triggers.operations.redispatch import redispatch
from triggers.tasks.runners import ThreadingTaskRunner

#: the longest any one wait may take before the test fails
BOUND = 30.0

STORAGES = [
    pytest.param(("redis", "split"), id="redis-split"),
    pytest.param(("redis", "single"), id="redis-single"),
    # Rows committed, so that the worker process sees them.
    pytest.param(
        ("pg", "database"),
        id="database-pg",
        marks=pytest.mark.django_db(transaction=True, databases=["default", "pg"]),
    ),
]


def _storage(where: tuple[str, str], uid: str) -> Any:
    alias, kind = where
    if kind == "database":
        from triggers.storages.database import DatabaseStorageBackend

        return DatabaseStorageBackend(uid, using=alias)
    return CacheStorageBackend(uid, cache=alias, layout=kind)


@pytest.fixture(params=STORAGES)
def where(request, settings):
    alias, kind = request.param
    if kind == "database":
        from tests.database.conftest import database_in_use

        database_in_use(request, alias)
    else:
        require_service("redis")
        prepare_cache(request, alias)
    settings.TRIGGERS_DEFAULT_RUNNER = "threading"
    return request.param


def _worker(where: tuple[str, str], uid: str, report: str) -> None:
    """A worker process: fires ``go`` (the threading runner runs t_first here), waits for its threads."""
    import logging

    handler = logging.FileHandler(report)
    logging.getLogger("triggers").addHandler(handler)
    try:
        TriggerManager(_storage(where, uid)).fire("go")
        ThreadingTaskRunner.join_all(timeout=BOUND)
    except BaseException:
        with open(report, "a") as out:
            out.write(traceback.format_exc())
        os._exit(1)
    handler.flush()
    os._exit(0)


def _state(process: Any) -> str:
    with open(f"/proc/{process.pid}/stat") as stat:
        return stat.read().rpartition(")")[2].split()[0]


def _wait(condition: Any, what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {BOUND}s")
        time.sleep(0.02)


def statuses(where: tuple[str, str], uid: str) -> dict[str, str]:
    return {i.name: i.status for i in _storage(where, uid).iter_instances()}


@pytest.fixture
def worker(tmp_path):
    started: list[Any] = []

    def start(where: tuple[str, str], uid: str) -> tuple[Any, Path]:
        report = tmp_path / f"worker-{len(started)}.log"
        process = fork(_worker, where, uid, str(report))
        started.append(process)
        return process, report

    yield start
    end_all(started, BOUND)
    ThreadingTaskRunner.join_all(timeout=BOUND)


def test_a_worker_paused_past_its_recovery_cannot_finish_the_run(where, worker, tmp_path):
    uid = f"fence-{uuid.uuid4().hex}"
    log = tmp_path / "bodies.log"
    manager = TriggerManager(_storage(where, uid))
    manager.update_configuration(runlog_config(log, pause="t_first#0"))
    process, report = worker(where, uid)
    _wait(lambda: _state(process) == "T", "the worker pausing in its body")
    assert statuses(where, uid)["t_first#0"] == "running"

    # The operator's recovery of an instance stuck running: failed, then replayed here.
    done = redispatch(TriggerManager(_storage(where, uid)), "t_first#0")
    assert done.clone == "t_first#1"
    ThreadingTaskRunner.join_all(timeout=BOUND)
    recovered = statuses(where, uid)
    assert recovered["t_first#1"] == recovered["t_next#0"] == recovered["t_every#0"] == "finished"

    os.kill(process.pid, signal.SIGCONT)
    process.join(BOUND)
    assert process.exitcode == 0, report.read_text()

    assert statuses(where, uid) == recovered  # the resumed run changed nothing
    first = _storage(where, uid)["t_first#0"]
    assert first.status == "replayed" and "result" not in first.metadata
    assert executions(log) == {"t_first#0": 1, "t_first#1": 1, "t_next#0": 1, "t_every#0": 1}
    said = report.read_text()
    assert said.count("was superseded") >= 1, said
    assert f"'t_first#0' of session '{uid}'" in said and "'by': 't_first#0'" in said


def test_a_worker_killed_before_its_sends_then_redispatch_runs_each_body_once(
    where, worker, tmp_path
):
    uid = f"fence-{uuid.uuid4().hex}"
    log = tmp_path / "bodies.log"
    manager = TriggerManager(_storage(where, uid))
    manager.update_configuration(runlog_config(log, die_before_sends="t_first#0"))
    process, _report = worker(where, uid)
    process.join(BOUND)
    assert process.exitcode == -signal.SIGKILL
    # Committed, never sent: nothing else would ever start them.
    assert statuses(where, uid) == {
        "t_first#0": "finished",
        "t_next#0": "scheduled",
        "t_every#0": "scheduled",
    }
    assert executions(log) == {"t_first#0": 1}

    options = (
        ["--using", where[0], "--storage", "database"]
        if where[1] == "database"
        else ["--cache", where[0]]
    )
    out = command("redispatch", uid, "--older-than", "0", *options)
    assert out == f"session {uid}: 2 sent again t_every#0 t_next#0\n"
    command(
        "redispatch", uid, "--older-than", "0", *options
    )  # a second send: refused at start if it races
    ThreadingTaskRunner.join_all(timeout=BOUND)

    assert statuses(where, uid) == {
        "t_first#0": "finished",
        "t_next#0": "finished",
        "t_every#0": "finished",
    }
    assert executions(log) == {"t_first#0": 1, "t_next#0": 1, "t_every#0": 1}
