"""Memcached: a holder paused past its lock's ttl loses nothing of its successors'.

Real processes on the real Memcached. A holder takes a session's lock with
a one-second ttl, fires into the session, and is stopped (SIGSTOP) inside
its block, or inside its release just before its first write, until its
lock has expired; meanwhile another process changes an instance
and fires N times, each acknowledged fire recorded. Resumed (SIGCONT), the
holder must get LockLost, every acknowledged fire must be in the session,
and the session's stored values must be exactly as the other process left
them. Also: a lock lives at least its ttl, and processes firing together
lose nothing.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.core.cache import caches
from django.core.cache.backends.memcached import PyMemcacheCache

from tests.conftest import prepare_cache
from tests.memcached_support import WRITE_COMMANDS, commands_in, hooked_memcache
from tests.runner_support import RecordingRunner
from tests.storage_support import keys_of, raw, tasks_version
from tests.test_locking import FORK, join_all, start_process
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import LockLost
from triggers.locking import CacheLock, lock_driver
from triggers.types import TaskInstance

ALIAS = "memcached"
CONFIG = {
    "t_every": {"after": [], "andEvery": "tick", "run": "tests.add", "using": RecordingRunner.name},
}
#: acknowledged fires of the process that works while the holder is stopped
FIRES = 20
#: the longest any one step of a test may take before it counts as hung (s)
BOUND = 25


@pytest.fixture
def memcached(request):
    return prepare_cache(request, ALIAS)


def storage(uid, cache=ALIAS, layout=None):
    return CacheStorageBackend(uid, cache=cache, timeout=600, layout=layout)


def ticks_of(uid):
    """(worker, n) of every tick stored in the session, sorted."""
    return sorted(
        (i.kwargs["tick"]["worker"], i.kwargs["tick"]["n"])
        for i in storage(uid).iter_instances()
        if "tick" in i.kwargs
    )


# --------------------------------------------------------------------------- a holder that stops


#: in the holder's process: the pipe to report on, once its release is to pause
PAUSE: dict[str, object] = {"conn": None}


def _pause_before_writing() -> None:
    conn = PAUSE["conn"]
    if conn is not None:
        PAUSE["conn"] = None  # once
        conn.send("paused")  # type: ignore[attr-defined]
        conn.recv()  # type: ignore[attr-defined]


def _pausing_send(sock, data):
    """Pause before a request carrying a write, once armed (however many commands it carries)."""
    if any(command in WRITE_COMMANDS for _, command in commands_in(data)):
        _pause_before_writing()
    sock.sendall(data)


def pausing_cache() -> PyMemcacheCache:
    """A PyMemcacheCache whose server clients pause before their first write once armed."""
    return hooked_memcache(_pausing_send, ALIAS)


def _holder(uid, conn, where, layout):
    """Take the lock (ttl 1 s), fire, stop where the parent can stop us; report the outcome."""
    cache = pausing_cache() if where == "release" else caches[ALIAS]
    store = storage(uid, cache, layout)
    try:
        with store.acquire_lock(ttl=1):
            TriggerManager(store).fire("tick", {"worker": "stale", "n": 0})
            if where == "release":
                PAUSE["conn"] = conn  # the writes of the release wait for the parent
            else:
                conn.send("in-block")
                conn.recv()
    except LockLost:
        conn.send("LockLost")
        return
    except BaseException as exc:
        conn.send(f"{type(exc).__name__}: {exc}")
        raise
    conn.send("committed")


def _firer(uid, worker, count, path, finish_first, layout=None):
    """Fire ``count`` ticks, writing down each one the manager acknowledged."""
    manager = TriggerManager(storage(uid, layout=layout))
    with open(path, "a") as out:
        if finish_first:
            manager.update_instance_status("t_every#0", TaskInstance.STATUS_FINISHED)
            out.write("finished t_every#0\n")
            out.flush()
        for n in range(count):
            manager.fire("tick", {"worker": worker, "n": n})
            out.write(f"{worker} {n}\n")
            out.flush()


def _acknowledged(path):
    with open(path) as lines:
        return [line.split() for line in lines if line.strip()]


def _wait_for(condition, what):
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def _session_keys(uid):
    store = storage(uid)
    version = tasks_version(ALIAS, store)  # split only
    return [*keys_of(store), *([store.tasks_key(version)] if version else [])]


@pytest.mark.parametrize("layout", ["split", "single"])
@pytest.mark.parametrize("where", ["block", "release"])
def test_a_holder_stopped_past_its_ttl_gets_lock_lost_and_no_fire_is_lost(
    memcached, uid, tmp_path, test_runners, where, layout
):
    manager = TriggerManager(storage(uid, layout=layout))
    manager.update_configuration(CONFIG)
    manager.fire("tick", {"worker": "setup", "n": 0})  # t_every#0, in the head's delta
    lock_key = storage(uid).keys.lock

    ours, theirs = FORK.Pipe()
    holder = start_process(_holder, uid, theirs, where, layout)
    try:
        assert ours.poll(BOUND), "the holder never reached its pause"
        assert ours.recv() == ("paused" if where == "release" else "in-block")
        os.kill(holder.pid, signal.SIGSTOP)
        _wait_for(lambda: caches[ALIAS].get(lock_key) is None, "the stopped holder's lock to expire")

        path = tmp_path / "acknowledged.txt"
        assert join_all([start_process(_firer, uid, "other", FIRES, path, True, layout)], BOUND) == [0]
        acknowledged = _acknowledged(path)
        assert len(acknowledged) == FIRES + 1
        keys = _session_keys(uid)
        left = raw(ALIAS, keys)

        os.kill(holder.pid, signal.SIGCONT)
        ours.send("go")
        assert ours.poll(BOUND), "the holder never finished"
        outcome = ours.recv()
    finally:
        os.kill(holder.pid, signal.SIGCONT)
        join_all([holder], BOUND)

    assert outcome == "LockLost"
    # The session is exactly as the other process left it...
    assert raw(ALIAS, keys) == left
    # ...with every acknowledged fire, and the instance it finished still finished.
    lost = {("other", n) for n in range(FIRES)} - set(ticks_of(uid))
    assert not lost, f"acknowledged fires lost: {sorted(lost)}"
    assert ("stale", 0) not in ticks_of(uid)
    assert storage(uid)["t_every#0"].status == TaskInstance.STATUS_FINISHED


# --------------------------------------------------------------------------- ttl


def _just_past_a_memcached_tick():
    """Return half a second after Memcached's clock ticked (it counts whole seconds)."""
    cache = caches[ALIAS]
    probe = f"tick-probe:{time.monotonic_ns()}"
    cache.set(probe, 1, timeout=1)
    _wait_for(lambda: cache.get(probe) is None, "Memcached's clock to tick")
    time.sleep(0.5)


