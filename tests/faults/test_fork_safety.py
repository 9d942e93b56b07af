"""Processes forked after their parent used the cache: each gets connections of its own.

The parent fires into a session (its client, pool or database connection
is then open), forks many children at once, and keeps using the cache
while they fire into a shared session and sessions of their own, under the
lock. Nothing may hang (every process is bounded and killed if late), no
process may read another's replies, and no fire may be lost.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import tempfile
import threading
import time
import traceback
from collections.abc import Callable

import pytest
from django.core.cache import caches
from django.db import connections

from tests.conftest import prepare_cache
from triggers import CacheStorageBackend, TriggerManager

CONFIG = {"t_tick": {"after": ["never"], "andEvery": "tick", "run": "noop"}}
CHILDREN = 8
FIRES = 5
#: how long the children may take together before they count as hung (seconds)
HUNG = 25.0
FORKED_CACHES = ["memcached", "redis", "dredis", "db_pg", "db_sqlite"]


def fire(alias: str, uid: str, times: int, first: int = 0) -> None:
    manager = TriggerManager(CacheStorageBackend(uid, cache=alias, timeout=600))
    for i in range(first, first + times):
        manager.fire("tick", {"i": i})


def count(alias: str, uid: str) -> int:
    """The instances of the session, each record read."""
    storage = CacheStorageBackend(uid, cache=alias, timeout=600)
    return len([storage[name] for name in list(storage.instances)])


def child_work(alias: str, shared: str, own: str) -> str | None:
    """What each child does; None, or what went wrong."""
    try:
        fire(alias, shared, FIRES)
        fire(alias, own, FIRES)
        if count(alias, own) != FIRES:
            return f"own session has {count(alias, own)} instances, not {FIRES}"
        # A value only this child wrote, read back through the cache itself
        # (Django's database cache drops a set() silently while SQLite is
        # busy: write until it holds).
        for _ in range(50):
            caches[alias].set(f"{own}:pid", os.getpid(), 60)
            found = caches[alias].get(f"{own}:pid")
            if found is not None:
                break
            time.sleep(0.02)
        if found != os.getpid():
            return f"read {found!r} for its own key, not its pid"
        return None
    except BaseException:  # noqa: BLE001 - reported to the parent
        return traceback.format_exc()


def parent_work(alias: str, uid: str, rounds: int) -> None:
    """The parent keeps using the same cache objects while its children run
    (in a thread, so that a parent reading its children's replies cannot hang the test)."""
    failure: list[BaseException] = []

    def work() -> None:
        try:
            for i in range(rounds):
                fire(alias, uid, 1, first=100 + i)
                assert count(alias, uid) == 2 + i, "the parent read a wrong session"
        except BaseException as exc:  # noqa: BLE001 - raised in the test below
            failure.append(exc)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(HUNG)
    assert not worker.is_alive(), "the parent hung while its children ran"
    if failure:
        raise failure[0]


def _mp_child(alias: str, shared: str, own: str, queue: multiprocessing.Queue) -> None:
    queue.put((own, child_work(alias, shared, own)))


def run_mp_children(alias: str, shared: str, uid: str) -> dict[str, str | None]:
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue = context.Queue()
    owns = [f"{uid}-child-{n}" for n in range(CHILDREN)]
    children = [context.Process(target=_mp_child, args=(alias, shared, own, queue)) for own in owns]
    for child in children:
        child.start()
    results: dict[str, str | None] = {}
    try:
        parent_work(alias, f"{uid}-parent", 4)
        deadline = time.monotonic() + HUNG
        while len(results) < CHILDREN and time.monotonic() < deadline:
            try:
                own, problem = queue.get(timeout=max(0.1, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - the queue's Empty: time is up
                break
            results[own] = problem
    finally:
        for child in children:
            child.join(max(0.1, 2.0))
            if child.is_alive():
                child.kill()
                child.join(5)
    for own in owns:
        results.setdefault(own, "did not finish: hung")
    return results


def report_of(own: str) -> str:
    return os.path.join(tempfile.gettempdir(), f"{own}.problem")


def _reported(own: str) -> str:
    try:
        with open(report_of(own)) as report:
            return report.read() or "failed"
    except OSError:
        return "failed, saying nothing"
    finally:
        with contextlib.suppress(OSError):
            os.remove(report_of(own))


def run_os_fork_children(alias: str, shared: str, uid: str) -> dict[str, str | None]:
    pids: dict[int, str] = {}
    for n in range(CHILDREN):
        own = f"{uid}-child-{n}"
        pid = os.fork()
        if pid == 0:  # the child: report by exit status only, never return into pytest
            status = 1
            try:
                problem = child_work(alias, shared, own)
                if problem is not None:
                    with open(report_of(own), "w") as report:
                        report.write(problem)
                status = 0 if problem is None else 1
            finally:
                os._exit(status)
        pids[pid] = own
    results: dict[str, str | None] = {}
    try:
        parent_work(alias, f"{uid}-parent", 4)
        deadline = time.monotonic() + HUNG
        while pids and time.monotonic() < deadline:
            for pid in list(pids):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    own = pids.pop(pid)
                    failed = os.waitstatus_to_exitcode(status) != 0
                    results[own] = _reported(own) if failed else None
            time.sleep(0.05)
    finally:
        for pid, own in pids.items():
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            results[own] = "did not finish: hung"
    return results


def used_by_the_parent(request: pytest.FixtureRequest, alias: str, uid: str) -> str:
    """The shared session, after the parent fired into it and into its own."""
    prepare_cache(request, alias)
    manager = TriggerManager(CacheStorageBackend(uid, cache=alias, timeout=600))
    manager.update_configuration(CONFIG)
    manager.fire("tick", {"i": -1})
    parent = TriggerManager(CacheStorageBackend(f"{uid}-parent", cache=alias, timeout=600))
    parent.update_configuration(CONFIG)
    parent.fire("tick", {"i": -1})
    for n in range(CHILDREN):
        TriggerManager(CacheStorageBackend(f"{uid}-child-{n}", cache=alias, timeout=600)).update_configuration(
            CONFIG
        )
    assert count(alias, uid) == 1
    return uid


@pytest.mark.parametrize("alias", FORKED_CACHES)
@pytest.mark.parametrize("how", ["multiprocessing", "os.fork"])
def test_forked_children_fire_on_connections_of_their_own(
    request: pytest.FixtureRequest, alias: str, how: str, uid: str
) -> None:
    shared = used_by_the_parent(request, alias, uid)
    if alias.startswith("db_"):
        assert connections["pg" if alias == "db_pg" else "default"].connection is not None
    run: Callable[[str, str, str], dict[str, str | None]] = (
        run_mp_children if how == "multiprocessing" else run_os_fork_children
    )
    results = run(alias, shared, uid)
    problems = {own: problem for own, problem in results.items() if problem}
    assert not problems, problems
    # Nothing lost: every child's fires and the parent's first one.
    assert count(alias, shared) == 1 + CHILDREN * FIRES
    # The parent's connection still works, and still answers the parent.
    parent_work_after = count(alias, f"{uid}-parent")
    assert parent_work_after == 1 + 4
