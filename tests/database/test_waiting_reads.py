"""A transaction that waited for the session's row reads what the one it waited
for committed.

A fire or status change reads the session's row, locked, and the instance rows
it needs. When another transaction holds the row, the read waits; once that
one commits, the instance rows read must be the committed ones, not those of
the moment the waiting read began (on PostgreSQL a locking read that waited
returns the newest version of the locked row only). These tests hold a
transaction open on the session, start a second operation that waits for it,
check on the server that it waits, then commit the first.
"""

import threading
import time

import pytest
from django.db import connections, transaction

from tests.runner_support import RecordingRunner
from triggers import TriggerManager
from triggers.storages.database import DatabaseStorageBackend

CONFIG = {
    "imp": {"after": ["started"], "run": "tests.add", "using": "tests-recording"},
    "score": {
        "after": ["imp"],
        "andEvery": "page",
        "run": "tests.add",
        "using": "tests-recording",
    },
}

#: the longest a test waits for the second operation to reach the lock (s)
REACH_DEADLINE = 30.0


@pytest.fixture
def locking_database(database, test_runners):
    if database == "default":
        pytest.skip("SQLite lets one writer in at a time: a second one never reads before it waits")
    return database


def manager(alias, uid):
    return TriggerManager(DatabaseStorageBackend(uid, using=alias))


def waiting_lock_requests(alias):
    """Lock requests now waiting on the server (read live, outside any snapshot);
    on MariaDB, locking reads of other connections in progress (one that reads
    the row by its unique key waits while the statement is planned)."""
    with connections[alias].cursor() as cursor:
        if connections[alias].vendor == "postgresql":
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        else:
            cursor.execute(
                "SELECT count(*) FROM information_schema.processlist"
                " WHERE id <> CONNECTION_ID() AND command = 'Query' AND info LIKE '%%FOR UPDATE%%'"
            )
        return cursor.fetchone()[0]


def while_held(alias, uid, hold, second):
    """Run ``hold`` in a transaction left open until ``second`` (in a thread of
    its own) waits on the server; then commit, and wait for ``second`` to end."""
    errors = []

    def run_second():
        try:
            second()
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run_second)
    with transaction.atomic(using=alias):
        hold()
        thread.start()
        deadline = time.monotonic() + REACH_DEADLINE
        while not waiting_lock_requests(alias):
            assert thread.is_alive(), "the second operation ended without waiting"
            assert time.monotonic() < deadline, "the second operation never waited"
            time.sleep(0.01)
    thread.join(REACH_DEADLINE)
    assert not thread.is_alive()
    if errors:
        raise errors[0]


def statuses(alias, uid):
    return {i.name: i.status for i in DatabaseStorageBackend(uid, using=alias)}


def started(alias, uid):
    """A manager of a new session where "started" has fired ("imp#0" is scheduled)."""
    first = manager(alias, uid)
    first.update_configuration(CONFIG)
    first.fire("started", {})
    return first


@pytest.mark.parametrize(
    ("held", "waiting"),
    [
        ("imp", "page"),  # held: score#0 created, waiting for "page"; "page" must go to it
        ("page", "imp"),  # held: score#0 created, waiting for "imp"; "imp" must ready it
    ],
)
def test_a_fire_that_waited_sees_the_instance_the_other_fire_created(
    locking_database, uid, held, waiting
):
    alias = locking_database
    first = started(alias, uid)
    while_held(
        alias,
        uid,
        lambda: first.fire(held, {"n": 1}),
        lambda: manager(alias, uid).fire(waiting, {"n": 2}),
    )
    seen = statuses(alias, uid)
    assert seen["score#0"] == "scheduled"
    assert set(seen) == {"imp#0", "score#0"}  # no second instance for the one "page"
    assert "score#0" in RecordingRunner.payloads(uid)


def test_a_fire_that_waited_sees_a_status_change_that_wrote_only_the_instance(
    locking_database, uid
):
    alias = locking_database
    first = started(alias, uid)
    first.fire("page", {"n": 1})  # score#0 waits for "imp"
    # Held: score#0 skipped (its row alone changes); waiting: "imp".
    while_held(
        alias,
        uid,
        lambda: first.update_instance_status("score#0", "skipped"),
        lambda: manager(alias, uid).fire("imp", {}),
    )
    assert statuses(alias, uid)["score#0"] == "skipped"
    assert "score#0" not in RecordingRunner.payloads(uid)  # a skipped instance is not run


def test_racing_fires_leave_no_instance_behind(database, uid, test_runners):
    """Four connections fire "page" while a fifth fires "imp" in their midst:
    every page got an instance of its own, and every one of them was readied."""
    alias = database
    started(alias, uid)
    pages_each, firers = 15, 4
    go = threading.Barrier(firers + 1)
    errors = []

    def fire_pages(n):
        try:
            go.wait(REACH_DEADLINE)
            for page in range(pages_each):
                manager(alias, uid).fire("page", {"firer": n, "page": page})
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=fire_pages, args=(n,)) for n in range(firers)]
    for thread in threads:
        thread.start()
    go.wait(REACH_DEADLINE)
    deadline = time.monotonic() + REACH_DEADLINE
    while len(statuses(alias, uid)) < 1 + firers * pages_each // 3:  # a third of the way
        assert time.monotonic() < deadline and not errors, errors
        time.sleep(0.005)
    manager(alias, uid).fire("imp", {})
    for thread in threads:
        thread.join(REACH_DEADLINE * 4)
    assert not errors, errors
    scores = {
        name: status for name, status in statuses(alias, uid).items() if name.startswith("score#")
    }
    assert len(scores) == firers * pages_each
    assert set(scores.values()) == {"scheduled"}, scores
    assert set(RecordingRunner.payloads(uid)) == set(scores) | {"imp#0"}
