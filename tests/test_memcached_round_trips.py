"""Memcached: what a fire and a status change send to the server, request by request.

Counted on the real server where requests leave the process (each write of
a server client's socket is one request and one wait for its answers), so
a change that splits a pipelined request again, or adds a read, fails here.
"""

from __future__ import annotations

import pytest
from django.core.cache import caches

from tests.conftest import prepare_cache
from tests.memcached_support import commands_in, hooked_memcache
from tests.runner_support import RecordingRunner
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import LockLost
from triggers.locking import lock_driver
from triggers.locking.drivers.base import UndecodableValue
from triggers.locking.drivers.memcached_pipe import Pipeline
from triggers.types import TaskInstance

ALIAS = "memcached"
CONFIG = {"t": {"after": [], "andEvery": "tick", "run": "tests.add", "using": RecordingRunner.name}}

#: a fire into a session: the lock; the head's bump and the read of head,
#: witness and lock; a look at the lock with the settle writes (the last
#: fire's record, new: an add) and the witness; the head's commit with the
#: lock's release
FIRE = [["add"], ["append", "gets"], ["gets", "add", "gets", "cas"], ["cas", "cas"]]
#: a status change: as a fire, with the read of the instance's record; the
#: record it settles (the one the last change read) is written with cas on
#: the unique that read gave
STATUS_CHANGE = [["add"], ["append", "gets"], ["gets"], ["gets", "cas", "cas"], ["cas", "cas"]]


def recording_cache():
    """A Memcached cache (a driver of its own) whose requests are recorded, and the record."""
    sent: list[list[str]] = []

    def send(sock, data):
        sent.append([command.decode() for _, command in commands_in(data)])
        sock.sendall(data)

    return hooked_memcache(send), sent


@pytest.fixture
def requests_sent(request):
    prepare_cache(request, ALIAS)
    return recording_cache()


def test_a_fire_takes_four_requests_and_a_status_change_five(requests_sent, uid, test_runners):
    cache, sent = requests_sent
    manager = TriggerManager(CacheStorageBackend(uid, cache=cache, timeout=600))
    manager.update_configuration(CONFIG)
    manager.fire("tick", {"n": -1})  # the session and its task table exist
    for n in range(3):
        sent.clear()
        manager.fire("tick", {"n": n})
        assert sent == FIRE, f"fire {n}"
    sent.clear()
    manager.update_instance_status("t#0", TaskInstance.STATUS_FINISHED)
    # The record it settles is the one the last fire made: new, so added at once.
    assert sent == [["add"], ["append", "gets"], ["gets"], ["gets", "add", "gets", "cas"], ["cas", "cas"]]
    for n in (1, 2):
        sent.clear()
        manager.update_instance_status(f"t#{n}", TaskInstance.STATUS_FINISHED)
        assert sent == STATUS_CHANGE, f"status change {n}"
    # A process that never read the record it settles finds it stored: one request more.
    other, sent = recording_cache()
    elsewhere = TriggerManager(CacheStorageBackend(uid, cache=other, timeout=600))
    elsewhere.update_instance_status("t#3", TaskInstance.STATUS_FINISHED)
    assert sent[-4:] == [["gets"], ["gets", "add", "gets", "cas"], ["cas"], ["cas", "cas"]]
    stored = CacheStorageBackend(uid, cache=ALIAS)
    assert [stored[f"t#{n}"].status for n in range(4)] == [TaskInstance.STATUS_FINISHED] * 4
    assert [stored[f"t#{n}"].kwargs["tick"]["n"] for n in range(4)] == [-1, 0, 1, 2]


def test_a_record_changed_since_this_process_read_it_is_read_again_and_written(
    requests_sent, uid, test_runners
):
    cache, sent = requests_sent
    manager = TriggerManager(CacheStorageBackend(uid, cache=cache, timeout=600))
    manager.update_configuration(CONFIG)
    for n in range(3):
        manager.fire("tick", {"n": n})
    manager.update_instance_status("t#0", TaskInstance.STATUS_FINISHED)  # reads t#0's key
    # Rewritten as it was: a new unique, so what this process read of it is out of date.
    record_key = manager.storage.record_key("t#0")
    caches[ALIAS].set(record_key, caches[ALIAS].get(record_key), timeout=600)
    sent.clear()
    manager.update_instance_status("t#1", TaskInstance.STATUS_FINISHED)  # settles t#0
    # The cas on the old unique is refused; the record is read and written again.
    assert sent == [
        ["add"], ["append", "gets"], ["gets"], ["gets", "cas", "cas"], ["add", "gets"], ["cas"], ["cas", "cas"]
    ]
    stored = CacheStorageBackend(uid, cache=ALIAS)
    assert stored["t#0"].status == stored["t#1"].status == TaskInstance.STATUS_FINISHED


