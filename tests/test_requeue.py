"""``requeue UID INSTANCE --stuck-for SECONDS``: a stuck instance failed and replayed in one commit."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from django.core.management.base import CommandError

from tests.conftest import prepare_cache
from tests.ops_support import LONG_AGO, add_stuck_instance, command, questionnaire, refused, stored
from triggers import CacheStorageBackend, TriggerManager, signals
from triggers.operations.requeue import STUCK


@pytest.fixture(params=["locmem", "redis"])
def alias(request):
    return prepare_cache(request, request.param)


@pytest.fixture
def session(uid, alias):
    return questionnaire(uid, alias)


@pytest.mark.parametrize("status", ["scheduled", "running"])
def test_requeue_fails_a_stuck_instance_and_replays_it(session, alias, status):
    stuck = add_stuck_instance(session, alias, status=status)
    out = command("requeue", session, stuck, "--stuck-for", "600", "--cache", alias)
    lines = out.splitlines()
    assert lines[0].startswith(f"requeued {stuck} of session {session} ({status} for ")
    clone = lines[0].rpartition(" as ")[2]
    assert lines[1:] == [f"  {stuck}  replayed", f"  {clone}  finished"]
    storage = CacheStorageBackend(session, cache=alias)
    old = storage[stuck]
    assert old.status == "replayed"
    assert old.metadata["exceptionType"] == STUCK
    assert f"it had been {status} for" in old.metadata["exceptionInfo"]
    assert set(old.metadata["timestamps"]) >= {"failed", "replayed"}
    assert storage[clone].metadata["parent"] == stuck
    assert storage[clone].metadata["result"]["page"] == 1


def test_requeue_commits_once(session, alias):
    """The failure and the replay land in one commit: when the signal of the
    failure is sent (after its commit), the stored instance is replayed already."""
    stuck = add_stuck_instance(session, alias)
    seen = []

    def note(sender, instance, status, **kwargs):
        if instance.name == stuck:
            seen.append((status, CacheStorageBackend(session, cache=alias)[stuck].status))

    signals.instance_status_changed.connect(note)
    try:
        command("requeue", session, stuck, "--stuck-for", "60", "--cache", alias)
    finally:
        signals.instance_status_changed.disconnect(note)
    assert seen == [("failed", "replayed"), ("replayed", "replayed")]


def test_requeue_json(session, alias):
    stuck = add_stuck_instance(session, alias, status="running")
    done = json.loads(
        command("requeue", session, stuck, "--stuck-for", "60", "--cache", alias, "--json")
    )
    assert (done["action"], done["instance"], done["was"]) == ("requeue", stuck, "running")
    assert done["stuckSeconds"] >= 3 * 3600
    assert done["instances"] == {
        stuck: {"status": "replayed"},
        done["clone"]: {"status": "finished"},
    }


def test_requeue_refuses_a_younger_instance_and_changes_nothing(session, alias):
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    stuck = add_stuck_instance(session, alias, when=now)
    before = stored(session, alias)
    message = refused("requeue", session, stuck, "--stuck-for", "3600", "--cache", alias)
    assert f"instance {stuck!r} of session {session!r} has been scheduled for" in message
    assert "less than --stuck-for 3600 s; nothing was changed" in message
    assert stored(session, alias) == before


def test_requeue_refuses_a_failed_instance_pointing_to_replay(uid, alias):
    failed = questionnaire(uid, alias, fail=("t_importResponses",))
    before = stored(failed, alias)
    message = refused(
        "requeue", failed, "t_importResponses#0", "--stuck-for", "0", "--cache", alias
    )
    assert "is failed; only a scheduled or running instance can be requeued" in message
    assert f"replay {failed} t_importResponses#0" in message
    assert stored(failed, alias) == before


def test_requeue_refuses_a_finished_or_unknown_instance(session, alias):
    before = stored(session, alias)
    message = refused("requeue", session, "t_importSubject#0", "--stuck-for", "0", "--cache", alias)
    assert "is finished; only a scheduled or running instance can be requeued" in message
    assert "replay" not in message
    message = refused("requeue", session, "t_nothing#0", "--stuck-for", "0", "--cache", alias)
    assert "no instance 't_nothing#0'" in message
    assert stored(session, alias) == before


@pytest.mark.parametrize("age", ["nan", "inf", "-1"])
def test_requeue_refuses_an_age_that_is_no_age(session, alias, age):
    stuck = add_stuck_instance(session, alias)
    before = stored(session, alias)
    message = refused("requeue", session, stuck, f"--stuck-for={age}", "--cache", alias)
    assert "--stuck-for must be a finite number of seconds" in message
    assert stored(session, alias) == before


def test_requeue_needs_the_age(session, alias):
    stuck = add_stuck_instance(session, alias)
    assert "--stuck-for" in refused("requeue", session, stuck, "--cache", alias)


def test_requeue_exits_3_when_the_replay_failed_again(uid, alias):
    manager = TriggerManager(CacheStorageBackend(uid, cache=alias))
    behave = {"behave": {"raise": "boom"}}
    manager.update_configuration(
        {"t": {"after": ["go"], "run": "tests.behave", "using": "sync", "withParams": behave}}
    )
    storage = CacheStorageBackend(uid, cache=alias)
    with storage.acquire_lock():
        stamps = {"created": LONG_AGO, "scheduled": LONG_AGO}
        storage.create_instance("t", status="scheduled", metadata={"timestamps": stamps})
        storage.save()
    with pytest.raises(CommandError) as caught:
        command("requeue", uid, "t#0", "--stuck-for", "60", "--cache", alias)
    assert caught.value.returncode == 3
    assert "t#1, the replay of t#0, failed again" in str(caught.value)
    stored_now = CacheStorageBackend(uid, cache=alias)
    assert (stored_now["t#0"].status, stored_now["t#1"].status) == ("replayed", "failed")


def test_unresolved_points_to_requeue_for_stuck_instances(session, alias):
    add_stuck_instance(session, alias)
    out = command("unresolved", session, "--cache", alias, "--older-than", "120")
    assert out.splitlines()[-1] == (
        f"mend a stuck instance with: requeue {session} INSTANCE --stuck-for 120 (fails it and replays it)"
    )
    assert "replay" not in out.splitlines()[-2]
