"""``manage.py triggers``: show, unresolved, replay, skip and fire, on LocMem and on Redis."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest

from tests.conftest import prepare_cache, require_service
from tests.ops_support import (
    LONG_AGO,
    add_stuck_instance,
    assert_one_line_refusal,
    command,
    django_admin,
    python_m,
    questionnaire,
    refused,
    stored,
)
from triggers import CacheStorageBackend


@pytest.fixture(params=["locmem", "redis"])
def alias(request):
    return prepare_cache(request, request.param)


@pytest.fixture
def failed(uid, alias):
    """The questionnaire with the first run of t_importResponses failed."""
    return questionnaire(uid, alias, fail=("t_importResponses",))


def statuses(uid, alias):
    return {i.name: i.status for i in CacheStorageBackend(uid, cache=alias).iter_instances()}


# --------------------------------------------------------------------------- show


def test_show_says_how_long_the_session_lives(alias, uid):
    from django.test import override_settings

    from tests.storage_support import populate

    populate(CacheStorageBackend(uid, cache=alias, timeout=None))
    with override_settings(TRIGGERS_SESSION_TIMEOUT=60):  # the session's own lifetime wins
        assert command("show", uid, "--cache", alias).splitlines()[0].endswith("; never expires")
        assert json.loads(command("show", uid, "--cache", alias, "--json"))["lifetime"] is None
    populate(CacheStorageBackend(uid + "-day", cache=alias, timeout=86400))
    headline = command("show", uid + "-day", "--cache", alias).splitlines()[0]
    assert "; lives at least 1 day after a save; expires " in headline


def test_show_prints_instances_tasks_and_latest_kwargs(failed, alias):
    out = command("show", failed, "--cache", alias)
    lines = out.splitlines()
    assert lines[0].startswith(
        f"session {failed} (cache {alias}): 3 tasks, 3 instances; lives at least 5 min after a save; expires "
    )
    header = next(line for line in lines if line.startswith("instance "))
    for column in ("task", "status", "created (UTC)", "last modified", "log level", "error type"):
        assert column in header
    rows = {line.split()[0]: line.split() for line in lines if "#" in line.split(" ")[0]}
    assert rows["t_importSubject#0"][1:3] == ["t_importSubject", "finished"]
    assert rows["t_importResponses#0"][1:3] == ["t_importResponses", "failed"]
    failure = next(line for line in lines if line.startswith("t_importResponses#0 "))
    assert failure.split()[-6:-4] == ["ERROR", "RuntimeError:"], failure
    assert failure.endswith("  RuntimeError: simulated failure of t_importResp...")
    assert "tasks" in lines and any(line.startswith("t_importResponses ") for line in lines)
    assert any("pageReceived" in line and "triggers.demo.import_responses" in line for line in lines)
    latest = lines[lines.index(next(line for line in lines if line.startswith("latest kwargs"))) :]
    assert any(line.split()[0] == "questionnaireComplete" and '{"pages": 1}' in line for line in latest[1:])


def test_show_json_is_plain_data(failed, alias):
    report = json.loads(command("show", failed, "--cache", alias, "--json"))
    assert report["uid"] == failed
    by_name = {row["name"]: row for row in report["instances"]}
    assert set(by_name) == {"t_importSubject#0", "t_importResponses#0", "t_importBrowserMetadata#0"}
    broken = by_name["t_importResponses#0"]
    assert broken["status"] == "failed"
    assert broken["errorType"] == "builtins.RuntimeError"
    assert broken["error"].startswith("RuntimeError: simulated failure")
    assert broken["logLevel"] == "ERROR" and broken["logsResolved"] is False
    assert datetime.fromisoformat(broken["created"]).utcoffset().total_seconds() == 0
    assert datetime.fromisoformat(broken["lastModified"]) >= datetime.fromisoformat(broken["created"])
    tasks = {task["name"]: task for task in report["tasks"]}
    assert tasks["t_importResponses"]["andEvery"] == "pageReceived"
    assert tasks["t_importResponses"]["after"] == ["t_importSubject"]
    assert tasks["t_importBrowserMetadata"]["unless"] == ["isEmbeddedApplication"]
    assert report["latestKwargs"]["questionnaireComplete"] == {"pages": 1}


# --------------------------------------------------------------------------- unresolved


def test_unresolved_names_failures_stuck_instances_and_unresolved_logs(failed, alias):
    stuck = add_stuck_instance(failed, alias)
    out = command("unresolved", failed, "--cache", alias)
    assert out.startswith(f"session {failed}: 2 instance(s) need attention")
    lines = out.splitlines()
    rows = {line.split()[0]: n for n, line in enumerate(lines) if line.startswith("t_")}
    assert set(rows) == {"t_importResponses#0", stuck}
    failure = lines[rows["t_importResponses#0"]]
    assert failure.split()[1] == "failed"
    assert failure.endswith("failed; logs unresolved (ERROR)")
    assert lines[rows["t_importResponses#0"] + 1].strip().startswith("RuntimeError: simulated failure")
    # Three hours before this module was imported: 3h and some minutes now.
    since = LONG_AGO.strftime("%Y-%m-%d %H:%M:%S")
    assert re.search(rf"stuck: scheduled for 3h \d\dm \(since {since}\)", lines[rows[stuck]])

    report = json.loads(command("unresolved", failed, "--cache", alias, "--json"))
    entries = {entry["name"]: entry for entry in report["instances"]}
    assert entries["t_importResponses#0"]["reasons"] == ["failed", "unresolved logs"]
    assert entries["t_importResponses#0"]["error"]["type"] == "builtins.RuntimeError"
    assert entries[stuck]["reasons"] == ["stuck"]
    assert datetime.fromisoformat(entries[stuck]["since"]).replace(tzinfo=None) == LONG_AGO
    assert entries[stuck]["ageSeconds"] >= 3 * 3600
    assert report["olderThan"] == 600


def test_unresolved_age_threshold(uid, alias):
    questionnaire(uid, alias)
    running = add_stuck_instance(uid, alias, status="running", when=datetime.now(timezone.utc).replace(tzinfo=None))
    assert command("unresolved", uid, "--cache", alias) == f"session {uid}: nothing needs attention\n"
    report = json.loads(command("unresolved", uid, "--cache", alias, "--json", "--older-than", "0"))
    assert [(e["name"], e["status"], e["reasons"]) for e in report["instances"]] == [
        (running, "running", ["stuck"])
    ]


def test_unresolved_on_a_clean_session_says_so(uid, alias):
    questionnaire(uid, alias)
    assert command("unresolved", uid, "--cache", alias) == f"session {uid}: nothing needs attention\n"
    assert json.loads(command("unresolved", uid, "--cache", alias, "--json"))["instances"] == []


# --------------------------------------------------------------------------- replay, skip, fire


def test_replay_runs_a_clone(failed, alias):
    out = command("replay", failed, "t_importResponses#0", "--cache", alias)
    assert out.splitlines() == [
        f"replayed t_importResponses#0 of session {failed} as t_importResponses#1",
        "  t_importResponses#0  replayed",
        "  t_importResponses#1  finished",
    ]
    clone = CacheStorageBackend(failed, cache=alias)["t_importResponses#1"]
    assert clone.metadata["parent"] == "t_importResponses#0"
    assert clone.metadata["result"]["page"] == 1


def test_replay_with_new_kwargs(failed, alias):
    kwargs = {"t_importSubject": {"subjectId": 7}, "pageReceived": {"page": 9, "answers": {"q": 2}}}
    done = json.loads(
        command("replay", failed, "t_importResponses#0", "--kwargs", json.dumps(kwargs), "--cache", alias, "--json")
    )
    assert done["clone"] == "t_importResponses#1"
    assert done["instances"]["t_importResponses#1"] == {"status": "finished"}
    result = CacheStorageBackend(failed, cache=alias)["t_importResponses#1"].metadata["result"]
    assert result == {"subjectId": 7, "page": 9, "imported": 1, "score": 2}


def test_skip_with_cascade_fires_the_result(failed, alias):
    out = command(
        "skip", failed, "t_importResponses#0", "--cascade", "--result", '{"page": 1, "score": 0}', "--cache", alias
    )
    assert out.splitlines()[0] == f"skipped t_importResponses#0 of session {failed}; fired t_importResponses"
    storage = CacheStorageBackend(failed, cache=alias)
    skipped = storage["t_importResponses#0"]
    assert skipped.status == "skipped"
    assert skipped.metadata["cascade"] is True and skipped.metadata["result"] == {"page": 1, "score": 0}
    assert storage.latest_kwargs["t_importResponses"] == {"page": 1, "score": 0}


def test_skip_without_cascade(failed, alias):
    out = command("skip", failed, "t_importResponses#0", "--cache", alias)
    assert out.splitlines() == [f"skipped t_importResponses#0 of session {failed}", "  t_importResponses#0  skipped"]
    assert "t_importResponses" not in CacheStorageBackend(failed, cache=alias).latest_kwargs


def test_fire_schedules_and_runs(failed, alias):
    page = {"page": 2, "answers": {"q2": 5}, "userAgent": "x/1"}
    out = command("fire", failed, "pageReceived", "--kwargs", json.dumps(page), "--cache", alias)
    assert out.splitlines() == [
        f"fired pageReceived in session {failed}; scheduled t_importResponses#1",
        "  t_importResponses#1  finished",
    ]
    assert statuses(failed, alias)["t_importResponses#1"] == "finished"


def test_fire_that_readies_nothing(failed, alias):
    out = command("fire", failed, "isEmbeddedApplication", "--cache", alias, "--json")
    assert json.loads(out)["scheduled"] == []
    assert command("fire", failed, "isEmbeddedApplication", "--cache", alias).endswith("nothing became ready\n")


# --------------------------------------------------------------------------- refusals


def bad_inputs(uid):
    """(arguments, words the refusal names) for input each command must refuse."""
    return [
        (["show", "no-such-session"], ["no session 'no-such-session'"]),
        (["show", "has space"], ["invalid session uid"]),
        (["unresolved", "no-such-session"], ["no session"]),
        (["unresolved", uid, "--older-than", "-1"], ["--older-than"]),
        (["replay", uid, "t_importResponses#7"], ["no instance 't_importResponses#7'", "t_importResponses#0"]),
        (["replay", uid, "t_importSubject#0"], ["is finished", "only a failed instance"]),
        (["replay", uid, "t_importResponses#0", "--kwargs", "{nope"], ["--kwargs is not valid JSON"]),
        (["replay", uid, "t_importResponses#0", "--kwargs", "[1]"], ["--kwargs must be a JSON object"]),
        (["replay", "no-such-session", "t_importResponses#0"], ["no session"]),
        (["skip", uid, "t_importSubject#0"], ["only a failed instance can be skipped"]),
        (["skip", uid, "nothing#0"], ["no instance"]),
        (["skip", uid, "t_importResponses#0", "--cascade", "--result", "3"], ["--result must be a JSON object"]),
        (["fire", uid, "noSuchTrigger"], ["no task of session", "listens to 'noSuchTrigger'"]),
        (["fire", uid, "pageReceived", "--kwargs", "{"], ["--kwargs is not valid JSON"]),
        (["fire", "no-such-session", "pageReceived"], ["no session"]),
        (["show", uid, "--json", "--bogus"], ["unrecognized arguments: --bogus"]),
        (["replay", uid], ["required: INSTANCE"]),
    ]


def test_every_refusal_exits_2_and_changes_nothing(failed, alias):
    before = stored(failed, alias)
    assert before  # the session is there to be left alone
    for arguments, words in bad_inputs(failed):
        message = refused(*arguments, "--cache", alias)
        for word in words:
            assert word in message, (arguments, message)
        assert "\n" not in message
        assert stored(failed, alias) == before, arguments
    assert stored("no-such-session", alias) == {}


def test_an_unknown_cache_alias_is_refused(failed):
    assert "no cache 'nowhere' in CACHES" in refused("show", failed, "--cache", "nowhere")


# --------------------------------------------------------------------------- real processes


@pytest.fixture
def redis_session(uid):
    require_service("redis")
    return questionnaire(uid, "redis", fail=("t_importResponses",))


def test_commands_in_a_process_of_their_own(redis_session):
    uid = redis_session
    for done in (
        python_m("show", uid, "--settings", "tests.settings", "--cache", "redis"),
        django_admin("show", uid, "--cache", "redis"),
    ):
        assert done.returncode == 0, done.stderr
        assert f"session {uid} (cache redis): 3 tasks, 3 instances" in done.stdout
        assert done.stderr == ""
    done = python_m("unresolved", uid, "--cache", "redis", "--json", DJANGO_SETTINGS_MODULE="tests.settings")
    assert done.returncode == 0, done.stderr
    assert [e["name"] for e in json.loads(done.stdout)["instances"]] == ["t_importResponses#0"]

    before = stored(uid, "redis")
    for done in (
        python_m("replay", uid, "t_importSubject#0", "--settings", "tests.settings", "--cache", "redis"),
        django_admin("replay", uid, "t_importSubject#0", "--cache", "redis"),
        django_admin("fire", uid, "pageReceived", "--kwargs", "{oops", "--cache", "redis"),
        django_admin("show", "no-such-session", "--cache", "redis"),
        python_m("skip", uid, "--settings", "tests.settings"),
    ):
        assert_one_line_refusal(done)
        assert stored(uid, "redis") == before

    # The task is not registered in that process (django-admin imports no demo), where the
    # sync runner would run the clone: refused before anything is written.
    done = django_admin("replay", uid, "t_importResponses#0", "--cache", "redis")
    line = assert_one_line_refusal(done, "triggers.demo.import_responses", "manage.py triggers replay")
    assert "would run in this process, where no such task is registered" in line
    assert stored(uid, "redis") == before


def test_python_m_runs_the_demo_tasks_against_a_redis_url(tmp_path, uid):
    require_service("redis")
    from django.conf import settings

    url = settings.REDIS_URL
    demo = python_m("demo", "--cache", url, "--uid", uid, "--runner", "sync")
    assert demo.returncode == 0, demo.stderr
    assert f"python -m triggers show {uid} --cache {url}" in demo.stdout
    page = json.dumps({"page": 4, "answers": {"q7": 3}, "userAgent": "x/1"})
    done = python_m("fire", uid, "pageReceived", "--kwargs", page, "--cache", url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"fired pageReceived in session {uid}; scheduled t_importResponses#3",
        "  t_importResponses#3  finished",
    ]
    assert CacheStorageBackend(uid, cache="redis")["t_importResponses#3"].metadata["result"]["page"] == 4


def test_without_settings_the_commands_say_what_they_need(uid):
    done = python_m("show", uid)
    assert_one_line_refusal(done, "no Django settings", "--settings")
    assert_one_line_refusal(python_m("show", uid, "--settings", "tests.nosuchmodule"), "tests.nosuchmodule")


@pytest.mark.parametrize("name", ["show", "unresolved", "replay", "skip", "fire", "graph", "dump", "load"])
def test_every_command_has_help(name):
    for done in (python_m(name, "--help"), django_admin(name, "--help")):
        assert done.returncode == 0, done.stderr
        assert "exit status: 0 done, 2 bad input" in " ".join(done.stdout.split())
        assert "--cache" in done.stdout
