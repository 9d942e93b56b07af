"""A process killed between any two writes of one save leaves the old state or the new one.

Each case forks a child that makes one save and kills itself (SIGKILL,
nothing gets cleaned up) just before its (N+1)-th write reaches the cache,
for N = 0, 1, 2, ... until a child completes the save. After every kill the
parent reads the session through the plain cache and finds exactly the
state before the save or exactly the state after it; then it carries on
with the session (retrying the save where it was lost) and checks that too.

Writes are counted where they leave the process, so the count does not
depend on how the storage and lock layers group them: Memcached at its
client's socket (every key stored: set, add, cas, append, even several
sent in one request), the database cache at the SQL it executes
(every INSERT, UPDATE or DELETE). Redis is not here: there a save and the
lock release are one server-side script, with nothing in between to kill.
"""

from __future__ import annotations

import os
import signal
import time
import traceback
import uuid

import pytest
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from django.db import connections, router

from triggers import CacheStorageBackend

from .memcached_support import WRITE_COMMANDS, commands_in, hooked_memcache
from .storage_support import CONFIG, populate

#: the child's write counter: kill before write number ``limit`` (0-based)
KILL = {"limit": None, "count": 0}


def _before_write() -> None:
    if KILL["limit"] is None:
        return
    if KILL["count"] >= KILL["limit"]:
        os.kill(os.getpid(), signal.SIGKILL)
    KILL["count"] += 1


def _killing_send(sock, data):
    """Send a request command by command up to each write, so a kill can fall
    between any two writes, even two the driver sends in one request."""
    sent = 0
    for at, command in commands_in(data):
        if command in WRITE_COMMANDS:
            if at > sent:
                sock.sendall(data[sent:at])  # what comes before it reaches the server
                sent = at
            _before_write()
    sock.sendall(data[sent:])


def killing_memcache():
    return hooked_memcache(_killing_send)


class killing_database:
    """Counts the statements that change the cache table, on its connection."""

    def __init__(self, alias):
        self.cache = DatabaseCache(settings.CACHES[alias]["LOCATION"], {})
        self.connection = connections[router.db_for_write(self.cache.cache_model_class)]

    def __call__(self, execute, sql, params, many, context):
        if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            _before_write()
        return execute(sql, params, many, context)


# --------------------------------------------------------------------------- the session


def setup_session(cache, uid, layout):
    """A session with history: records in their own keys and some still in the head."""
    store = populate(CacheStorageBackend(uid, cache=cache, layout=layout))
    with store.acquire_lock():
        store["t_score#1"].metadata["retries"] = 1
        store.create_instance("t_report", kwargs={"approve": {"by": "ops"}})
        store.save()


def mutate(store):
    """One save that changes a bit of everything."""
    store["t_import#0"].status = "running"
    store["t_import#0"].kwargs["upload"] = {"file": "a.csv"}
    store["t_score#1"].metadata["retries"] = 2
    store["t_report#0"].abandon_state.add("cancel")
    store.create_instance("t_score", kwargs={"pageSaved": {"page": 3}})
    store.clone_instance("t_score#1")
    store.update_configuration(
        {
            "t_report": {**CONFIG["t_report"], "run": "report_v2"},
            "t_new": {"after": ["later"], "run": "new"},
        }
    )
    store.latest_kwargs["pageSaved"] = {"page": 3}
    store.metadata["saves"] = store.metadata.get("saves", 0) + 1


def save_once(cache, uid, layout, arm=lambda: None):
    store = CacheStorageBackend(uid, cache=cache, layout=layout)
    with store.acquire_lock(ttl=60):
        mutate(store)
        store.save()
        arm()  # the writes happen from here on, as the lock is let go


def read(alias, uid):
    return CacheStorageBackend(uid, cache=alias).debug_repr()


# --------------------------------------------------------------------------- running a child


def run_child(alias, uid, layout, limit, report_path):
    """Fork; the child saves and dies before write ``limit``. Returns 'killed' or 'completed'."""
    connections.close_all()  # the child opens its own
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            if alias == "memcached":
                cache = killing_memcache()
                save_once(cache, uid, layout, arm=lambda: KILL.update(limit=limit, count=0))
            else:
                killer = killing_database(alias)
                with killer.connection.execute_wrapper(killer):
                    save_once(killer.cache, uid, layout, arm=lambda: KILL.update(limit=limit, count=0))
        except BaseException:
            with open(report_path, "w") as report:
                report.write(traceback.format_exc())
            code = 3
        finally:
            os._exit(code)
    return outcome_of_child(pid, f"the child saving with a kill at write {limit}", report_path)


def outcome_of_child(pid, what, report_path):
    """Wait (a minute at most) for a child that kills itself: 'killed' or 'completed'."""
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"{what} hung")
        time.sleep(0.01)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return "killed"
    if os.WEXITSTATUS(status) != 0:
        with open(report_path) as report:
            pytest.fail(f"{what} failed before its kill:\n{report.read()}")
    return "completed"


SCENARIOS = ["split", "single", "single-to-split", "split-to-single"]


def layouts_of(scenario):
    if "-to-" in scenario:
        before, after = scenario.split("-to-")
        return before, after
    return scenario, scenario


@pytest.fixture(params=["memcached", "db_sqlite", "db_pg"])
def crash_cache(request):
    from .conftest import prepare_cache

    alias = prepare_cache(request, request.param)
    if alias == "db_pg" and "pg" not in settings.DATABASES:
        pytest.skip("PostgreSQL is not configured")
    return alias


@pytest.mark.db_cache
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_killed_save_leaves_the_old_or_the_new_state(crash_cache, scenario, tmp_path):
    alias = crash_cache
    first, second = layouts_of(scenario)

    # The two states every crash must land on.
    reference = "crash-ref-" + uuid.uuid4().hex
    setup_session(alias, reference, first)
    before = read(alias, reference)
    save_once(alias, reference, second)
    after = read(alias, reference)
    assert before != after

    outcomes = []
    for limit in range(100):
        uid = f"crash-{limit}-" + uuid.uuid4().hex
        setup_session(alias, uid, first)
        assert read(alias, uid) == before
        outcome = run_child(alias, uid, second, limit, tmp_path / f"child-{limit}.txt")
        caches[alias].delete(CacheStorageBackend(uid, cache=alias).keys.lock)  # the dead child's lock
        state = read(alias, uid)
        assert state in (before, after), f"killed before write {limit}: a state that is neither"
        outcomes.append((outcome, "before" if state == before else "after"))
        if outcome == "completed":
            assert state == after
            break

        # The session carries on: a lost save can be made again, and the
        # next save after a completed one builds on it.
        if state == before:
            save_once(alias, uid, second)
            assert read(alias, uid) == after
        store = CacheStorageBackend(uid, cache=alias, layout=second)
        with store.acquire_lock():
            store.metadata["carried_on"] = limit
            store["t_score#0"].metadata["touched"] = True
            store.save()
        expected = {**after, "metas": {**after["metas"], "carried_on": limit}}
        state = read(alias, uid)
        assert state["metas"] == expected["metas"]
        assert state["instances"]["t_score#0"]["metadata"]["touched"] is True
        state["instances"]["t_score#0"]["metadata"].pop("touched")
        assert state["instances"] == after["instances"]
        assert state["tasks"] == after["tasks"]
    else:
        pytest.fail("the save never completed")

    # The test means something only if some kills fell inside the save.
    assert len(outcomes) >= 2, outcomes
    assert outcomes[0] == ("killed", "before")
    assert outcomes[-1] == ("completed", "after")
