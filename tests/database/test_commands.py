"""The operator commands on the database backend: every command through
``--storage database``, and ``list``, ``clearsessions`` and ``copy``."""

import datetime as dt
import json

import pytest
from django.core.cache import caches
from django.utils import timezone

from tests.conftest import require_service
from tests.ops_support import WORKFLOW, command, questionnaire_in, refused
from triggers import CacheStorageBackend, TriggerManager
from triggers.models import Instance, Session
from triggers.storages.database import DatabaseStorageBackend


def db(database):
    return ("--storage", "database", "--using", database)


def questionnaire(storage, fail=("t_importResponses",)):
    """The demo's questionnaire run to its end; the first run of each task in ``fail`` fails."""
    return questionnaire_in(storage, fail)


def failed_name(database, uid):
    return next(i.name for i in DatabaseStorageBackend(uid, using=database) if i.status == "failed")


def test_every_session_command_works_through_storage_database(database, uid, tmp_path):
    questionnaire(DatabaseStorageBackend(uid, using=database))
    assert f"session {uid} (storage database)" in command("show", uid, *db(database))
    assert "failed" in command("unresolved", uid, *db(database))
    name = failed_name(database, uid)
    assert "replayed" in command("replay", uid, name, *db(database))
    store = DatabaseStorageBackend(uid, using=database)
    assert store[name].status == "replayed"
    dump = tmp_path / "s.json"
    command("dump", uid, "--output", str(dump), *db(database))
    command("load", str(dump), "--uid", uid + "-copy", *db(database))
    copied = DatabaseStorageBackend(uid + "-copy", using=database)
    assert copied.debug_repr() == DatabaseStorageBackend(uid, using=database).debug_repr()
    assert "fired" in command("fire", uid + "-copy", "pageReceived", "--kwargs", "{\"page\": 2}", *db(database))
    command("delete", uid + "-copy", "--yes", *db(database))
    assert not Session.objects.using(database).filter(uid=uid + "-copy").exists()


def test_list_finds_sessions_by_what_they_hold(database, uid, settings):
    settings.TRIGGERS_SESSION_TIMEOUT = 3600
    failing = questionnaire(DatabaseStorageBackend(uid + "-f", using=database))
    fine = questionnaire(DatabaseStorageBackend(uid + "-ok", using=database), fail=())
    listed = json.loads(command("list", "--json", *db(database)))
    uids = [s["uid"] for s in listed["sessions"]]
    assert {failing, fine} <= set(uids)
    failed = json.loads(command("list", "--failed", "--json", *db(database)))
    entry = next(s for s in failed["sessions"] if s["uid"] == failing)
    assert entry["failed"] == 1 and entry["unresolved"] >= 1
    assert fine not in [s["uid"] for s in failed["sessions"]]
    by_task = json.loads(command("list", "--task", "t_importResponses", "--failed", "--json", *db(database)))
    assert failing in [s["uid"] for s in by_task["sessions"]]
    later = (timezone.now() + dt.timedelta(hours=1)).isoformat()
    assert json.loads(command("list", "--modified-after", later, "--json", *db(database)))["count"] == 0
    text = command("list", "--failed", *db(database))
    assert failing in text and "page 1 of 1" in text


def test_list_finds_stuck_instances_and_pages(database, uid):
    questionnaire(DatabaseStorageBackend(uid, using=database), fail=())
    long_ago = timezone.now() - dt.timedelta(hours=2)
    Instance.objects.using(database).filter(session__uid=uid, name="t_importSubject#0").update(
        status="running", status_since=long_ago
    )
    stuck = json.loads(command("list", "--stuck", "3600", "--json", *db(database)))
    assert [s["uid"] for s in stuck["sessions"]] == [uid]
    assert json.loads(command("list", "--stuck", "86400", "--json", *db(database)))["count"] == 0
    for n in range(3):
        TriggerManager(DatabaseStorageBackend(f"{uid}-{n}", using=database)).update_configuration(WORKFLOW)
    page = json.loads(command("list", "--per-page", "2", "--page", "2", "--json", *db(database)))
    assert page["page"] == 2 and len(page["sessions"]) == 2 and page["pages"] >= 2


@pytest.mark.parametrize(
    "args, words",
    [
        (("--page", "0"), "--page"),
        (("--per-page", "5000"), "--per-page"),
        (("--stuck", "nan"), "--stuck"),
        (("--modified-after", "yesterday"), "--modified-after"),
        (("--using", "nope"), "'nope'"),
        (("--storage", "cache"), "only the database storage backend"),
    ],
)
def test_list_refuses_bad_input(database, args, words):
    assert words in refused("list", *args)


def test_clearsessions_deletes_expired_ones(database, uid, settings):
    settings.TRIGGERS_SESSION_TIMEOUT = 3600
    questionnaire(DatabaseStorageBackend(uid, using=database), fail=())
    Session.objects.using(database).filter(uid=uid).update(expires=timezone.now())
    out = json.loads(command("clearsessions", "--json", *db(database)))
    assert out["deleted"] >= 1
    assert not Session.objects.using(database).filter(uid=uid).exists()
    assert "deleted 0 expired sessions" in command("clearsessions", *db(database))