def saved_once(cache, uid: str) -> CacheStorageBackend:
    """A storage object of a session it has just saved once, under the lock."""
    store = CacheStorageBackend(uid, cache=cache, timeout=600)
    with store.acquire_lock():
        store.metadata["made"] = True
        store.save()
    return store


def test_a_holder_whose_lock_expired_commits_nothing_even_if_no_one_took_it(requests_sent, uid):
    cache, _ = requests_sent
    store = saved_once(cache, uid)
    with pytest.raises(LockLost):
        with store.acquire_lock():
            store.metadata["late"] = True
            store.save()
            caches[ALIAS].delete(store.keys.lock)  # as if its ttl ran out
    assert "late" not in CacheStorageBackend(uid, cache=ALIAS).metadata


def test_saves_under_one_lock_are_each_fenced_and_the_lock_let_go_once(requests_sent, uid):
    cache, sent = requests_sent
    store = saved_once(cache, uid)
    with store.acquire_lock():
        store.metadata["first"] = 1
        store.save()
        sent.clear()
        store.invalidate_cache()  # the save is written, the lock kept
        # The head's commit reads the head back in its request: the next save's fence.
        assert sent[-1] == ["cas", "gets"]
        store.metadata["second"] = 2
        store.save()
    assert caches[ALIAS].get(store.keys.lock) is None
    metadata = CacheStorageBackend(uid, cache=ALIAS).metadata
    assert (metadata["made"], metadata["first"], metadata["second"]) == (True, 1, 2)
    # A save made after the head changed under the held lock is refused.
    with pytest.raises(LockLost):
        with store.acquire_lock():
            store.metadata["third"] = 3
            store.save()
            store.invalidate_cache()
            caches[ALIAS].set(store.keys.head, caches[ALIAS].get(store.keys.head), timeout=600)
            store.metadata["fourth"] = 4
            store.save()
    assert CacheStorageBackend(uid, cache=ALIAS).metadata["third"] == 3
    assert "fourth" not in CacheStorageBackend(uid, cache=ALIAS).metadata


# --------------------------------------------------------------------------- the pipeline


def _pipeline():
    return Pipeline(lock_driver(caches[ALIAS]).memcached)


def test_a_pipeline_carries_its_commands_out_in_order_in_one_request(requests_sent, uid):
    cache, sent = requests_sent
    cache.set(f"{uid}:warm", 1)  # connected: the pipeline writes to the socket
    pipe = Pipeline(lock_driver(cache).memcached)
    added = pipe.add(f"{uid}:a", "one", 60)
    again = pipe.add(f"{uid}:a", "two", 60)  # refused: the first made it
    read = pipe.gets([f"{uid}:a", f"{uid}:missing"])
    sent.clear()
    pipe.run()
    assert sent == [["add", "add", "gets"]]
    assert (added.answer, again.answer) == (True, False)
    value, unique = read.answer[f"{uid}:a"]
    assert value == "one" and f"{uid}:missing" not in read.answer
    later = pipe.cas(f"{uid}:a", "three", unique, 60)
    stale = pipe.cas(f"{uid}:a", "four", unique, 60)  # the unique moved with the first cas
    pipe.run()
    assert (later.answer, stale.answer) == (True, False)
    assert cache.get(f"{uid}:a") == "three"


def test_a_value_that_does_not_decode_is_named_and_the_connection_stays_in_step(request, uid):
    prepare_cache(request, ALIAS)
    cache = caches[ALIAS]
    driver = lock_driver(cache)
    cache.set(f"{uid}:warm", 1)
    client, key = driver.memcached.one(f"{uid}:bad")
    client.set(key, b"not a number", 60, flags=2)  # pymemcache's flag for an int
    pipe = _pipeline()
    pipe.gets([f"{uid}:bad", f"{uid}:warm"])
    with pytest.raises(UndecodableValue, match="bad"):
        pipe.run()
    pipe = _pipeline()
    after = pipe.gets([f"{uid}:warm"])
    pipe.run()
    assert after.answer[f"{uid}:warm"][0] == 1
