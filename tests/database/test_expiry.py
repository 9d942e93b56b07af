"""Session lifetimes on the database backend: expiry, a uid that comes back, clearsessions."""

import datetime as dt

import pytest
from django.utils import timezone

from triggers import TriggerManager
from triggers.errors import InvalidArgument
from triggers.models import Configuration, Instance, Session
from triggers.storages.database import DatabaseStorageBackend
from triggers.storages.database.expiry import clear_expired_sessions
from triggers.storages.database.queries import find_sessions

CONFIG = {"a": {"after": ["go", "never"], "run": "tests.add"}}


def make_session(alias, uid, fire="go"):
    manager = TriggerManager(DatabaseStorageBackend(uid, using=alias))
    manager.update_configuration(CONFIG)
    manager.fire(fire, {"n": 1})
    return manager


def age(alias, uid, seconds):
    """Move the session's expiry ``seconds`` into the past (what time would do)."""
    row = Session.objects.using(alias).get(uid=uid)
    Session.objects.using(alias).filter(pk=row.pk).update(
        expires=timezone.now() - dt.timedelta(seconds=seconds)
    )


def test_the_setting_gives_each_session_its_expiry(database, uid, settings):
    settings.TRIGGERS_SESSION_TIMEOUT = 3600
    make_session(database, uid)
    row = Session.objects.using(database).get(uid=uid)
    assert row.lifetime == 3600
    left = (row.expires - timezone.now()).total_seconds()
    assert 3500 < left <= 3600
    assert DatabaseStorageBackend(uid, using=database).lifetime == 3600


def test_unset_or_none_never_expires(database, uid, settings):
    make_session(database, uid)
    assert Session.objects.using(database).get(uid=uid).expires is None
    settings.TRIGGERS_SESSION_TIMEOUT = None
    TriggerManager(DatabaseStorageBackend(uid, using=database)).fire("again", {})
    assert Session.objects.using(database).get(uid=uid).expires is None


def test_an_expired_session_reads_as_absent_and_its_uid_starts_over(database, uid, settings):
    settings.TRIGGERS_SESSION_TIMEOUT = 3600
    make_session(database, uid)
    age(database, uid, 1)
    store = DatabaseStorageBackend(uid, using=database)
    assert not store.tasks and not len(store.instances) and not store.latest_kwargs
    assert store.stored_nothing()
    assert uid not in set(find_sessions(database).values_list("uid", flat=True))
    # The uid comes back: a new session, none of the old instances in it.
    manager = TriggerManager(DatabaseStorageBackend(uid, using=database))
    manager.update_configuration({"b": {"after": ["x", "never"], "run": "tests.add"}})
    manager.fire("x", {"new": True})
    fresh = DatabaseStorageBackend(uid, using=database)
    assert sorted(fresh.tasks) == ["b"]
    assert list(fresh.instances) == ["b#0"]
    assert dict(fresh.latest_kwargs) == {"x": {"new": True}}
    assert list(Instance.objects.using(database).filter(session__uid=uid).values_list("name", flat=True)) == ["b#0"]
    assert Session.objects.using(database).get(uid=uid).expires > timezone.now()


def test_a_save_keeps_the_session_alive(database, uid, settings):
    settings.TRIGGERS_SESSION_TIMEOUT = 100
    make_session(database, uid)
    age(database, uid, -10)  # 10 s left: far more than 1% of its life gone
    TriggerManager(DatabaseStorageBackend(uid, using=database)).fire("later", {})
    left = (Session.objects.using(database).get(uid=uid).expires - timezone.now()).total_seconds()
    assert left > 90


def test_clearsessions_deletes_expired_sessions_in_batches(database, settings):
    settings.TRIGGERS_SESSION_TIMEOUT = 3600
    uids = [f"clear-{database}-{n}" for n in range(7)]
    for uid in uids:
        make_session(database, uid)
    for uid in uids[:5]:
        age(database, uid, 5)
    held = DatabaseStorageBackend(uids[4], using=database)
    with held.acquire_lock():  # a holder is starting it over: left alone
        assert clear_expired_sessions(database, batch_size=2) == 4
    left = set(Session.objects.using(database).values_list("uid", flat=True))
    assert left == set(uids[4:])
    assert not Instance.objects.using(database).filter(session__uid__in=uids[:4]).exists()
    assert clear_expired_sessions(database, batch_size=2) == 1
    assert Configuration.objects.using(database).exists()  # still used by the live ones


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_clearsessions_refuses_a_bad_batch_size(database, bad):
    with pytest.raises(InvalidArgument, match="batch_size"):
        clear_expired_sessions(database, batch_size=bad)


def test_a_change_of_databases_forgets_the_configuration_sets(database, uid, settings):
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    from triggers.process_state import reset_for_setting
    from triggers.storages.database.configurations import configuration_sets

    make_session(database, uid)
    digest = Session.objects.using(database).get(uid=uid).configuration_id

    def queries_to_load():
        with CaptureQueriesContext(connections[database]) as captured:
            assert configuration_sets.load(uid, database, digest)
        return len(captured.captured_queries)

    queries_to_load()
    assert queries_to_load() == 0  # kept by this process
    # What the setting_changed receiver does when DATABASES changes: what was
    # read may be elsewhere now.
    assert "database configuration sets" in reset_for_setting("DATABASES")
    assert queries_to_load() == 1
