"""``manage.py triggers redispatch``: instances scheduled too long sent again, on LocMem and Redis;
and the Celery task function of the same work, called directly."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from tests.conftest import prepare_cache
from tests.ops_support import add_stuck_instance, command, questionnaire, refused, stored
from tests.runner_support import RecordingRunner
from triggers import CacheStorageBackend
from triggers.errors import InvalidArgument
from triggers.operations.resend import CELERY_TASK_NAME, redispatch_task
from triggers.tasks.execution import run_task


@pytest.fixture(params=["locmem", "redis"])
def alias(request):
    return prepare_cache(request, request.param)


def statuses(uid, alias):
    return {i.name: i.status for i in CacheStorageBackend(uid, cache=alias).iter_instances()}


@pytest.fixture
def stuck(uid, alias):
    """The questionnaire, with one instance scheduled three hours ago and one just now,
    neither ever sent (their tasks run on the sync runner once sent)."""
    questionnaire(uid, alias)
    old = add_stuck_instance(uid, alias)
    recent = add_stuck_instance(uid, alias, when=datetime.now(timezone.utc).replace(tzinfo=None))
    return uid, old, recent


def test_redispatch_sends_only_what_waited_longer_than_the_age(stuck, alias):
    uid, old, recent = stuck
    out = command("redispatch", uid, "--older-than", "600", "--cache", alias)
    assert out == f"session {uid}: 1 sent again {old}\n"
    after = statuses(uid, alias)
    assert after[old] == "finished"  # sent, so run (the sync runner runs it here)
    assert after[recent] == "scheduled"  # its message may still be queued: left alone


def test_redispatch_json_and_instance_filter(stuck, alias):
    uid, old, recent = stuck
    report = json.loads(
        command(
            "redispatch", uid, "--older-than", "0", "--instance", recent, "--cache", alias, "--json"
        )
    )
    assert report == {
        "olderThan": 0.0,
        "sessions": [{"uid": uid, "redispatched": [recent], "errors": {}}],
    }
    assert statuses(uid, alias)[old] == "scheduled"
    assert statuses(uid, alias)[recent] == "finished"


def test_redispatch_leaves_running_and_finished_instances(stuck, alias):
    uid, old, _recent = stuck
    running = add_stuck_instance(uid, alias, status="running")
    command("redispatch", uid, "--older-than", "600", "--cache", alias)
    after = statuses(uid, alias)
    assert after[running] == "running"  # a paused worker may still end it: requeue is for it
    assert after[old] == "finished"
    before = stored(uid, alias)
    assert (
        command("redispatch", uid, "--older-than", "600", "--cache", alias)
        == f"session {uid}: 0 sent again\n"
    )
    assert stored(uid, alias) == before


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--older-than", "nan"], "--older-than"),
        (["--older-than", "-1"], "-1"),
        (["--older-than", "inf"], "inf"),
        (["--older-than", "1e999"], "inf"),
    ],
)
def test_redispatch_refuses_a_bad_age_and_changes_nothing(stuck, alias, args, words):
    uid = stuck[0]
    before = stored(uid, alias)
    message = refused("redispatch", uid, *args, "--cache", alias)
    assert words in message
    assert stored(uid, alias) == before


def test_redispatch_refuses_a_missing_session_and_sessions_given_twice(stuck, alias):
    uid = stuck[0]
    before = stored(uid, alias)
    assert "no session 'nope:{x}'" in refused(
        "redispatch", uid, "nope:{x}", "--older-than", "0", "--cache", alias
    )
    assert "UID ...) or --all" in refused("redispatch", "--older-than", "0", "--cache", alias)
    assert "UID ...) or --all" in refused(
        "redispatch", uid, "--all", "--older-than", "0", "--cache", alias
    )
    assert "--older-than" in refused("redispatch", uid, "--cache", alias)  # required
    assert stored(uid, alias) == before


def test_redispatch_all_where_the_cache_cannot_list_is_refused(uid):
    message = refused("redispatch", "--all", "--older-than", "0", "--cache", "locmem")
    assert "cannot list" in message


def test_a_first_message_delivered_after_the_redispatch_is_refused(manager_session, test_runners):
    """The message was only late, not lost: whichever delivery comes second runs nothing."""
    manager = manager_session
    manager.update_configuration(
        {"t_a": {"after": ["go"], "run": "tests.add", "using": "tests-recording"}}
    )
    manager.fire("go", {"n": 2})
    late = RecordingRunner.payloads(manager.storage.uid)["t_a#0"]
    manager.update_configuration({"t_a": {"after": ["go"], "run": "tests.add", "using": "sync"}})

    report = redispatch_task(0, [manager.storage.uid], cache=manager.storage.cache_alias)
    assert report == {"olderThan": 0.0, "redispatched": 1, "sessions": 1, "errors": {}}
    done = CacheStorageBackend(manager.storage.uid, cache=manager.storage.cache_alias)["t_a#0"]
    assert done.status == "finished" and done.metadata["result"] == {"sum": 2}
    stamp = done.metadata["timestamps"]["finished"]

    assert run_task(late) is None  # refused at start
    again = CacheStorageBackend(manager.storage.uid, cache=manager.storage.cache_alias)["t_a#0"]
    assert again.metadata["timestamps"]["finished"] == stamp


def test_the_celery_task_function_refuses_a_bad_age(uid):
    assert CELERY_TASK_NAME == "triggers.redispatch"
    for bad in (float("nan"), -1, "600", True, None):
        with pytest.raises(InvalidArgument) as caught:
            redispatch_task(bad, [uid])
        assert "older_than" in str(caught.value)


def test_a_session_that_cannot_be_read_is_reported_and_the_others_sent(stuck, alias):
    uid, old, _recent = stuck
    report = redispatch_task(600, ["bad uid with spaces\n", uid], cache=alias)
    assert report["redispatched"] == 1
    assert list(report["errors"]) == ["bad uid with spaces\n"]
    assert statuses(uid, alias)[old] == "finished"


@pytest.mark.parametrize("odd", ["ops:{7}:a", "x{y}z\\:"])
def test_redispatch_in_a_session_whose_uid_has_separators(alias, uid, odd):
    odd = f"{odd}{uid}"  # a new session each run
    questionnaire(odd, alias)
    old = add_stuck_instance(odd, alias)
    report = json.loads(
        command("redispatch", odd, "--older-than", "600", "--cache", alias, "--json")
    )
    assert report["sessions"] == [{"uid": odd, "redispatched": [old], "errors": {}}]
    assert statuses(odd, alias)[old] == "finished"


def test_an_instance_a_worker_takes_between_the_look_and_the_send_is_left_to_it(
    stuck, alias, monkeypatch
):
    """Listed as scheduled too long, then started by a worker before its turn
    came: it is left running (not failed and replayed), and no error is reported."""
    from triggers import TriggerManager
    from triggers.operations import resend

    uid, old, recent = stuck
    listed = resend.waiting_too_long

    def listed_then_taken(storage, older_than, names=None, now=None):
        found = listed(storage, older_than, names, now)
        TriggerManager(CacheStorageBackend(uid, cache=alias)).update_instance_status(old, "running")
        return found

    monkeypatch.setattr(resend, "waiting_too_long", listed_then_taken)
    before = statuses(uid, alias)
    report = json.loads(
        command("redispatch", uid, "--older-than", "600", "--cache", alias, "--json")
    )
    assert report["sessions"] == [{"uid": uid, "redispatched": [], "errors": {}}]
    # The worker's run is left alone: no failure, no replay, no clone.
    assert statuses(uid, alias) == {**before, old: "running"}
