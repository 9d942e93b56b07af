"""``redispatch`` on the database backend: one session, and ``--all`` of them."""

import json

from tests.ops_support import LONG_AGO, PAGE, command, questionnaire_in, refused
from triggers.storages.database import DatabaseStorageBackend


def db(database):
    return ("--storage", "database", "--using", database)


def stuck_in(storage):
    """An instance of the questionnaire left scheduled three hours ago, never sent."""
    questionnaire_in(storage)
    with storage.acquire_lock():
        stamps = {"created": LONG_AGO, "scheduled": LONG_AGO, "lastModified": LONG_AGO}
        instance = storage.create_instance(
            "t_importResponses",
            status="scheduled",
            kwargs={"t_importSubject": {"subjectId": 1}, "pageReceived": PAGE},
            metadata={"timestamps": stamps},
        )
        storage.save()
    return instance.name


def status(database, uid, name):
    return DatabaseStorageBackend(uid, using=database)[name].status


def test_redispatch_one_session_and_all_of_them(database, uid):
    first = stuck_in(DatabaseStorageBackend(uid, using=database))
    second = stuck_in(DatabaseStorageBackend(uid + "-b", using=database))

    out = command("redispatch", uid, "--older-than", "600", *db(database))
    assert out == f"session {uid}: 1 sent again {first}\n"
    assert status(database, uid, first) == "finished"
    assert status(database, uid + "-b", second) == "scheduled"

    report = json.loads(
        command("redispatch", "--all", "--older-than", "600", "--json", *db(database))
    )
    sent = {entry["uid"]: entry["redispatched"] for entry in report["sessions"]}
    assert sent == {uid: [], uid + "-b": [second]}
    assert status(database, uid + "-b", second) == "finished"


def test_redispatch_refuses_a_missing_session(database, uid):
    assert f"no session '{uid}'" in refused("redispatch", uid, "--older-than", "0", *db(database))
