"""What one task run costs on Redis, counted in requests (not timed).

A run is two commits: ``running``, then ``finished`` together with the
firing of its result. A task that runs in the process that readied it
starts from the state that process committed, so it reads nothing first,
and sibling tasks in threads of one process take turns instead of colliding.
"""

from __future__ import annotations

import contextlib

import pytest

from tests.runner_support import RecordingRunner, behave
from triggers import CacheStorageBackend, TriggerManager
from triggers.storages.cache.committed import committed_heads
from triggers.tasks.execution import run_task
from triggers.tasks.runners import ThreadingTaskRunner


@contextlib.contextmanager
def counted_requests():
    """Counts every command redis-py is asked to send (a script call is one).

    Counted at the client, not the socket: Django's RedisCache opens a
    connection pool per thread, and the handshake of each new connection is
    not a cost of the run.
    """
    from redis.client import Redis

    sent = []
    original = Redis.execute_command

    def counting(self, *args, **kwargs):
        sent.append(args[0])
        return original(self, *args, **kwargs)

    Redis.execute_command = counting
    try:
        yield sent
    finally:
        Redis.execute_command = original


@pytest.fixture(params=["redis", "dredis"])
def redis_cache(request):
    from .conftest import prepare_cache

    return prepare_cache(request, request.param)


def _configure(manager, runner, tasks):
    manager.update_configuration(
        {
            name: {"after": [after], "run": "tests.behave", "using": runner,
                   "withParams": behave(**{"return": {"from": name}})}
            for name, after in tasks.items()
        }
    )


def _statuses(uid, alias):
    return {i.name: i.status for i in CacheStorageBackend(uid, cache=alias).iter_instances()}


def test_a_chain_on_the_sync_runner_costs_two_requests_a_run(redis_cache, uid, settings):
    settings.TRIGGERS_CACHE_ALIAS = redis_cache
    manager = TriggerManager(CacheStorageBackend(uid, cache=redis_cache))
    _configure(manager, "sync", {"t_a": "start", "t_b": "t_a", "t_c": "t_b"})
    with counted_requests() as sent:
        manager.fire("start", {"n": 1})
    # The fire, then two commits for each of the three runs.
    assert len(sent) == 1 + 3 * 2
    assert _statuses(uid, redis_cache) == {"t_a#0": "finished", "t_b#0": "finished", "t_c#0": "finished"}


def test_a_fan_on_the_threading_runner_costs_two_requests_a_run(redis_cache, uid, settings):
    settings.TRIGGERS_CACHE_ALIAS = redis_cache
    manager = TriggerManager(CacheStorageBackend(uid, cache=redis_cache))
    fan = {f"t_f{i}": "start" for i in range(5)}
    _configure(manager, "threading", fan)
    with counted_requests() as sent:
        manager.fire("start", {"n": 1})
        ThreadingTaskRunner.join_all(timeout=60)
    assert len(sent) == 1 + 5 * 2
    assert set(_statuses(uid, redis_cache).values()) == {"finished"}


def test_a_task_run_in_another_process_reads_the_session_once(
    redis_cache, uid, settings, test_runners
):
    """A worker that has not seen the session reads it once, then commits twice."""
    settings.TRIGGERS_CACHE_ALIAS = redis_cache
    manager = TriggerManager(CacheStorageBackend(uid, cache=redis_cache))
    _configure(manager, RecordingRunner.name, {"t_a": "start"})
    manager.fire("start", {"n": 1})
    payload = RecordingRunner.payloads(uid)["t_a#0"]
    committed_heads.clear()  # as a worker process that never saw the session
    with counted_requests() as sent:
        assert run_task(payload) == {"from": "t_a"}
    assert len(sent) == 1 + 2
    assert _statuses(uid, redis_cache) == {"t_a#0": "finished"}
