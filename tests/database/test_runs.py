"""Tasks run on the database backend (workers rebuild the storage from the payload),
and what a fire or a task run costs in SQL statements, whatever the session's size."""

import functools

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from triggers import TriggerManager
from triggers.runners import ThreadingTaskRunner
from triggers.storages.database import DatabaseStorageBackend

CHAIN = {
    "first": {"after": ["go"], "run": "tests.add"},
    "second": {"after": ["first"], "run": "tests.add"},
    "third": {"after": ["second", "go"], "run": "tests.add"},
}


@pytest.mark.parametrize("runner", ["sync", "threading"])
def test_a_cascade_runs_to_the_end(database, uid, runner, settings):
    settings.TRIGGERS_DEFAULT_RUNNER = runner
    manager = TriggerManager(DatabaseStorageBackend(uid, using=database))
    manager.update_configuration(CHAIN)
    manager.fire("go", {"a": 1, "b": 2})
    ThreadingTaskRunner.join_all(timeout=60)
    store = DatabaseStorageBackend(uid, using=database)
    assert {i.name: i.status for i in store} == {
        "first#0": "finished",
        "second#0": "finished",
        "third#0": "finished",
    }
    assert store["first#0"].metadata["result"] == {"sum": 3}
    assert store.latest_kwargs["second"] == {"sum": 3}


def test_the_payload_names_the_database(database, uid):
    store = DatabaseStorageBackend(uid, using=database)
    assert store.rebuild_kwargs() == {"using": database}
    assert DatabaseStorageBackend(uid).rebuild_kwargs() == {}


# --------------------------------------------------------------------------- statements


def statements(alias, call):
    """SQL statements ``call`` sends, leaving out transaction control."""
    with CaptureQueriesContext(connections[alias]) as captured:
        call()
    control = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")
    return [q["sql"] for q in captured.captured_queries if not q["sql"].upper().startswith(control)]


def grown(alias, uid, instances):
    """A session with ``instances`` waiting instances of one task, and a task that listens to ``go``."""
    manager = TriggerManager(DatabaseStorageBackend(uid, using=alias))
    manager.update_configuration(
        {
            "many": {"after": ["never"], "andEvery": "tick", "run": "tests.add"},
            "waits": {"after": ["go", "never"], "run": "tests.add"},
        }
    )
    for n in range(instances):
        manager.fire("tick", {"n": n})
    manager.fire("go", {"n": -1})  # "waits#0" exists and waits
    return manager


def test_a_fire_costs_the_same_whatever_the_sessions_size(database, uid):
    counts = {}
    for size in (2, 200):
        manager = grown(database, f"{uid}-{size}", size)
        manager.storage.invalidate_cache()
        nobody = statements(database, functools.partial(manager.fire, "nobody_listens", {}))
        absorbed = statements(database, functools.partial(manager.fire, "go", {"again": 1}))
        counts[size] = (len(nobody), len(absorbed))
    assert counts[2] == counts[200], counts
    nobody, absorbed = counts[2]
    # the session row (read and locked for the transaction), its metadata written
    assert nobody == 2, counts
    # and the unstarted instances of the listening task read: with the session
    # row (this process knows the session's configuration), or on SQLite apart
    assert absorbed == (3 if connections[database].vendor == "sqlite" else 2), counts


def test_a_fire_from_a_new_process_reads_the_listeners_apart(database, uid):
    """Without a guess at the configuration, the listening instances take a read of their own."""
    from triggers.process_state import reset_process_state

    manager = grown(database, uid, 2)
    reset_process_state(["database configuration sets"])
    fresh = TriggerManager(DatabaseStorageBackend(uid, using=database))
    first = statements(database, functools.partial(fresh.fire, "go", {"again": 1}))
    # the session row, its configuration set (read once a process), the
    # listening task's unstarted instances, the metadata written
    assert len(first) == 4, first
    # ... and the next fire of that process reads them with the session again
    again = statements(database, functools.partial(fresh.fire, "go", {"again": 2}))
    assert len(again) == (3 if connections[database].vendor == "sqlite" else 2), again
    assert manager.storage.uid == fresh.storage.uid


def test_a_task_run_costs_the_same_whatever_the_sessions_size(database, uid, settings):
    settings.TRIGGERS_DEFAULT_RUNNER = "sync"
    counts = {}
    for size in (2, 200):
        manager = grown(database, f"{uid}-{size}", size)
        manager.update_configuration(
            {
                "step": {"after": ["start"], "run": "tests.add"},
                "next": {"after": ["step", "never"], "run": "tests.add"},
            }
        )
        manager.fire("step", {})  # "next#0" exists, and waits for "never"
        manager.storage.invalidate_cache()
        counts[size] = len(statements(database, functools.partial(manager.fire, "start", {"n": 1})))
    assert counts[2] == counts[200], counts
    # The fire that readies "step#0": the session row, its metadata, the new
    # instance (3). The run: marked running (the session row read with the
    # instance, its upsert: 2), then finished with its cascade (the session
    # row read with the instance and the waiting instances of "next", the
    # metadata, the upsert: 3). On SQLite the session row is read by the
    # write that takes the database's lock, and the instances apart: one
    # more statement in each of the run's transactions. On PostgreSQL the
    # marking moves the session row's revision too (a transaction waiting
    # for it learns its read is older): one more.
    run = {"sqlite": 7, "postgresql": 6}.get(connections[database].vendor, 5)
    assert counts[2] == 3 + run, counts
