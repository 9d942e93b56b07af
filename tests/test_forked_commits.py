"""Processes forked from one parent take turns on a session and start from
each other's commits (a prefork worker's children), through memory made
before the fork: real forked processes, a real Redis, requests counted."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys

import pytest

from tests.ops_support import subprocess_run
from tests.test_task_run_requests import counted_requests
from triggers import CacheStorageBackend, TriggerManager
from triggers.storages.cache.forked import ForkShared, identity_digest

FORK = multiprocessing.get_context("fork")
#: a fire of "later" in a process started anew (it shares nothing with this one)
FIRE_ELSEWHERE = """
import os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
import django
django.setup()
from triggers import CacheStorageBackend, TriggerManager
TriggerManager(CacheStorageBackend(sys.argv[1], cache=sys.argv[2])).fire("later", {"n": 1})
"""
#: "later" makes a t_b instance that waits for "never": nothing runs
CONFIG = {
    "t_a": {"after": ["start"], "run": "import_subject"},
    "t_b": {"after": ["later", "never"], "run": "import_subject"},
}


@pytest.fixture(params=["redis", "dredis"])
def redis_cache(request):
    from .conftest import prepare_cache

    return prepare_cache(request, request.param)


def _manager(uid, alias):
    return TriggerManager(CacheStorageBackend(uid, cache=alias))


def _fire_in_a_fork(uid, alias, trigger, kwargs):
    """Fire in a process forked from this one; the requests it sent."""
    sent_back = FORK.Queue()

    def fire():
        with counted_requests() as sent:
            _manager(uid, alias).fire(trigger, kwargs)
        sent_back.put([str(name).upper() for name in sent])

    child = FORK.Process(target=fire)
    child.start()
    sent = sent_back.get(timeout=30)
    child.join(30)
    assert child.exitcode == 0
    return sent


def test_a_fork_starts_from_its_parents_commit_and_the_parent_from_the_forks(
    redis_cache, uid
):
    manager = _manager(uid, redis_cache)
    manager.update_configuration(CONFIG)
    manager.fire("unheard", {"n": 0})  # remembered here, and in the shared memory
    # The child never read the session: it starts from the parent's commit.
    assert _fire_in_a_fork(uid, redis_cache, "unheard", {"n": 1}) == ["EVALSHA"]
    # The parent's own memory is of the state before the child's fire; the
    # shared one is newer, so its commit is not refused.
    with counted_requests() as sent:
        _manager(uid, redis_cache).fire("unheard", {"n": 2})
    assert [str(name).upper() for name in sent] == ["EVALSHA"]
    assert CacheStorageBackend(uid, cache=redis_cache).latest_kwargs["unheard"] == {"n": 2}


def test_a_shared_state_made_stale_by_a_process_not_forked_from_here_costs_one_refusal(
    redis_cache, uid
):
    """A process of its own (not forked from this one, so sharing nothing)
    changes the session: what this process and its forks remember is then
    stale, and costs one refused commit, overwriting nothing."""
    manager = _manager(uid, redis_cache)
    manager.update_configuration(CONFIG)
    manager.fire("unheard", {"n": 0})
    done = subprocess_run(sys.executable, "-c", FIRE_ELSEWHERE, uid, redis_cache)
    assert done.returncode == 0, done.stderr
    # A fork starts from the shared (stale) state: refused once, then committed.
    assert _fire_in_a_fork(uid, redis_cache, "unheard", {"n": 2}) == ["EVALSHA", "EVALSHA"]
    stored = CacheStorageBackend(uid, cache=redis_cache)
    assert stored.latest_kwargs["later"] == {"n": 1}  # the other process's fire is kept
    assert stored.latest_kwargs["unheard"] == {"n": 2}
    assert [i.name for i in stored.iter_instances()] == ["t_b#0"]  # made over there, kept


@pytest.mark.parametrize("name", ["plain", "br{ace}:colon:[31m\\*?"])
def test_a_session_deleted_by_hand_does_not_come_back_from_the_shared_memory(
    redis_cache, uid, name
):
    """A fork committed (its state is in the shared memory); then every key of
    the session is deleted on the server, past this package, and the uid is
    used again. A fork that starts from the remembered state is refused and
    reads the session as new: nothing of the old one comes back."""
    import redis
    from django.conf import settings

    uid = f"{uid}-{name}"
    manager = _manager(uid, redis_cache)
    manager.update_configuration(CONFIG)
    manager.fire("later", {"old": 1})  # an instance t_b#0 that waits
    assert _fire_in_a_fork(uid, redis_cache, "unheard", {"old": 2}) == ["EVALSHA"]
    client = redis.Redis.from_url(settings.REDIS_URL)
    # Filtered here: the uid holds SCAN's pattern characters.
    stored = [key for key in client.scan_iter(count=1000) if uid.encode() in key]
    assert stored and client.delete(*stored) == len(stored)
    # The uid again, in a fork that remembers the old session's latest state.
    sent = _fire_in_a_fork(uid, redis_cache, "unheard", {"new": 3})
    assert sent[0] == "EVALSHA" and len(sent) >= 2, sent  # refused, then read anew
    session = CacheStorageBackend(uid, cache=redis_cache)
    assert session.latest_kwargs == {"unheard": {"new": 3}}
    assert list(session.iter_instances()) == [] and dict(session.tasks) == {}


def _hold_turn(shared, stripe, ready):
    assert shared.take_turn(stripe)
    ready.set()
    signal.pause()


def test_a_turn_held_by_another_process_is_waited_for_then_gone_without():
    shared = ForkShared(stripes=8, slot_size=1024)
    ready = FORK.Event()
    holder = FORK.Process(target=_hold_turn, args=(shared, 3, ready))
    holder.start()
    try:
        assert ready.wait(30)
        assert not shared.take_turn(3, wait=0.05)  # held over there: not taken, no hang
        assert shared.take_turn(4, wait=0.05)  # another stripe is free
        shared.end_turn(4)
        os.kill(holder.pid, signal.SIGSTOP)  # a paused holder keeps it, and is not waited for
        assert not shared.take_turn(3, wait=0.05)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(30)
    # The kernel lets a dead process's turn go.
    assert shared.take_turn(3, wait=5)
    shared.end_turn(3)


def test_a_slot_holds_one_sessions_state_whole():
    shared = ForkShared(stripes=1, slot_size=256)
    first, second = identity_digest(("server", "a")), identity_digest(("server", "b"))
    shared.store(first, b"state of a")
    assert shared.load(first) == b"state of a"
    assert shared.load(second) is None  # the same stripe, another session
    shared.store(second, b"state of b")
    assert shared.load(first) is None and shared.load(second) == b"state of b"
    shared.store(second, b"x" * 300)  # larger than a slot: not kept, nor the older state
    assert shared.load(second) is None
    shared.store(first, b"again")
    shared.drop(second)  # not the one held: kept
    assert shared.load(first) == b"again"
    shared.drop(first)
    assert shared.load(first) is None
    shared.store(first, b"again")
    shared.clear()
    assert shared.load(first) is None


def _write_many(shared, name, start, rounds):
    digest = identity_digest(name)
    start.wait(30)
    for number in range(rounds):
        shared.store(digest, f"{name}:{number}:".encode() * 20)


def test_slots_written_at_once_by_several_processes_are_read_whole_or_not_at_all():
    """No turn taken: writers of two sessions sharing one stripe race; a read
    gives a state one writer stored whole, or nothing."""
    shared = ForkShared(stripes=1, slot_size=4096)
    start = FORK.Event()
    writers = [
        FORK.Process(target=_write_many, args=(shared, name, start, 20000)) for name in "ab"
    ]
    for writer in writers:
        writer.start()
    digests = {name: identity_digest(name) for name in "ab"}
    seen = 0
    start.set()
    while any(writer.is_alive() for writer in writers):
        for name, digest in digests.items():
            state = shared.load(digest)
            if state is not None:
                seen += 1
                head, number, _ = state.decode().split(":", 2)
                assert head == name and state == f"{name}:{number}:".encode() * 20
    for writer in writers:
        writer.join(30)
        assert writer.exitcode == 0
    assert seen > 0  # the reads above did find whole states while the writers raced


def _known(witness):
    from triggers.storages.cache.read_state import Known

    return Known({"head": b"stored head", "w": witness}, {"t#0": b"record"}, "digest")


def test_a_lone_process_shares_nothing_and_a_forked_one_shares_its_commits():
    from triggers.locking.versions import new_version
    from triggers.storages.cache.committed import CommittedHeads

    identity = (("127.0.0.1", 6379, 0, None), "head")
    older, newer = new_version(8), new_version(9)
    memory = ForkShared(stripes=4, slot_size=1024)
    lone = CommittedHeads(memory, forked=False)
    lone.put(identity, _known(older), witness=older, started_from=None)
    assert memory.load(identity_digest(identity)) is None  # nobody to share with
    forked = CommittedHeads(memory, forked=True)
    sibling = CommittedHeads(memory, forked=True)  # another process on the same memory
    sibling.put(identity, _known(older), witness=older, started_from=None)
    forked.put(identity, _known(newer), witness=newer, started_from=None)
    assert memory.load(identity_digest(identity)) is not None
    # The sibling starts from the newer commit, not from what it committed itself.
    assert sibling.get(identity).values["w"] == newer
    assert sibling.get(identity).records == {"t#0": b"record"}
    assert lone.get(identity).values["w"] == older  # a lone process keeps to its own
    sibling.forget(identity, witness=newer)  # found stale: dropped from the memory too
    assert memory.load(identity_digest(identity)) is None
    assert sibling.get(identity).values["w"] == older


def test_without_shared_memory_a_process_keeps_its_own_commits():
    from triggers.locking.versions import new_version
    from triggers.storages.cache.committed import CommittedHeads

    identity = (("127.0.0.1", 6379, 0, None), "head")
    witness = new_version(3)
    heads = CommittedHeads(None, forked=True)
    heads.put(identity, _known(witness), witness=witness, started_from=None)
    assert heads.get(identity).values["w"] == witness
    turn = heads.turn(identity)
    turn.acquire()
    turn.acquire()  # re-entrant, as before
    turn.release()
    turn.release()
    heads.clear()
    assert heads.get(identity) is None
