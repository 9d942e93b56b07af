"""A run's end is fenced: once its instance was taken from it (marked failed and
replayed while the run was paused), the run writes nothing and fires nothing.

In one process, with the sync and threading runners, on each cache and layout;
tests/faults/test_run_ownership.py pauses real worker processes.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest
from django.core.cache import caches

from tests.legacy_2x import key_of, load_like_2x
from tests.runner_support import statuses
from tests.storage_support import fresh
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import RunSuperseded
from triggers.operations.redispatch import redispatch
from triggers.task import registered_tasks, task
from triggers.tasks.execution import run_task
from triggers.tasks.ownership import META_RUN, RunFence, run_token
from triggers.tasks.runners import ThreadingTaskRunner
from triggers.types import TaskConfig, TaskInstance

#: the longest a test waits for a thread before it fails
BOUND = 30.0
#: released by a test to let the paused first run of ``tests.fence_paused`` end
RESUME: dict[str, threading.Event] = {}
#: what the tests' bodies ran, in order: (instance name, what)
RAN: list[tuple[str, str]] = []


def fence_paused(context):
    """Its first run (``#0``) waits for the test's event; every run says it ran."""
    RAN.append((context.instance_name, "body"))
    if context.instance_name.endswith("#0"):
        assert RESUME[context.storage_uid].wait(BOUND), "never resumed"
    return {"by": context.instance_name}


def fence_recovers_itself(context):
    """Its first run is recovered (marked failed and replayed) by an operator while it runs."""
    RAN.append((context.instance_name, "body"))
    if context.instance_name.endswith("#0"):
        operator = TriggerManager(
            CacheStorageBackend(context.storage_uid, cache=context.storage.cache_alias)
        )
        redispatch(operator, context.instance_name)
        then = context.trigger_kwargs.get("go", {}).get("then")
        if then == "update_own":
            context.manager.update_instance_status(
                context.instance_name, "finished", {"result": {"own": 1}}
            )
        elif then == "raise":
            raise ValueError("the body failed after its recovery")
        elif then == "retry":
            context.task.retry(exc=RuntimeError("try again"))
        elif then == "skip":
            context.task.skip({"why": "skipped after its recovery"})
        elif then == "bad_result":
            return "not a dict"
    return {"by": context.instance_name}


def fence_moves_itself(context):
    """Sets its own instance's status itself, then returns a result."""
    RAN.append((context.instance_name, "body"))
    context.manager.update_instance_status(context.instance_name, "skipped", {"why": "own"})
    return {"by": context.instance_name}


def fence_count(context):
    RAN.append((context.instance_name, "body"))
    return {}


@pytest.fixture(scope="module", autouse=True)
def _fence_tasks():
    """The tasks of these tests, registered while they run only (other tests list the registered ones)."""
    bodies = {
        "tests.fence_paused": fence_paused,
        "tests.fence_recovers_itself": fence_recovers_itself,
        "tests.fence_count": fence_count,
        "tests.fence_moves_itself": fence_moves_itself,
    }
    for name, body in bodies.items():
        task(name)(body)
    yield
    for name in bodies:
        registered_tasks.pop(name, None)


def _config(run: str, using: str) -> dict:
    return {
        "t_first": {"after": ["go"], "run": run, "using": using},
        "t_next": {"after": ["t_first"], "run": "tests.fence_count", "using": using},
        "t_every": {
            "after": ["go"],
            "andEvery": "t_first",
            "run": "tests.fence_count",
            "using": using,
        },
    }


def _wait_for(manager: TriggerManager, name: str, status: str) -> None:
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        storage = fresh(manager)
        if name in storage.instances and storage[name].status == status:
            return
        time.sleep(0.02)
    pytest.fail(f"{name} never became {status}: {statuses(manager)}")


def _bodies(uid_names: set[str]) -> list[str]:
    return sorted(name for name, what in RAN if what == "body" and name in uid_names)


def _superseded_records(caplog, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "superseded" in r.getMessage() and name in r.getMessage()]


@pytest.fixture(autouse=True)
def _clean():
    RAN.clear()
    yield
    for event in RESUME.values():
        event.set()
    ThreadingTaskRunner.join_all(timeout=BOUND)
    RESUME.clear()


@pytest.mark.parametrize("layout", ["split", "single", "paged"])
def test_a_threaded_run_resumed_after_its_recovery_records_nothing(manager_session, layout, caplog):
    manager = TriggerManager(
        CacheStorageBackend(
            manager_session.storage.uid, cache=manager_session.storage.cache_alias, layout=layout
        )
    )
    uid = manager.storage.uid
    RESUME[uid] = threading.Event()
    manager.update_configuration(_config("tests.fence_paused", "threading"))
    manager.fire("go", {"n": 1})
    _wait_for(manager, "t_first#0", "running")
    token = run_token(fresh(manager)["t_first#0"])
    assert token

    done = redispatch(manager, "t_first#0")  # the operator's recovery: failed, then replayed
    assert done.clone == "t_first#1"
    _wait_for(manager, "t_first#1", "finished")
    _wait_for(manager, "t_next#0", "finished")
    _wait_for(manager, "t_every#0", "finished")
    with caplog.at_level(logging.WARNING, logger="triggers"):
        RESUME[uid].set()  # the first run resumes and returns
        ThreadingTaskRunner.join_all(timeout=BOUND)

    storage = fresh(manager)
    first = storage["t_first#0"]
    assert first.status == TaskInstance.STATUS_REPLAYED  # what the recovery made of it
    assert TaskInstance.META_RESULT not in first.metadata
    assert run_token(first) == token
    assert statuses(manager) == {
        "t_first#0": "replayed",
        "t_first#1": "finished",
        "t_next#0": "finished",
        "t_every#0": "finished",
    }
    assert _bodies({"t_every#0", "t_every#1"}) == ["t_every#0"]  # one cascade, one run
    assert _bodies({"t_first#0", "t_first#1"}) == ["t_first#0", "t_first#1"]
    [record] = _superseded_records(caplog, "t_first#0")
    assert uid in record.getMessage() and "'by': 't_first#0'" in record.getMessage()


@pytest.mark.parametrize("then", [None, "update_own", "raise", "retry", "skip", "bad_result"])
def test_a_sync_run_superseded_mid_body_raises_and_fires_nothing(manager_session, then, caplog):
    """However the superseded run ends (a result, its own status update, an error, a retry,
    a skip, a result that is no dict), nothing of it is recorded."""
    manager = manager_session
    manager.update_configuration(_config("tests.fence_recovers_itself", "sync"))
    with caplog.at_level(logging.WARNING, logger="triggers"):
        manager.fire("go", {"then": then})

    assert statuses(manager) == {
        "t_first#0": "replayed",
        "t_first#1": "finished",
        "t_next#0": "finished",
        "t_every#0": "finished",
    }
    first = fresh(manager)["t_first#0"]
    assert first.metadata["exceptionType"] == "triggers.operations.redispatch.WorkerLost"
    assert TaskInstance.META_RESULT not in first.metadata
    assert _bodies({"t_every#0", "t_every#1"}) == ["t_every#0"]
    assert _superseded_records(caplog, "t_first#0")


def test_run_task_raises_run_superseded_with_the_result(manager_session):
    """run_task itself, as a worker calls it: the error names the session and instance and carries the result."""
    manager = manager_session
    manager.update_configuration(
        {
            "t_first": {
                "after": ["go"],
                "run": "tests.fence_recovers_itself",
                "using": "tests-recording",
            }
        }
    )
    manager.fire("go")
    from tests.runner_support import RecordingRunner

    payload = RecordingRunner.payloads(manager.storage.uid)["t_first#0"]
    with pytest.raises(RunSuperseded) as caught:
        run_task(payload)
    error = caught.value
    assert (error.uid, error.name, error.status, error.found) == (
        manager.storage.uid,
        "t_first#0",
        "finished",
        "replayed",
    )
    assert error.result == {"by": "t_first#0"}
    assert run_task(payload) is None  # a second delivery is refused at start: nothing runs
    assert _bodies({"t_first#0"}) == ["t_first#0"]


def test_a_run_token_is_its_own_and_a_fence_refuses_any_other_state():
    config = TaskConfig("t", after=["go"], run="tests.fence_count")
    fence = RunFence("u", "t#0")
    other = RunFence("u", "t#0")
    assert fence.token != other.token
    instance = TaskInstance("t#0", config, "running", fence.claim())
    fence(instance, "finished")  # owned: no error
    with pytest.raises(RunSuperseded):
        other(instance, "finished")
    fence(TaskInstance("t#1", config, "failed"), "finished")  # not its instance
    for status in ("scheduled", "failed", "finished", "replayed"):
        instance.status = status
        with pytest.raises(RunSuperseded) as caught:
            fence(instance, "finished")
        assert caught.value.found == status
    del instance.metadata[META_RUN]
    instance.status = "running"
    with pytest.raises(RunSuperseded):
        fence(instance, "failed")  # a run started by a version without tokens: not this one's


def test_the_single_layout_with_a_run_token_reads_in_2x(manager_session, settings):
    manager = TriggerManager(
        CacheStorageBackend(
            manager_session.storage.uid, cache=manager_session.storage.cache_alias, layout="single"
        )
    )
    manager.update_configuration(
        {"t_first": {"after": ["go"], "run": "tests.fence_count", "using": "sync"}}
    )
    manager.fire("go")
    _configs, instances, _metas = load_like_2x(
        caches[manager.storage.cache_alias].get(key_of(manager.storage.uid))
    )
    assert instances["t_first#0"].status == "finished"
    assert isinstance(instances["t_first#0"].metadata[META_RUN], str)


def test_a_body_that_moves_its_own_instance_ends_its_run_there(manager_session, caplog):
    """Its own status update lands (the run owned the instance); the run's end after it does not."""
    manager = manager_session
    manager.update_configuration(_config("tests.fence_moves_itself", "sync"))
    with caplog.at_level(logging.WARNING, logger="triggers"):
        manager.fire("go")
    first = fresh(manager)["t_first#0"]
    assert (first.status, first.metadata["why"]) == ("skipped", "own")
    assert TaskInstance.META_RESULT not in first.metadata
    assert statuses(manager) == {"t_first#0": "skipped", "t_every#0": "unstarted"}
    assert _superseded_records(caplog, "t_first#0")
