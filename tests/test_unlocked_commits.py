"""Manager operations that commit without the lock (Redis), and what they must not break.

On Redis an operation first runs on the state its storage object last
committed (or, for an object that has read nothing, on a new session) and
commits only if no lock is held and the session is unchanged; otherwise it
runs again, finally under the lock. Every test here holds on every shared
cache: on the others the lock is taken from the start.
"""

from __future__ import annotations

import sys
import threading

import pytest
from django.core.cache import caches

from tests.runner_support import RecordingRunner
from tests.test_locking import join_all, start_process
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import UnknownInstance
from triggers.types import TaskInstance

CONFIG = {
    "t_one": {"after": ["a"], "run": "tests.add", "using": RecordingRunner.name},
    "t_both": {"after": ["a", "b"], "run": "tests.add", "using": RecordingRunner.name},
    "t_every": {"after": [], "andEvery": "tick", "run": "tests.add", "using": RecordingRunner.name},
}


@pytest.fixture
def managers(shared_cache, uid, test_runners):
    """Two managers of one new session, each with a storage object of its own."""

    def make():
        return TriggerManager(CacheStorageBackend(uid, cache=shared_cache, timeout=600))

    first = make()
    first.update_configuration(CONFIG)
    return first, make, shared_cache


def reread(uid, alias):
    return CacheStorageBackend(uid, cache=alias)


def ticks_of(uid, alias):
    """(worker, n) of every tick the session's andEvery task took, sorted."""
    return sorted(
        (i.kwargs["tick"]["worker"], i.kwargs["tick"]["n"])
        for i in reread(uid, alias).iter_instances()
        if i.config.name == "t_every"
    )


def test_a_manager_whose_state_went_stale_still_applies_its_fire_to_the_latest_state(managers, uid):
    first, make, alias = managers
    second = make()
    first.fire("a", {"by": "first"})  # first now knows the session as it left it
    second.fire("b", {"by": "second"})  # ...which second then changes
    first.fire("tick", {"n": 1})  # runs on stale state, must notice and redo

    storage = reread(uid, alias)
    assert storage.latest_kwargs == {"a": {"by": "first"}, "b": {"by": "second"}, "tick": {"n": 1}}
    both = storage["t_both#0"]
    assert both.kwargs == {"a": {"by": "first"}, "b": {"by": "second"}}
    assert both.status == TaskInstance.STATUS_SCHEDULED
    assert storage["t_every#0"].kwargs == {"tick": {"n": 1}}
    assert sorted(i.name for i in storage.iter_instances()) == ["t_both#0", "t_every#0", "t_one#0"]


def test_a_new_manager_of_an_existing_session_does_not_take_it_for_a_new_one(managers, uid):
    first, make, alias = managers
    first.fire("a", {"n": 1})

    late = make()  # has read nothing: its first try assumes a new session
    late.update_configuration({"t_late": {"after": ["b"], "run": "tests.add", "using": RecordingRunner.name}})
    make().fire("b", {"n": 2})

    storage = reread(uid, alias)
    assert set(storage.tasks) == {"t_one", "t_both", "t_every", "t_late"}
    assert storage["t_one#0"].status == TaskInstance.STATUS_SCHEDULED
    assert storage["t_both#0"].status == TaskInstance.STATUS_SCHEDULED
    assert storage["t_late#0"].kwargs == {"b": {"n": 2}}


def test_an_operation_that_fails_on_assumed_state_is_redone_on_the_real_one(managers, uid):
    first, make, alias = managers
    first.fire("a", {"n": 1})

    # A new object would not find the instance in the new session it assumes.
    updated = make().update_instance_status("t_one#0", TaskInstance.STATUS_FINISHED, {"result": {"ok": 1}})
    assert updated.status == TaskInstance.STATUS_FINISHED
    stored = reread(uid, alias)["t_one#0"]
    assert stored.status == TaskInstance.STATUS_FINISHED
    assert stored.metadata["result"] == {"ok": 1}


def test_an_operation_that_fails_on_the_real_state_still_fails_and_changes_nothing(managers, uid):
    first, make, alias = managers
    first.fire("a", {"n": 1})
    before = reread(uid, alias).debug_repr()

    with pytest.raises(UnknownInstance, match="t_one#7"):
        make().update_instance_status("t_one#7", TaskInstance.STATUS_FINISHED)
    with pytest.raises(UnknownInstance, match="t_one#7"):
        first.update_instance_status("t_one#7", TaskInstance.STATUS_FINISHED)
    assert reread(uid, alias).debug_repr() == before


