"""Reading a whole session (no lock): one consistent state, and inside the
caller's own transaction too."""

import threading

import pytest
from django.db import connections, transaction

from tests.database.test_waiting_reads import manager, started
from triggers.models import Session
from triggers.storages.database import DatabaseStorageBackend, backend


def test_a_whole_read_inside_the_callers_transaction(database, uid, test_runners):
    """A view under ATOMIC_REQUESTS that queried first can still read a session."""
    started(database, uid)
    with transaction.atomic(using=database):
        assert Session.objects.using(database).filter(uid=uid).count() == 1
        names = [i.name for i in DatabaseStorageBackend(uid, using=database)]
        # ... and the caller's transaction goes on.
        assert Session.objects.using(database).filter(uid=uid).count() == 1
    assert names == ["imp#0"]


def test_a_save_between_a_whole_reads_statements_is_not_half_seen(
    database, uid, test_runners, monkeypatch
):
    """A fire committed after the read took the session row, before it took
    the instance rows: the read shows the session as it was, wholly."""
    if connections[database].vendor == "sqlite":
        pytest.skip("SQLite: no writer commits while a read's transaction is open")
    started(database, uid)
    read_rows = backend.instance_rows

    def with_a_fire_between(*args, **kwargs):
        def fire():
            try:
                manager(database, uid).fire("page", {"n": 1})  # creates score#0
            finally:
                connections.close_all()

        thread = threading.Thread(target=fire)
        thread.start()
        thread.join(30)
        assert not thread.is_alive()
        return read_rows(*args, **kwargs)

    monkeypatch.setattr(backend, "instance_rows", with_a_fire_between)
    store = DatabaseStorageBackend(uid, using=database)
    names = [i.name for i in store]
    monkeypatch.setattr(backend, "instance_rows", read_rows)
    assert names == ["imp#0"]
    assert "page" not in store.latest_kwargs
    # The fire did land: a new read sees it whole.
    fresh = DatabaseStorageBackend(uid, using=database)
    assert sorted(i.name for i in fresh) == ["imp#0", "score#0"]
    assert fresh.latest_kwargs["page"] == {"n": 1}


def test_operations_inside_the_callers_transaction(database, uid, test_runners):
    """A view under ATOMIC_REQUESTS that queried first fires, changes and reads
    a session; what it did is there once its transaction commits."""
    first = started(database, uid)
    with transaction.atomic(using=database):
        assert Session.objects.using(database).filter(uid=uid).count() == 1
        first.fire("page", {"n": 1})
        first.update_instance_status("imp#0", "running")
        manager(database, uid).fire("imp", {})
        first.storage.invalidate_cache()
        seen = {i.name: i.status for i in first.storage}
    assert seen == {"imp#0": "running", "score#0": "scheduled"}
    fresh = DatabaseStorageBackend(uid, using=database)
    assert {i.name: i.status for i in fresh} == seen
