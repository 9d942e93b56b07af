"""Fixtures of the manager, runner and task tests (loaded with ``pytest_plugins``).

Kept apart from tests.runner_support, which test modules import directly, so
that pytest can load this module itself as a plugin.
"""

from __future__ import annotations

import pytest

from tests.runner_support import EVENTS, FailingRunner, RecordingRunner
from triggers import CacheStorageBackend, TriggerManager
from triggers.tasks.runners import ThreadingTaskRunner, task_runners


@pytest.fixture
def test_runners():
    """Registers the recording and failing runners for the test (a registry refresh forgets them)."""
    task_runners.register(RecordingRunner.name, RecordingRunner)
    task_runners.register(FailingRunner.name, FailingRunner)
    yield


@pytest.fixture
def manager_session(manager_cache, uid, settings, test_runners):
    """A manager of a new session in the cache under test; tasks run synchronously.

    The docs' examples make ``CacheStorageBackend(uid)`` on the default
    alias, so the setting points it at the cache under test.
    """
    settings.TRIGGERS_CACHE_ALIAS = manager_cache
    settings.TRIGGERS_DEFAULT_RUNNER = "sync"
    manager = TriggerManager(CacheStorageBackend(uid, cache=manager_cache))
    yield manager
    ThreadingTaskRunner.join_all(timeout=60)


@pytest.fixture
def no_stray_threads():
    """Waits for task threads a test left running."""
    yield
    for event in EVENTS.values():
        event.set()
    ThreadingTaskRunner.join_all(timeout=60)
