"""What the manager asks of a storage: the public hooks a backend may override.

A backend defines ``name``, ``_load_from_backend`` and ``_save``; it may
override the queries of a firing (for speed), ``attempts()``, and
``get_lock_guard()`` to lock without a cache. A backend written against the
hooks' private names from before they were public keeps working.
"""

import copy
import threading
from collections import defaultdict

import pytest
from django.core.cache.backends.dummy import DummyCache

from triggers import BaseTriggerStorage, CacheStorageBackend, TriggerManager
from triggers.errors import LockAcquisitionFailed
from triggers.locking import CacheLock, NoLock
from triggers.locking.writes import NO_WRITES

SESSIONS: dict = {}

CONFIG = {
    "t_pair": {"after": ["a", "b"], "run": "tests.noop"},
    "t_other": {"after": ["c", "d"], "run": "tests.noop"},
}


class DictBackend(BaseTriggerStorage):
    """The guide's backend: a name, a load and a save."""

    name = "dict-interface"

    def _load_from_backend(self):
        return copy.deepcopy(SESSIONS.get(self.uid, ({}, {}, {})))

    def _save(self):
        SESSIONS[self.uid] = copy.deepcopy(
            (self._serialize(self._configs), self._serialize(self._instances), self._metas)
        )


class OldHooks(DictBackend):
    """Written against the hooks' names from before they were public."""

    def __init__(self, uid):
        super().__init__(uid)
        self.calls = []

    def _tasks_using_trigger(self, trigger_name):
        self.calls.append(("tasks_using_trigger", trigger_name))
        return super()._tasks_using_trigger(trigger_name)

    def _schedulable_instances_of_task(self, task_name):
        self.calls.append(("schedulable_instances_of_task", task_name))
        return super()._schedulable_instances_of_task(task_name)

    def _stored_nothing(self):
        self.calls.append(("stored_nothing",))
        return super()._stored_nothing()


class ThreadLockGuard:
    """A lock of this process, no cache involved (as a database backend's row lock would be)."""

    locks: dict = defaultdict(threading.Lock)
    ttl = None
    writes_land_together = True

    def __init__(self, key):
        self.key = key
        self.held = False
        self.released_with = []

    def acquire(self, block=True, read=()):
        assert not read  # nothing asks this guard to read
        if block is False:
            taken = self.locks[self.key].acquire(blocking=False)
        else:
            taken = self.locks[self.key].acquire(timeout=-1 if block is True else block)
        if not taken:
            raise LockAcquisitionFailed(self.key)
        self.held = True
        return {}

    def write(self, writes):
        raise AssertionError("this backend writes in _save, never through its guard")

    def release(self, writes=NO_WRITES):
        self.released_with.append(writes)
        self.held = False
        self.locks[self.key].release()
        return True


class OwnLock(DictBackend):
    """Locks through its own guard; its lock backend could not lock at all."""

    def __init__(self, uid):
        super().__init__(uid)
        self.guards = []

    def get_lock_backend(self):
        return DummyCache("dummy", {})  # NotSupported, were it ever locked in

    def get_lock_guard(self, ttl):
        guard = ThreadLockGuard(self.get_lock_name())
        self.guards.append(guard)
        return guard


def test_the_manager_calls_hooks_overridden_under_their_old_names(uid):
    storage = OldHooks(uid)
    manager = TriggerManager(storage)
    manager.update_configuration(CONFIG)
    storage.calls.clear()
    manager.fire("a", {"n": 1})
    manager.fire("a", {"n": 2})
    assert storage.calls == [
        ("stored_nothing",),
        ("tasks_using_trigger", "a"),
        ("stored_nothing",),
        ("tasks_using_trigger", "a"),
        ("schedulable_instances_of_task", "t_pair"),
    ]
    assert {i.name: i.kwargs for i in OldHooks(uid)} == {"t_pair#0": {"a": {"n": 1}}}
    # The new names reach the old overrides too.
    assert storage.stored_nothing() is False
    assert [c.name for c in storage.tasks_using_trigger("d")] == ["t_other"]


def test_old_and_new_names_are_one_hook():
    assert OldHooks.tasks_using_trigger is OldHooks._tasks_using_trigger
    assert CacheStorageBackend._tasks_using_trigger is CacheStorageBackend.tasks_using_trigger
    assert CacheStorageBackend._stored_nothing is CacheStorageBackend.stored_nothing
    assert (
        CacheStorageBackend._schedulable_instances_of_task
        is CacheStorageBackend.schedulable_instances_of_task
    )

    class Both(CacheStorageBackend):
        def _tasks_using_trigger(self, trigger_name):
            return super()._tasks_using_trigger(trigger_name)

    # An old override below a backend that overrides the new name calls that one.
    assert Both.tasks_using_trigger is Both._tasks_using_trigger


def test_a_subclass_of_the_cache_backend_with_an_old_override_works(uid):
    class Counting(CacheStorageBackend):
        seen: list = []

        def _tasks_using_trigger(self, trigger_name):
            self.seen.append(trigger_name)
            return super()._tasks_using_trigger(trigger_name)

    manager = TriggerManager(Counting(uid, cache="locmem"))
    manager.update_configuration(CONFIG)
    manager.fire("c", {"x": 1})
    assert Counting.seen == ["c"]
    assert [i.name for i in CacheStorageBackend(uid, cache="locmem")] == ["t_other#0"]


def test_a_backend_locks_through_its_own_guard_only(uid):
    storage = OwnLock(uid)
    manager = TriggerManager(storage)
    manager.update_configuration(CONFIG)
    manager.fire("a", {"n": 1})
    assert len(storage.guards) == 2
    assert all(not g.held and g.released_with == [NO_WRITES] for g in storage.guards)
    with storage.acquire_lock():
        with storage.acquire_lock():  # re-entry takes no second guard
            assert storage.has_lock
        assert len(storage.guards) == 3
        # Another object of the session waits on the same lock.
        with pytest.raises(LockAcquisitionFailed):
            with OwnLock(uid).acquire_lock(block=False):
                pass
    assert {i.name: i.status for i in OwnLock(uid)} == {"t_pair#0": "unstarted"}


def test_the_cache_backend_locks_under_its_lock_key(uid):
    storage = CacheStorageBackend(uid, cache="locmem")
    guard = storage.get_lock_guard(60)
    assert isinstance(guard, CacheLock)
    assert guard.key == storage.keys.lock != storage.get_lock_name()
    assert not guard.held
    unlocked = storage.get_lock_guard(False)
    assert isinstance(unlocked, NoLock) and unlocked.key == storage.keys.lock
    assert storage.get_lock_name() == f"triggers:{uid}:lock"