def test_copy_moves_sessions_from_a_cache_to_the_database(database, uid):
    require_service("redis")
    caches["redis"].clear()
    uids = [questionnaire(CacheStorageBackend(f"{uid}-{n}", cache="redis")) for n in range(3)]
    out = command("copy", uids[0], "--from-cache", "redis", "--to-using", database)
    assert out.split() == ["copied", uids[0]]
    source = CacheStorageBackend(uids[0], cache="redis").debug_repr()
    assert DatabaseStorageBackend(uids[0], using=database).debug_repr() == source
    # Every session the Redis cache holds; the one copied already exists.
    with pytest.raises(Exception, match="1 of 3 sessions were not copied"):
        command("copy", "--all", "--from-cache", "redis", "--to-using", database)
    for other in uids[1:]:
        other_source = CacheStorageBackend(other, cache="redis").debug_repr()
        assert DatabaseStorageBackend(other, using=database).debug_repr() == other_source
    # The source keeps working, and --replace takes its newer state.
    TriggerManager(CacheStorageBackend(uids[0], cache="redis")).fire("later", {"n": 1})
    replaced = json.loads(
        command("copy", uids[0], "--from-cache", "redis", "--to-using", database, "--replace", "--json")
    )
    assert replaced["sessions"] == {uids[0]: "replaced"}
    assert DatabaseStorageBackend(uids[0], using=database).latest_kwargs["later"] == {"n": 1}


def test_copy_refuses_what_it_cannot_do(database, uid):
    assert "one of them" in refused("copy", "--from-cache", "locmem")
    assert "only Redis caches" in refused("copy", "--all", "--from-cache", "locmem")
    assert "same place" in refused(
        "copy", uid, "--from-storage", "database", "--from-using", database, "--to-using", database
    )
    with pytest.raises(Exception, match="1 of 1 sessions were not copied"):
        command("copy", uid, "--from-cache", "locmem", "--to-using", database)


def test_requeue_on_the_database_backend(database, uid):
    from tests.ops_support import LONG_AGO

    questionnaire(DatabaseStorageBackend(uid, using=database), fail=())
    storage = DatabaseStorageBackend(uid, using=database)
    with storage.acquire_lock():
        stamps = {"created": LONG_AGO, "running": LONG_AGO, "lastModified": LONG_AGO}
        kwargs = {
            "t_importSubject": {"subjectId": 1},
            "pageReceived": {"page": 1, "answers": {"q1": 4}},
        }
        stuck = storage.create_instance(
            "t_importResponses", status="running", kwargs=kwargs, metadata={"timestamps": stamps}
        ).name
        storage.save()
    message = refused("requeue", uid, stuck, "--stuck-for", "86400", *db(database))
    assert "less than --stuck-for 86400 s" in message
    done = json.loads(command("requeue", uid, stuck, "--stuck-for", "60", "--json", *db(database)))
    assert done["instances"] == {
        stuck: {"status": "replayed"},
        done["clone"]: {"status": "finished"},
    }
    assert (
        DatabaseStorageBackend(uid, using=database)[stuck]
        .metadata["exceptionType"]
        .endswith("Stuck")
    )


def test_show_prints_when_a_database_session_expires(database, uid, settings):
    settings.TRIGGERS_SESSION_TIMEOUT = 3600
    questionnaire(DatabaseStorageBackend(uid, using=database), fail=())
    report = json.loads(command("show", uid, "--json", *db(database)))
    assert report["lifetime"] == 3600
    assert 3500 <= report["expiresIn"] <= 3600
    row = Session.objects.using(database).get(uid=uid)
    assert report["expiresAt"] == row.expires.replace(microsecond=0).isoformat()
    headline = command("show", uid, *db(database)).splitlines()[0]
    assert "lives at least 1 h after a save; expires " in headline and " UTC (in " in headline
    settings.TRIGGERS_SESSION_TIMEOUT = None
    questionnaire(DatabaseStorageBackend(uid + "-forever", using=database), fail=())
    report = json.loads(command("show", uid + "-forever", "--json", *db(database)))
    assert (report["lifetime"], report["expiresIn"], report["expiresAt"]) == (None, None, None)


def test_without_a_cache_the_commands_use_the_database(database, uid, settings):
    settings.TRIGGERS_CACHE_ALIAS = None  # "database only"
    questionnaire(DatabaseStorageBackend(uid, using=database))
    assert f"session {uid} (storage database)" in command("show", uid, "--using", database)
    message = refused("show", uid, "--storage", "cache")
    assert "TRIGGERS_CACHE_ALIAS is None" in message and "--storage database" in message
    assert "None" not in message.replace("is None", "")