def test_a_fire_waits_for_a_lock_held_elsewhere_and_keeps_what_its_holder_saved(managers, uid):
    first, make, alias = managers
    first.fire("a", {"n": 1})  # first knows the current state: it would commit at once
    # Its own connection: not every cache client may be used by two threads at once.
    holder = CacheStorageBackend(uid, cache=caches.create_connection(alias))
    taken, fired = threading.Event(), threading.Event()
    errors = []

    def fire():
        taken.wait(30)
        try:
            first.fire("tick", {"n": 2})
        except BaseException as exc:  # reported below
            errors.append(exc)
        fired.set()

    thread = threading.Thread(target=fire)
    thread.start()
    with holder.acquire_lock(ttl=30):
        holder.metadata["held"] = "yes"
        taken.set()
        # The fire runs meanwhile; it must not commit while the lock is held.
        fired.wait(0.5)
        holder.save()
    thread.join(30)
    assert not errors

    storage = reread(uid, alias)
    assert storage.metadata["held"] == "yes"
    assert storage.latest_kwargs["tick"] == {"n": 2}
    assert storage["t_every#0"].kwargs == {"tick": {"n": 2}}


def test_two_saves_under_one_lock_keep_the_waiting_instances_of_both(shared_cache, uid, test_runners):
    storage = CacheStorageBackend(uid, cache=shared_cache, timeout=600)
    manager = TriggerManager(storage)
    manager.update_configuration(CONFIG)
    with storage.acquire_lock(ttl=30):
        storage.create_instance("t_both", kwargs={"a": {"first": 1}})
        storage.save()
        storage.metadata["second"] = True
        storage.save()
    manager = TriggerManager(reread(uid, shared_cache))
    ready = manager.fire("b", {"n": 1})
    assert [i.name for i in ready] == ["t_both#0"]
    assert ready[0].kwargs == {"a": {"first": 1}, "b": {"n": 1}}


def test_sessions_configured_alike_each_keep_their_own_configuration(shared_cache, uid, test_runners):
    config = {
        "t_x": {"after": ["go"], "run": "tests.add", "using": RecordingRunner.name, "withParams": {"k": [1]}},
    }
    first = TriggerManager(CacheStorageBackend(uid + "-1", cache=shared_cache))
    first.update_configuration(config)
    # The same dict, changed in place, configures the next session.
    config["t_x"]["withParams"]["k"].append(2)
    config["t_x"]["after"] = ["go", "also"]
    second = TriggerManager(CacheStorageBackend(uid + "-2", cache=shared_cache))
    second.update_configuration(config)
    third = TriggerManager(CacheStorageBackend(uid + "-3", cache=shared_cache))
    third.update_configuration(config)

    one, two, three = (reread(f"{uid}-{n}", shared_cache).tasks["t_x"] for n in (1, 2, 3))
    assert one.with_params == {"k": [1]} and one.after == {"go"}
    assert two.with_params == three.with_params == {"k": [1, 2]}
    assert two.after == three.after == {"go", "also"}
    assert [i.name for i in first.fire("go")] == ["t_x#0"]
    assert third.fire("go") == []
    assert [i.name for i in third.fire("also")] == ["t_x#0"]


def test_processes_racing_without_the_lock_lose_nothing_on_every_shared_cache(managers, uid):
    first, make, alias = managers
    children = [start_process(_tick_from_child, uid, alias, worker) for worker in range(3)]
    join_all(children)
    assert [child.exitcode for child in children] == [0, 0, 0]

    assert ticks_of(uid, alias) == [(worker, n) for worker in range(3) for n in range(10)]


def _tick_from_child(uid, alias, worker):
    manager = TriggerManager(CacheStorageBackend(uid, cache=alias, timeout=600))
    for n in range(10):
        manager.fire("tick", {"worker": worker, "n": n})


@pytest.mark.parametrize("alias", ["locmem", "redis"])
def test_threads_sharing_one_manager_lose_nothing(alias, uid, test_runners, request):
    from tests.conftest import prepare_cache

    prepare_cache(request, alias)
    manager = TriggerManager(CacheStorageBackend(uid, cache=alias, timeout=600))
    manager.update_configuration(CONFIG)
    errors = []

    def tick(worker):
        try:
            for n in range(25):
                manager.fire("tick", {"worker": worker, "n": n})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=tick, args=(worker,)) for worker in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, inside operations too
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        sys.setswitchinterval(interval)
    assert not errors

    assert ticks_of(uid, alias) == [(worker, n) for worker in range(4) for n in range(25)]
    storage = reread(uid, alias)
    assert sorted(i.name for i in storage.iter_instances()) == sorted(
        f"t_every#{n}" for n in range(100)
    )


def test_saves_in_the_single_layout_are_never_taken_for_an_older_state(managers, uid):
    first, make, alias = managers  # first committed the configuration (split layout)
    single = TriggerManager(CacheStorageBackend(uid, cache=alias, timeout=600, layout="single"))
    single.fire("a", {"by": "single"})
    single.fire("b", {"by": "single again"})
    first.fire("tick", {"n": 1})  # on the state first committed, two saves ago

    storage = reread(uid, alias)
    assert storage.latest_kwargs == {"a": {"by": "single"}, "b": {"by": "single again"}, "tick": {"n": 1}}
    assert storage["t_both#0"].status == TaskInstance.STATUS_SCHEDULED
    assert sorted(i.name for i in storage.iter_instances()) == ["t_both#0", "t_every#0", "t_one#0"]
