"""Signals and log lines for fires, status changes and failures, sent after the commit."""

from __future__ import annotations

import logging

import pytest

from tests.runner_support import behave
from triggers import CacheStorageBackend, TriggerManager
from triggers.signals import instance_status_changed, task_failed, trigger_fired


@pytest.fixture
def received():
    """Every signal sent during the test, with what a fresh storage read at that moment."""
    seen = []

    def on_fired(sender, manager, trigger_name, trigger_kwargs, ready, **extra):
        seen.append(("fired", trigger_name, trigger_kwargs, [i.name for i in ready]))

    def on_status(sender, manager, instance, status, **extra):
        stored = CacheStorageBackend(manager.storage.uid, cache=manager.storage.cache)
        seen.append(("status", instance.name, status, stored[instance.name].status))

    def on_failed(sender, manager, instance, exception_type, **extra):
        seen.append(("failed", instance.name, exception_type))

    trigger_fired.connect(on_fired)
    instance_status_changed.connect(on_status)
    task_failed.connect(on_failed)
    yield seen
    trigger_fired.disconnect(on_fired)
    instance_status_changed.disconnect(on_status)
    task_failed.disconnect(on_failed)


def test_a_workflow_sends_every_change_once_committed(manager_cache, uid, settings, received):
    settings.TRIGGERS_DEFAULT_RUNNER = "sync"
    manager = TriggerManager(CacheStorageBackend(uid, cache=manager_cache))
    manager.update_configuration(
        {
            "t_a": {"after": ["go"], "run": "tests.behave", "withParams": behave(**{"return": {"x": 1}})},
            "t_b": {"after": ["t_a"], "run": "tests.behave", "withParams": behave(**{"raise": "no"})},
            "t_c": {"after": ["go"], "unless": ["stop"], "run": "tests.behave"},
        }
    )
    manager.fire("stop")
    manager.fire("go", {"n": 1})
    # In the order of their commits; each status as committed (read back in the receiver).
    assert received == [
        ("status", "t_c#0", "abandoned", "abandoned"),
        ("fired", "stop", {}, []),
        ("status", "t_a#0", "scheduled", "scheduled"),
        ("fired", "go", {"n": 1}, ["t_a#0"]),
        ("status", "t_a#0", "running", "running"),
        ("status", "t_a#0", "finished", "finished"),
        ("status", "t_b#0", "scheduled", "scheduled"),
        ("fired", "t_a", {"x": 1}, ["t_b#0"]),
        ("status", "t_b#0", "running", "running"),
        ("status", "t_b#0", "failed", "failed"),
        ("failed", "t_b#0", "builtins.ValueError"),
    ]


def test_fires_and_new_sessions_are_logged(manager_cache, uid, caplog, test_runners):
    from tests.runner_support import RecordingRunner

    manager = TriggerManager(CacheStorageBackend(uid, cache=manager_cache))
    with caplog.at_level(logging.DEBUG, logger="triggers"):
        manager.fire("nothing-listens")  # into an unknown uid: visible
        manager.update_configuration({"t_a": {"after": ["go"], "run": "x", "using": RecordingRunner.name}})
        manager.fire("go")
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith("triggers")]
    # Routine events, at DEBUG: a project's INFO logs stay quiet, as they were with 2.x.
    assert (logging.DEBUG, f"new session {uid!r} (nothing was stored under it)") in lines
    assert (logging.DEBUG, f"session {uid!r}: fired 'nothing-listens', readied 0 instance(s)") in lines
    assert (logging.DEBUG, f"session {uid!r}: fired 'go', readied 1 instance(s): t_a#0") in lines
    assert not [line for line in lines if line[0] >= logging.INFO]
    assert (logging.DEBUG, f"session {uid!r}: t_a#0 is now scheduled") in lines
    news = [m for _, m in lines if m.startswith("new session")]
    assert len(news) == 1  # the second operation found the session stored


def test_a_try_that_did_not_commit_sends_nothing(uid, received, settings, monkeypatch):
    """A refused optimistic try runs again; only the committed run is signalled."""
    from triggers.locking.drivers.redis import RedisLockDriver
    from triggers.storages.cache.committed import committed_heads

    from .conftest import require_service

    require_service("redis")
    other = TriggerManager(CacheStorageBackend(uid, cache="redis"))
    other.update_configuration({"t_a": {"after": ["go"], "run": "tests.add", "using": "tests-nowhere"}})
    TriggerManager(CacheStorageBackend(uid, cache="redis")).update_configuration(
        {"t_b": {"after": ["later"], "run": "tests.add"}}
    )
    committed_heads.clear()  # as if that change came from another process: `other` is stale
    outcomes = []
    original = RedisLockDriver.commit_if_unchanged

    def recording(self, guard, writes):
        result = original(self, guard, writes)
        outcomes.append(result.outcome.value)
        return result

    monkeypatch.setattr(RedisLockDriver, "commit_if_unchanged", recording)
    received.clear()
    with pytest.raises(Exception, match="tests-nowhere"):
        other.fire("go")  # no such runner: the instance fails as it is scheduled
    assert outcomes == ["changed", "committed"]
    assert [entry for entry in received if entry[0] == "status"] == [("status", "t_a#0", "failed", "failed")]
