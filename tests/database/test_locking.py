"""The database backend's lock and transactions, on each database: fencing, waits,
crashes, and no transaction left open while a holder runs the caller's code."""

import multiprocessing
import os
import signal
import threading
import time

import pytest
from django.db import connections

from triggers import TriggerManager
from triggers.errors import LockAcquisitionFailed, LockLost
from triggers.models import Instance, Session
from triggers.storages.database import DatabaseStorageBackend, writing

CONFIG = {
    "a": {"after": ["go"], "run": "tests.add", "using": "tests-recording"},
    "b": {"after": ["a", "never"], "run": "tests.add"},
}


def storage(alias, uid):
    return DatabaseStorageBackend(uid, using=alias)


def configured(alias, uid):
    manager = TriggerManager(storage(alias, uid))
    manager.update_configuration(CONFIG)
    return manager


def latest(alias, uid):
    return dict(storage(alias, uid).latest_kwargs)


def test_no_transaction_is_open_while_the_holder_works(database, uid):
    configured(database, uid)
    store = storage(database, uid)
    connection = connections[database]
    with store.acquire_lock():
        assert store.tasks  # read under the lock
        assert not connection.in_atomic_block
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT state FROM pg_stat_activity WHERE pid = pg_backend_pid()")
                assert cursor.fetchone()[0] == "active"  # not "idle in transaction"
            assert connection.connection.info.transaction_status == 0  # IDLE
        store.latest_kwargs["held"] = {"by": "me"}
        store.save()
        assert not connection.in_atomic_block
    assert latest(database, uid)["held"] == {"by": "me"}


def test_a_holder_past_its_ttl_writes_nothing(database, uid):
    configured(database, uid)
    stale = storage(database, uid)
    with pytest.raises(LockLost):
        with stale.acquire_lock(ttl=0.3):
            stale.latest_kwargs["stale"] = {"n": 1}
            time.sleep(0.6)  # paused past the ttl: another holder may have come and gone
            TriggerManager(storage(database, uid)).fire("newer", {"n": 2})
            stale.save()
    kwargs = latest(database, uid)
    assert kwargs["newer"] == {"n": 2}
    assert "stale" not in kwargs


def test_a_holder_past_its_ttl_is_fenced_even_when_no_one_came(database, uid):
    configured(database, uid)
    stale = storage(database, uid)
    with pytest.raises(LockLost):
        with stale.acquire_lock(ttl=0.2):
            stale.latest_kwargs["stale"] = {"n": 1}
            time.sleep(0.4)
            stale.save()
    assert "stale" not in latest(database, uid)


def test_waits_are_bounded_by_block(database, uid):
    configured(database, uid)
    holder = storage(database, uid)
    with holder.acquire_lock():
        started = threading.Event()
        outcome = {}

        def wait_for_it():
            started.set()
            try:
                with storage(database, uid).acquire_lock(block=0.2):
                    outcome["got"] = True
            except LockAcquisitionFailed as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=wait_for_it)
        thread.start()
        thread.join(30)
        assert started.is_set() and not thread.is_alive()
    assert isinstance(outcome.get("error"), LockAcquisitionFailed)
    with pytest.raises(LockAcquisitionFailed):
        with holder.acquire_lock():
            with storage(database, uid).acquire_lock(block=False):
                pass


def test_a_fire_waits_for_a_holder_and_is_kept(database, uid):
    configured(database, uid)
    holder = storage(database, uid)
    fired = threading.Event()

    def fire():
        TriggerManager(storage(database, uid)).fire("while_held", {"n": 1})
        fired.set()

    with holder.acquire_lock():
        holder.latest_kwargs["holder"] = {"n": 0}
        thread = threading.Thread(target=fire)
        thread.start()
        assert not fired.wait(0.3)  # the holder is at work: the fire waits
        holder.save()
    thread.join(30)
    assert fired.is_set()
    kwargs = latest(database, uid)
    assert kwargs["holder"] == {"n": 0} and kwargs["while_held"] == {"n": 1}


def _die_inside_a_commit(alias, uid):
    """In a forked child: fire, and be killed between the session's write and the instances'."""

    def kill_self(self, pk, changed):
        os.kill(os.getpid(), signal.SIGKILL)

    writing.SessionWrite._upsert = kill_self  # a fault put into this child only
    TriggerManager(DatabaseStorageBackend(uid, using=alias)).fire("go", {"n": 1})


def _die_holding_the_lock(alias, uid):
    store = DatabaseStorageBackend(uid, using=alias)
    with store.acquire_lock(ttl=1):
        store.latest_kwargs["saved"] = {"n": 1}
        store.save()
        store.latest_kwargs["never_saved"] = {"n": 2}
        os.kill(os.getpid(), signal.SIGKILL)


def _run_child(target, *args):
    process = multiprocessing.get_context("fork").Process(target=target, args=args)
    process.start()
    process.join(60)
    assert process.exitcode == -signal.SIGKILL


def test_a_process_killed_inside_a_commit_leaves_the_last_committed_state(database, uid, test_runners):
    configured(database, uid)
    before = latest(database, uid)
    _run_child(_die_inside_a_commit, database, uid)
    store = storage(database, uid)
    assert dict(store.latest_kwargs) == before  # the fire's transaction never committed
    assert not len(store.instances)
    assert not Instance.objects.using(database).filter(session__uid=uid).exists()
    ready = TriggerManager(storage(database, uid)).fire("go", {"n": 2})
    assert [i.name for i in ready] == ["a#0"]


def test_a_process_killed_holding_the_lock_leaves_what_it_saved(database, uid):
    configured(database, uid)
    _run_child(_die_holding_the_lock, database, uid)
    # Its lock lapses with its ttl; the next fire then goes through.
    TriggerManager(storage(database, uid)).fire("after", {"n": 3})
    kwargs = latest(database, uid)
    assert kwargs["saved"] == {"n": 1} and kwargs["after"] == {"n": 3}
    assert "never_saved" not in kwargs
    assert Session.objects.using(database).get(uid=uid).lock_token == ""


def test_a_session_row_deleted_by_hand_under_a_holder_is_not_written_back(database, uid):
    """An operator deletes the session's row while a holder works: the holder's save is
    refused (its lock went with the row), and the uid starts over empty."""
    configured(database, uid)
    holder = storage(database, uid)
    with pytest.raises(LockLost):
        with holder.acquire_lock():
            holder.latest_kwargs["late"] = {"n": 1}
            Session.objects.using(database).filter(uid=uid).delete()
            holder.save()
    assert not Session.objects.using(database).filter(uid=uid).exists()
    assert storage(database, uid).stored_nothing()
