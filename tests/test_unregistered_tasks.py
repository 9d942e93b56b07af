"""Writing commands refuse, before writing anything, to run a task this process does not have."""

from __future__ import annotations

import pytest

from tests.conftest import require_service
from tests.ops_support import assert_one_line_refusal, command, python_m, refused, stored
from triggers import CacheStorageBackend, TriggerManager
from triggers.operations.registered import reachable, unregistered

NOWHERE = "tests.never_registered_anywhere"


def _session(uid, alias, using="sync"):
    """A chain a -> b -> c where b's task is registered nowhere; a#0 failed, c waits."""
    storage = CacheStorageBackend(uid, cache=alias)
    TriggerManager(storage).update_configuration(
        {
            "a": {"after": ["go"], "run": "tests.behave", "using": "sync"},
            "b": {"after": ["a"], "run": NOWHERE, "using": using},
            "c": {"after": ["b"], "run": "tests.behave", "using": "sync"},
            "other": {"after": ["elsewhere"], "run": "tests.behave", "using": "sync"},
        }
    )
    with storage.acquire_lock():
        storage.create_instance("a", status="failed", metadata={"exceptionType": "x.Boom"})
        storage.save()
    return uid


def test_reachable_follows_cascades(uid):
    storage = CacheStorageBackend(_session(uid, "locmem"), cache="locmem")
    assert [c.name for c in reachable(storage, ["go"])] == ["a", "b", "c"]
    assert [c.name for c in reachable(storage, ["b"])] == ["c"]
    assert [c.name for c in reachable(storage, ["elsewhere"])] == ["other"]
    assert unregistered(storage, reachable(storage, ["go"])) == [NOWHERE]
    assert unregistered(storage, reachable(storage, ["elsewhere"])) == []


def test_a_runner_that_sends_tasks_elsewhere_is_not_refused(uid):
    storage = CacheStorageBackend(_session(uid, "locmem", using="celery"), cache="locmem")
    assert unregistered(storage, reachable(storage, ["go"])) == []


@pytest.mark.parametrize(
    "args",
    [
        ("fire", "go"),
        ("replay", "a#0"),
        ("skip", "a#0", "--cascade"),
    ],
)
def test_writing_commands_refuse_an_unregistered_task_and_write_nothing(uid, args):
    _session(uid, "locmem")
    before = stored(uid, "locmem")
    message = refused(args[0], uid, *args[1:], "--cache", "locmem")
    assert NOWHERE in message and "(of b)" in message
    assert f"manage.py triggers {args[0]}" in message and "nothing was changed" in message
    assert stored(uid, "locmem") == before


def test_what_runs_no_unregistered_task_is_done(uid):
    _session(uid, "locmem")
    assert "fired elsewhere" in command("fire", uid, "elsewhere", "--cache", "locmem")
    assert "skipped a#0" in command(
        "skip", uid, "a#0", "--cache", "locmem"
    )  # no cascade: runs nothing


def test_python_m_with_a_redis_url_refuses_the_applications_tasks(uid):
    """The issue's case: no settings, so none of the application's tasks are registered."""
    require_service("redis")
    from django.conf import settings

    _session(uid, "redis")
    before = stored(uid, "redis")
    url = settings.REDIS_URL
    for args in (("fire", uid, "go"), ("replay", uid, "a#0")):
        done = python_m(*args, "--cache", url)
        line = assert_one_line_refusal(done, NOWHERE, f"manage.py triggers {args[0]}")
        assert "--settings MODULE" in line
    assert stored(uid, "redis") == before