@pytest.mark.parametrize("ttl", [1, 2])
def test_a_lock_is_still_held_just_before_its_ttl(memcached, uid, ttl):
    # Taken half-way through one of Memcached's seconds, the moment where an
    # exptime of ttl seconds would drop the lock half a second early.
    _just_past_a_memcached_tick()
    lock = CacheLock(f"lock:{uid}", ALIAS, ttl=ttl)
    lock.acquire(block=False)
    time.sleep(ttl - 0.1)
    assert lock_driver(caches[ALIAS]).owns(lock.key, lock.token)
    assert lock.release() is True


# --------------------------------------------------------------------------- concurrency


def _short_lock_firer(uid, worker, path, enough):
    """Fire under a one-second lock until ``enough`` exists; a fire that raised
    LockLost is not acknowledged."""
    store = storage(uid)
    manager = TriggerManager(store)
    with open(path, "a") as out:
        for n in range(5000):
            if enough.exists():
                break
            try:
                with store.acquire_lock(ttl=1):
                    manager.fire("tick", {"worker": worker, "n": n})
            except LockLost:
                out.write(f"lost {n}\n")
            else:
                out.write(f"{worker} {n}\n")
            out.flush()


def _holder_pid(lock_key, pids):
    """The pid of the firer holding the lock now (its token starts with it), if any."""
    token = caches[ALIAS].get(lock_key)
    pid = int(token.split(":")[0]) if isinstance(token, str) else None
    return pid if pid in pids else None


#: how many times a holder is stopped past its ttl in the concurrency test
STOPS = 4


def test_processes_firing_together_lose_nothing_when_holders_stop(
    memcached, uid, tmp_path, test_runners
):
    TriggerManager(storage(uid)).update_configuration(CONFIG)
    lock_key = storage(uid).keys.lock
    workers = [f"w{i}" for i in range(4)]
    paths = {worker: tmp_path / f"{worker}.txt" for worker in workers}
    enough = tmp_path / "enough"
    processes = [start_process(_short_lock_firer, uid, w, paths[w], enough) for w in workers]
    pids = {process.pid for process in processes}
    try:
        # Stop whoever holds the lock, past its ttl, while the others go on.
        for _ in range(STOPS):
            deadline = time.monotonic() + BOUND
            while (pid := _holder_pid(lock_key, pids)) is None:
                assert time.monotonic() < deadline, "no firer ever held the lock"
                time.sleep(0.01)
            os.kill(pid, signal.SIGSTOP)
            time.sleep(2.5)
            os.kill(pid, signal.SIGCONT)
    finally:
        enough.touch()
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert join_all(processes, BOUND) == [0] * len(workers)
    lines = [line for w in workers for line in _acknowledged(paths[w])]
    acknowledged = {(w, int(n)) for w, n in lines if w != "lost"}
    stored = set(ticks_of(uid))
    lost = sorted(acknowledged - stored)
    assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged fires lost: {lost[:10]}..."
    assert stored == acknowledged  # and no fire that raised LockLost is there
    assert len(lines) > len(acknowledged), "no stopped holder lost its lock: the test proved nothing"
